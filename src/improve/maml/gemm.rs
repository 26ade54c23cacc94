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

/// Output widths from which [`at_b`] copies `A'` first.
const TRANSPOSE_FROM: usize = 64;

/// `out (r x c) (+)= A' B`, A `n x r`, B `n x c`. For wide outputs `A'` is first
/// copied into `t` (row-major `r x n`): faer's kernels run these weight-gradient shapes
/// (`n` in the thousands, `r, c` in the hundreds) about twice as fast on a row-major
/// left operand as on a transposed view, and the copy is cheap next to the product.
#[allow(clippy::too_many_arguments)]
pub fn at_b(
    out: &mut [f64],
    a: &[f64],
    b: &[f64],
    n: usize,
    r: usize,
    c: usize,
    add: bool,
    t: &mut Vec<f64>,
) {
    if c < TRANSPOSE_FROM {
        return run(
            MatMut::from_row_major_slice_mut(&mut out[..r * c], r, c),
            MatRef::from_row_major_slice(&a[..n * r], n, r).transpose(),
            MatRef::from_row_major_slice(&b[..n * c], n, c),
            add,
        );
    }
    if t.len() < n * r {
        t.resize(n * r, 0.0);
    }
    transpose(&a[..n * r], n, r, &mut t[..n * r]);
    run(
        MatMut::from_row_major_slice_mut(&mut out[..r * c], r, c),
        MatRef::from_row_major_slice(&t[..n * r], r, n),
        MatRef::from_row_major_slice(&b[..n * c], n, c),
        add,
    );
}

/// `t (r x n) = A'` for a row-major `A` of `n x r`, in cache-sized tiles.
fn transpose(a: &[f64], n: usize, r: usize, t: &mut [f64]) {
    const TILE: usize = 32;
    for i0 in (0..n).step_by(TILE) {
        let i1 = (i0 + TILE).min(n);
        for j0 in (0..r).step_by(TILE) {
            let j1 = (j0 + TILE).min(r);
            for i in i0..i1 {
                for j in j0..j1 {
                    t[j * n + i] = a[i * r + j];
                }
            }
        }
    }
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
