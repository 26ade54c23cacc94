//! Host building blocks shared by the cached and the whole-sequence paths: GEMM,
//! LayerNorm, GELU and rotary rotations, each with its backward.

use crate::nn::host::tanh;
use crate::nn::params::{Dense, Params};

pub(crate) const LN_EPS: f32 = 1e-5;
const ROPE_BASE: f64 = 10_000.0;
/// GELU's tanh approximation (Hendrycks & Gimpel): smooth, so finite differences hold.
/// Through the host's exp-based tanh: libm's `tanhf` was a quarter of training time.
const GELU_C: f32 = 0.797_884_6; // sqrt(2 / pi)
const GELU_A: f32 = 0.044_715;

/// `c[m×n] (+)= op(a)[m×k] · op(b)[k×n]`, row-major; `ta`: `a` is stored `[k×m]`,
/// `tb`: `b` is stored `[n×k]`. Sequential (the caller owns the threads), so results
/// do not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    c: &mut [f32],
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    assert!(c.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].iter_mut().for_each(|v| *v = 0.0);
        }
        return;
    }
    let (a_cs, a_rs) = if ta { (m as isize, 1) } else { (1, k as isize) };
    let (b_cs, b_rs) = if tb { (k as isize, 1) } else { (1, n as isize) };
    // SAFETY: the asserts above keep every strided access inside the slices; `c` does
    // not alias `a` or `b` (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `out[rows×out] = x · W + b` for a [`Dense`] layer.
pub(crate) fn linear(p: &Params, layer: &Dense, x: &[f32], rows: usize, out: &mut [f32]) {
    let (fi, fo) = (layer.fan_in(), layer.fan_out());
    let b = p.get(layer.b);
    for row in out[..rows * fo].chunks_mut(fo) {
        row.copy_from_slice(b);
    }
    matmul(out, x, false, p.get(layer.w), false, rows, fi, fo, true);
}

/// Parameter gradients of a [`Dense`] layer given its input `x` and output gradient
/// `dy`, added into `grad`; `dx` (if given) receives `dy · Wᵀ`.
pub(crate) fn linear_backward(
    p: &Params,
    layer: &Dense,
    x: &[f32],
    dy: &[f32],
    rows: usize,
    grad: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let (fi, fo) = (layer.fan_in(), layer.fan_out());
    matmul(
        &mut grad[layer.w.range()],
        x,
        true,
        dy,
        false,
        fi,
        rows,
        fo,
        true,
    );
    let gb = &mut grad[layer.b.range()];
    for row in dy[..rows * fo].chunks(fo) {
        for (g, v) in gb.iter_mut().zip(row) {
            *g += v;
        }
    }
    if let Some(dx) = dx {
        matmul(dx, dy, false, p.get(layer.w), true, rows, fo, fi, false);
    }
}

/// LayerNorm of each row of `x` into `y`; keeps `xhat` and `rstd` when given.
pub(crate) fn layer_norm(
    g: &[f32],
    b: &[f32],
    x: &[f32],
    y: &mut [f32],
    mut xhat: Option<&mut [f32]>,
    mut rstd: Option<&mut [f32]>,
) {
    let d = g.len();
    for (r, (xr, yr)) in x.chunks(d).zip(y.chunks_mut(d)).enumerate() {
        let mu = xr.iter().sum::<f32>() / d as f32;
        let var = xr.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / d as f32;
        let rs = 1.0 / (var + LN_EPS).sqrt();
        for j in 0..d {
            let h = (xr[j] - mu) * rs;
            yr[j] = h * g[j] + b[j];
            if let Some(xh) = xhat.as_deref_mut() {
                xh[r * d + j] = h;
            }
        }
        if let Some(s) = rstd.as_deref_mut() {
            s[r] = rs;
        }
    }
}

/// Backward of [`layer_norm`]: adds `dg`, `db` and `dx += ...` (accumulating into `dx`).
pub(crate) fn layer_norm_backward(
    g: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    dy: &[f32],
    dg: &mut [f32],
    db: &mut [f32],
    dx: &mut [f32],
) {
    let d = g.len();
    for (r, dyr) in dy.chunks(d).enumerate() {
        let xh = &xhat[r * d..(r + 1) * d];
        let (mut m1, mut m2) = (0.0f32, 0.0f32);
        for j in 0..d {
            let dxh = dyr[j] * g[j];
            m1 += dxh;
            m2 += dxh * xh[j];
            dg[j] += dyr[j] * xh[j];
            db[j] += dyr[j];
        }
        let (m1, m2) = (m1 / d as f32, m2 / d as f32);
        let dxr = &mut dx[r * d..(r + 1) * d];
        for j in 0..d {
            dxr[j] += rstd[r] * (dyr[j] * g[j] - m1 - xh[j] * m2);
        }
    }
}

#[inline]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + tanh(GELU_C * (x + GELU_A * x * x * x)))
}

#[inline]
pub(crate) fn gelu_grad(x: f32) -> f32 {
    let t = tanh(GELU_C * (x + GELU_A * x * x * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * x * x)
}

/// Cosines and sines of the rotary angles of position `pos` (`half = head_dim / 2`
/// entries each), in f64 so both paths get the same angles whatever the position.
pub(crate) fn rope_angles(pos: usize, cos: &mut [f32], sin: &mut [f32]) {
    let half = cos.len();
    for i in 0..half {
        let freq = ROPE_BASE.powf(-(i as f64) / half as f64);
        let (s, c) = (pos as f64 * freq).sin_cos();
        cos[i] = c as f32;
        sin[i] = s as f32;
    }
}

/// Rotates each head of `v` (`heads * head_dim`) in place: pairs `(i, i + half)`.
/// `inverse` applies the transpose (the backward of the rotation).
pub(crate) fn rope_apply(v: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32], inverse: bool) {
    let half = head_dim / 2;
    for hv in v.chunks_mut(head_dim) {
        for i in 0..half {
            let (a, b) = (hv[i], hv[i + half]);
            let s = if inverse { -sin[i] } else { sin[i] };
            hv[i] = a * cos[i] - b * s;
            hv[i + half] = a * s + b * cos[i];
        }
    }
}

/// Softmax attention of one query over `n` keys/values of one head: writes the
/// probabilities into `prob[..n]` and adds `sum_j prob_j v_j` into `out`.
/// `key(j)`/`value(j)` give the head's slices of context token `j`.
#[inline]
#[allow(clippy::needless_range_loop)] // parallel arrays share one index
pub(crate) fn attend<'a>(
    q: &[f32],
    scale: f32,
    n: usize,
    key: impl Fn(usize) -> &'a [f32],
    value: impl Fn(usize) -> &'a [f32],
    prob: &mut [f32],
    out: &mut [f32],
) {
    let mut max = f32::NEG_INFINITY;
    for j in 0..n {
        let s = scale * dot(q, key(j));
        prob[j] = s;
        max = max.max(s);
    }
    let mut sum = 0.0f32;
    for pj in prob[..n].iter_mut() {
        *pj = (*pj - max).exp();
        sum += *pj;
    }
    let inv = 1.0 / sum;
    for j in 0..n {
        prob[j] *= inv;
        let pj = prob[j];
        for (o, v) in out.iter_mut().zip(value(j)) {
            *o += pj * v;
        }
    }
}

#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent partial sums: vectorises (a single running sum cannot, under
    // strict floating-point order); both paths use this, so they still agree.
    let split = a.len() / 8 * 8;
    let mut acc = [0.0f32; 8];
    for (ca, cb) in a[..split].chunks_exact(8).zip(b[..split].chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += ca[k] * cb[k];
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in a[split..].iter().zip(&b[split..]) {
        sum += x * y;
    }
    sum
}
