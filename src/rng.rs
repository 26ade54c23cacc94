//! Deterministic, serialisable random streams.
//!
//! Every source of randomness in bamdp is a [`Rng`] derived from the run seed and a
//! stream label (`Rng::stream(seed, STREAM, index)`), so results never depend on the
//! thread count or on the order in which environments are stepped, and a checkpoint
//! can store the exact generator state (four `u64`s).

use serde::{Deserialize, Serialize};

mod normals;

/// xoshiro256++ generator: small state, fast, good statistical quality.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream labels, so that e.g. the task stream of env 3 never collides with the
/// action-sampling stream.
pub mod streams {
    pub const TRAIN_TASKS: u64 = 1;
    pub const TEST_TASKS: u64 = 2;
    pub const ACTIONS: u64 = 3;
    pub const MINIBATCH: u64 = 4;
    pub const INIT: u64 = 5;
    pub const ENV_NOISE: u64 = 6;
    pub const EVAL_ACTIONS: u64 = 7;
    pub const VAE: u64 = 8;
    pub const PLAN: u64 = 9;
}

impl Rng {
    /// A generator seeded from a single `u64`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let s = [
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
            splitmix64(&mut x),
        ];
        Rng { s }
    }

    /// The independent stream `(seed, label, index)`.
    pub fn stream(seed: u64, label: u64, index: u64) -> Self {
        let mut x = seed ^ 0xA076_1D64_78BD_642F;
        let a = splitmix64(&mut x);
        let mut y = a ^ label.wrapping_mul(0xE703_7ED1_A0B4_28DB);
        let b = splitmix64(&mut y);
        Rng::new(b ^ index.wrapping_mul(0x8EBC_6AF0_9C88_C6E3))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, 1) as f32 (24 bits).
    #[inline]
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform integer in [0, n) without modulo bias (Lemire's method).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        loop {
            let x = self.next_u64();
            let m = (x as u128) * (n as u128);
            let l = m as u64;
            if l >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// Standard normal sample (Box-Muller; one value per call for simplicity of state).
    /// Blocks of normals are cheaper through [`Rng::fill_normals`].
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            xs.swap(i, j);
        }
    }

    /// Index sampled from unnormalised non-negative weights.
    pub fn categorical(&mut self, probs: &[f32]) -> usize {
        let total: f32 = probs.iter().sum();
        let mut u = self.uniform_f32() * total;
        for (i, &p) in probs.iter().enumerate() {
            if u < p {
                return i;
            }
            u -= p;
        }
        // Rounding left u just above the last bucket: take the last non-zero one.
        probs.iter().rposition(|&p| p > 0.0).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(1, 2, 3).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::stream(1, 2, 3).next_u64(),
            Rng::stream(1, 2, 4).next_u64()
        );
        assert_ne!(
            Rng::stream(1, 2, 3).next_u64(),
            Rng::stream(1, 3, 3).next_u64()
        );
    }

    #[test]
    fn below_is_uniform_enough() {
        let mut r = Rng::new(7);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            counts[r.below(5) as usize] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 400.0, "{counts:?}");
        }
    }

    #[test]
    fn normal_moments() {
        let mut r = Rng::new(11);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
