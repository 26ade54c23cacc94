//! Small dense kernels on row-major `n x n` / `n x k` slices: Cholesky, triangular
//! solves, inverses and log-determinants. Hand-written because the matrices here are
//! tiny (d around 32, m a few) and called thousands of times per batch, where a general
//! library's dispatch costs more than the arithmetic; inner loops are contiguous axpys
//! so they vectorise.

use super::GlmError;
use crate::nn::gemm64;

/// In place: the lower triangle of `a` becomes L with L L' = A; the strict upper
/// triangle is zeroed. Reads only the lower triangle of `a`.
pub(crate) fn cholesky(a: &mut [f64], n: usize, what: &'static str) -> Result<(), GlmError> {
    for j in 0..n {
        let row_j = &mut a[j * n..j * n + n];
        let mut diag = row_j[j];
        for &v in &row_j[..j] {
            diag -= v * v;
        }
        if !(diag > 0.0 && diag.is_finite()) {
            return Err(GlmError::NotPositiveDefinite {
                what,
                pivot: j,
                value: diag,
            });
        }
        let ljj = diag.sqrt();
        row_j[j] = ljj;
        for v in &mut row_j[j + 1..] {
            *v = 0.0;
        }
        let inv = 1.0 / ljj;
        for i in j + 1..n {
            let (upto_i, from_i) = a.split_at_mut(i * n);
            let row_j = &upto_i[j * n..j * n + j];
            let row_i = &mut from_i[..n];
            row_i[j] = (row_i[j] - dot(&row_i[..j], row_j)) * inv;
        }
    }
    Ok(())
}

/// Dot product with four accumulators (a single accumulator serialises on the add
/// latency and cannot vectorise under strict floating-point ordering). Always inlined,
/// so that it takes the vector width of its caller (`super::rank1`'s AVX2 build).
#[inline(always)]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut s = [0.0f64; 4];
    let chunks = n / 4;
    for c in 0..chunks {
        let i = 4 * c;
        s[0] += a[i] * b[i];
        s[1] += a[i + 1] * b[i + 1];
        s[2] += a[i + 2] * b[i + 2];
        s[3] += a[i + 3] * b[i + 3];
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    for i in 4 * chunks..n {
        t += a[i] * b[i];
    }
    t
}

/// `y += alpha * x` (always inlined, as [`dot`]).
#[inline(always)]
pub(crate) fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// log|A| from its Cholesky factor.
pub(crate) fn log_det_chol(l: &[f64], n: usize) -> f64 {
    2.0 * (0..n).map(|i| l[i * n + i].ln()).sum::<f64>()
}

/// In place B <- L^{-1} B, L lower `n x n`, B `n x k`.
pub(crate) fn solve_lower(l: &[f64], n: usize, b: &mut [f64], k: usize) {
    for i in 0..n {
        let (done, rest) = b.split_at_mut(i * k);
        let bi = &mut rest[..k];
        for (j, &lij) in l[i * n..i * n + i].iter().enumerate() {
            if lij != 0.0 {
                axpy(-lij, &done[j * k..j * k + k], bi);
            }
        }
        let inv = 1.0 / l[i * n + i];
        for v in bi.iter_mut() {
            *v *= inv;
        }
    }
}

/// In place B <- L^{-T} B, L lower `n x n`, B `n x k`.
pub(crate) fn solve_lower_t(l: &[f64], n: usize, b: &mut [f64], k: usize) {
    for i in (0..n).rev() {
        let (head, rest) = b.split_at_mut(i * k);
        let bi = &mut rest[..k];
        let inv = 1.0 / l[i * n + i];
        for v in bi.iter_mut() {
            *v *= inv;
        }
        // Row i of L^T's column i is L[i, 0..i]: push x_i into the rows above.
        for (j, &lij) in l[i * n..i * n + i].iter().enumerate() {
            if lij != 0.0 {
                axpy(-lij, bi, &mut head[j * k..j * k + k]);
            }
        }
    }
}

/// `out = A^{-1}` (full, symmetric) from the Cholesky factor L of A, via
/// `out = L^{-T} L^{-1}`; `scratch` holds `n * n`.
pub(crate) fn inverse_from_chol(l: &[f64], n: usize, out: &mut [f64], scratch: &mut [f64]) {
    // scratch = L^{-1} by forward substitution; row i of L^{-1} is zero past column i,
    // so each step touches only the leading i + 1 columns.
    let linv = &mut scratch[..n * n];
    linv.fill(0.0);
    for i in 0..n {
        let (done, rest) = linv.split_at_mut(i * n);
        let row_i = &mut rest[..n];
        row_i[i] = 1.0;
        for (j, &lij) in l[i * n..i * n + i].iter().enumerate() {
            if lij != 0.0 {
                axpy(-lij, &done[j * n..j * n + j + 1], &mut row_i[..j + 1]);
            }
        }
        let inv = 1.0 / l[i * n + i];
        for v in &mut row_i[..=i] {
            *v *= inv;
        }
    }
    // A^{-1} = (L^{-1})' L^{-1}: the d³/3 part goes to the SIMD GEMM.
    gemm64::at_b(out, linv, linv, n, n, n, false);
}

/// `out (r x c) = A' B` with A `n x r`, B `n x c`, by hand rather than through
/// [`gemm64::at_b`]: its callers form `m x m` products (the prior's `M0' Λ0 M0`, an
/// MNIW draw's `Σ = T T'`, `m` the output width, usually 1 to 3), where a GEMM call
/// costs more than the arithmetic. faer also rounds them differently (fused
/// multiply-adds, another summation order), so switching would change GLiBRL's results.
pub(crate) fn at_b(a: &[f64], b: &[f64], n: usize, r: usize, c: usize, out: &mut [f64]) {
    let out = &mut out[..r * c];
    out.fill(0.0);
    for t in 0..n {
        let at = &a[t * r..t * r + r];
        let bt = &b[t * c..t * c + c];
        for (i, &ai) in at.iter().enumerate() {
            if ai != 0.0 {
                axpy(ai, bt, &mut out[i * c..i * c + c]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spd(n: usize, seed: u64) -> Vec<f64> {
        let mut r = crate::rng::Rng::new(seed);
        let x: Vec<f64> = (0..n * (n + 3)).map(|_| r.normal()).collect();
        let mut a = vec![0.0; n * n];
        at_b(&x, &x, n + 3, n, n, &mut a);
        a
    }

    #[test]
    fn cholesky_inverse_and_solves_agree() {
        for n in [1, 2, 5, 33] {
            let a = spd(n, n as u64);
            let mut l = a.clone();
            cholesky(&mut l, n, "a").unwrap();
            let mut inv = vec![0.0; n * n];
            let mut s = vec![0.0; n * n];
            inverse_from_chol(&l, n, &mut inv, &mut s);
            for i in 0..n {
                for j in 0..n {
                    let v: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                    let e = if i == j { 1.0 } else { 0.0 };
                    assert!((v - e).abs() < 1e-10, "{n} {i} {j} {v}");
                }
            }
            // L^{-T} L^{-1} b == A^{-1} b.
            let b: Vec<f64> = (0..2 * n).map(|i| i as f64 - 1.5).collect();
            let mut x = b.clone();
            solve_lower(&l, n, &mut x, 2);
            solve_lower_t(&l, n, &mut x, 2);
            for i in 0..n {
                for c in 0..2 {
                    let v: f64 = (0..n).map(|k| inv[i * n + k] * b[k * 2 + c]).sum();
                    assert!((v - x[i * 2 + c]).abs() < 1e-9 * v.abs().max(1.0));
                }
            }
        }
    }

    #[test]
    fn cholesky_rejects_indefinite() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert!(matches!(
            cholesky(&mut a, 2, "x"),
            Err(GlmError::NotPositiveDefinite { pivot: 1, .. })
        ));
    }
}
