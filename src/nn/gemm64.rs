//! Row-major `f64` matrix products through faer's GEMM, for the host's exact maths:
//! MAML's hand-differentiated policy (`improve::maml::policy`) and the GLM belief's
//! statistics and inverses (`belief::glm`). faer picks AVX2 / AVX-512 kernels at run
//! time, which the baseline x86-64 build of this crate cannot use, and runs here with
//! `Par::Seq`: our own code splits work into a fixed number of items (`crate::par`), so
//! the thread count never changes a result.
//!
//! Operands are plain row-major slices with their sizes; a transposed operand is a
//! strided view, never a copy, except in [`at_b_wide`], where a copy is faster. Every
//! function either overwrites `out` or, with `add`, accumulates into it.
//!
//! ```
//! use bamdp::nn::gemm64;
//! // A = [[1, 2], [3, 4], [5, 6]] (3 x 2), B = [[1, 0], [0, 1], [1, 1]] (3 x 2).
//! let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
//! let mut ab = [0.0; 6]; // A' B is 2 x 2; A B' is 3 x 3.
//! gemm64::at_b(&mut ab[..4], &a, &b, 3, 2, 2, false);
//! assert_eq!(ab[..4], [6.0, 8.0, 8.0, 10.0]);
//! let mut abt = [0.0; 9];
//! gemm64::a_bt(&mut abt, &a, &b, 3, 2, 3, false);
//! assert_eq!(abt, [1.0, 2.0, 3.0, 3.0, 4.0, 7.0, 5.0, 6.0, 11.0]);
//! // The column sums of B, i.e. a bias gradient: [2, 2].
//! let mut sums = [0.0; 2];
//! gemm64::add_row_sums(&mut sums, &b, 3, 2);
//! assert_eq!(sums, [2.0, 2.0]);
//! ```

use faer::{Accum, MatMut, MatRef, Par};

fn run(dst: MatMut<'_, f64>, lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>, add: bool) {
    let acc = if add { Accum::Add } else { Accum::Replace };
    faer::linalg::matmul::matmul(dst, acc, lhs, rhs, 1.0, Par::Seq);
}

/// `out (n x c) (+)= A B`, A `n x k`, B `k x c`.
pub fn a_b(out: &mut [f64], a: &[f64], b: &[f64], n: usize, k: usize, c: usize, add: bool) {
    run(
        MatMut::from_row_major_slice_mut(&mut out[..n * c], n, c),
        MatRef::from_row_major_slice(&a[..n * k], n, k),
        MatRef::from_row_major_slice(&b[..k * c], k, c),
        add,
    );
}

/// `out (r x c) (+)= A' B`, A `n x r`, B `n x c`, with `A'` a strided view.
pub fn at_b(out: &mut [f64], a: &[f64], b: &[f64], n: usize, r: usize, c: usize, add: bool) {
    run(
        MatMut::from_row_major_slice_mut(&mut out[..r * c], r, c),
        MatRef::from_row_major_slice(&a[..n * r], n, r).transpose(),
        MatRef::from_row_major_slice(&b[..n * c], n, c),
        add,
    );
}

/// Output widths from which [`at_b_wide`] copies `A'` first.
pub const TRANSPOSE_FROM: usize = 64;

/// [`at_b`], but for outputs at least [`TRANSPOSE_FROM`] wide `A'` is first copied into
/// `t` (row-major `r x n`, grown as needed and kept by the caller): faer's kernels run
/// the weight-gradient shapes of MAML's policy (`n` in the thousands, `r, c` in the
/// hundreds) about twice as fast on a row-major left operand as on a transposed view,
/// and the copy is cheap next to the product. Narrower outputs, such as the GLM
/// belief's `d x d` statistics (`d` 16 or 32 in the presets), run as fast on the view,
/// so there the copy would only add its own cost. The copy changes no result: faer
/// accumulates each output element in the same order for either layout (tested).
#[allow(clippy::too_many_arguments)]
pub fn at_b_wide(
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
        return at_b(out, a, b, n, r, c, add);
    }
    if t.len() < n * r {
        t.resize(n * r, 0.0);
    }
    transpose(&a[..n * r], n, r, &mut t[..n * r]);
    a_b(out, &t[..n * r], b, r, n, c, add);
}

/// `t (r x n) = A'` for a row-major `A` of `n x r`.
fn transpose(a: &[f64], n: usize, r: usize, t: &mut [f64]) {
    transpose_map(a, n, r, t, |x| x);
}

/// `t (cols x rows) = f(A)'` for a row-major `A` of `rows x cols`, elementwise. Eight
/// rows of `A` at a time, each read in order, so that every column of them is one
/// contiguous run of `t` (three times as fast as square tiles at MAML's 5,000 x 512).
pub(crate) fn transpose_map<T: Copy, U>(
    a: &[T],
    rows: usize,
    cols: usize,
    t: &mut [U],
    f: impl Fn(T) -> U,
) {
    const ROWS: usize = 8;
    let (a, t) = (&a[..rows * cols], &mut t[..rows * cols]);
    let full = rows / ROWS * ROWS;
    for i0 in (0..full).step_by(ROWS) {
        let block: [&[T]; ROWS] = std::array::from_fn(|k| &a[(i0 + k) * cols..][..cols]);
        for (j, column) in t.chunks_exact_mut(rows).enumerate() {
            for (out, row) in column[i0..i0 + ROWS].iter_mut().zip(&block) {
                *out = f(row[j]);
            }
        }
    }
    for i in full..rows {
        for j in 0..cols {
            t[j * rows + i] = f(a[i * cols + j]);
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

/// `out (c) += 1' A`, the column sums of A (`n x c`) added in row order: a layer's
/// bias gradient from its output deltas. A plain loop, vectorised over `c`: as a GEMM
/// with a column of ones it would cost a call and a packing of `A` for `n c` adds.
pub fn add_row_sums(out: &mut [f64], a: &[f64], n: usize, c: usize) {
    let out = &mut out[..c];
    for row in a[..n * c].chunks_exact(c) {
        out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(len: usize, scale: f64) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * scale).sin()).collect()
    }

    /// `A' B` by the definition, one dot product per element.
    fn at_b_loop(a: &[f64], b: &[f64], n: usize, r: usize, c: usize) -> Vec<f64> {
        let mut out = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                out[i * c + j] = (0..n).map(|t| a[t * r + i] * b[t * c + j]).sum();
            }
        }
        out
    }

    #[test]
    fn products_match_the_definition() {
        let (n, k, c) = (7, 5, 3);
        let a = filled(n * k, 0.37);
        let b = filled(n * c, 0.71);
        let want = at_b_loop(&a, &b, n, k, c);
        let close = |got: &[f64], want: &[f64], times: f64| {
            for (g, w) in got.iter().zip(want) {
                assert!((g - times * w).abs() < 1e-12, "{g} vs {times} x {w}");
            }
        };
        // Replace, then add: twice the product.
        let mut got = vec![1.0; k * c];
        at_b(&mut got, &a, &b, n, k, c, false);
        at_b(&mut got, &a, &b, n, k, c, true);
        close(&got, &want, 2.0);
        // The same product from a copied A_t = A': A_t B, and A_t (B')' through a_bt.
        let at: Vec<f64> = (0..k * n).map(|i| a[(i % n) * k + i / n]).collect();
        let mut got = vec![1.0; k * c];
        a_b(&mut got, &at, &b, k, n, c, false);
        close(&got, &want, 1.0);
        let bt: Vec<f64> = (0..c * n).map(|i| b[(i % n) * c + i / n]).collect();
        let mut got = vec![1.0; k * c];
        a_bt(&mut got, &at, &bt, k, n, c, false);
        close(&got, &want, 1.0);
    }

    #[test]
    fn the_transposed_copy_changes_no_bit() {
        // Narrow and wide outputs, inner dimensions past faer's blocking, edge tiles.
        let mut t = Vec::new();
        for (n, r, c) in [
            (5, 3, 64),
            (100, 16, 16),
            (257, 33, 64),
            (1000, 32, 32),
            (3000, 100, 130),
            (4100, 64, 200),
        ] {
            let a = filled(n * r, 0.013);
            let b = filled(n * c, 0.029);
            let mut view = filled(r * c, 0.5);
            let mut copied = view.clone();
            at_b(&mut view, &a, &b, n, r, c, true);
            // Forced copy (at_b_wide's path for c >= TRANSPOSE_FROM).
            t.resize(n * r, 0.0);
            transpose(&a, n, r, &mut t);
            a_b(&mut copied, &t, &b, r, n, c, true);
            assert!(
                view.iter()
                    .zip(&copied)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{n} x {r} x {c}"
            );
            let mut wide = filled(r * c, 0.5);
            at_b_wide(&mut wide, &a, &b, n, r, c, true, &mut t);
            assert_eq!(wide, view, "{n} x {r} x {c}");
        }
    }

    #[test]
    fn row_sums_add_columns() {
        let a = filled(4 * 3, 0.3);
        let mut out = vec![1.0; 3];
        add_row_sums(&mut out, &a, 4, 3);
        for j in 0..3 {
            let want = 1.0 + (0..4).map(|i| a[i * 3 + j]).sum::<f64>();
            assert!((out[j] - want).abs() < 1e-15);
        }
    }
}
