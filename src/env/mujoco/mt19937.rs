//! NumPy's legacy global generator (`np.random.seed(s)`, `np.random.uniform`): the
//! 32-bit Mersenne Twister MT19937 with its integer seeding, and NumPy's 53-bit
//! doubles. MetaWorld draws its benchmark task lists from it, so reproducing it lets
//! the native backend build MetaWorld's exact train/test task lists without Python.
//!
//! ```
//! use bamdp::env::mujoco::mt19937::Mt19937;
//! // The reference generator's first output for seed 5489 (its default seed).
//! assert_eq!(Mt19937::new(5489).next_u32(), 3499211612);
//! ```

/// MT19937 with NumPy's `RandomState` seeding and double conversion.
#[derive(Clone)]
pub struct Mt19937 {
    key: [u32; 624],
    pos: usize,
}

impl Mt19937 {
    /// `np.random.seed(seed)` for an integer seed.
    pub fn new(seed: u32) -> Mt19937 {
        let mut key = [0u32; 624];
        let mut s = seed;
        for (pos, k) in key.iter_mut().enumerate() {
            *k = s;
            s = 1_812_433_253u32
                .wrapping_mul(s ^ (s >> 30))
                .wrapping_add(pos as u32 + 1);
        }
        Mt19937 { key, pos: 624 }
    }

    fn generate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..624 {
            let y = (self.key[i] & UPPER) | (self.key[(i + 1) % 624] & LOWER);
            let mut v = self.key[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= MATRIX_A;
            }
            self.key[i] = v;
        }
        self.pos = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.pos == 624 {
            self.generate();
        }
        let mut y = self.key[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in [0, 1) from 53 random bits, as NumPy's `random_sample`.
    pub fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// `np.random.uniform(low, high)` element by element: `low + (high - low) u`.
    pub fn uniform(&mut self, low: &[f64], high: &[f64], out: &mut [f64]) {
        for ((o, l), h) in out.iter_mut().zip(low).zip(high) {
            let range = h - l;
            *o = l + range * self.next_f64();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mt19937;

    #[test]
    fn doubles_and_uniforms_equal_numpy() {
        // np.random.RandomState(5489).random_sample()
        assert_eq!(Mt19937::new(5489).next_f64(), 0.8147236863931789);
        // np.random.seed(42); np.random.uniform([-0.1, 0.8], [0.1, 0.9], size=2)
        let mut out = [0.0; 2];
        Mt19937::new(42).uniform(&[-0.1, 0.8], &[0.1, 0.9], &mut out);
        assert_eq!(out[0].to_bits(), (-0.025_091_976_230_527_502f64).to_bits());
        assert!((out[1] - 0.89507143).abs() < 1e-8);
    }
}
