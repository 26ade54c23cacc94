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

/// Whether [`dense`] computes a layer of these sizes through [`super::gemm`] (else the
/// hand-written loop); `super::lanes` repeats the arithmetic of whichever it is.
pub(crate) fn takes_gemm(n_in: usize, n_out: usize) -> bool {
    n_in * n_out >= GEMM_MIN_WEIGHTS
}

/// `out[r, :] = act(x[r, :] W + b)` for `rows` rows.
pub fn dense(p: &Params, layer: &Dense, x: &[f32], rows: usize, act: Act, out: &mut [f32]) {
    let (n_in, n_out) = (layer.fan_in(), layer.fan_out());
    if takes_gemm(n_in, n_out) {
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
        act.apply_slice(out);
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

/// [`dense`] with row `r`'s outputs written to `out[r * stride..r * stride + fan_out]`
/// (elements between rows untouched): one call for the whole batch where the outputs
/// of two layers are interleaved per row. Bit-identical to calling [`dense`] row by
/// row (both kernels are row-stable).
pub fn dense_strided(
    p: &Params,
    layer: &Dense,
    x: &[f32],
    rows: usize,
    act: Act,
    out: &mut [f32],
    stride: usize,
) {
    let (n_in, n_out) = (layer.fan_in(), layer.fan_out());
    if !takes_gemm(n_in, n_out) {
        for r in 0..rows {
            let o = &mut out[r * stride..r * stride + n_out];
            dense(p, layer, &x[r * n_in..(r + 1) * n_in], 1, act, o);
        }
        return;
    }
    let b = p.get(layer.b);
    for r in 0..rows {
        out[r * stride..r * stride + n_out].copy_from_slice(b);
    }
    gemm::matmul_strided(
        out,
        stride,
        gemm::Mat::rows(x, rows, n_in),
        gemm::Mat::rows(p.get(layer.w), n_in, n_out),
        true,
    );
    for r in 0..rows {
        act.apply_slice(&mut out[r * stride..r * stride + n_out]);
    }
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
    if n_out == 1 {
        single_output_body(w, b[0], x, rows, act, out);
        return;
    }
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
        act.apply_slice(&mut out[r0 * n_out..(r0 + 4) * n_out]);
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
        act.apply_slice(o);
    }
}

/// [`dense_body`] for a layer with one output (a critic's value head): the loop above
/// would do one scalar multiply-add per loop trip. Here 8 rows are computed side by
/// side, one vector lane per row, over a transposed tile of their inputs. Each output
/// is still `b + sum_i x_i w_i` in the order of i, skipping zero inputs (a lane keeps
/// its sum where its input is zero), so results are bit-identical to the one-row loop.
#[inline(always)]
fn single_output_body(w: &[f32], b: f32, x: &[f32], rows: usize, act: Act, out: &mut [f32]) {
    const LANES: usize = 8;
    const TILE: usize = 16;
    let n_in = w.len();
    let blocked = rows / LANES * LANES;
    for r0 in (0..blocked).step_by(LANES) {
        let xr = &x[r0 * n_in..(r0 + LANES) * n_in];
        let mut acc = [b; LANES];
        let mut tile = [[0.0f32; LANES]; TILE];
        for i0 in (0..n_in).step_by(TILE) {
            let t = TILE.min(n_in - i0);
            for (l, row) in xr.chunks_exact(n_in).enumerate() {
                for (k, &v) in row[i0..i0 + t].iter().enumerate() {
                    tile[k][l] = v;
                }
            }
            for (xk, &wk) in tile[..t].iter().zip(&w[i0..i0 + t]) {
                for (a, &xv) in acc.iter_mut().zip(xk) {
                    let s = *a + xv * wk;
                    *a = if xv != 0.0 { s } else { *a };
                }
            }
        }
        for (o, a) in out[r0..r0 + LANES].iter_mut().zip(acc) {
            *o = act.apply(a);
        }
    }
    for r in blocked..rows {
        let mut a = b;
        for (&xi, &wi) in x[r * n_in..(r + 1) * n_in].iter().zip(w) {
            if xi != 0.0 {
                a += xi * wi;
            }
        }
        out[r] = act.apply(a);
    }
}

/// `e^x` without a libm call: branch-free, so loops over slices vectorise. Cody-Waite
/// reduction `x = n ln 2 + r` (`|r| <= ln 2 / 2`, `n` rounded with the 1.5 * 2^23
/// shift, no rounding instruction needed), Cephes' degree-6 polynomial for `e^r`, and
/// `2^n` written into the exponent bits. Relative error below 3e-7 (tested against
/// f64); inputs are clamped to [-87, 88] (no overflow, no subnormals: far beyond
/// where sigmoid and tanh saturate); NaN stays NaN. Plain multiplies and adds (no
/// `mul_add`), so the result is the same on every x86-64 machine and vector width.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let t = x * std::f32::consts::LOG2_E + EXP_SHIFT;
    let n = t - EXP_SHIFT;
    // The low mantissa bits of `t` hold n + 2^22.
    let ni = t.to_bits() as i32 - EXP_SHIFT_BITS;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let [c5, c4, c3, c2, c1] = EXP_POLY;
    let p = ((((c5 * r + c4) * r + c3) * r + c2) * r + c1) * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    e * f32::from_bits(((ni + 127) << 23) as u32)
}

// The constants of [`exp`], shared with `super::lanes`, which repeats its arithmetic
// on vectors.
pub(crate) const EXP_MIN: f32 = -87.0;
pub(crate) const EXP_MAX: f32 = 88.0;
/// 1.5 * 2^23: adding it rounds to an integer.
pub(crate) const EXP_SHIFT: f32 = 12_582_912.0;
/// The bits of [`EXP_SHIFT`] as an `i32`.
pub(crate) const EXP_SHIFT_BITS: i32 = 0x4B40_0000;
/// ln 2 = LN2_HI + LN2_LO, LN2_HI = 0.693359375 exact in 9 bits.
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' coefficients of `e^r`'s polynomial, highest degree first.
pub(crate) const EXP_POLY: [f32; 5] = [
    1.987_569_2e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
];

/// tanh through [`exp`] (libm's `tanhf` via `expm1f` was a quarter of the training
/// loop's time once). Absolute error below 3e-7; exactly +-1 at the saturated ends.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// [`sigmoid`] of every element, in place (vectorised: 8 lanes with AVX2, bit-identical
/// to the 4-lane baseline and to the scalar function).
pub fn sigmoid_slice(v: &mut [f32]) {
    map_slice(v, Curve::Sigmoid)
}

/// [`tanh`] of every element, in place (see [`sigmoid_slice`]).
pub fn tanh_slice(v: &mut [f32]) {
    map_slice(v, Curve::Tanh)
}

impl Act {
    /// [`Act::apply`] to every element, in place, vectorised.
    pub fn apply_slice(self, v: &mut [f32]) {
        match self {
            Act::None => {}
            Act::Relu => v.iter_mut().for_each(|x| *x = x.max(0.0)),
            Act::Tanh => tanh_slice(v),
        }
    }
}

#[derive(Clone, Copy)]
enum Curve {
    Sigmoid,
    Tanh,
}

fn map_slice(v: &mut [f32], curve: Curve) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { map_slice_avx512(v, curve) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { map_slice_avx2(v, curve) };
            return;
        }
    }
    map_slice_body(v, curve);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn map_slice_avx2(v: &mut [f32], curve: Curve) {
    map_slice_body(v, curve);
}

/// 16 lanes: the same element-wise operations (no FMA contraction), so bit-identical
/// to the AVX2 and baseline builds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn map_slice_avx512(v: &mut [f32], curve: Curve) {
    map_slice_body(v, curve);
}

#[inline(always)]
fn map_slice_body(v: &mut [f32], curve: Curve) {
    match curve {
        Curve::Sigmoid => v.iter_mut().for_each(|x| *x = sigmoid(*x)),
        Curve::Tanh => v.iter_mut().for_each(|x| *x = tanh(*x)),
    }
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
        let gxr = &mut gx[r * g..(r + 1) * g];
        let ghr = &gh[r * g..(r + 1) * g];
        gru_gates(gxr, ghr, hd);
        let hr = &mut h[r * hd..(r + 1) * hd];
        let (rz, n) = gxr.split_at(2 * hd);
        for j in 0..hd {
            let zg = rz[hd + j];
            hr[j] = (1.0 - zg) * n[j] + zg * hr[j];
        }
    }
}

/// A GRU cell's gates for one row, in place on the input projection `gx` (`[r | z | n]`,
/// 3H, biases included) given the hidden projection `gh` (same layout): afterwards
/// `gx` holds `r = sigmoid(gx_r + gh_r)`, `z = sigmoid(gx_z + gh_z)` and
/// `n = tanh(gx_n + r * gh_n)`. Vectorised ([`sigmoid_slice`], [`tanh_slice`]).
#[inline]
pub fn gru_gates(gx: &mut [f32], gh: &[f32], hd: usize) {
    let (rz, n) = gx.split_at_mut(2 * hd);
    rz.iter_mut().zip(&gh[..2 * hd]).for_each(|(a, b)| *a += b);
    sigmoid_slice(rz);
    for ((nj, &rj), &ghn) in n.iter_mut().zip(&rz[..hd]).zip(&gh[2 * hd..]) {
        *nj += rj * ghn;
    }
    tanh_slice(n);
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
        // One layer below and one above the GEMM threshold, and single-output layers
        // (a value head) narrower and wider than one input tile.
        let layers = [
            Dense::new(&mut p, "small", 3, 5, 1.0, &mut rng),
            Dense::new(&mut p, "large", 40, 70, 1.0, &mut rng),
            Dense::new(&mut p, "value", 128, 1, 1.0, &mut rng),
            Dense::new(&mut p, "value_narrow", 5, 1, 1.0, &mut rng),
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
    fn a_single_output_layer_equals_the_plain_loop_bit_for_bit() {
        let mut rng = Rng::new(9);
        let mut p = Params::new();
        for n_in in [1, 5, 16, 17, 128] {
            let l = Dense::new(&mut p, &format!("v{n_in}"), n_in, 1, 1.0, &mut rng);
            let (w, b) = (p.get(l.w).to_vec(), p.get(l.b)[0]);
            let rows = 21;
            // A third of the inputs zero, as after a ReLU (zero inputs are skipped).
            let x: Vec<f32> = (0..rows * n_in)
                .map(|_| {
                    let v = rng.normal() as f32;
                    if v < -0.4 {
                        0.0
                    } else {
                        v
                    }
                })
                .collect();
            for act in [Act::None, Act::Tanh, Act::Relu] {
                let mut out = vec![0.0; rows];
                dense(&p, &l, &x, rows, act, &mut out);
                for r in 0..rows {
                    let mut want = b;
                    for (&xi, &wi) in x[r * n_in..(r + 1) * n_in].iter().zip(&w) {
                        if xi != 0.0 {
                            want += xi * wi;
                        }
                    }
                    assert_eq!(
                        out[r].to_bits(),
                        act.apply(want).to_bits(),
                        "n_in {n_in} row {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn strided_dense_equals_dense_row_by_row() {
        let mut rng = Rng::new(6);
        let mut p = Params::new();
        let layers = [
            Dense::new(&mut p, "small", 3, 5, 1.0, &mut rng),
            Dense::new(&mut p, "large", 64, 5, 1.0, &mut rng),
        ];
        for l in &layers {
            let (n_in, n_out) = (l.fan_in(), l.fan_out());
            let (rows, stride) = (13, 2 * n_out + 1);
            let x: Vec<f32> = (0..rows * n_in).map(|_| rng.normal() as f32).collect();
            let mut out = vec![7.0; rows * stride];
            dense_strided(&p, l, &x, rows, Act::Tanh, &mut out, stride);
            for r in 0..rows {
                let mut one = vec![0.0; n_out];
                dense(&p, l, &x[r * n_in..(r + 1) * n_in], 1, Act::Tanh, &mut one);
                assert_eq!(one, out[r * stride..r * stride + n_out], "row {r}");
                assert!(out[r * stride + n_out..(r + 1) * stride]
                    .iter()
                    .all(|&v| v == 7.0));
            }
        }
    }

    #[test]
    fn fast_tanh_is_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            assert!((super::tanh(x) - x.tanh()).abs() < 3e-7, "{x}");
        }
        assert_eq!(super::tanh(100.0), 1.0);
        assert_eq!(super::tanh(-100.0), -1.0);
        assert!(super::tanh(f32::NAN).is_nan());
    }

    #[test]
    fn fast_exp_has_a_relative_error_below_3e_7() {
        let mut worst = 0.0f64;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let want = (x as f64).exp();
            worst = worst.max(((super::exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 3e-7, "{worst}");
        assert_eq!(super::exp(0.0), 1.0);
        assert!(super::exp(f32::NAN).is_nan());
        assert!(super::exp(1e4).is_finite() && super::exp(-1e4) > 0.0);
    }

    #[test]
    fn fast_sigmoid_is_accurate_and_slices_equal_the_scalar() {
        let xs: Vec<f32> = (-3000..=3000).map(|i| i as f32 * 0.01).collect();
        for &x in &xs {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!(
                (super::sigmoid(x) as f64 - want).abs() < 2e-7 * want.max(1e-3) + 1e-9,
                "{x}"
            );
        }
        // Any length (vector body and scalar tail), bit for bit.
        for len in [1, 7, 8, 9, 64, 6001] {
            let mut s = xs[..len].to_vec();
            sigmoid_slice(&mut s);
            let mut t = xs[..len].to_vec();
            tanh_slice(&mut t);
            for j in 0..len {
                assert_eq!(s[j].to_bits(), super::sigmoid(xs[j]).to_bits());
                assert_eq!(t[j].to_bits(), super::tanh(xs[j]).to_bits());
            }
        }
    }
}
