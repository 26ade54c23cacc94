//! [`gemm64`]'s products with their arithmetic in `f32`, chosen per caller by a
//! [`Precision`]: the operands are rounded to `f32`, multiplied and accumulated by
//! faer's `f32` kernels, and the product is widened back and written (or added) into the
//! caller's `f64` output. Everything around the products (activations, the head, sums
//! over parameters, the conjugate gradient) stays `f64`.
//!
//! Why: MAML-TRPO's outer step is bound by the products of its `[512, 512]` layers over
//! 5,000-row blocks (docs/benchmarks.md, "MAML-TRPO update"), and faer's `f32` kernels
//! do twice the `f64` kernels' work per second on the same vector registers, while the
//! rounding is a copy of each operand (a few percent of a product's time at those
//! shapes). Meta-World+'s MAML-TRPO, whose settings the MetaWorld presets use, computes
//! in `f32` throughout.
//!
//! The rounding buffers are per thread and grow to the largest product the thread has
//! run, so a steady caller allocates nothing; [`Precision::buffer_bytes`] is what they
//! hold. An operand that serves many products (a forward pass kept across the
//! conjugate gradient's products) can be rounded once by the caller
//! ([`Precision::rounded`], [`Precision::rounded_transposed`]) and passed as an
//! [`Operand::Narrow`]: the product then reads it as it is, with the same result, since
//! rounding is a function of the value. Like [`gemm64`], the products run on the calling thread (`Par::Seq`), so the
//! thread count never changes a result.
//!
//! ```
//! use bamdp::nn::gemm_mixed::Precision;
//! // A = [[1, 2], [3, 4]], B = [[0.5, 0], [0, 0.25]]: both exact in f32.
//! let (a, b) = ([1.0, 2.0, 3.0, 4.0], [0.5, 0.0, 0.0, 0.25]);
//! let mut f64_out = [0.0; 4];
//! let mut f32_out = [1.0; 4];
//! Precision::F64.a_b(&mut f64_out, &a[..], &b[..], 2, 2, 2, false);
//! Precision::F32.a_b(&mut f32_out, &a[..], &b[..], 2, 2, 2, false);
//! assert_eq!(f64_out, [0.5, 0.5, 1.5, 1.0]);
//! assert_eq!(f32_out, f64_out);
//! // 0.1 is not exact in f32: the product is then the f32 product, widened.
//! let mut out = [0.0; 1];
//! Precision::F32.a_b(&mut out, &[0.1][..], &[3.0][..], 1, 1, 1, false);
//! assert_eq!(out[0], (0.1f32 * 3.0f32) as f64);
//! ```

use super::gemm64;
use faer::{Accum, MatMut, MatRef, Par};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

/// The arithmetic of a caller's matrix products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// faer's `f64` kernels on the `f64` operands ([`gemm64`]).
    #[default]
    F64,
    /// Operands rounded to `f32`, faer's `f32` kernels, the product widened to `f64`.
    F32,
}

/// One side of a product: `f64` values in the layout the [`gemm64`] products take (the
/// `f32` products round them on the way), or values already rounded to `f32` in the
/// layout the `f32` kernel reads: as given, except the transposed sides (the left of
/// [`Precision::at_b_wide`], the right of [`Precision::a_bt`]), which are rounded
/// transposed ([`Precision::rounded_transposed`]). A `Narrow` side is only for `F32`
/// products.
#[derive(Clone, Copy, Debug)]
pub enum Operand<'a> {
    Wide(&'a [f64]),
    Narrow(&'a [f32]),
}

impl<'a> From<&'a [f64]> for Operand<'a> {
    fn from(v: &'a [f64]) -> Self {
        Operand::Wide(v)
    }
}

impl<'a> From<&'a Vec<f64>> for Operand<'a> {
    fn from(v: &'a Vec<f64>) -> Self {
        Operand::Wide(v)
    }
}

impl<'a, const N: usize> From<&'a [f64; N]> for Operand<'a> {
    fn from(v: &'a [f64; N]) -> Self {
        Operand::Wide(v)
    }
}

impl<'a> From<&'a [f32]> for Operand<'a> {
    fn from(v: &'a [f32]) -> Self {
        Operand::Narrow(v)
    }
}

impl<'a> Operand<'a> {
    /// The `f64` values, for an `F64` product.
    fn wide(self) -> &'a [f64] {
        match self {
            Operand::Wide(v) => v,
            Operand::Narrow(_) => panic!("an f32-rounded operand was given to an f64 product"),
        }
    }

    /// The first `len` rounded values: this side's own when `Narrow`, else `fill`
    /// writes them into `buf`.
    fn narrow<'b>(
        self,
        len: usize,
        buf: &'b mut Vec<f32>,
        fill: impl FnOnce(&[f64], &mut [f32]),
    ) -> &'b [f32]
    where
        'a: 'b,
    {
        match self {
            Operand::Narrow(v) => &v[..len],
            Operand::Wide(v) => {
                let dst = grown(buf, len);
                fill(v, dst);
                dst
            }
        }
    }
}

/// One thread's rounded operands and product.
#[derive(Default)]
struct Buffers {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

fn grown(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// `dst = src` rounded to `f32`.
fn round(dst: &mut [f32], src: &[f64]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s as f32);
}

/// `t (cols x rows) = A'` rounded to `f32`, for a row-major `A` of `rows x cols`.
fn round_transposed(a: &[f64], rows: usize, cols: usize, t: &mut [f32]) {
    gemm64::transpose_map(a, rows, cols, t, |x| x as f32);
}

/// `src` rounded into `buf` (grown as needed): a side kept for many `F32` products.
pub fn round_into<'a>(buf: &'a mut Vec<f32>, src: &[f64]) -> &'a [f32] {
    let dst = grown(buf, src.len());
    round(dst, src);
    dst
}

/// A row-major `rows x cols` matrix `src` rounded into `buf` as its `cols x rows`
/// transpose: a transposed side kept for many `F32` products.
pub fn round_transposed_into<'a>(
    buf: &'a mut Vec<f32>,
    src: &[f64],
    rows: usize,
    cols: usize,
) -> &'a [f32] {
    let dst = grown(buf, rows * cols);
    round_transposed(&src[..rows * cols], rows, cols, dst);
    dst
}

/// `out (n x c) (+)= L R` with the sides rounded as the `f32` kernel reads them: each
/// side is an operand, its length, and how to round it when it is given in `f64`
/// ([`Operand::narrow`]); the rounding goes into the thread's buffers.
fn f32_product<'a, 'b>(
    out: &mut [f64],
    left: (Operand<'a>, usize, impl FnOnce(&[f64], &mut [f32])),
    right: (Operand<'b>, usize, impl FnOnce(&[f64], &mut [f32])),
    dims: [usize; 3],
    add: bool,
) {
    BUFFERS.with_borrow_mut(|buf| {
        let Buffers { a, b, c } = buf;
        let l = left.0.narrow(left.1, a, left.2);
        let r = right.0.narrow(right.1, b, right.2);
        product(out, l, r, c, dims, add);
    })
}

/// `out (n x c) (+)= L R` for row-major `f32` operands `L` (`n x k`) and `R` (`k x c`).
fn product(
    out: &mut [f64],
    l: &[f32],
    r: &[f32],
    c_buf: &mut Vec<f32>,
    dims: [usize; 3],
    add: bool,
) {
    let [n, k, c] = dims;
    let prod = grown(c_buf, n * c);
    faer::linalg::matmul::matmul(
        MatMut::from_row_major_slice_mut(prod, n, c),
        Accum::Replace,
        MatRef::from_row_major_slice(&l[..n * k], n, k),
        MatRef::from_row_major_slice(&r[..k * c], k, c),
        1.0f32,
        Par::Seq,
    );
    let out = &mut out[..n * c];
    if add {
        out.iter_mut()
            .zip(prod.iter())
            .for_each(|(o, &p)| *o += p as f64);
    } else {
        out.iter_mut()
            .zip(prod.iter())
            .for_each(|(o, &p)| *o = p as f64);
    }
}

impl Precision {
    /// `out (n x c) (+)= A B`, A `n x k`, B `k x c` ([`gemm64::a_b`]).
    #[allow(clippy::too_many_arguments)]
    pub fn a_b<'a>(
        self,
        out: &mut [f64],
        a: impl Into<Operand<'a>>,
        b: impl Into<Operand<'a>>,
        n: usize,
        k: usize,
        c: usize,
        add: bool,
    ) {
        let (a, b) = (a.into(), b.into());
        match self {
            Precision::F64 => gemm64::a_b(out, a.wide(), b.wide(), n, k, c, add),
            Precision::F32 => f32_product(
                out,
                (a, n * k, |v, d| round(d, &v[..n * k])),
                (b, k * c, |v, d| round(d, &v[..k * c])),
                [n, k, c],
                add,
            ),
        }
    }

    /// `out (r x c) (+)= A' B`, A `n x r`, B `n x c` ([`gemm64::at_b_wide`]; `t` is its
    /// transposition buffer, unused in `f32`, where `A'` is rounded into a transposed
    /// copy).
    #[allow(clippy::too_many_arguments)]
    pub fn at_b_wide<'a>(
        self,
        out: &mut [f64],
        a: impl Into<Operand<'a>>,
        b: impl Into<Operand<'a>>,
        n: usize,
        r: usize,
        c: usize,
        add: bool,
        t: &mut Vec<f64>,
    ) {
        let (a, b) = (a.into(), b.into());
        match self {
            Precision::F64 => gemm64::at_b_wide(out, a.wide(), b.wide(), n, r, c, add, t),
            Precision::F32 => f32_product(
                out,
                (a, r * n, |v, d| round_transposed(&v[..n * r], n, r, d)),
                (b, n * c, |v, d| round(d, &v[..n * c])),
                [r, n, c],
                add,
            ),
        }
    }

    /// `out (n x c) (+)= A B'`, A `n x k`, B `c x k` ([`gemm64::a_bt`]).
    #[allow(clippy::too_many_arguments)]
    pub fn a_bt<'a>(
        self,
        out: &mut [f64],
        a: impl Into<Operand<'a>>,
        b: impl Into<Operand<'a>>,
        n: usize,
        k: usize,
        c: usize,
        add: bool,
    ) {
        let (a, b) = (a.into(), b.into());
        match self {
            Precision::F64 => gemm64::a_bt(out, a.wide(), b.wide(), n, k, c, add),
            Precision::F32 => f32_product(
                out,
                (a, n * k, |v, d| round(d, &v[..n * k])),
                (b, k * c, |v, d| round_transposed(&v[..c * k], c, k, d)),
                [n, k, c],
                add,
            ),
        }
    }

    /// `src` as an operand of this precision's products: itself for `F64`; for `F32`
    /// rounded into `buf` (grown as needed), so that products reading it many times
    /// round it once.
    pub fn rounded<'a>(self, src: &'a [f64], buf: &'a mut Vec<f32>) -> Operand<'a> {
        match self {
            Precision::F64 => Operand::Wide(src),
            Precision::F32 => Operand::Narrow(round_into(buf, src)),
        }
    }

    /// [`Precision::rounded`] for a transposed side: `src` a row-major `rows x cols`
    /// matrix, rounded (for `F32`) into its `cols x rows` transpose.
    pub fn rounded_transposed<'a>(
        self,
        src: &'a [f64],
        rows: usize,
        cols: usize,
        buf: &'a mut Vec<f32>,
    ) -> Operand<'a> {
        match self {
            Precision::F64 => Operand::Wide(src),
            Precision::F32 => Operand::Narrow(round_transposed_into(buf, src, rows, cols)),
        }
    }

    /// Bytes one thread's rounding buffers reach for products whose left operand, right
    /// operand and output have at most these many elements (0 for `F64`).
    pub fn buffer_bytes(self, lhs: u128, rhs: u128, out: u128) -> u128 {
        match self {
            Precision::F64 => 0,
            Precision::F32 => 4u128.saturating_mul(lhs.saturating_add(rhs).saturating_add(out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(len: usize, scale: f64) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * scale).sin()).collect()
    }

    /// The f32 path against the f64 one on every product shape, replace and add:
    /// within f32 rounding of the sums (relative to the sum of |terms|), and exactly
    /// the f64 product when every operand and partial sum is exact in f32.
    #[test]
    fn f32_products_are_f64_products_within_f32_rounding() {
        let mut t = Vec::new();
        for (n, k, c) in [(7, 5, 3), (300, 64, 70), (1000, 39, 130), (64, 512, 8)] {
            let a = filled(n * k, 0.37);
            let b = filled(k * c, 0.71);
            let bt = filled(c * k, 0.53);
            let a2 = filled(n * c, 0.29);
            let abs = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
            for add in [false, true] {
                let check = |want: &[f64], got: &[f64], scale: &[f64], what: &str| {
                    for ((w, g), s) in want.iter().zip(got).zip(scale) {
                        // Rounding of the operands and of a k-term f32 sum.
                        let tol = 1e-6 * (k.max(n) as f64) * s + 1e-30;
                        assert!((w - g).abs() <= tol, "{what} {n}x{k}x{c}: {w} vs {g}");
                    }
                };
                let (mut w, mut g, mut s) = (vec![0.5; n * c], vec![0.5; n * c], vec![0.0; n * c]);
                Precision::F64.a_b(&mut w, &a, &b, n, k, c, add);
                Precision::F32.a_b(&mut g, &a, &b, n, k, c, add);
                gemm64::a_b(&mut s, &abs(&a), &abs(&b), n, k, c, false);
                check(&w, &g, &s, "a_b");

                let (mut w, mut g, mut s) = (vec![0.5; n * c], vec![0.5; n * c], vec![0.0; n * c]);
                Precision::F64.a_bt(&mut w, &a, &bt, n, k, c, add);
                Precision::F32.a_bt(&mut g, &a, &bt, n, k, c, add);
                gemm64::a_bt(&mut s, &abs(&a), &abs(&bt), n, k, c, false);
                check(&w, &g, &s, "a_bt");

                // A' B with A n x k and B n x c: a k x c output, sums over n rows.
                let (mut w, mut g, mut s) = (vec![0.5; k * c], vec![0.5; k * c], vec![0.0; k * c]);
                Precision::F64.at_b_wide(&mut w, &a, &a2, n, k, c, add, &mut t);
                Precision::F32.at_b_wide(&mut g, &a, &a2, n, k, c, add, &mut t);
                gemm64::at_b(&mut s, &abs(&a), &abs(&a2), n, k, c, false);
                check(&w, &g, &s, "at_b_wide");
            }
        }
        // Small integers: every operand, product and partial sum exact in f32.
        let (n, k, c) = (33, 17, 65);
        let a: Vec<f64> = (0..n * k).map(|i| (i % 7) as f64 - 3.0).collect();
        let b: Vec<f64> = (0..k * c).map(|i| (i % 5) as f64 - 2.0).collect();
        let (mut w, mut g) = (vec![1.0; n * c], vec![1.0; n * c]);
        Precision::F64.a_b(&mut w, &a, &b, n, k, c, true);
        Precision::F32.a_b(&mut g, &a, &b, n, k, c, true);
        assert_eq!(w, g);
    }

    /// Rounding an operand beforehand (plain or transposed, as each side reads it)
    /// changes no bit of any product.
    #[test]
    fn operands_rounded_beforehand_give_the_same_bits() {
        let (n, k, c) = (300, 64, 70);
        let a = filled(n * k, 0.37);
        let b = filled(k * c, 0.71);
        let bt = filled(c * k, 0.53);
        let a2 = filled(n * c, 0.29);
        let p = Precision::F32;
        let (mut ra, mut rb, mut t) = (Vec::new(), Vec::new(), Vec::new());
        let (mut want, mut got) = (vec![0.5; n * c], vec![0.5; n * c]);
        p.a_b(&mut want, &a, &b, n, k, c, true);
        p.a_b(
            &mut got,
            p.rounded(&a, &mut ra),
            p.rounded(&b, &mut rb),
            n,
            k,
            c,
            true,
        );
        assert_eq!(want, got, "a_b");
        let (mut want, mut got) = (vec![0.5; n * c], vec![0.5; n * c]);
        p.a_bt(&mut want, &a, &bt, n, k, c, false);
        let right = p.rounded_transposed(&bt, c, k, &mut rb);
        p.a_bt(&mut got, p.rounded(&a, &mut ra), right, n, k, c, false);
        assert_eq!(want, got, "a_bt");
        let (mut want, mut got) = (vec![0.5; k * c], vec![0.5; k * c]);
        p.at_b_wide(&mut want, &a, &a2, n, k, c, true, &mut t);
        let left = p.rounded_transposed(&a, n, k, &mut ra);
        p.at_b_wide(
            &mut got,
            left,
            p.rounded(&a2, &mut rb),
            n,
            k,
            c,
            true,
            &mut t,
        );
        assert_eq!(want, got, "at_b_wide");
        // For f64 products the operand is the values themselves.
        assert!(matches!(
            Precision::F64.rounded(&a, &mut ra),
            Operand::Wide(_)
        ));
    }

    #[test]
    fn buffers_are_reused_across_shapes() {
        // A large product, then a small one: the small one must not read the large
        // one's leftovers.
        let (a, b) = (filled(200 * 30, 0.1), filled(30 * 40, 0.2));
        let mut big = vec![0.0; 200 * 40];
        Precision::F32.a_b(&mut big, &a, &b, 200, 30, 40, false);
        let mut small = vec![0.0; 4];
        Precision::F32.a_b(&mut small, &[1.0, 2.0], &[3.0, 4.0], 2, 1, 2, false);
        assert_eq!(small, [3.0, 4.0, 6.0, 8.0]);
    }
}
