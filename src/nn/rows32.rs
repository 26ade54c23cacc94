//! `f32` products of a few dozen rows in AVX-512 registers, equal bit for bit to what
//! [`super::gemm`]'s library (`matrixmultiply`) computes for them on the same CPU.
//!
//! Why: the recurrence of a GRU over a minibatch is one small product per step (RL2's
//! ML45 preset: 22-23 rows x 256 x 768 forward, x 768 x 256 backward). The library
//! copies ("packs") the whole right-hand matrix on every call and pads the rows to its
//! 16-row tile, which at these shapes costs about as much as the arithmetic (`perf` of
//! the ML45 RL2 run: packing 15% of all samples, a third of the kernel's time in padded
//! tiles). Here blocks of up to 6 rows x 64 columns stay in registers and read the
//! right-hand matrix where it lies.
//!
//! Why bit for bit: a run started with an older binary must resume exactly with this
//! one, and the planner relies on products being row-stable (ARCHITECTURE.md). On a CPU
//! with AVX-512 the library computes each element `c_ij` by splitting the inner
//! dimension into chunks of [`LIBRARY_KC`] and, for each chunk in order, summing
//! `s = fma(a_ip, b_pj, s)` from `s = 0` over the chunk's `p` in order, then
//! `c_ij = c_ij + s` (for the first chunk of a product that overwrites, `c_ij = s`).
//! [`product`] does exactly that; the tests compare it with the library with
//! `assert_eq!`. Elsewhere (no AVX-512) the library runs another kernel, so
//! [`available`] is false and callers keep the library.
//!
//! The same register blocks also serve [`super::gemm::mm_acc_few_rows`]'s arithmetic,
//! one in-order chain per element from `c` itself (`c_ij = fma(a_ip, b_pj, c_ij)` over
//! all of `k`): [`add_product_one_chain`]. Both sums are fixed per element, so how the
//! rows and columns are blocked never changes a bit.
//!
//! ```
//! use bamdp::nn::rows32;
//! if rows32::available() {
//!     // c (2 x 2) += a (2 x 1) . b (1 x 2)
//!     let mut c = [1.0f32; 4];
//!     rows32::product(&mut c, &[1.0, 2.0], &[3.0, 4.0], 2, 1, 2, true);
//!     assert_eq!(c, [4.0, 5.0, 7.0, 9.0]);
//! }
//! ```

/// The library's chunk of the inner dimension (`matrixmultiply`'s `S_KC` for `f32`).
pub const LIBRARY_KC: usize = 256;

/// Up to this many rows [`product`] beats the library on the recurrences' shapes
/// (docs/benchmarks.md, "RL2 on ML45"); above it the library's packing is paid back.
pub const MAX_ROWS: usize = 64;

/// Whether [`product`] can run here: the CPU has AVX-512F (the library's AVX-512
/// kernel, whose arithmetic it reproduces).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `c[m x n] = a[m x k] . b[k x n]`, or `c += ...` with `accumulate`, all row-major and
/// contiguous, with the library's arithmetic (module doc).
///
/// # Panics
/// If [`available`] is false, or a slice is shorter than its sizes say.
pub fn product(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    run(c, a, b, m, k, n, Sum::Library { accumulate });
}

/// `c[m x n] += a[m x k] . b[k x n]`, all row-major and contiguous, each element one
/// in-order chain from `c`: `c_ij = fma(a_ip, b_pj, c_ij)` for `p = 0..k` (the plain
/// loop with `mul_add`; [`super::gemm::mm_acc_few_rows`]'s arithmetic).
///
/// # Panics
/// If [`available`] is false, or a slice is shorter than its sizes say.
pub fn add_product_one_chain(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) {
    run(c, a, b, m, k, n, Sum::OneChainFromC);
}

/// Checks the sizes and the CPU, then runs every row block.
fn run(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize, sum: Sum) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "rows32 product of {m}x{k} . {k}x{n} on slices of {}, {}, {}",
        a.len(),
        b.len(),
        c.len()
    );
    assert!(available(), "rows32 products need AVX-512F");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if let Sum::Library { accumulate: false } = sum {
            c[..m * n].fill(0.0);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512F and FMA (checked above); sizes checked above.
    unsafe {
        let first = Block { i: 0, k, n, sum };
        first.and_below(c, a, b, m)
    }
}

/// How each element is summed (module doc); both are in-order chains of fused
/// multiply-adds, they differ in where a chain starts and how long it is.
#[derive(Clone, Copy)]
enum Sum {
    /// The library's: chains of [`LIBRARY_KC`] from zero, each added to `c` (written,
    /// for an overwriting product's first chunk).
    Library { accumulate: bool },
    /// One chain over all of `k`, starting from `c`.
    OneChainFromC,
}

/// Where a block of rows starts, the product's sizes and its sum.
#[derive(Clone, Copy)]
struct Block {
    i: usize,
    k: usize,
    n: usize,
    sum: Sum,
}

impl Block {
    /// Rows `i..m` in blocks of 3-6, as even as possible (23 = 6 + 6 + 6 + 5), so that
    /// no block is left with one or two rows; each block's columns in 64s, then 16s,
    /// then one at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn and_below(self, c: &mut [f32], a: &[f32], b: &[f32], m: usize) {
        let mut at = self;
        while at.i < m {
            let left = m - at.i;
            let rows = left.div_ceil(left.div_ceil(6));
            let j = match rows {
                1 => at.columns::<1>(c, a, b),
                2 => at.columns::<2>(c, a, b),
                3 => at.columns::<3>(c, a, b),
                4 => at.columns::<4>(c, a, b),
                5 => at.columns::<5>(c, a, b),
                _ => at.columns::<6>(c, a, b),
            };
            at.tail(c, a, b, rows, j);
            at.i += rows;
        }
    }

    /// Rows `i..i + R`: columns in blocks of 64 (a single row: 128, then 64, so that it
    /// too has 8 independent chains to hide their latency behind), then 16, while whole
    /// blocks fit; returns the first column not done.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn columns<const R: usize>(self, c: &mut [f32], a: &[f32], b: &[f32]) -> usize {
        let mut j = 0;
        if R == 1 {
            j = self.registers::<R, 8>(c, a, b, j);
        }
        j = self.registers::<R, 4>(c, a, b, j);
        self.registers::<R, 1>(c, a, b, j)
    }

    /// Rows `i..i + R` x columns from `j` in blocks of `16 V`: for each chunk of the
    /// inner dimension (the whole of it for [`Sum::OneChainFromC`]), `R x V`
    /// accumulators from zero (from `c`), one fused multiply-add per element and `p` in
    /// order, then added to `c` (or written).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn registers<const R: usize, const V: usize>(
        self,
        c: &mut [f32],
        a: &[f32],
        b: &[f32],
        mut j: usize,
    ) -> usize {
        use std::arch::x86_64::*;
        let Block { i, k, n, sum } = self;
        let chunk = match sum {
            Sum::Library { .. } => LIBRARY_KC,
            Sum::OneChainFromC => k,
        };
        let w = 16 * V;
        let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        while j + w <= n {
            let mut p0 = 0;
            while p0 < k {
                let p1 = (p0 + chunk).min(k);
                // SAFETY (all pointer reads and writes below): `run` checked
                // a.len() >= m*k, b.len() >= k*n, c.len() >= m*n; here i + R <= m,
                // j + w <= n and p < k.
                let mut acc = [[_mm512_setzero_ps(); V]; R];
                if let Sum::OneChainFromC = sum {
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        for (v, x) in acc_r.iter_mut().enumerate() {
                            *x = _mm512_loadu_ps(cp.add((i + r) * n + j + 16 * v));
                        }
                    }
                }
                for p in p0..p1 {
                    let mut bv = [_mm512_setzero_ps(); V];
                    for (v, x) in bv.iter_mut().enumerate() {
                        *x = _mm512_loadu_ps(bp.add(p * n + j + 16 * v));
                    }
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let av = _mm512_set1_ps(*ap.add((i + r) * k + p));
                        for (x, &bj) in acc_r.iter_mut().zip(&bv) {
                            *x = _mm512_fmadd_ps(av, bj, *x);
                        }
                    }
                }
                let add = match sum {
                    Sum::Library { accumulate } => accumulate || p0 > 0,
                    Sum::OneChainFromC => false,
                };
                for (r, acc_r) in acc.iter().enumerate() {
                    for (v, x) in acc_r.iter().enumerate() {
                        let at = cp.add((i + r) * n + j + 16 * v);
                        let sum = match add {
                            true => _mm512_add_ps(_mm512_loadu_ps(at), *x),
                            false => *x,
                        };
                        _mm512_storeu_ps(at, sum);
                    }
                }
                p0 = p1;
            }
            j += w;
        }
        j
    }

    /// Columns `from..n` of `rows` rows, one element at a time, with the same sums.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,fma")]
    unsafe fn tail(self, c: &mut [f32], a: &[f32], b: &[f32], rows: usize, from: usize) {
        let Block { i, k, n, sum } = self;
        let Sum::Library { accumulate } = sum else {
            for r in i..i + rows {
                for j in from..n {
                    let out = &mut c[r * n + j];
                    for p in 0..k {
                        *out = a[r * k + p].mul_add(b[p * n + j], *out);
                    }
                }
            }
            return;
        };
        for r in i..i + rows {
            for j in from..n {
                let mut out = c[r * n + j];
                for (chunk, p0) in (0..k).step_by(LIBRARY_KC).enumerate() {
                    let mut s = 0.0f32;
                    for p in p0..(p0 + LIBRARY_KC).min(k) {
                        s = a[r * k + p].mul_add(b[p * n + j], s);
                    }
                    out = match accumulate || chunk > 0 {
                        true => out + s,
                        false => s,
                    };
                }
                c[r * n + j] = out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gemm::{library, Mat};
    use crate::rng::Rng;

    fn filled(len: usize, rng: &mut Rng) -> Vec<f32> {
        (0..len).map(|_| rng.normal() as f32).collect()
    }

    /// Every row-block size (1-6 rows and their splits), column blocks of 128 (one
    /// row), 64, 16 and a tail, inner dimensions within one chunk, exactly one, and over several with a
    /// partial last; overwriting and accumulating: the library's bits.
    #[test]
    fn equals_the_library_bit_for_bit() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this CPU (the library runs another kernel)");
            return;
        }
        let mut rng = Rng::new(21);
        for &(m, k, n) in &[
            (1, 7, 64 + 16 + 3),
            (1, 300, 128 + 64 + 16 + 3),
            (2, 300, 17),
            (3, 256, 64),
            (5, 513, 80),
            (7, 33, 130),
            (16, 256, 768),
            (22, 768, 256),
            (23, 256, 768),
            (23, 768, 256),
            (45, 128, 384),
            (64, 40, 100),
            (13, 1, 5),
        ] {
            let a = filled(m * k, &mut rng);
            let b = filled(k * n, &mut rng);
            let c0 = filled(m * n, &mut rng);
            for accumulate in [true, false] {
                let mut want = c0.clone();
                library(
                    &mut want,
                    n,
                    Mat::rows(&a, m, k),
                    Mat::rows(&b, k, n),
                    accumulate,
                );
                let mut got = c0.clone();
                product(&mut got, &a, &b, m, k, n, accumulate);
                assert_eq!(got, want, "{m}x{k}x{n}, accumulate {accumulate}");
            }
        }
    }

    /// The order matters: a single sum over all of `k` (no chunks) differs from the
    /// library's in some element, so the test above can fail.
    #[test]
    fn one_unchunked_sum_differs_from_the_library() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(4);
        let (m, k, n) = (20, 768, 64);
        let (a, b) = (filled(m * k, &mut rng), filled(k * n, &mut rng));
        let mut want = vec![0.0; m * n];
        library(
            &mut want,
            n,
            Mat::rows(&a, m, k),
            Mat::rows(&b, k, n),
            false,
        );
        let unchunked: Vec<f32> = (0..m * n)
            .map(|e| (0..k).fold(0.0f32, |s, p| a[e / n * k + p].mul_add(b[p * n + e % n], s)))
            .collect();
        assert_ne!(unchunked, want);
    }

    /// The other sum: one chain from `c`, equal to the plain loop with `mul_add` for
    /// every row block (1-6 rows and splits of up to 64), a single row's 128-column
    /// blocks, 64s, 16s and a tail.
    #[test]
    fn one_chain_equals_the_plain_fused_loop_bit_for_bit() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        let mut rng = Rng::new(5);
        for &(m, k, n) in &[
            (1, 300, 128 + 64 + 16 + 2),
            (2, 64, 100),
            (6, 17, 64 + 16 + 1),
            (7, 5, 33),
            (23, 256, 768),
            (64, 9, 20),
        ] {
            let a = filled(m * k, &mut rng);
            let b = filled(k * n, &mut rng);
            let mut want = filled(m * n, &mut rng);
            let mut got = want.clone();
            for (e, w) in want.iter_mut().enumerate() {
                for p in 0..k {
                    *w = a[e / n * k + p].mul_add(b[p * n + e % n], *w);
                }
            }
            add_product_one_chain(&mut got, &a, &b, m, k, n);
            assert_eq!(got, want, "{m}x{k}x{n}");
        }
    }

    #[test]
    fn empty_products() {
        if !available() {
            return;
        }
        let mut c = [3.0f32; 4];
        product(&mut c, &[], &[], 2, 0, 2, true);
        assert_eq!(c, [3.0; 4]);
        product(&mut c, &[], &[], 2, 0, 2, false);
        assert_eq!(c, [0.0; 4]);
        // No rows: nothing written (`c` may be empty).
        product(&mut [], &[], &[1.0; 6], 0, 3, 2, false);
    }
}
