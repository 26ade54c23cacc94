//! The log marginal likelihood log p(Y | C) and its analytic gradient with respect to
//! the statistics and the prior, plus the chain rule from the statistics to the rows
//! of C (and Y).

use super::error::check_len;
use super::eval::{Eval, PriorGradView};
use super::prior::PriorCache;
use super::{GlmError, MniwPrior, Stats};
use serde::{Deserialize, Serialize};

/// Gradient of log p(Y | C) with respect to the statistics and the prior parameters.
///
/// Matrix gradients are "elementwise": dL = sum(G ∘ dX) for a perturbation dX of the
/// full matrix X; for the symmetric C'C and Y'Y the gradient is given symmetric, so a
/// symmetric perturbation gives dL = sum(G ∘ dX) too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlmGrad {
    /// dL/dC'C, `d x d` symmetric.
    pub ctc: Vec<f64>,
    /// dL/dC'Y, `d x m`.
    pub cty: Vec<f64>,
    /// dL/dY'Y, `m x m` symmetric.
    pub yty: Vec<f64>,
    /// dL/dM0, `d x m`.
    pub m0: Vec<f64>,
    pub lambda0_log_diag: Vec<f64>,
    pub psi0_log_diag: Vec<f64>,
    pub nu0: f64,
}

/// Gradient with respect to the prior parameters only (the batched trial loss's output).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PriorGrad {
    pub m0: Vec<f64>,
    pub lambda0_log_diag: Vec<f64>,
    pub psi0_log_diag: Vec<f64>,
    pub nu0: f64,
}

impl PriorGrad {
    pub fn zeros(d: usize, m: usize) -> Self {
        PriorGrad {
            m0: vec![0.0; d * m],
            lambda0_log_diag: vec![0.0; d],
            psi0_log_diag: vec![0.0; m],
            nu0: 0.0,
        }
    }

    pub(crate) fn view(&mut self) -> PriorGradView<'_> {
        PriorGradView {
            m0: &mut self.m0,
            lambda0_log_diag: &mut self.lambda0_log_diag,
            psi0_log_diag: &mut self.psi0_log_diag,
            nu0: &mut self.nu0,
        }
    }

    pub(crate) fn reset(&mut self, d: usize, m: usize) {
        for (v, n) in [
            (&mut self.m0, d * m),
            (&mut self.lambda0_log_diag, d),
            (&mut self.psi0_log_diag, m),
        ] {
            v.clear();
            v.resize(n, 0.0);
        }
        self.nu0 = 0.0;
    }
}

fn checked(prior: &MniwPrior, stats: &Stats) -> Result<PriorCache, GlmError> {
    let pc = PriorCache::new(prior)?;
    check_len("stats.d", stats.d, prior.d)?;
    check_len("stats.m", stats.m, prior.m)?;
    stats.check()?;
    if !(stats.n >= 0.0 && stats.n.is_finite()) {
        return Err(GlmError::InvalidStats {
            field: "n",
            value: stats.n,
        });
    }
    Ok(pc)
}

pub(crate) fn fitted(prior: &MniwPrior, stats: &Stats) -> Result<(PriorCache, Eval), GlmError> {
    let pc = checked(prior, stats)?;
    let mut ev = Eval::new(prior.d, prior.m);
    ev.fit(&pc, &stats.ctc, &stats.cty, &stats.yty, stats.n)?;
    Ok((pc, ev))
}

/// log p(Y | C) under the MNIW prior, from the statistics of (C, Y).
pub fn log_marginal(prior: &MniwPrior, stats: &Stats) -> Result<f64, GlmError> {
    Ok(fitted(prior, stats)?.1.log_marginal)
}

/// log p(Y | C) and its exact gradient.
pub fn log_marginal_and_grad(prior: &MniwPrior, stats: &Stats) -> Result<(f64, GlmGrad), GlmError> {
    let (pc, mut ev) = fitted(prior, stats)?;
    ev.grad_parts();
    let (d, m) = (prior.d, prior.m);
    let mut pg = PriorGrad::zeros(d, m);
    ev.add_prior_grad(&pc, &prior.m0, 1.0, &mut pg.view());
    let grad = GlmGrad {
        ctc: ev.g_a.clone(),
        cty: ev.mp.iter().map(|v| -2.0 * v).collect(),
        yty: ev.p.clone(),
        m0: pg.m0,
        lambda0_log_diag: pg.lambda0_log_diag,
        psi0_log_diag: pg.psi0_log_diag,
        nu0: pg.nu0,
    };
    Ok((ev.log_marginal, grad))
}

/// Overwrites `gc_out` (`rows x d`) with dL/dC = C (G_ctc + G_ctc') + Y G_cty', the
/// chain rule from [`GlmGrad`] to the rows of C (for statistics that are sums over
/// exactly these rows).
pub fn features_grad(
    c: &[f64],
    y: &[f64],
    rows: usize,
    grad: &GlmGrad,
    gc_out: &mut [f64],
) -> Result<(), GlmError> {
    let d = grad.lambda0_log_diag.len();
    let m = grad.psi0_log_diag.len();
    check_len("c", c.len(), rows * d)?;
    check_len("y", y.len(), rows * m)?;
    check_len("gc_out", gc_out.len(), rows * d)?;
    check_len("grad.ctc", grad.ctc.len(), d * d)?;
    check_len("grad.cty", grad.cty.len(), d * m)?;
    for t in 0..rows {
        let ct = &c[t * d..t * d + d];
        let yt = &y[t * m..t * m + m];
        let g = &mut gc_out[t * d..t * d + d];
        for (i, gi) in g.iter_mut().enumerate() {
            let mut v = 0.0;
            for (j, &cj) in ct.iter().enumerate() {
                v += (grad.ctc[i * d + j] + grad.ctc[j * d + i]) * cj;
            }
            for (a, &ya) in yt.iter().enumerate() {
                v += grad.cty[i * m + a] * ya;
            }
            *gi = v;
        }
    }
    Ok(())
}

/// Overwrites `gy_out` (`rows x m`) with dL/dY = C G_cty + Y (G_yty + G_yty').
pub fn targets_grad(
    c: &[f64],
    y: &[f64],
    rows: usize,
    grad: &GlmGrad,
    gy_out: &mut [f64],
) -> Result<(), GlmError> {
    let d = grad.lambda0_log_diag.len();
    let m = grad.psi0_log_diag.len();
    check_len("c", c.len(), rows * d)?;
    check_len("y", y.len(), rows * m)?;
    check_len("gy_out", gy_out.len(), rows * m)?;
    check_len("grad.cty", grad.cty.len(), d * m)?;
    check_len("grad.yty", grad.yty.len(), m * m)?;
    for t in 0..rows {
        let ct = &c[t * d..t * d + d];
        let yt = &y[t * m..t * m + m];
        for (a, ga) in gy_out[t * m..t * m + m].iter_mut().enumerate() {
            let mut v = 0.0;
            for (i, &ci) in ct.iter().enumerate() {
                v += ci * grad.cty[i * m + a];
            }
            for (b, &yb) in yt.iter().enumerate() {
                v += yb * (grad.yty[b * m + a] + grad.yty[a * m + b]);
            }
            *ga = v;
        }
    }
    Ok(())
}
