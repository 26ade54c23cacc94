//! Exact draws from an MNIW distribution: Gamma (Marsaglia–Tsang) and chi-square
//! variates, the Bartlett decomposition for the inverse-Wishart, then W | Σ.

use crate::rng::Rng;

/// Gamma(shape, 1) for shape > 0 (Marsaglia & Tsang 2000; shapes below 1 are boosted
/// with Gamma(a) = Gamma(a + 1) U^{1/a}).
pub fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    marsaglia_tsang(rng, shape, None)
}

/// [`gamma`] whose first proposal uses the standard normal `x` given by the caller
/// (e.g. one of a block from [`Rng::fill_normals`]); further proposals, after a
/// rejection (a few percent at shapes >= 1), draw their normals from `rng`.
pub fn gamma_from(rng: &mut Rng, shape: f64, x: f64) -> f64 {
    marsaglia_tsang(rng, shape, Some(x))
}

fn marsaglia_tsang(rng: &mut Rng, shape: f64, first: Option<f64>) -> f64 {
    debug_assert!(shape > 0.0);
    if shape < 1.0 {
        let u = 1.0 - rng.uniform(); // (0, 1]: avoids 0^(1/a) edge cases.
        return marsaglia_tsang(rng, shape + 1.0, first) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    let mut x = first.unwrap_or_else(|| rng.normal());
    loop {
        let v = 1.0 + c * x;
        if v > 0.0 {
            let v = v * v * v;
            let u = rng.uniform();
            let x2 = x * x;
            // Cheap squeeze first; the log test is exact.
            if u < 1.0 - 0.0331 * x2 * x2 {
                return d * v;
            }
            if u > 0.0 && u.ln() < 0.5 * x2 + d * (1.0 - v + v.ln()) {
                return d * v;
            }
        }
        x = rng.normal();
    }
}

/// Chi-square with `k > 0` (real) degrees of freedom.
pub fn chi_square(rng: &mut Rng, k: f64) -> f64 {
    2.0 * gamma(rng, 0.5 * k)
}

/// Buffers for [`draw_mniw`], so repeated draws do not allocate.
#[derive(Clone, Debug, Default)]
pub struct SampleScratch {
    bartlett: Vec<f64>,
    factor: Vec<f64>,
    z: Vec<f64>,
}

impl SampleScratch {
    pub fn new(d: usize, m: usize) -> Self {
        SampleScratch {
            bartlett: vec![0.0; m * m],
            factor: vec![0.0; m * m],
            z: vec![0.0; d * m],
        }
    }

    fn fit(&mut self, d: usize, m: usize) {
        if self.bartlett.len() != m * m || self.z.len() != d * m {
            *self = SampleScratch::new(d, m);
        }
    }
}

/// One draw (W, Σ) with Σ ~ IW(Ψ, ν), W | Σ ~ MN(M, Λ^{-1}, Σ), given the lower
/// Cholesky factors `lpsi` of Ψ and `l_lambda` of Λ.
///
/// Σ^{-1} ~ Wishart(Ψ^{-1}, ν) is U^{-T} A A' U^{-1} with U = `lpsi` and A the Bartlett
/// factor, so Σ = T T' with T = U A^{-T}; then W = M + L^{-T} Z T' has row covariance
/// L^{-T} L^{-1} = Λ^{-1} and column covariance T T' = Σ.
#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_mniw(
    rng: &mut Rng,
    d: usize,
    m: usize,
    mean: &[f64],
    l_lambda: &[f64],
    lpsi: &[f64],
    nu: f64,
    w_out: &mut [f64],
    sigma_out: &mut [f64],
    s: &mut SampleScratch,
) {
    s.fit(d, m);
    let a = &mut s.bartlett;
    a.fill(0.0);
    for i in 0..m {
        a[i * m + i] = chi_square(rng, nu - i as f64).sqrt();
        for j in 0..i {
            a[i * m + j] = rng.normal();
        }
    }
    // T' = A^{-1} U' by forward substitution: solve A X = U' column block (m x m).
    let t_tr = &mut s.factor;
    for i in 0..m {
        for j in 0..m {
            t_tr[i * m + j] = lpsi[j * m + i];
        }
    }
    super::linalg::solve_lower(a, m, t_tr, m);
    // Σ = T T' = (T')' (T').
    super::linalg::at_b(t_tr, t_tr, m, m, m, sigma_out);
    for z in s.z.iter_mut() {
        *z = rng.normal();
    }
    // W = M + L^{-T} (Z T').
    for i in 0..d {
        for b in 0..m {
            let mut v = 0.0;
            for a_ in 0..m {
                v += s.z[i * m + a_] * t_tr[a_ * m + b];
            }
            w_out[i * m + b] = v;
        }
    }
    super::linalg::solve_lower_t(l_lambda, d, w_out, m);
    for (w, &mu) in w_out.iter_mut().zip(mean) {
        *w += mu;
    }
}
