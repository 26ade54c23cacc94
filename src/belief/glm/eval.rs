//! The shared evaluation kernel: from prior and statistics to Λ_N's and Ψ_N's Cholesky
//! factors, M_N, the log marginal and (on request) its gradient parts. Every public
//! entry point (posterior, log marginal, batched trial loss) runs through [`Eval`], so
//! they cannot disagree; it owns its buffers, so repeated calls do not allocate.

use super::linalg::{cholesky, inverse_from_chol, log_det_chol, solve_lower, solve_lower_t};
use super::prior::PriorCache;
use super::special::{ln_multigamma, multidigamma};
use super::GlmError;

const LN_PI: f64 = 1.144_729_885_849_400_2;

#[derive(Clone, Debug)]
pub(crate) struct Eval {
    pub d: usize,
    pub m: usize,
    pub n: f64,
    pub nu_n: f64,
    /// Cholesky factor L of Λ_N (lower, `d x d`).
    pub l: Vec<f64>,
    /// L^{-1} (Λ0 M0 + C'Y), `d x m`.
    pub k: Vec<f64>,
    /// M_N, `d x m`.
    pub mn: Vec<f64>,
    /// Ψ_N, `m x m`.
    pub psi: Vec<f64>,
    /// Cholesky factor of Ψ_N.
    pub lpsi: Vec<f64>,
    pub log_det_lambda_n: f64,
    pub log_det_psi_n: f64,
    pub log_marginal: f64,
    // Gradient parts, valid after `grad_parts`.
    /// Λ_N^{-1}.
    pub ainv: Vec<f64>,
    /// P = -(ν_N / 2) Ψ_N^{-1}.
    pub p: Vec<f64>,
    /// M_N P, `d x m`.
    pub mp: Vec<f64>,
    /// dL/dΛ_N = dL/dC'C = -(m/2) Λ_N^{-1} + M_N P M_N' (full, symmetric).
    pub g_a: Vec<f64>,
    scratch: Vec<f64>,
}

impl Eval {
    pub fn new(d: usize, m: usize) -> Self {
        Eval {
            d,
            m,
            n: 0.0,
            nu_n: 0.0,
            l: vec![0.0; d * d],
            k: vec![0.0; d * m],
            mn: vec![0.0; d * m],
            psi: vec![0.0; m * m],
            lpsi: vec![0.0; m * m],
            log_det_lambda_n: 0.0,
            log_det_psi_n: 0.0,
            log_marginal: 0.0,
            ainv: vec![0.0; d * d],
            p: vec![0.0; m * m],
            mp: vec![0.0; d * m],
            g_a: vec![0.0; d * d],
            scratch: vec![0.0; d.max(m) * d.max(m)],
        }
    }

    /// Posterior and log marginal. Reads only the lower triangle of `ctc`; `yty` is
    /// symmetrised.
    pub fn fit(
        &mut self,
        pc: &PriorCache,
        ctc: &[f64],
        cty: &[f64],
        yty: &[f64],
        n: f64,
    ) -> Result<f64, GlmError> {
        let (d, m) = (self.d, self.m);
        debug_assert!(pc.d == d && pc.m == m);
        for i in 0..d {
            self.l[i * d..i * d + i + 1].copy_from_slice(&ctc[i * d..i * d + i + 1]);
            self.l[i * d + i] += pc.lambda0[i];
        }
        cholesky(&mut self.l, d, "Lambda_N")?;
        for (kv, (&a, &b)) in self.k.iter_mut().zip(pc.lambda0_m0.iter().zip(cty)) {
            *kv = a + b;
        }
        solve_lower(&self.l, d, &mut self.k, m);
        self.mn.copy_from_slice(&self.k);
        solve_lower_t(&self.l, d, &mut self.mn, m);
        // Ψ_N = Ψ0 + Y'Y + M0'Λ0M0 - B'Λ_N^{-1}B with B'Λ_N^{-1}B = K'K.
        for a in 0..m {
            for b in 0..=a {
                let mut v = 0.5 * (yty[a * m + b] + yty[b * m + a])
                    + 0.5 * (pc.m0_l0_m0[a * m + b] + pc.m0_l0_m0[b * m + a]);
                for t in 0..d {
                    v -= self.k[t * m + a] * self.k[t * m + b];
                }
                if a == b {
                    v += pc.psi0[a];
                }
                self.psi[a * m + b] = v;
                self.psi[b * m + a] = v;
            }
        }
        self.lpsi.copy_from_slice(&self.psi);
        cholesky(&mut self.lpsi, m, "Psi_N")?;
        self.n = n;
        self.nu_n = pc.nu0 + n;
        self.log_det_lambda_n = log_det_chol(&self.l, d);
        self.log_det_psi_n = log_det_chol(&self.lpsi, m);
        let mf = m as f64;
        self.log_marginal = -0.5 * n * mf * LN_PI
            + 0.5 * mf * (pc.log_det_lambda0 - self.log_det_lambda_n)
            + 0.5 * pc.nu0 * pc.log_det_psi0
            - 0.5 * self.nu_n * self.log_det_psi_n
            + ln_multigamma(m, 0.5 * self.nu_n)
            - pc.ln_multigamma0;
        Ok(self.log_marginal)
    }

    /// After [`Eval::fit`]: Λ_N^{-1}, P, M_N P and dL/dC'C.
    pub fn grad_parts(&mut self) {
        let (d, m) = (self.d, self.m);
        inverse_from_chol(&self.l, d, &mut self.ainv, &mut self.scratch);
        inverse_from_chol(&self.lpsi, m, &mut self.p, &mut self.scratch);
        let s = -0.5 * self.nu_n;
        for v in &mut self.p {
            *v *= s;
        }
        for i in 0..d {
            for b in 0..m {
                let mut v = 0.0;
                for a in 0..m {
                    v += self.mn[i * m + a] * self.p[a * m + b];
                }
                self.mp[i * m + b] = v;
            }
        }
        let half_m = 0.5 * m as f64;
        for i in 0..d {
            let mp_i = &self.mp[i * m..i * m + m];
            for j in 0..=i {
                let mn_j = &self.mn[j * m..j * m + m];
                let mut v = -half_m * self.ainv[i * d + j];
                for a in 0..m {
                    v += mp_i[a] * mn_j[a];
                }
                self.g_a[i * d + j] = v;
                self.g_a[j * d + i] = v;
            }
        }
    }

    /// After [`Eval::grad_parts`]: adds `weight` times dL/d(prior parameters).
    pub fn add_prior_grad(
        &self,
        pc: &PriorCache,
        m0: &[f64],
        weight: f64,
        out: &mut PriorGradView,
    ) {
        let (d, m) = (self.d, self.m);
        let half_m = 0.5 * m as f64;
        for i in 0..d {
            // D = M_N - M0; dL/dΛ0_ii = (m/2)/λ_i - (m/2)(Λ_N^{-1})_ii + (D P D')_ii,
            // the last term collecting Λ0's appearances in Λ_N, Λ0 M0 and M0'Λ0M0.
            let mut dpd = 0.0;
            for a in 0..m {
                let da = self.mn[i * m + a] - m0[i * m + a];
                let mut pda = 0.0;
                for b in 0..m {
                    pda += self.p[a * m + b] * (self.mn[i * m + b] - m0[i * m + b]);
                }
                dpd += da * pda;
                // dL/dM0 = 2 Λ0 (M0 - M_N) P.
                out.m0[i * m + a] += weight * 2.0 * pc.lambda0[i] * -pda;
            }
            let g = half_m / pc.lambda0[i] - half_m * self.ainv[i * d + i] + dpd;
            out.lambda0_log_diag[i] += weight * g * pc.lambda0[i];
        }
        for a in 0..m {
            // dL/dΨ0 = (ν0/2) Ψ0^{-1} + P, chained through ψ = exp(log ψ).
            out.psi0_log_diag[a] += weight * (0.5 * pc.nu0 + pc.psi0[a] * self.p[a * m + a]);
        }
        *out.nu0 += weight
            * 0.5
            * (pc.log_det_psi0 - self.log_det_psi_n + multidigamma(m, 0.5 * self.nu_n)
                - pc.multidigamma0);
    }
}

/// Mutable views of the prior-gradient accumulators (shared by [`super::GlmGrad`]
/// and [`super::PriorGrad`]).
pub(crate) struct PriorGradView<'a> {
    pub m0: &'a mut [f64],
    pub lambda0_log_diag: &'a mut [f64],
    pub psi0_log_diag: &'a mut [f64],
    pub nu0: &'a mut f64,
}
