//! A few `f64` rows times a matrix, with every element's sum taken in order by a
//! separate multiply and add: MAML's acting ([`crate::improve::maml::policy::Actor`]),
//! whose actions must not depend on the build, the CPU's vector width or the rows
//! computed beside a row.
//!
//! Why not the GEMM: a library kernel sums in its own blocked order (and fuses), so a
//! row's result would change with the kernel the CPU picks; acting feeds the sampled
//! actions, so every bit counts. The plain loop (`y += x_p w_p` for `p` in order) keeps
//! the order but, in the crate's baseline x86-64 build, loads and stores `y` for every
//! multiply-add two lanes at a time; here blocks of rows x columns stay in AVX / AVX-512
//! registers over the whole inner dimension. Each element is still
//! `y = y + x_p * w_pj` (two roundings) for `p` in order, so the results are those of
//! the plain loop bit for bit, on any CPU and for any rows beside.
//!
//! ```
//! use bamdp::nn::rows64;
//! // y (2 x 3) += x (2 x 2) . w (2 x 3)
//! let x = [1.0, 2.0, 3.0, 4.0];
//! let w = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
//! let mut y = [0.5; 6];
//! rows64::add_product(&mut y, &x, &w, 2, 2, 3);
//! assert_eq!(y, [1.5, 2.5, 3.5, 3.5, 4.5, 7.5]);
//! ```

/// `y[m x n] += x[m x k] . w[k x n]` (row-major), each element as `y = y + x_ip * w_pj`
/// for `p = 0..k` in order, without fused multiply-adds.
///
/// # Panics
/// If a slice is shorter than its sizes say.
pub fn add_product(y: &mut [f64], x: &[f64], w: &[f64], m: usize, k: usize, n: usize) {
    assert!(x.len() >= m * k && w.len() >= k * n && y.len() >= m * n);
    if m == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        if avx512 || std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports the kernels' instructions (checked just above:
            // AVX-512F for the `avx512` ones, AVX for the others); sizes checked.
            unsafe {
                if m == 1 {
                    let j = match avx512 {
                        true => stream_avx512::<4>(y, x, w, 0, k, n),
                        false => stream_avx::<4>(y, x, w, 0, k, n),
                    };
                    tail(y, x, w, 0..1, k, n, j);
                } else if avx512 {
                    blocks_avx512(y, x, w, m, k, n);
                } else {
                    blocks_avx(y, x, w, m, k, n);
                }
            }
            return;
        }
    }
    tail(y, x, w, 0..m, k, n, 0);
}

/// The definition, for columns `from..n` of `rows`: the order every kernel keeps.
fn tail(
    y: &mut [f64],
    x: &[f64],
    w: &[f64],
    rows: std::ops::Range<usize>,
    k: usize,
    n: usize,
    from: usize,
) {
    if from >= n {
        return;
    }
    for r in rows {
        let yr = &mut y[r * n + from..(r + 1) * n];
        for (p, &xp) in x[r * k..(r + 1) * k].iter().enumerate() {
            for (yj, &wpj) in yr.iter_mut().zip(&w[p * n + from..(p + 1) * n]) {
                *yj += xp * wpj;
            }
        }
    }
}

/// How many steps of `p` ahead [`block_kernel`] prefetches `w`.
const AHEAD: usize = 8;

/// Writes one register-blocked kernel per vector width: rows `i..i + R`, columns from
/// `j` in blocks of `LANES * V` while whole blocks fit (`R * V` accumulators, `V` loads
/// of `w` per step of `p` shared by the block's rows); returns the first column not
/// done. A macro because a `#[target_feature]` function cannot be generic over the
/// instruction set.
macro_rules! block_kernel {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $lanes:literal,
     $zero:ident, $load:ident, $set1:ident, $mul:ident, $add:ident, $store:ident) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name<const R: usize, const V: usize>(
            y: &mut [f64],
            x: &[f64],
            w: &[f64],
            i: usize,
            k: usize,
            n: usize,
            mut j: usize,
        ) -> usize {
            use std::arch::x86_64::*;
            let width = $lanes * V;
            let (xp, wp, yp) = (x.as_ptr(), w.as_ptr(), y.as_mut_ptr());
            while j + width <= n {
                // SAFETY (all pointer reads and writes below): the caller checked
                // x.len() >= m*k, w.len() >= k*n, y.len() >= m*n, and i + R <= m,
                // j + width <= n.
                let mut acc = [[$zero(); V]; R];
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    for (v, a) in acc_r.iter_mut().enumerate() {
                        *a = $load(yp.add((i + r) * n + j + $lanes * v));
                    }
                }
                for p in 0..k {
                    // The rows of `w` are a page apart at MAML's widths, too far for
                    // the hardware prefetcher to follow; ask for the block's part of a
                    // row a few steps ahead (a hint: no effect on results).
                    if p + AHEAD < k {
                        let ahead = wp.add((p + AHEAD) * n + j) as *const i8;
                        for line in 0..(width * 8).div_ceil(64) {
                            _mm_prefetch::<_MM_HINT_T0>(ahead.add(64 * line));
                        }
                    }
                    let mut wv = [$zero(); V];
                    for (v, b) in wv.iter_mut().enumerate() {
                        *b = $load(wp.add(p * n + j + $lanes * v));
                    }
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let xv = $set1(*xp.add((i + r) * k + p));
                        for (a, &b) in acc_r.iter_mut().zip(&wv) {
                            *a = $add(*a, $mul(xv, b));
                        }
                    }
                }
                for (r, acc_r) in acc.iter().enumerate() {
                    for (v, a) in acc_r.iter().enumerate() {
                        $store(yp.add((i + r) * n + j + $lanes * v), *a);
                    }
                }
                j += width;
            }
            j
        }
    };
}

/// Writes one kernel per vector width for a single row whose weights come from beyond
/// the core's caches (MAML's adapted parameters, one set per row): the weights are
/// read in their memory order, `P` rows of `w` at a time, so that the hardware
/// prefetcher streams them (the column blocks of [`block_kernel`] read each 4 KB row of
/// a 512-wide `w` in pieces, a page per step of `p`: without software prefetching four
/// times slower than the plain loop there, with it still 1.2x slower than streaming;
/// `cargo bench --bench gemm -- acting`). Row `i`'s `y` stays in the first level
/// cache; each `LANES`-wide block of it is loaded once per `P` steps of `p`.
macro_rules! stream_kernel {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $lanes:literal,
     $load:ident, $set1:ident, $mul:ident, $add:ident, $store:ident) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feature)]
        unsafe fn $name<const P: usize>(
            y: &mut [f64],
            x: &[f64],
            w: &[f64],
            i: usize,
            k: usize,
            n: usize,
        ) -> usize {
            use std::arch::x86_64::*;
            let (xp, wp, yp) = (x.as_ptr(), w.as_ptr(), y.as_mut_ptr().add(i * n));
            let cols = n - n % $lanes;
            let mut p = 0;
            while p < k {
                let steps = (k - p).min(P);
                // SAFETY (all pointer reads and writes below): the caller checked
                // x.len() >= m*k, w.len() >= k*n, y.len() >= m*n, and i < m;
                // p + steps <= k, j + LANES <= cols <= n.
                let mut xv = [$set1(0.0); P];
                for (q, v) in xv.iter_mut().enumerate().take(steps) {
                    *v = $set1(*xp.add(i * k + p + q));
                }
                let mut j = 0;
                while j < cols {
                    let mut acc = $load(yp.add(j));
                    for (q, &v) in xv.iter().enumerate().take(steps) {
                        acc = $add(acc, $mul(v, $load(wp.add((p + q) * n + j))));
                    }
                    $store(yp.add(j), acc);
                    j += $lanes;
                }
                p += steps;
            }
            cols
        }
    };
}

stream_kernel!(
    /// A single row in AVX registers (4 lanes).
    stream_avx, "avx", 4, _mm256_loadu_pd, _mm256_set1_pd, _mm256_mul_pd, _mm256_add_pd,
    _mm256_storeu_pd
);

stream_kernel!(
    /// A single row in AVX-512 registers (8 lanes).
    stream_avx512, "avx512f", 8, _mm512_loadu_pd, _mm512_set1_pd, _mm512_mul_pd,
    _mm512_add_pd, _mm512_storeu_pd
);

block_kernel!(
    /// Rows `i..i + R` in AVX registers (4 lanes).
    block_avx, "avx", 4,
    _mm256_setzero_pd, _mm256_loadu_pd, _mm256_set1_pd, _mm256_mul_pd, _mm256_add_pd,
    _mm256_storeu_pd
);

block_kernel!(
    /// Rows `i..i + R` in AVX-512 registers (8 lanes).
    block_avx512, "avx512f", 8,
    _mm512_setzero_pd, _mm512_loadu_pd, _mm512_set1_pd, _mm512_mul_pd, _mm512_add_pd,
    _mm512_storeu_pd
);

/// Two or more rows (a single row streams `w`, [`stream_kernel`]) in blocks of as even
/// a size as possible up to 5, which never leaves a single row (32 registers: 5 rows x 4
/// vectors of 8 columns plus the 4 loads of `w` they share), then 8-column blocks, then
/// single columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn blocks_avx512(y: &mut [f64], x: &[f64], w: &[f64], m: usize, k: usize, n: usize) {
    debug_assert!(m >= 2);
    let mut i = 0;
    while i < m {
        let left = m - i;
        let rows = left.div_ceil(left.div_ceil(5));
        let j = match rows {
            2 => block_avx512::<2, 4>(y, x, w, i, k, n, 0),
            3 => block_avx512::<3, 4>(y, x, w, i, k, n, 0),
            4 => block_avx512::<4, 4>(y, x, w, i, k, n, 0),
            _ => block_avx512::<5, 4>(y, x, w, i, k, n, 0),
        };
        let j = match rows {
            2 => block_avx512::<2, 1>(y, x, w, i, k, n, j),
            3 => block_avx512::<3, 1>(y, x, w, i, k, n, j),
            4 => block_avx512::<4, 1>(y, x, w, i, k, n, j),
            _ => block_avx512::<5, 1>(y, x, w, i, k, n, j),
        };
        tail(y, x, w, i..i + rows, k, n, j);
        i += rows;
    }
}

/// Two or more rows (a single row streams `w`, [`stream_kernel`]) in pairs (16
/// registers: 2 rows x 4 vectors of 4 columns plus the 4 loads of `w`) and a last single
/// row 8 vectors wide, then 4-column blocks, then single columns.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn blocks_avx(y: &mut [f64], x: &[f64], w: &[f64], m: usize, k: usize, n: usize) {
    debug_assert!(m >= 2);
    let mut i = 0;
    while i < m {
        let rows = (m - i).min(2);
        let j = if rows == 2 {
            let j = block_avx::<2, 4>(y, x, w, i, k, n, 0);
            block_avx::<2, 1>(y, x, w, i, k, n, j)
        } else {
            let j = block_avx::<1, 8>(y, x, w, i, k, n, 0);
            block_avx::<1, 1>(y, x, w, i, k, n, j)
        };
        tail(y, x, w, i..i + rows, k, n, j);
        i += rows;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(len: usize, rng: &mut Rng) -> Vec<f64> {
        (0..len).map(|_| rng.normal() * 0.7).collect()
    }

    /// Every shape class (row blocks of 1-5, column blocks, tails) equals the plain
    /// loop bit for bit, on whichever kernel this CPU picks; and so do the AVX kernels
    /// where AVX-512 would be picked.
    #[test]
    fn kernels_equal_the_plain_loop_bit_for_bit() {
        let mut rng = Rng::new(7);
        for m in [0, 1, 2, 3, 4, 5, 6, 7, 11, 20] {
            for (k, n) in [(1, 1), (3, 7), (39, 512), (512, 512), (512, 8), (17, 75)] {
                let x = random(m * k, &mut rng);
                let w = random(k * n, &mut rng);
                let y0 = random(m * n, &mut rng);
                let mut want = y0.clone();
                tail(&mut want, &x, &w, 0..m, k, n, 0);
                let mut got = y0.clone();
                add_product(&mut got, &x, &w, m, k, n);
                let same = want
                    .iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "m {m} k {k} n {n}");
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx") {
                    let mut avx = y0.clone();
                    // SAFETY: AVX checked just above; sizes as for `add_product`.
                    unsafe {
                        if m == 1 {
                            let j = stream_avx::<4>(&mut avx, &x, &w, 0, k, n);
                            tail(&mut avx, &x, &w, 0..1, k, n, j);
                        } else if m >= 2 {
                            blocks_avx(&mut avx, &x, &w, m, k, n);
                        }
                    }
                    let same = want
                        .iter()
                        .zip(&avx)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "AVX: m {m} k {k} n {n}");
                }
            }
        }
    }

    /// A fused multiply-add would differ from the definition somewhere in these
    /// products: the test above can tell the kernels' arithmetic from the definition's.
    #[test]
    fn a_fused_sum_differs_from_the_definition() {
        let mut rng = Rng::new(8);
        let (k, n) = (512, 64);
        let x = random(k, &mut rng);
        let w = random(k * n, &mut rng);
        let mut plain = vec![0.0; n];
        tail(&mut plain, &x, &w, 0..1, k, n, 0);
        let mut fused = vec![0.0f64; n];
        for (p, &xp) in x.iter().enumerate() {
            for (f, &wpj) in fused.iter_mut().zip(&w[p * n..(p + 1) * n]) {
                *f = xp.mul_add(wpj, *f);
            }
        }
        assert!(plain.iter().zip(&fused).any(|(a, b)| a != b));
    }
}
