//! The learnable MNIW prior (M0, diagonal Λ0 and Ψ0 through their logs, ν0), its
//! validation, and the quantities every evaluation reuses ([`PriorCache`]).

use super::special::{ln_multigamma, multidigamma};
use super::GlmError;
use serde::{Deserialize, Serialize};

/// Σ ~ IW(Ψ0, ν0), W | Σ ~ MN(M0, Λ0^{-1}, Σ), with Λ0 = diag(exp(lambda0_log_diag))
/// and Ψ0 = diag(exp(psi0_log_diag)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MniwPrior {
    /// Feature width.
    pub d: usize,
    /// Target width.
    pub m: usize,
    /// Prior mean of W, `d x m` row-major.
    pub m0: Vec<f64>,
    /// log of Λ0's diagonal (length d).
    pub lambda0_log_diag: Vec<f64>,
    /// log of Ψ0's diagonal (length m).
    pub psi0_log_diag: Vec<f64>,
    /// Inverse-Wishart degrees of freedom; must exceed m - 1.
    pub nu0: f64,
}

impl MniwPrior {
    pub fn new(
        d: usize,
        m: usize,
        m0: Vec<f64>,
        lambda0_log_diag: Vec<f64>,
        psi0_log_diag: Vec<f64>,
        nu0: f64,
    ) -> Result<Self, GlmError> {
        let p = MniwPrior {
            d,
            m,
            m0,
            lambda0_log_diag,
            psi0_log_diag,
            nu0,
        };
        p.validate()?;
        Ok(p)
    }

    /// M0 = 0, Λ0 = lambda0 I, Ψ0 = psi0 I.
    pub fn isotropic(
        d: usize,
        m: usize,
        lambda0: f64,
        psi0: f64,
        nu0: f64,
    ) -> Result<Self, GlmError> {
        for (field, v) in [("lambda0", lambda0), ("psi0", psi0)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(GlmError::InvalidPrior {
                    field,
                    value: format!("{v}"),
                    allowed: "a finite value > 0".into(),
                });
            }
        }
        Self::new(
            d,
            m,
            vec![0.0; d * m],
            vec![lambda0.ln(); d],
            vec![psi0.ln(); m],
            nu0,
        )
    }

    /// Checks shapes, finiteness, and ν0 > m - 1. Exponentiated log-diagonals must stay
    /// finite and positive (|log| <= 700), or every downstream quantity degenerates.
    pub fn validate(&self) -> Result<(), GlmError> {
        if self.d == 0 || self.m == 0 {
            return Err(GlmError::InvalidPrior {
                field: if self.d == 0 { "d" } else { "m" },
                value: "0".into(),
                allowed: "at least 1".into(),
            });
        }
        let lens = [
            ("m0", self.m0.len(), self.d * self.m, "d * m"),
            ("lambda0_log_diag", self.lambda0_log_diag.len(), self.d, "d"),
            ("psi0_log_diag", self.psi0_log_diag.len(), self.m, "m"),
        ];
        for (field, got, want, name) in lens {
            if got != want {
                return Err(GlmError::InvalidPrior {
                    field,
                    value: format!("length {got}"),
                    allowed: format!("length {name} = {want}"),
                });
            }
        }
        if let Some((i, v)) = self.m0.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(GlmError::InvalidPrior {
                field: "m0",
                value: format!("{v} at index {i}"),
                allowed: "finite values".into(),
            });
        }
        for (field, xs) in [
            ("lambda0_log_diag", &self.lambda0_log_diag),
            ("psi0_log_diag", &self.psi0_log_diag),
        ] {
            if let Some((i, v)) = xs
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_finite() || v.abs() > 700.0)
            {
                return Err(GlmError::InvalidPrior {
                    field,
                    value: format!("{v} at index {i}"),
                    allowed: "finite values in [-700, 700] (they are exponentiated)".into(),
                });
            }
        }
        let min_nu = self.m as f64 - 1.0;
        if !(self.nu0 > min_nu && self.nu0.is_finite()) {
            return Err(GlmError::InvalidPrior {
                field: "nu0",
                value: format!("{}", self.nu0),
                allowed: format!("a finite value > m - 1 = {min_nu}"),
            });
        }
        Ok(())
    }
}

/// Everything about the prior that an evaluation needs and that does not depend on
/// data, computed once per batch.
#[derive(Clone, Debug)]
pub(crate) struct PriorCache {
    pub d: usize,
    pub m: usize,
    pub nu0: f64,
    /// Λ0's diagonal.
    pub lambda0: Vec<f64>,
    /// Ψ0's diagonal.
    pub psi0: Vec<f64>,
    /// Λ0 M0, `d x m`.
    pub lambda0_m0: Vec<f64>,
    /// M0' Λ0 M0, `m x m`.
    pub m0_l0_m0: Vec<f64>,
    pub log_det_lambda0: f64,
    pub log_det_psi0: f64,
    /// ln Γ_m(ν0/2) and its derivative in ν0/2.
    pub ln_multigamma0: f64,
    pub multidigamma0: f64,
}

impl PriorCache {
    pub fn new(p: &MniwPrior) -> Result<Self, GlmError> {
        p.validate()?;
        let (d, m) = (p.d, p.m);
        let lambda0: Vec<f64> = p.lambda0_log_diag.iter().map(|v| v.exp()).collect();
        let psi0: Vec<f64> = p.psi0_log_diag.iter().map(|v| v.exp()).collect();
        let mut lambda0_m0 = p.m0.clone();
        for i in 0..d {
            for v in &mut lambda0_m0[i * m..i * m + m] {
                *v *= lambda0[i];
            }
        }
        let mut m0_l0_m0 = vec![0.0; m * m];
        super::linalg::at_b(&p.m0, &lambda0_m0, d, m, m, &mut m0_l0_m0);
        Ok(PriorCache {
            d,
            m,
            nu0: p.nu0,
            log_det_lambda0: p.lambda0_log_diag.iter().sum(),
            log_det_psi0: p.psi0_log_diag.iter().sum(),
            ln_multigamma0: ln_multigamma(m, 0.5 * p.nu0),
            multidigamma0: multidigamma(m, 0.5 * p.nu0),
            lambda0,
            psi0,
            lambda0_m0,
            m0_l0_m0,
        })
    }
}
