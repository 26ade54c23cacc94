//! The acting-time belief: a batch of MNIW posteriors (one per environment or
//! particle) advanced one transition at a time by rank-1 (Sherman–Morrison /
//! recursive-least-squares) updates in O(d² + dm), without allocating.

use super::posterior::expected_sigma_divisor;
use super::sample::{draw_mniw, SampleScratch};
use super::trials::GlmScalar;
use super::{GlmError, MniwPrior, StudentT};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Per row r: `p` = Λ_N^{-1} (`d x d`), `mean` = M_N (`d x m`), `psi` = Ψ_N (`m x m`),
/// `nu` = ν_N and `n`, all f64, rows stacked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GlmStream {
    d: usize,
    m: usize,
    rows: usize,
    p: Vec<f64>,
    mean: Vec<f64>,
    psi: Vec<f64>,
    nu: Vec<f64>,
    n: Vec<f64>,
    /// The prior's row, copied into reset rows.
    prior_p: Vec<f64>,
    prior_mean: Vec<f64>,
    prior_psi: Vec<f64>,
    prior_nu: f64,
    /// u = P c and e = y - M'c of the update in progress (not state: skipped by serde
    /// and re-created on first use after loading).
    #[serde(skip)]
    scratch: Vec<f64>,
    /// Buffers of [`GlmStream::discount_row`] (not state either).
    #[serde(skip)]
    discount_scratch: Vec<f64>,
}

impl GlmStream {
    /// `rows` copies of the prior.
    pub fn new(prior: &MniwPrior, rows: usize) -> Result<Self, GlmError> {
        prior.validate()?;
        let (d, m) = (prior.d, prior.m);
        let mut prior_p = vec![0.0; d * d];
        for i in 0..d {
            prior_p[i * d + i] = (-prior.lambda0_log_diag[i]).exp();
        }
        let mut prior_psi = vec![0.0; m * m];
        for a in 0..m {
            prior_psi[a * m + a] = prior.psi0_log_diag[a].exp();
        }
        let mut s = GlmStream {
            d,
            m,
            rows,
            p: vec![0.0; rows * d * d],
            mean: vec![0.0; rows * d * m],
            psi: vec![0.0; rows * m * m],
            nu: vec![0.0; rows],
            n: vec![0.0; rows],
            prior_p,
            prior_mean: prior.m0.clone(),
            prior_psi,
            prior_nu: prior.nu0,
            scratch: vec![0.0; 2 * d + m],
            discount_scratch: Vec::new(),
        };
        for r in 0..rows {
            s.reset_row(r);
        }
        Ok(s)
    }

    pub fn d(&self) -> usize {
        self.d
    }
    pub fn m(&self) -> usize {
        self.m
    }
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Installs a new prior (e.g. after a training step) and resets the rows flagged in
    /// `mask` to it; other rows keep their posteriors. Errors (leaving `self`
    /// unchanged) if the prior is invalid, its shape differs, or `mask.len() != rows`.
    pub fn reset_rows(&mut self, prior: &MniwPrior, mask: &[bool]) -> Result<(), GlmError> {
        prior.validate()?;
        super::error::check_len("prior.d", prior.d, self.d)?;
        super::error::check_len("prior.m", prior.m, self.m)?;
        super::error::check_len("mask", mask.len(), self.rows)?;
        let (d, m) = (self.d, self.m);
        for i in 0..d {
            self.prior_p[i * d + i] = (-prior.lambda0_log_diag[i]).exp();
        }
        for a in 0..m {
            self.prior_psi[a * m + a] = prior.psi0_log_diag[a].exp();
        }
        self.prior_mean.copy_from_slice(&prior.m0);
        self.prior_nu = prior.nu0;
        for (r, &reset) in mask.iter().enumerate() {
            if reset {
                self.reset_row(r);
            }
        }
        Ok(())
    }

    fn reset_row(&mut self, r: usize) {
        let (d, m) = (self.d, self.m);
        self.p[r * d * d..(r + 1) * d * d].copy_from_slice(&self.prior_p);
        self.mean[r * d * m..(r + 1) * d * m].copy_from_slice(&self.prior_mean);
        self.psi[r * m * m..(r + 1) * m * m].copy_from_slice(&self.prior_psi);
        self.nu[r] = self.prior_nu;
        self.n[r] = 0.0;
    }

    /// Conditions row `r` on one more (c, y) pair: with u = P c, s = 1 + c'u and
    /// e = y - M'c, P -= u u'/s, M += u e'/s, Ψ += e e'/s, ν += 1. Panics if `r` is out
    /// of range or `c`, `y` have the wrong length.
    pub fn update_row<T: GlmScalar>(&mut self, r: usize, c: &[T], y: &[T]) {
        let (d, m) = (self.d, self.m);
        assert!(
            r < self.rows && c.len() == d && y.len() == m,
            "GlmStream::update_row: row {r} of {}, c has {} entries (d = {d}), y has {} (m = {m})",
            self.rows,
            c.len(),
            y.len()
        );
        if self.scratch.len() != 2 * d + m {
            self.scratch = vec![0.0; 2 * d + m];
        }
        let (cv, rest) = self.scratch.split_at_mut(d);
        let (u, e) = rest.split_at_mut(d);
        for (a, &b) in cv.iter_mut().zip(c) {
            *a = b.to_f64();
        }
        for (a, ea) in e.iter_mut().enumerate() {
            *ea = y[a].to_f64();
        }
        let p = &mut self.p[r * d * d..(r + 1) * d * d];
        let mean = &mut self.mean[r * d * m..(r + 1) * d * m];
        let psi = &mut self.psi[r * m * m..(r + 1) * m * m];
        super::rank1::update(p, mean, psi, cv, u, e);
        self.nu[r] += 1.0;
        self.n[r] += 1.0;
    }

    /// Discounts the data row `r` has conditioned on by `gamma` in `[0, 1]`, keeping the
    /// prior at full weight: afterwards the row is the exact posterior of the prior and
    /// the earlier rows each weighted by `gamma` (their weights multiply with every
    /// call), i.e. in natural parameters `eta = eta_0 + gamma (eta - eta_0)`:
    /// `Λ = Λ0 + γ(Λ - Λ0)`, `ΛM = Λ0 M0 + γ(ΛM - Λ0 M0)`,
    /// `Ψ + M'ΛM = S0 + γ(Ψ + M'ΛM - S0)` with `S0 = Ψ0 + M0'Λ0 M0`, `ν = ν0 + γ(ν - ν0)`,
    /// and the row count `n` scaled by `γ`. `gamma = 0` is a reset, `1` changes nothing.
    /// O(d³) (two factorisations); allocation-free after the first call.
    ///
    /// Errors (leaving the row unchanged) if `Λ_N^{-1}` or the discounted `Λ` is not
    /// numerically positive definite. Panics if `r` is out of range or `gamma` is not in
    /// `[0, 1]`.
    pub fn discount_row(&mut self, r: usize, gamma: f64) -> Result<(), GlmError> {
        let (d, m) = (self.d, self.m);
        assert!(
            r < self.rows && (0.0..=1.0).contains(&gamma),
            "GlmStream::discount_row: row {r} of {}, gamma {gamma}",
            self.rows
        );
        if gamma == 1.0 {
            return Ok(());
        }
        if gamma == 0.0 {
            self.reset_row(r);
            return Ok(());
        }
        let need = 4 * d * d + 2 * d * m + 2 * m * m;
        if self.discount_scratch.len() != need {
            self.discount_scratch = vec![0.0; need];
        }
        let (lam, rest) = self.discount_scratch.split_at_mut(d * d);
        let (fac, rest) = rest.split_at_mut(d * d);
        let (inv_scratch, rest) = rest.split_at_mut(d * d);
        let (p_new, rest) = rest.split_at_mut(d * d);
        let (lm, rest) = rest.split_at_mut(d * m);
        let (m_new, rest) = rest.split_at_mut(d * m);
        let (s, s0) = rest.split_at_mut(m * m);
        let p = &self.p[r * d * d..(r + 1) * d * d];
        let mean = &self.mean[r * d * m..(r + 1) * d * m];
        // Λ = P^{-1}.
        fac.copy_from_slice(p);
        super::linalg::cholesky(fac, d, "Lambda_N^-1")?;
        super::linalg::inverse_from_chol(fac, d, lam, inv_scratch);
        // ΛM and S = Ψ + M'ΛM, then the same of the prior: S0 = Ψ0 + M0'Λ0 M0.
        let lambda0 = |i: usize| 1.0 / self.prior_p[i * d + i];
        // Λ and P are symmetric, so A'B (the library's small product) is AB here.
        super::linalg::at_b(lam, mean, d, d, m, lm);
        super::linalg::at_b(mean, lm, d, m, m, s);
        for (v, &psi) in s.iter_mut().zip(&self.psi[r * m * m..(r + 1) * m * m]) {
            *v += psi;
        }
        s0.fill(0.0);
        for i in 0..d {
            let m0 = &self.prior_mean[i * m..i * m + m];
            for a in 0..m {
                super::linalg::axpy(lambda0(i) * m0[a], m0, &mut s0[a * m..a * m + m]);
            }
        }
        for (v, &psi) in s0.iter_mut().zip(&self.prior_psi) {
            *v += psi;
        }
        // The discounted natural parameters, in place.
        for v in lam.iter_mut() {
            *v *= gamma;
        }
        for i in 0..d {
            lam[i * d + i] += (1.0 - gamma) * lambda0(i);
        }
        for i in 0..d {
            let l0 = (1.0 - gamma) * lambda0(i);
            for (v, &m0) in lm[i * m..i * m + m]
                .iter_mut()
                .zip(&self.prior_mean[i * m..i * m + m])
            {
                *v = gamma * *v + l0 * m0;
            }
        }
        for (v, &v0) in s.iter_mut().zip(s0.iter()) {
            *v = gamma * *v + (1.0 - gamma) * v0;
        }
        // Back to moments: P = Λ^{-1} (lower triangle mirrored: the GEMM behind the
        // inverse may round the two triangles differently), M = P ΛM, Ψ = S - M'ΛM.
        fac.copy_from_slice(lam);
        super::linalg::cholesky(fac, d, "discounted Lambda_N")?;
        super::linalg::inverse_from_chol(fac, d, p_new, inv_scratch);
        for i in 0..d {
            for j in 0..i {
                p_new[j * d + i] = p_new[i * d + j];
            }
        }
        super::linalg::at_b(p_new, lm, d, d, m, m_new);
        // s0 is free again: M'ΛM of the new moments.
        super::linalg::at_b(m_new, lm, d, m, m, s0);
        let psi = &mut self.psi[r * m * m..(r + 1) * m * m];
        for a in 0..m {
            for b in 0..m {
                // Symmetric up to rounding; the mean of the two triangles makes it exact.
                let v = 0.5 * ((s[a * m + b] - s0[a * m + b]) + (s[b * m + a] - s0[b * m + a]));
                psi[a * m + b] = v;
            }
        }
        self.p[r * d * d..(r + 1) * d * d].copy_from_slice(p_new);
        self.mean[r * d * m..(r + 1) * d * m].copy_from_slice(m_new);
        self.nu[r] = self.prior_nu + gamma * (self.nu[r] - self.prior_nu);
        self.n[r] *= gamma;
        Ok(())
    }

    /// [`GlmStream::update_row`] for every row; `c` is `rows x d`, `y` is `rows x m`.
    pub fn update_all<T: GlmScalar>(&mut self, c: &[T], y: &[T]) {
        let (d, m) = (self.d, self.m);
        for r in 0..self.rows {
            self.update_row(r, &c[r * d..r * d + d], &y[r * m..r * m + m]);
        }
    }

    /// Copies row `src[i]` of `self` into row `i` of `into` (particle cloning and
    /// resampling). `into` keeps its prior; if its shape differs or it has fewer than
    /// `src.len()` rows it is first reshaped to `src.len()` rows with `self`'s prior
    /// (the only case that allocates). Panics if an index in `src` is out of range.
    pub fn gather(&self, src: &[usize], into: &mut GlmStream) {
        let (d, m) = (self.d, self.m);
        if into.d != d || into.m != m || into.rows < src.len() {
            let mut fresh = self.clone();
            fresh.rows = src.len();
            fresh.p.resize(src.len() * d * d, 0.0);
            fresh.mean.resize(src.len() * d * m, 0.0);
            fresh.psi.resize(src.len() * m * m, 0.0);
            fresh.nu.resize(src.len(), 0.0);
            fresh.n.resize(src.len(), 0.0);
            *into = fresh;
        }
        for (i, &s) in src.iter().enumerate() {
            assert!(s < self.rows, "GlmStream::gather: row {s} of {}", self.rows);
            into.p[i * d * d..(i + 1) * d * d].copy_from_slice(self.p_row(s));
            into.mean[i * d * m..(i + 1) * d * m].copy_from_slice(self.mean_row(s));
            into.psi[i * m * m..(i + 1) * m * m].copy_from_slice(self.psi_row(s));
            into.nu[i] = self.nu[s];
            into.n[i] = self.n[s];
        }
    }

    /// [`GlmStream::gather`] onto itself for a non-decreasing `src` of `rows` entries
    /// (systematic resampling's indices): row `i` becomes the old row `src[i]`, and only
    /// rows that change are copied, with no second stream. Rows that copy from later
    /// rows go first, in increasing order, then rows that copy from earlier ones, in
    /// decreasing order: with `src` non-decreasing every read then finds its row
    /// unchanged (a row `q = src[i] < i` has `src[q] <= q`, so the first pass never
    /// wrote it, and the second pass has only written rows above `i`). Panics if `src`
    /// has the wrong length, decreases, or leaves the range.
    pub fn gather_in_place(&mut self, src: &[usize]) {
        assert!(
            src.len() == self.rows
                && src.windows(2).all(|w| w[0] <= w[1])
                && src.last().is_none_or(|&s| s < self.rows),
            "GlmStream::gather_in_place: {} indices for {} rows must be non-decreasing and in range",
            src.len(),
            self.rows
        );
        let later = src.iter().enumerate().filter(|&(i, &s)| s > i);
        let earlier = src.iter().enumerate().rev().filter(|&(i, &s)| s < i);
        for (i, &s) in later.chain(earlier) {
            self.copy_row(s, i);
        }
    }

    /// Row `to` becomes a copy of row `from`.
    fn copy_row(&mut self, from: usize, to: usize) {
        let (dd, dm, mm) = (self.d * self.d, self.d * self.m, self.m * self.m);
        self.p.copy_within(from * dd..(from + 1) * dd, to * dd);
        self.mean.copy_within(from * dm..(from + 1) * dm, to * dm);
        self.psi.copy_within(from * mm..(from + 1) * mm, to * mm);
        self.nu[to] = self.nu[from];
        self.n[to] = self.n[from];
    }

    /// Λ_N^{-1} of row r.
    pub fn p_row(&self, r: usize) -> &[f64] {
        &self.p[r * self.d * self.d..(r + 1) * self.d * self.d]
    }
    /// M_N of row r.
    pub fn mean_row(&self, r: usize) -> &[f64] {
        &self.mean[r * self.d * self.m..(r + 1) * self.d * self.m]
    }
    /// Ψ_N of row r.
    pub fn psi_row(&self, r: usize) -> &[f64] {
        &self.psi[r * self.m * self.m..(r + 1) * self.m * self.m]
    }
    /// ν_N of row r.
    pub fn nu_row(&self, r: usize) -> f64 {
        self.nu[r]
    }
    /// Rows conditioned on since row r's last reset.
    pub fn n_row(&self, r: usize) -> f64 {
        self.n[r]
    }

    /// Writes M_N'c into `mean_out` (length m) and returns c'Λ_N^{-1}c: the predictive
    /// at c is Student-t with ν_N - m + 1 dof, this mean, and scale
    /// Ψ_N (1 + c'Λ_N^{-1}c) / (ν_N - m + 1). O(d² + dm), no allocation.
    pub fn predictive_row(&self, r: usize, c: &[f64], mean_out: &mut [f64]) -> f64 {
        let (d, m) = (self.d, self.m);
        super::rank1::predictive(self.p_row(r), self.mean_row(r), &c[..d], m, mean_out)
    }

    /// The full predictive Student-t of row r at c (allocates).
    pub fn predictive_student_t(&self, r: usize, c: &[f64]) -> StudentT {
        let m = self.m;
        let mut mean = vec![0.0; m];
        let q = self.predictive_row(r, c, &mut mean);
        let dof = self.nu[r] - m as f64 + 1.0;
        let f = (1.0 + q) / dof;
        StudentT {
            dof,
            mean,
            scale: self.psi_row(r).iter().map(|v| v * f).collect(),
        }
    }

    /// E[Σ] of row r into `out` (`m x m`), with the same convention as
    /// [`super::Posterior::expected_sigma`] when ν_N <= m + 1.
    pub fn expected_sigma_row(&self, r: usize, out: &mut [f64]) {
        let div = expected_sigma_divisor(self.nu[r], self.m);
        for (o, &v) in out.iter_mut().zip(self.psi_row(r)) {
            *o = v / div;
        }
    }

    /// One exact posterior draw (W, Σ) for row r. Factorises the row's Λ_N^{-1} and Ψ_N
    /// (O(d³)) into `scratch`; allocation-free once `scratch` has this shape.
    pub fn sample_row_into(
        &self,
        r: usize,
        rng: &mut Rng,
        w_out: &mut [f64],
        sigma_out: &mut [f64],
        scratch: &mut StreamSampleScratch,
    ) -> Result<(), GlmError> {
        let (d, m) = (self.d, self.m);
        scratch.fit(d, m);
        // Λ_N^{-1} = G G' with G lower, so W = M + G Z T' (G plays L^{-T}'s role). The
        // draw routine takes L with L^{-T} applied by a solve; here we multiply instead.
        scratch.g.copy_from_slice(self.p_row(r));
        super::linalg::cholesky(&mut scratch.g, d, "Lambda_N^-1")?;
        scratch.lpsi.copy_from_slice(self.psi_row(r));
        super::linalg::cholesky(&mut scratch.lpsi, m, "Psi_N")?;
        // Draw with identity row factor and zero mean, then apply G and add M.
        scratch.eye.fill(0.0);
        for i in 0..d {
            scratch.eye[i * d + i] = 1.0;
        }
        scratch.zero.fill(0.0);
        draw_mniw(
            rng,
            d,
            m,
            &scratch.zero,
            &scratch.eye,
            &scratch.lpsi,
            self.nu[r],
            &mut scratch.w,
            &mut sigma_out[..m * m],
            &mut scratch.inner,
        );
        let mean = self.mean_row(r);
        for i in 0..d {
            let row = &mut w_out[i * m..i * m + m];
            row.copy_from_slice(&mean[i * m..i * m + m]);
            for j in 0..=i {
                let g = scratch.g[i * d + j];
                super::linalg::axpy(g, &scratch.w[j * m..j * m + m], row);
            }
        }
        Ok(())
    }
}

/// Buffers for [`GlmStream::sample_row_into`].
#[derive(Clone, Debug, Default)]
pub struct StreamSampleScratch {
    g: Vec<f64>,
    lpsi: Vec<f64>,
    eye: Vec<f64>,
    zero: Vec<f64>,
    w: Vec<f64>,
    inner: SampleScratch,
}

impl StreamSampleScratch {
    pub fn new(d: usize, m: usize) -> Self {
        StreamSampleScratch {
            g: vec![0.0; d * d],
            lpsi: vec![0.0; m * m],
            eye: vec![0.0; d * d],
            zero: vec![0.0; d * m],
            w: vec![0.0; d * m],
            inner: SampleScratch::new(d, m),
        }
    }

    fn fit(&mut self, d: usize, m: usize) {
        if self.g.len() != d * d || self.lpsi.len() != m * m {
            *self = StreamSampleScratch::new(d, m);
        }
    }
}
