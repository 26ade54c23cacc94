//! Host-side inference kernels over row-major slices: no allocation, no framework.
//! Used for rollouts; [`super::graph`] computes the same functions in burn for training.

use super::gemm;
use super::params::{Dense, GruCell, Params};
use serde::{Deserialize, Serialize};

/// Hidden-layer nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    #[default]
    Tanh,
    Relu,
    /// Identity (output layers).
    None,
}

impl Act {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::Tanh => tanh(x),
            Act::Relu => x.max(0.0),
            Act::None => x,
        }
    }
}

/// Layers with at least this many weights go through [`super::gemm`]; smaller ones
/// through the hand-written loop below (a library call costs more than their
/// arithmetic). The choice depends on the layer only, never on the number of rows, so
/// a row's result does not depend on its batch (both kernels are row-stable).
const GEMM_MIN_WEIGHTS: usize = 256;

/// `out[r, :] = act(x[r, :] W + b)` for `rows` rows.
pub fn dense(p: &Params, layer: &Dense, x: &[f32], rows: usize, act: Act, out: &mut [f32]) {
    let (n_in, n_out) = (layer.fan_in(), layer.fan_out());
    if n_in * n_out >= GEMM_MIN_WEIGHTS {
        let b = p.get(layer.b);
        for o in out.chunks_exact_mut(n_out) {
            o.copy_from_slice(b);
        }
        gemm::matmul(
            out,
            gemm::Mat::rows(x, rows, n_in),
            gemm::Mat::rows(p.get(layer.w), n_in, n_out),
            true,
        );
        if act != Act::None {
            out.iter_mut().for_each(|v| *v = act.apply(*v));
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { dense_avx2(p, layer, x, rows, act, out) };
            return;
        }
    }
    dense_body(p, layer, x, rows, act, out);
}

/// [`dense_body`] compiled for AVX2: 8-wide vectors for the inner loop instead of the
/// x86-64 baseline's 4-wide SSE. The same multiplies and adds in the same order (no FMA
/// contraction: Rust never fuses without `mul_add`), so results are bit-identical to
/// the baseline build; only the vector width changes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dense_avx2(p: &Params, layer: &Dense, x: &[f32], rows: usize, act: Act, out: &mut [f32]) {
    dense_body(p, layer, x, rows, act, out);
}

#[inline(always)]
fn dense_body(p: &Params, layer: &Dense, x: &[f32], rows: usize, act: Act, out: &mut [f32]) {
    let (n_in, n_out) = (layer.fan_in(), layer.fan_out());
    debug_assert_eq!(x.len(), rows * n_in);
    debug_assert_eq!(out.len(), rows * n_out);
    let w = p.get(layer.w);
    let b = p.get(layer.b);
    // Blocks of 4 rows share each loaded weight row (read once from L2, reused from
    // L1). Every output is still `b + sum_i x_i w_ij` in the order of i, skipping zero
    // inputs, so results are bit-identical to the one-row loop below.
    let blocked = rows / 4 * 4;
    for r0 in (0..blocked).step_by(4) {
        let (o0, rest) = out[r0 * n_out..(r0 + 4) * n_out].split_at_mut(n_out);
        let (o1, rest) = rest.split_at_mut(n_out);
        let (o2, o3) = rest.split_at_mut(n_out);
        for o in [&mut *o0, &mut *o1, &mut *o2, &mut *o3] {
            o.copy_from_slice(b);
        }
        let xr = &x[r0 * n_in..(r0 + 4) * n_in];
        for i in 0..n_in {
            let wi = &w[i * n_out..(i + 1) * n_out];
            for (o, xi) in [
                (&mut *o0, xr[i]),
                (&mut *o1, xr[n_in + i]),
                (&mut *o2, xr[2 * n_in + i]),
                (&mut *o3, xr[3 * n_in + i]),
            ] {
                if xi != 0.0 {
                    for (oj, &wij) in o.iter_mut().zip(wi) {
                        *oj += xi * wij;
                    }
                }
            }
        }
        if act != Act::None {
            out[r0 * n_out..(r0 + 4) * n_out]
                .iter_mut()
                .for_each(|v| *v = act.apply(*v));
        }
    }
    for r in blocked..rows {
        let o = &mut out[r * n_out..(r + 1) * n_out];
        o.copy_from_slice(b);
        let xr = &x[r * n_in..(r + 1) * n_in];
        for (i, &xi) in xr.iter().enumerate() {
            if xi == 0.0 {
                continue;
            }
            let wi = &w[i * n_out..(i + 1) * n_out];
            for (oj, &wij) in o.iter_mut().zip(wi) {
                *oj += xi * wij;
            }
        }
        if act != Act::None {
            o.iter_mut().for_each(|v| *v = act.apply(*v));
        }
    }
}

/// tanh through `exp`: libm's `tanhf` (via `expm1f`) was a quarter of the training
/// loop's time. Absolute error below 1e-7; exact at the saturated ends.
#[inline]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / ((2.0 * x).exp() + 1.0)
}

#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One GRU step for `rows` rows, in place on `h` (`rows * H`). `scratch` must hold
/// `2 * rows * 3H` floats.
pub fn gru_step(
    p: &Params,
    cell: &GruCell,
    x: &[f32],
    h: &mut [f32],
    rows: usize,
    scratch: &mut [f32],
) {
    let hd = cell.hidden();
    let g = 3 * hd;
    let (gx, gh) = scratch[..2 * rows * g].split_at_mut(rows * g);
    dense(
        p,
        &Dense {
            w: cell.wx,
            b: cell.bx,
        },
        x,
        rows,
        Act::None,
        gx,
    );
    dense(
        p,
        &Dense {
            w: cell.wh,
            b: cell.bh,
        },
        h,
        rows,
        Act::None,
        gh,
    );
    for r in 0..rows {
        let gxr = &gx[r * g..(r + 1) * g];
        let ghr = &gh[r * g..(r + 1) * g];
        let hr = &mut h[r * hd..(r + 1) * hd];
        for j in 0..hd {
            let rg = sigmoid(gxr[j] + ghr[j]);
            let zg = sigmoid(gxr[hd + j] + ghr[hd + j]);
            let n = tanh(gxr[2 * hd + j] + rg * ghr[2 * hd + j]);
            hr[j] = (1.0 - zg) * n + zg * hr[j];
        }
    }
}

/// Log-softmax of each row of `logits` (`rows * n`) in place.
pub fn log_softmax_rows(logits: &mut [f32], n: usize) {
    for row in logits.chunks_mut(n) {
        let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
        row.iter_mut().for_each(|v| *v -= lse);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn a_rows_output_does_not_depend_on_its_batch() {
        let mut rng = Rng::new(3);
        let mut p = Params::new();
        // One layer below and one above the GEMM threshold.
        let layers = [
            Dense::new(&mut p, "small", 3, 5, 1.0, &mut rng),
            Dense::new(&mut p, "large", 40, 70, 1.0, &mut rng),
        ];
        for l in &layers {
            let (n_in, n_out) = (l.fan_in(), l.fan_out());
            let rows = 37;
            let x: Vec<f32> = (0..rows * n_in).map(|_| rng.normal() as f32).collect();
            let mut all = vec![0.0; rows * n_out];
            dense(&p, l, &x, rows, Act::Tanh, &mut all);
            for r in 0..rows {
                let mut one = vec![0.0; n_out];
                dense(&p, l, &x[r * n_in..(r + 1) * n_in], 1, Act::Tanh, &mut one);
                assert_eq!(one, all[r * n_out..(r + 1) * n_out], "row {r}");
            }
        }
    }

    #[test]
    fn fast_tanh_is_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            assert!((super::tanh(x) - x.tanh()).abs() < 2e-7, "{x}");
        }
        assert_eq!(super::tanh(100.0), 1.0);
        assert_eq!(super::tanh(-100.0), -1.0);
    }
}
