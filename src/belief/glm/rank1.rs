//! The arithmetic of one streamed observation (Sherman–Morrison on Λ_N^{-1}, the
//! mean's and Ψ's rank-1 corrections) and of the predictive's quadratic form, per
//! row of a [`super::GlmStream`]: the belief-SMC planner runs them for every particle
//! at every simulated step.
//!
//! Each is compiled twice, for the x86-64 baseline (two `f64` per vector) and for
//! AVX2 (four), and picked once per call from the CPU's features. The operations and
//! their order are the same in both (Rust never fuses a multiply and an add on its
//! own, and the four-accumulator `dot` keeps its order), so results are bit-identical
//! whichever runs: only the vector width changes.
//!
//! ```
//! use bamdp::belief::glm::{GlmStream, MniwPrior};
//! // d = 2 features, m = 1 output; one observation shrinks the row's Λ_N^{-1}.
//! let prior = MniwPrior::isotropic(2, 1, 1.0, 1.0, 3.0).unwrap();
//! let mut s = GlmStream::new(&prior, 1).unwrap();
//! let before = s.p_row(0)[0];
//! s.update_row(0, &[1.0f64, 0.5], &[2.0]);
//! assert!(s.p_row(0)[0] < before);
//! ```

use super::linalg::{axpy, dot};

/// One row's posterior, updated in place on the design row `c` (`d`): `u = P c`,
/// `s = 1 + c'u`, `e = y - M'c` (`e` holds `y` on entry), then `P -= u u'/s`,
/// `M += u e'/s`, `Ψ += e e'/s`. `u` is scratch of `d`.
pub(super) fn update(
    p: &mut [f64],
    mean: &mut [f64],
    psi: &mut [f64],
    c: &[f64],
    u: &mut [f64],
    e: &mut [f64],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { update_avx2(p, mean, psi, c, u, e) };
            return;
        }
    }
    update_body(p, mean, psi, c, u, e);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn update_avx2(
    p: &mut [f64],
    mean: &mut [f64],
    psi: &mut [f64],
    c: &[f64],
    u: &mut [f64],
    e: &mut [f64],
) {
    update_body(p, mean, psi, c, u, e);
}

#[inline(always)]
fn update_body(
    p: &mut [f64],
    mean: &mut [f64],
    psi: &mut [f64],
    c: &[f64],
    u: &mut [f64],
    e: &mut [f64],
) {
    let (d, m) = (c.len(), e.len());
    // u = P c as a sum of P's rows (P symmetric): contiguous axpys.
    u.fill(0.0);
    for (i, &ci) in c.iter().enumerate() {
        if ci != 0.0 {
            axpy(ci, &p[i * d..i * d + d], u);
        }
    }
    let s = 1.0 + dot(c, u);
    let inv_s = 1.0 / s;
    for (i, &ci) in c.iter().enumerate() {
        if ci != 0.0 {
            axpy(-ci, &mean[i * m..i * m + m], e);
        }
    }
    for i in 0..d {
        let ui = u[i] * inv_s;
        // (u_i / s) u_j and (u_j / s) u_i may differ in the last bit, so P is
        // symmetric to rounding (tests/glm.rs checks it against batch refits).
        axpy(-ui, u, &mut p[i * d..i * d + d]);
        axpy(ui, e, &mut mean[i * m..i * m + m]);
    }
    for a in 0..m {
        let ea = e[a] * inv_s;
        axpy(ea, e, &mut psi[a * m..a * m + m]);
    }
}

/// The predictive at the design row `c` of a row with Λ_N^{-1} = `p` and M_N = `mean`:
/// `mean_out = M'c` (its first `m` entries) and the returned `c' P c`.
pub(super) fn predictive(
    p: &[f64],
    mean: &[f64],
    c: &[f64],
    m: usize,
    mean_out: &mut [f64],
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { predictive_avx2(p, mean, c, m, mean_out) };
        }
    }
    predictive_body(p, mean, c, m, mean_out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn predictive_avx2(
    p: &[f64],
    mean: &[f64],
    c: &[f64],
    m: usize,
    mean_out: &mut [f64],
) -> f64 {
    predictive_body(p, mean, c, m, mean_out)
}

#[inline(always)]
fn predictive_body(p: &[f64], mean: &[f64], c: &[f64], m: usize, mean_out: &mut [f64]) -> f64 {
    let d = c.len();
    mean_out[..m].fill(0.0);
    let mut q = 0.0;
    for i in 0..d {
        axpy(c[i], &mean[i * m..i * m + m], &mut mean_out[..m]);
        q += c[i] * dot(&p[i * d..i * d + d], c);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The dispatched kernels against the baseline bodies, bit for bit, on random rows
    /// (this CPU's widest kernel is the one dispatched).
    #[test]
    fn the_wide_build_equals_the_baseline_bit_for_bit() {
        let mut rng = Rng::new(5);
        for (d, m) in [(16, 1), (7, 3), (24, 2)] {
            let mut r = || rng.normal();
            let p0: Vec<f64> = (0..d * d).map(|_| r()).collect();
            let mean0: Vec<f64> = (0..d * m).map(|_| r()).collect();
            let psi0: Vec<f64> = (0..m * m).map(|_| r()).collect();
            let mut c: Vec<f64> = (0..d).map(|_| r()).collect();
            c[1] = 0.0;
            let y: Vec<f64> = (0..m).map(|_| r()).collect();
            let run = |wide: bool| {
                let (mut p, mut mean, mut psi) = (p0.clone(), mean0.clone(), psi0.clone());
                let (mut u, mut e) = (vec![0.0; d], y.clone());
                let mut out = vec![0.0; m];
                let q = if wide {
                    update(&mut p, &mut mean, &mut psi, &c, &mut u, &mut e);
                    predictive(&p, &mean, &c, m, &mut out)
                } else {
                    update_body(&mut p, &mut mean, &mut psi, &c, &mut u, &mut e);
                    predictive_body(&p, &mean, &c, m, &mut out)
                };
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (bits(&p), bits(&mean), bits(&psi), bits(&out), q.to_bits())
            };
            assert_eq!(run(true), run(false), "d = {d}, m = {m}");
        }
    }
}
