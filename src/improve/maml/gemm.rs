//! Row-major `f64` matrix products through faer's GEMM (sequential, so results never
//! depend on the thread count).

use faer::{Accum, MatMut, MatRef, Par};

fn run(dst: MatMut<'_, f64>, lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>, add: bool) {
    let acc = if add { Accum::Add } else { Accum::Replace };
    faer::linalg::matmul::matmul(dst, acc, lhs, rhs, 1.0, Par::Seq);
}

/// `out (n x c) (+)= A (n x k) B (k x c)`.
pub fn a_b(out: &mut [f64], a: &[f64], b: &[f64], n: usize, k: usize, c: usize, add: bool) {
    run(
        MatMut::from_row_major_slice_mut(&mut out[..n * c], n, c),
        MatRef::from_row_major_slice(&a[..n * k], n, k),
        MatRef::from_row_major_slice(&b[..k * c], k, c),
        add,
    );
}

/// `out (r x c) (+)= A' B`, A `n x r`, B `n x c`.
pub fn at_b(out: &mut [f64], a: &[f64], b: &[f64], n: usize, r: usize, c: usize, add: bool) {
    run(
        MatMut::from_row_major_slice_mut(&mut out[..r * c], r, c),
        MatRef::from_row_major_slice(&a[..n * r], n, r).transpose(),
        MatRef::from_row_major_slice(&b[..n * c], n, c),
        add,
    );
}

/// `out (n x c) (+)= A B'`, A `n x k`, B `c x k`.
pub fn a_bt(out: &mut [f64], a: &[f64], b: &[f64], n: usize, k: usize, c: usize, add: bool) {
    run(
        MatMut::from_row_major_slice_mut(&mut out[..n * c], n, c),
        MatRef::from_row_major_slice(&a[..n * k], n, k),
        MatRef::from_row_major_slice(&b[..c * k], c, k).transpose(),
        add,
    );
}
