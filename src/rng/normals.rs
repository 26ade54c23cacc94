//! Blocks of standard normals from one stream, vectorised: Box-Muller on pairs, with
//! a branch-free `ln` and `sin`/`cos` written as plain multiplies and adds, so a loop
//! over 8 pairs runs in vector lanes (AVX2 / AVX-512 when the CPU has them) and gives
//! the same bits at every vector width and on every x86-64 machine (no `mul_add`).
//!
//! One 64-bit draw gives one pair: its high 31 bits the radius' uniform
//! `u1 = (h + 1/2) / 2^31` (in (0, 1), so `|z| <= sqrt(2 * 32 ln 2) = 6.66`; the
//! standard normal's mass beyond is 2.7e-11), its low 24 bits the angle's
//! `u2 = l / 2^24`; the pair is `r (cos 2 pi u2, sin 2 pi u2)`, `r = sqrt(-2 ln u1)`.
//! libm's `ln` and `cos` on f64 (the scalar [`Rng::normal`]) cost ~19% of a VariBAD
//! planning step; this costs a few nanoseconds per normal.
//!
//! ```
//! use bamdp::rng::Rng;
//! let mut z = [0.0f32; 40];
//! Rng::new(7).fill_normals(&mut z);
//! let mut again = [0.0f32; 40];
//! Rng::new(7).fill_normals(&mut again);
//! assert_eq!(z, again);
//! assert!(z.iter().all(|v| v.abs() < 6.7));
//! ```

use super::Rng;

/// Pairs computed side by side.
const PAIRS: usize = 8;

/// Chunks of at most this many pairs are computed one pair at a time.
const SHORT_TAIL: usize = 2;

impl Rng {
    /// Fills `out` with standard normals (f32), drawing `out.len().div_ceil(2)` values
    /// from the stream: the same stream state and length give the same normals on
    /// every machine.
    pub fn fill_normals(&mut self, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked just above).
                unsafe { fill_avx512(self, out) };
                return;
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { fill_avx2(self, out) };
                return;
            }
        }
        fill_body(self, out);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(rng: &mut Rng, out: &mut [f32]) {
    fill_body(rng, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fill_avx512(rng: &mut Rng, out: &mut [f32]) {
    fill_body(rng, out)
}

#[inline(always)]
fn fill_body(rng: &mut Rng, out: &mut [f32]) {
    let mut bits = [0u64; PAIRS];
    let mut z = [0.0f32; 2 * PAIRS];
    for chunk in out.chunks_mut(2 * PAIRS) {
        let pairs = chunk.len().div_ceil(2);
        for b in &mut bits[..pairs] {
            *b = rng.next_u64();
        }
        if pairs <= SHORT_TAIL {
            // A short tail (GLiBRL's 2 K_Omega + 1 normals per particle end in one
            // pair): pair by pair, the same arithmetic, not a whole vector's worth.
            for (o, &b) in chunk.chunks_mut(2).zip(&bits[..pairs]) {
                let (c, s) = pair(b);
                o[0] = c;
                if let Some(o1) = o.get_mut(1) {
                    *o1 = s;
                }
            }
            continue;
        }
        box_muller(&bits, &mut z);
        // Pair i is (z[i], z[PAIRS + i]); a chunk of n normals takes pairs 0..n/2 whole
        // and the cosine half of the last one when n is odd.
        for (i, o) in chunk.iter_mut().enumerate() {
            *o = z[(i & 1) * PAIRS + i / 2];
        }
    }
}

/// Box-Muller of `PAIRS` 64-bit draws into `z`: cosines in the first half, sines in
/// the second.
#[inline(always)]
fn box_muller(bits: &[u64; PAIRS], z: &mut [f32; 2 * PAIRS]) {
    let (zc, zs) = z.split_at_mut(PAIRS);
    for ((&b, c), s) in bits.iter().zip(zc).zip(zs) {
        (*c, *s) = pair(b);
    }
}

/// The pair `r (cos 2 pi u2, sin 2 pi u2)` of one draw (see the module doc): plain
/// multiplies and adds, the same bits alone or in a vector loop.
#[inline(always)]
fn pair(b: u64) -> (f32, f32) {
    let u1 = (((b >> 33) as i32) as f32 + 0.5) * (1.0 / 2_147_483_648.0);
    let u2 = ((b & 0xFF_FFFF) as i32) as f32 * (1.0 / 16_777_216.0);
    let r = (-2.0 * ln(u1)).sqrt();
    let (cos, sin) = sincos_turns(u2);
    (r * cos, r * sin)
}

/// Natural log of a positive normal f32: `x = 2^e m`, `m` in `[sqrt(1/2), sqrt(2))`,
/// `ln x = e ln 2 + ln m` with Cephes' degree-9 polynomial for `ln(1 + f)`,
/// `f = m - 1`. Relative error ~1e-7 (tested against f64).
#[inline(always)]
pub(crate) fn ln(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    const LN2_HI: f32 = 0.693_359_4; // 0.693359375, exact in 9 bits
    const LN2_LO: f32 = -2.121_944_4e-4;
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xFF) as i32 - 126;
    let m = f32::from_bits((bits & 0x007F_FFFF) | 0x3F00_0000); // [1/2, 1)
    let small = m < SQRT_HALF;
    let e = (e - small as i32) as f32;
    let f = if small { m + m } else { m } - 1.0;
    let f2 = f * f;
    let p = ((((((((7.037_683_6e-2 * f - 1.151_461e-1) * f + 1.167_699_9e-1) * f
        - 1.242_014_1e-1)
        * f
        + 1.424_932_3e-1)
        * f
        - 1.666_805_8e-1)
        * f
        + 2.000_071_4e-1)
        * f
        - 2.499_999_4e-1)
        * f
        + 3.333_333e-1)
        * f
        * f2;
    let y = p + e * LN2_LO - 0.5 * f2;
    (f + y) + e * LN2_HI
}

/// `(cos 2 pi t, sin 2 pi t)` for `t` in `[0, 1)`: `4 t = q + s` with `q` the nearest
/// integer (exact: the 1.5 * 2^23 shift), the angle `s pi / 2` in `[-pi/4, pi/4]`
/// through Cephes' minimax polynomials, then a rotation by `q` quarter turns (a swap
/// and sign flips). Absolute error ~1e-7.
#[inline(always)]
pub(crate) fn sincos_turns(t: f32) -> (f32, f32) {
    const SHIFT: f32 = 12_582_912.0; // 1.5 * 2^23
    let v = 4.0 * t;
    let q = (v + SHIFT) - SHIFT;
    let quarter = q as i32;
    let a = (v - q) * std::f32::consts::FRAC_PI_2;
    let a2 = a * a;
    let sin = ((-1.951_529_6e-4 * a2 + 8.332_161e-3) * a2 - 1.666_665_5e-1) * a2 * a + a;
    let cos =
        ((2.443_315_7e-5 * a2 - 1.388_731_6e-3) * a2 + 4.166_664_6e-2) * a2 * a2 - 0.5 * a2 + 1.0;
    let swap = quarter & 1 != 0;
    let (c, s) = if swap { (sin, cos) } else { (cos, sin) };
    let neg_c = ((quarter + 1) & 2) as u32; // quarters 1 and 2
    let neg_s = (quarter & 2) as u32; // quarters 2 and 3
    (
        f32::from_bits(c.to_bits() ^ (neg_c << 30)),
        f32::from_bits(s.to_bits() ^ (neg_s << 30)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_matches_f64() {
        let mut worst = 0.0f64;
        for i in 0..200_000u32 {
            // Spans (0, 1] densely and the small end geometrically.
            let x = if i % 2 == 0 {
                (i as f32 + 0.5) / 200_000.0
            } else {
                (-(i as f32) * 1e-4).exp2()
            };
            let got = ln(x) as f64;
            let want = (x as f64).ln();
            worst = worst.max((got - want).abs() / want.abs().max(1e-30));
        }
        // ln near 1 is near 0: relative error there is against a tiny value, so an
        // absolute bound is the meaningful one for those.
        assert!(worst < 3e-6, "worst relative error {worst}");
        let near_one = (ln(0.999_999) as f64 - (0.999_999f32 as f64).ln()).abs();
        assert!(near_one < 1e-12, "{near_one}");
    }

    #[test]
    fn sincos_matches_f64() {
        let mut worst = 0.0f64;
        for i in 0..(1u32 << 16) {
            let t = i as f32 / 65_536.0;
            let (c, s) = sincos_turns(t);
            let a = 2.0 * std::f64::consts::PI * t as f64;
            worst = worst
                .max((c as f64 - a.cos()).abs())
                .max((s as f64 - a.sin()).abs());
        }
        assert!(worst < 3e-7, "worst absolute error {worst}");
    }

    #[test]
    fn vector_and_scalar_paths_agree_bit_for_bit() {
        let mut a = vec![0.0f32; 1001];
        Rng::new(3).fill_normals(&mut a);
        let mut b = vec![0.0f32; 1001];
        fill_body(&mut Rng::new(3), &mut b);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        // A block of n normals draws ceil(n / 2) values: the stream continues there.
        let (mut r1, mut r2) = (Rng::new(3), Rng::new(3));
        r1.fill_normals(&mut a[..7]);
        for _ in 0..4 {
            r2.next_u64();
        }
        assert_eq!(r1.next_u64(), r2.next_u64());
    }

    #[test]
    fn a_short_tail_equals_the_vector_loop_bit_for_bit() {
        for n in 1..=40 {
            let mut got = vec![0.0f32; n];
            Rng::new(9).fill_normals(&mut got);
            // Every chunk through the whole-vector Box-Muller, whatever its length.
            let mut rng = Rng::new(9);
            let mut want = Vec::new();
            for chunk in (0..n).collect::<Vec<_>>().chunks(2 * PAIRS) {
                let mut bits = [0u64; PAIRS];
                for b in &mut bits[..chunk.len().div_ceil(2)] {
                    *b = rng.next_u64();
                }
                let mut z = [0.0f32; 2 * PAIRS];
                box_muller(&bits, &mut z);
                want.extend((0..chunk.len()).map(|i| z[(i & 1) * PAIRS + i / 2]));
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{n} normals");
        }
    }

    /// Standard normal CDF through the complementary error function (Numerical
    /// Recipes' Chebyshev fit, relative error < 1.2e-7 everywhere: ample for a
    /// Kolmogorov-Smirnov bound of ~1e-3).
    fn phi(x: f64) -> f64 {
        let z = x.abs() / std::f64::consts::SQRT_2;
        let t = 1.0 / (1.0 + 0.5 * z);
        let poly = -z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77))))))));
        let erfc = t * poly.exp();
        if x >= 0.0 {
            1.0 - 0.5 * erfc
        } else {
            0.5 * erfc
        }
    }

    /// 1e6 draws against the closed forms: mean 0, variance 1, third moment 0, fourth
    /// 3; tail masses P(|z| > 2) = 0.0455, P(|z| > 3) = 0.0027; and the
    /// Kolmogorov-Smirnov distance to the normal CDF below its 0.1% critical value
    /// 1.95 / sqrt(n). Each bound is several standard errors wide for a correct
    /// generator and fails for a wrong radius or angle (e.g. `r = sqrt(-ln u1)` gives
    /// variance 1/2).
    #[test]
    fn normals_have_the_standard_normal_distribution() {
        let n = 1_000_000;
        let mut z = vec![0.0f32; n];
        // Many short blocks from many streams, as the planner draws them.
        for (s, block) in z.chunks_mut(40).enumerate() {
            Rng::stream(11, 9, s as u64).fill_normals(block);
        }
        let nf = n as f64;
        let m1 = z.iter().map(|&v| v as f64).sum::<f64>() / nf;
        let m2 = z.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / nf;
        let m3 = z.iter().map(|&v| (v as f64).powi(3)).sum::<f64>() / nf;
        let m4 = z.iter().map(|&v| (v as f64).powi(4)).sum::<f64>() / nf;
        // Standard errors: 1e-3, sqrt(2)e-3, sqrt(15)e-3, sqrt(96)e-3.
        assert!(m1.abs() < 5e-3, "mean {m1}");
        assert!((m2 - 1.0).abs() < 8e-3, "variance {m2}");
        assert!(m3.abs() < 2e-2, "third moment {m3}");
        assert!((m4 - 3.0).abs() < 5e-2, "fourth moment {m4}");
        let tail = |c: f32| z.iter().filter(|v| v.abs() > c).count() as f64 / nf;
        let (t2, t3) = (tail(2.0), tail(3.0));
        assert!((t2 - 0.045_500).abs() < 1.1e-3, "P(|z| > 2) = {t2}");
        assert!((t3 - 0.002_700).abs() < 2.6e-4, "P(|z| > 3) = {t3}");
        let mut sorted: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        sorted.sort_by(f64::total_cmp);
        let ks = sorted
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = phi(x);
                (f - i as f64 / nf)
                    .abs()
                    .max(((i + 1) as f64 / nf - f).abs())
            })
            .fold(0.0, f64::max);
        assert!(ks < 1.95 / nf.sqrt(), "Kolmogorov-Smirnov distance {ks}");
    }
}
