//! Matrix products for training and inference, through the `matrixmultiply` crate
//! (ndarray's kernel), single-threaded: our own code splits work into a fixed number of
//! chunks, so the thread count never changes a result.
//!
//! Matrices are `f32` slices with explicit row and column strides ([`Mat`]), so
//! transposed operands are views, never copies. Results are deterministic on one
//! machine: the library picks one micro-kernel from the CPU's features (AVX-512,
//! AVX2 + FMA, ...) and uses it for every shape, packing edge tiles with zeros, so each
//! output element is the same sequence of (fused) multiply-adds over the inner
//! dimension whatever the number of rows. That makes products *row-stable*: a row of
//! `a . b` does not depend on the other rows of `a` (tested below), which the planner
//! relies on (ARCHITECTURE.md, invariants). On CPUs with AVX-512, products of up to
//! [`rows32::MAX_ROWS`] contiguous rows skip the library's packing: [`rows32`] computes
//! the library's bits itself (tested against it).
//!
//! ```
//! use bamdp::nn::gemm::{matmul, Mat};
//! // [2 x 3] . [3 x 2], row-major.
//! let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
//! let mut c = [0.0; 4];
//! matmul(&mut c, Mat::rows(&a, 2, 3), Mat::rows(&b, 3, 2), false);
//! assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
//! ```

use super::rows32;

/// A read-only `rows x cols` view of a slice: element `(i, j)` is
/// `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// The transpose of a row-major `rows x cols` matrix (a `cols x rows` view).
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, cols, rows, 1, cols)
    }

    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(
                last < data.len(),
                "matrix view {rows}x{cols} (strides {row_stride}, {col_stride}) outside a slice of {}",
                data.len()
            );
        }
        Mat {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }
}

/// `c = a . b` (or `c += a . b` with `accumulate`), `c` row-major `[a.rows, b.cols]`.
pub fn matmul(c: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    assert_eq!(
        c.len(),
        a.rows * b.cols,
        "output of {}x{} into a slice of {}",
        a.rows,
        b.cols,
        c.len()
    );
    matmul_strided(c, b.cols, a, b, accumulate);
}

/// [`matmul`] into rows of `c` that lie `c_row_stride` apart (row `i` of the product at
/// `c[i * c_row_stride..i * c_row_stride + b.cols]`; elements between rows untouched),
/// e.g. one layer's outputs interleaved with another's. The same kernel and results.
pub fn matmul_strided(
    c: &mut [f32],
    c_row_stride: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(
        b.rows, k,
        "inner dimensions differ: {m}x{k} . {}x{n}",
        b.rows
    );
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        c_row_stride >= n && (m - 1) * c_row_stride + n <= c.len(),
        "output of {m}x{n} (row stride {c_row_stride}) into a slice of {}",
        c.len()
    );
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * c_row_stride..i * c_row_stride + n].fill(0.0);
            }
        }
        return;
    }
    let row_major = |x: &Mat<'_>| x.col_stride == 1 && x.row_stride == x.cols;
    if m <= rows32::MAX_ROWS
        && c_row_stride == n
        && row_major(&a)
        && row_major(&b)
        && rows32::available()
    {
        // The same bits as the library's, without its packing (`rows32`).
        let (a, b) = (&a.data[..m * k], &b.data[..k * n]);
        rows32::product(&mut c[..m * n], a, b, m, k, n, accumulate);
        return;
    }
    library(c, c_row_stride, a, b, accumulate);
}

/// [`matmul_strided`] by the library itself, whatever the shape (for the tests and
/// benchmarks that set [`rows32`] beside it).
pub fn library(c: &mut [f32], c_row_stride: usize, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k
            && (m == 0 || n == 0 || (c_row_stride >= n && (m - 1) * c_row_stride + n <= c.len())),
        "library product of {m}x{k} . {}x{n} (output row stride {c_row_stride}) into a slice of {}",
        b.rows,
        c.len()
    );
    // SAFETY: every view was bounds-checked when built (its last element lies inside
    // its slice) and the last output element `(m-1) * c_row_stride + n - 1` lies inside
    // `c` (checked above); `c` is a unique borrow, so it aliases neither input. With
    // beta = 0 the library does not read `c`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            c.as_mut_ptr(),
            c_row_stride as isize,
            1,
        );
    }
}

/// `c[m x n] += a[m x k] . b[k x n]`, all row-major.
pub fn mm_acc(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    matmul(c, Mat::rows(a, m, k), Mat::rows(b, k, n), true);
}

/// `c[k x n] += aᵀ . b` for row-major `a[m x k]`, `b[m x n]`.
pub fn mm_at_b_acc(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    matmul(c, Mat::transposed(a, m, k), Mat::rows(b, m, n), true);
}

/// `c[m x n] += a . bᵀ` for row-major `a[m x k]`, `b[n x k]`.
pub fn mm_a_bt_acc(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    matmul(c, Mat::rows(a, m, k), Mat::transposed(b, n, k), true);
}

/// Products with fewer rows than this go through [`mm_acc_few_rows`] (register-blocked;
/// up to VariBAD's 13-row VAE chunks it takes fewer instructions than the library,
/// which repacks the 64 x 192 recurrent weights on every per-step call: VariBAD's
/// GridNavi loop -13% in callgrind).
pub const FEW_ROWS: usize = 16;

/// `c[m x n] += a[m x k] . b[k x n]` (row-major) for a handful of rows, as in the
/// per-step recurrent products of a GRU over a few sequences. The library pads rows to
/// its 8-row micro-tile and repacks `b` on every call, which for one or two rows costs
/// more than the arithmetic (a quarter of RL2's training instructions); this is a
/// plain row-times-matrix loop, vectorised over `n`, with fused multiply-adds where
/// the CPU has them (picked once per machine: deterministic on one machine; training
/// only, where rows need not be stable across batch sizes).
pub fn mm_acc_few_rows(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if rows32::available() {
        // The same sums in AVX-512 register blocks.
        rows32::add_product_one_chain(c, a, b, m, k, n);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { few_rows_fma(a, b, c, m, k, n) };
            return;
        }
    }
    for i in 0..m {
        let ci = &mut c[i * n..(i + 1) * n];
        for (p, &aip) in a[i * k..(i + 1) * k].iter().enumerate() {
            for (cij, &bpj) in ci.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *cij += aip * bpj;
            }
        }
    }
}

/// The few-row product with AVX2 + FMA: blocks of 2 rows x 32 columns kept in 8
/// vector registers over the whole inner dimension (the plain loop loads and stores
/// `c` for every multiply-add); a single row (RL2's one-sequence minibatches) takes 64
/// columns at a time, so that it too has 8 independent chains of multiply-adds to hide
/// their latency behind (on a CPU with AVX-512, [`mm_acc_few_rows`] sends the product
/// to [`rows32`]'s wider blocks instead). Each element is `c = fma(a_ip, b_pj, c)` for
/// `p` in order, so results are bit-identical to the plain loop with `mul_add`,
/// whatever the block or the vector width.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn few_rows_fma(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    let mut i = 0;
    while i < m {
        if i + 1 < m {
            let j = few_rows_block::<2, 4>(a, b, c, i, k, n, 0);
            few_rows_tail(a, b, c, i..i + 2, k, n, j);
            i += 2;
        } else {
            let j = few_rows_block::<1, 8>(a, b, c, i, k, n, 0);
            let j = few_rows_block::<1, 4>(a, b, c, i, k, n, j);
            few_rows_tail(a, b, c, i..i + 1, k, n, j);
            i += 1;
        }
    }
}

/// Rows `i..i + R` of [`few_rows_fma`] in AVX2 registers: columns from `j` in blocks of
/// `8 V` while whole blocks fit (`R * V` accumulators, `V` loads of `b` per step of `p`
/// shared by the block's rows); returns the first column not done.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn few_rows_block<const R: usize, const V: usize>(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    i: usize,
    k: usize,
    n: usize,
    mut j: usize,
) -> usize {
    use std::arch::x86_64::*;
    let w = 8 * V;
    let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    while j + w <= n {
        // SAFETY (all pointer reads and writes below): the caller checked
        // a.len() >= m*k, b.len() >= k*n, c.len() >= m*n, and i + R <= m, j + w <= n.
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        for (r, acc_r) in acc.iter_mut().enumerate() {
            for (v, x) in acc_r.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(cp.add((i + r) * n + j + 8 * v));
            }
        }
        for p in 0..k {
            let mut bv = [_mm256_setzero_ps(); V];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(bp.add(p * n + j + 8 * v));
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*ap.add((i + r) * k + p));
                for (x, &bj) in acc_r.iter_mut().zip(&bv) {
                    *x = _mm256_fmadd_ps(av, bj, *x);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (v, x) in acc_r.iter().enumerate() {
                _mm256_storeu_ps(cp.add((i + r) * n + j + 8 * v), *x);
            }
        }
        j += w;
    }
    j
}

/// Columns `from..n` of `rows` of [`few_rows_fma`], one element at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn few_rows_tail(
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    rows: std::ops::Range<usize>,
    k: usize,
    n: usize,
    from: usize,
) {
    if from >= n {
        return;
    }
    for r in rows {
        let ci = &mut c[r * n + from..(r + 1) * n];
        for (p, &aip) in a[r * k..(r + 1) * k].iter().enumerate() {
            for (cij, &bpj) in ci.iter_mut().zip(&b[p * n + from..(p + 1) * n]) {
                *cij = aip.mul_add(bpj, *cij);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn naive(a: Mat<'_>, b: Mat<'_>) -> Vec<f64> {
        let mut c = vec![0.0f64; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    c[i * b.cols + j] += a.data[i * a.row_stride + p * a.col_stride] as f64
                        * b.data[p * b.row_stride + j * b.col_stride] as f64;
                }
            }
        }
        c
    }

    #[test]
    fn products_and_transposed_views_match_the_definition() {
        let mut rng = Rng::new(5);
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 7, 5),
            (17, 33, 9),
            (64, 8, 192),
            (1, 64, 192),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.normal() as f32).collect();
            let check = |got: &[f32], want: &[f64], base: &[f32]| {
                for ((g, w), c) in got.iter().zip(want).zip(base) {
                    let w = w + *c as f64;
                    assert!((*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
                }
            };
            let want = naive(Mat::rows(&a, m, k), Mat::rows(&b, k, n));
            let mut c = c0.clone();
            mm_acc(&a, &b, &mut c, m, k, n);
            check(&c, &want, &c0);
            let mut c = vec![7.0; m * n];
            matmul(&mut c, Mat::rows(&a, m, k), Mat::rows(&b, k, n), false);
            check(&c, &want, &vec![0.0; m * n]);
            // aᵀ b with a stored [k x m]: reuse `a` read as [m x k]ᵀ of a [k x m] buffer.
            let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
            let mut c = c0.clone();
            mm_at_b_acc(&at, &b, &mut c, k, m, n);
            check(&c, &want, &c0);
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let mut c = c0.clone();
            mm_a_bt_acc(&a, &bt, &mut c, m, k, n);
            check(&c, &want, &c0);
            let mut c = c0.clone();
            mm_acc_few_rows(&a, &b, &mut c, m, k, n);
            check(&c, &want, &c0);
        }
    }

    #[test]
    fn few_row_kernel_equals_the_plain_fused_loop_bit_for_bit() {
        let mut rng = Rng::new(11);
        for &(m, k, n) in &[
            (1, 64, 192),
            (1, 256, 768),
            (1, 768, 256),
            (1, 9, 200),
            (2, 192, 64),
            (3, 5, 70),
            (7, 33, 31),
            (2, 8, 40),
            // `rows32`'s row blocks on AVX-512: 1-6 rows and their splits (10 = 5 + 5,
            // 13 = 5 + 4 + 4, 15 = 5 x 3), columns in 128s (one row), 64s, 16s and a tail.
            (3, 20, 64 + 16 + 5),
            (4, 7, 130),
            (5, 256, 768),
            (6, 3, 17),
            (10, 768, 256),
            (13, 64, 192),
            (15, 40, 81),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| rng.normal() as f32).collect();
            let mut want = c0.clone();
            for i in 0..m {
                for p in 0..k {
                    for j in 0..n {
                        want[i * n + j] = a[i * k + p].mul_add(b[p * n + j], want[i * n + j]);
                    }
                }
            }
            let mut got = c0.clone();
            mm_acc_few_rows(&a, &b, &mut got, m, k, n);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                assert_eq!(got, want, "{m}x{k}x{n}");
            }
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()));
            }
        }
    }

    #[test]
    fn a_row_does_not_depend_on_its_batch() {
        let mut rng = Rng::new(8);
        let (k, n) = (37, 70);
        let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
        let all: Vec<f32> = (0..200 * k).map(|_| rng.normal() as f32).collect();
        let mut full = vec![0.0; 200 * n];
        mm_acc(&all, &b, &mut full, 200, k, n);
        for &(start, m) in &[(0, 1), (5, 3), (17, 16), (100, 100), (199, 1)] {
            let mut part = vec![0.0; m * n];
            mm_acc(&all[start * k..(start + m) * k], &b, &mut part, m, k, n);
            assert_eq!(part, full[start * n..(start + m) * n], "rows {start}..+{m}");
        }
    }
}
