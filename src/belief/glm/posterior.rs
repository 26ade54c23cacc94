//! The MNIW posterior as a value: its parameters and factors, E[Σ], the Student-t
//! posterior predictive of a new row, and exact posterior draws.

use super::error::check_len;
use super::linalg::{dot, log_det_chol, solve_lower};
use super::marginal::fitted;
use super::sample::{draw_mniw, SampleScratch};
use super::special::ln_gamma;
use super::{GlmError, MniwPrior, Stats};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Σ | data ~ IW(Ψ_N, ν_N), W | Σ, data ~ MN(M_N, Λ_N^{-1}, Σ).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Posterior {
    pub d: usize,
    pub m: usize,
    /// Number of rows conditioned on.
    pub n: f64,
    /// M_N, `d x m`.
    pub m_n: Vec<f64>,
    /// Λ_N = Λ0 + C'C, `d x d` (symmetric; built from the lower triangle of C'C).
    pub lambda_n: Vec<f64>,
    /// Ψ_N, `m x m`.
    pub psi_n: Vec<f64>,
    pub nu_n: f64,
    /// Lower Cholesky factor of Λ_N.
    pub chol_lambda_n: Vec<f64>,
    /// Lower Cholesky factor of Ψ_N.
    pub chol_psi_n: Vec<f64>,
    pub log_det_lambda_n: f64,
    pub log_det_psi_n: f64,
    /// log p(Y | C) of the data conditioned on.
    pub log_marginal: f64,
}

/// The posterior given the statistics of the data.
pub fn posterior(prior: &MniwPrior, stats: &Stats) -> Result<Posterior, GlmError> {
    let (pc, ev) = fitted(prior, stats)?;
    let (d, m) = (prior.d, prior.m);
    let mut lambda_n = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let v = stats.ctc[i * d + j] + if i == j { pc.lambda0[i] } else { 0.0 };
            lambda_n[i * d + j] = v;
            lambda_n[j * d + i] = v;
        }
    }
    Ok(Posterior {
        d,
        m,
        n: stats.n,
        m_n: ev.mn,
        lambda_n,
        psi_n: ev.psi,
        nu_n: ev.nu_n,
        chol_lambda_n: ev.l,
        chol_psi_n: ev.lpsi,
        log_det_lambda_n: ev.log_det_lambda_n,
        log_det_psi_n: ev.log_det_psi_n,
        log_marginal: ev.log_marginal,
    })
}

impl Posterior {
    /// E[Σ | data] = Ψ_N / (ν_N - m - 1) when ν_N > m + 1. Otherwise the mean is
    /// infinite and this returns the posterior mode Ψ_N / (ν_N + m + 1) instead, which
    /// always exists (so features built from it stay finite).
    pub fn expected_sigma(&self) -> Vec<f64> {
        let div = expected_sigma_divisor(self.nu_n, self.m);
        self.psi_n.iter().map(|v| v / div).collect()
    }

    /// c' Λ_N^{-1} c for a feature row `c` (length d).
    pub fn quad_form(&self, c: &[f64]) -> f64 {
        let mut v = c.to_vec();
        solve_lower(&self.chol_lambda_n, self.d, &mut v, 1);
        dot(&v, &v)
    }

    /// Posterior predictive of the target row at feature row `c`: multivariate
    /// Student-t with ν_N - m + 1 dof, mean M_N'c, scale Ψ_N (1 + c'Λ_N^{-1}c) / dof.
    pub fn predictive(&self, c: &[f64]) -> Result<StudentT, GlmError> {
        check_len("c", c.len(), self.d)?;
        let m = self.m;
        let dof = self.nu_n - m as f64 + 1.0;
        let mut mean = vec![0.0; m];
        for (i, &ci) in c.iter().enumerate() {
            super::linalg::axpy(ci, &self.m_n[i * m..i * m + m], &mut mean);
        }
        let f = (1.0 + self.quad_form(c)) / dof;
        let scale = self.psi_n.iter().map(|v| v * f).collect();
        Ok(StudentT { dof, mean, scale })
    }

    /// One exact draw (W `d x m`, Σ `m x m`) from the posterior.
    pub fn sample(&self, rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
        let mut w = vec![0.0; self.d * self.m];
        let mut sigma = vec![0.0; self.m * self.m];
        let mut s = SampleScratch::new(self.d, self.m);
        self.sample_into(rng, &mut w, &mut sigma, &mut s);
        (w, sigma)
    }

    /// [`Posterior::sample`] into caller-owned buffers; allocation-free once `scratch`
    /// has this posterior's shape. Panics if `w_out` / `sigma_out` are too short.
    pub fn sample_into(
        &self,
        rng: &mut Rng,
        w_out: &mut [f64],
        sigma_out: &mut [f64],
        scratch: &mut SampleScratch,
    ) {
        draw_mniw(
            rng,
            self.d,
            self.m,
            &self.m_n,
            &self.chol_lambda_n,
            &self.chol_psi_n,
            self.nu_n,
            &mut w_out[..self.d * self.m],
            &mut sigma_out[..self.m * self.m],
            scratch,
        );
    }
}

pub(crate) fn expected_sigma_divisor(nu_n: f64, m: usize) -> f64 {
    let m = m as f64;
    if nu_n > m + 1.0 {
        nu_n - m - 1.0
    } else {
        nu_n + m + 1.0
    }
}

/// Multivariate Student-t: density ∝ (1 + (y-μ)' S^{-1} (y-μ) / dof)^{-(dof + m)/2}.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudentT {
    pub dof: f64,
    pub mean: Vec<f64>,
    /// Scale matrix S, `m x m` (the covariance is S dof / (dof - 2) for dof > 2).
    pub scale: Vec<f64>,
}

impl StudentT {
    /// log density at `y`; NaN if `y` has the wrong length or S is not positive
    /// definite (neither happens for a predictive of a valid posterior).
    pub fn log_density(&self, y: &[f64]) -> f64 {
        let m = self.mean.len();
        if y.len() != m {
            return f64::NAN;
        }
        let mut l = self.scale.clone();
        if super::linalg::cholesky(&mut l, m, "scale").is_err() {
            return f64::NAN;
        }
        let mut r: Vec<f64> = y.iter().zip(&self.mean).map(|(a, b)| a - b).collect();
        solve_lower(&l, m, &mut r, 1);
        let q = dot(&r, &r);
        let (nu, mf) = (self.dof, m as f64);
        ln_gamma(0.5 * (nu + mf))
            - ln_gamma(0.5 * nu)
            - 0.5 * mf * (nu * std::f64::consts::PI).ln()
            - 0.5 * log_det_chol(&l, m)
            - 0.5 * (nu + mf) * (q / nu).ln_1p()
    }
}
