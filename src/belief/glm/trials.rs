//! The batched training loss: the mean over trials and their context prefixes of
//! -log p(Y_{1..n} | C_{1..n}) / n, with its exact gradient with respect to every row
//! of C and to the prior. Prefix statistics are running sums, so one pass over a trial
//! fits every prefix; the gradient of row t collects the prefixes n >= t, so a backward
//! pass over the sorted prefixes accumulates their dL/dC'C and dL/dC'Y as suffix sums.

use super::error::check_len;
use super::eval::Eval;
use super::linalg::axpy;
use super::prior::PriorCache;
use super::{GlmError, MniwPrior, PriorGrad};
use crate::nn::gemm64;

/// Element types the batched loss reads and writes (networks produce f32; the maths is
/// always f64).
pub trait GlmScalar: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl GlmScalar for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl GlmScalar for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

/// Reusable buffers for [`TrialBatchLoss::loss_and_grad`]: after the first call with a
/// given shape, calls do not allocate (apart from a few prior-sized vectors per call).
#[derive(Clone, Debug)]
pub struct TrialBatchLoss {
    d: usize,
    m: usize,
    ev: Eval,
    ctc: Vec<f64>,
    cty: Vec<f64>,
    /// (C'Y)' accumulated row by row, `m x d`.
    ytc: Vec<f64>,
    yty: Vec<f64>,
    c64: Vec<f64>,
    y64: Vec<f64>,
    order: Vec<usize>,
    /// Per sorted prefix: 2 w dL/dC'C (`d x d`) and w (dL/dC'Y)' (`m x d`).
    ga: Vec<f64>,
    gbt: Vec<f64>,
    h: Vec<f64>,
    jt: Vec<f64>,
    /// Row gradients of the current trial in f64, `steps x d`.
    g64: Vec<f64>,
}

impl Default for TrialBatchLoss {
    fn default() -> Self {
        Self::new()
    }
}

impl TrialBatchLoss {
    pub fn new() -> Self {
        TrialBatchLoss {
            d: 0,
            m: 0,
            ev: Eval::new(0, 0),
            ctc: Vec::new(),
            cty: Vec::new(),
            ytc: Vec::new(),
            yty: Vec::new(),
            c64: Vec::new(),
            y64: Vec::new(),
            order: Vec::new(),
            ga: Vec::new(),
            gbt: Vec::new(),
            h: Vec::new(),
            jt: Vec::new(),
            g64: Vec::new(),
        }
    }

    fn shape(&mut self, d: usize, m: usize, steps: usize, k: usize) {
        if self.d != d || self.m != m {
            self.d = d;
            self.m = m;
            self.ev = Eval::new(d, m);
            self.ctc = vec![0.0; d * d];
            self.cty = vec![0.0; d * m];
            self.ytc = vec![0.0; m * d];
            self.yty = vec![0.0; m * m];
            self.h = vec![0.0; d * d];
            self.jt = vec![0.0; m * d];
        }
        self.c64.resize(steps * d, 0.0);
        self.y64.resize(steps * m, 0.0);
        self.g64.resize(steps * d, 0.0);
        self.order.resize(k, 0);
        self.ga.resize(k * d * d, 0.0);
        self.gbt.resize(k * m * d, 0.0);
    }

    /// Loss = mean over trials and their prefixes of -log p(Y_{1..n} | C_{1..n}) / n.
    ///
    /// `c` is `trials x steps x d`, `y` is `trials x steps x m` (row-major), `prefixes`
    /// holds `prefixes_per_trial` lengths per trial (any order, repeats allowed, each in
    /// `1..=steps`; pass `steps` for the whole trial). Overwrites `out_gc`
    /// (`trials x steps x d`, dLoss/dC; rows past a trial's longest prefix get 0) and
    /// `out_prior_grad` (dLoss/d prior). On error the outputs are unspecified.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad<T: GlmScalar>(
        &mut self,
        prior: &MniwPrior,
        c: &[T],
        y: &[T],
        trials: usize,
        steps: usize,
        prefixes: &[usize],
        prefixes_per_trial: usize,
        out_gc: &mut [T],
        out_prior_grad: &mut PriorGrad,
    ) -> Result<f64, GlmError> {
        let pc = PriorCache::new(prior)?;
        let (d, m) = (prior.d, prior.m);
        check_len("c", c.len(), trials * steps * d)?;
        check_len("y", y.len(), trials * steps * m)?;
        check_len("prefixes", prefixes.len(), trials * prefixes_per_trial)?;
        check_len("out_gc", out_gc.len(), trials * steps * d)?;
        for (i, &n) in prefixes.iter().enumerate() {
            if n == 0 || n > steps {
                return Err(GlmError::InvalidPrefix {
                    trial: i / prefixes_per_trial.max(1),
                    n,
                    steps,
                });
            }
        }
        out_prior_grad.reset(d, m);
        let count = trials * prefixes_per_trial;
        if count == 0 {
            out_gc.fill(T::from_f64(0.0));
            return Ok(0.0);
        }
        let kk = prefixes_per_trial;
        self.shape(d, m, steps, kk);
        let inv_count = 1.0 / count as f64;
        let mut loss = 0.0;
        for tr in 0..trials {
            let c_tr = &c[tr * steps * d..(tr + 1) * steps * d];
            let y_tr = &y[tr * steps * m..(tr + 1) * steps * m];
            for (a, &b) in self.c64.iter_mut().zip(c_tr) {
                *a = b.to_f64();
            }
            for (a, &b) in self.y64.iter_mut().zip(y_tr) {
                *a = b.to_f64();
            }
            self.order
                .copy_from_slice(&prefixes[tr * kk..(tr + 1) * kk]);
            self.order.sort_unstable();
            loss += self.forward_trial(&pc, &prior.m0, inv_count, out_prior_grad)?;
            self.backward_trial(steps, &mut out_gc[tr * steps * d..(tr + 1) * steps * d]);
        }
        Ok(loss)
    }

    /// Fits every prefix of the current trial; stores the weighted statistic gradients
    /// and adds the prior gradient. Returns this trial's share of the loss.
    fn forward_trial(
        &mut self,
        pc: &PriorCache,
        m0: &[f64],
        inv_count: f64,
        out_prior: &mut PriorGrad,
    ) -> Result<f64, GlmError> {
        let (d, m) = (self.d, self.m);
        self.ctc.fill(0.0);
        self.ytc.fill(0.0);
        self.yty.fill(0.0);
        let mut rows = 0;
        let mut loss = 0.0;
        for k in 0..self.order.len() {
            let n = self.order[k];
            let refit = k == 0 || n != self.order[k - 1];
            if refit {
                // Running sums of the statistics over the rows new to this prefix: C'C
                // by GEMM; the thin C'Y (kept transposed, so rows are long axpys) and
                // the tiny Y'Y by hand, where a GEMM call costs more than it saves.
                let (c_blk, y_blk) = (&self.c64[rows * d..n * d], &self.y64[rows * m..n * m]);
                gemm64::at_b(&mut self.ctc, c_blk, c_blk, n - rows, d, d, true);
                for (ct, yt) in c_blk.chunks_exact(d).zip(y_blk.chunks_exact(m)) {
                    for (a, &ya) in yt.iter().enumerate() {
                        axpy(ya, ct, &mut self.ytc[a * d..a * d + d]);
                        axpy(ya, yt, &mut self.yty[a * m..a * m + m]);
                    }
                }
                for i in 0..d {
                    for a in 0..m {
                        self.cty[i * m + a] = self.ytc[a * d + i];
                    }
                }
                rows = n;
                self.ev.fit(pc, &self.ctc, &self.cty, &self.yty, n as f64)?;
                self.ev.grad_parts();
            }
            let w = -inv_count / n as f64;
            loss += w * self.ev.log_marginal;
            self.ev.add_prior_grad(pc, m0, w, &mut out_prior.view());
            let ga = &mut self.ga[k * d * d..(k + 1) * d * d];
            for (g, &v) in ga.iter_mut().zip(&self.ev.g_a) {
                *g = 2.0 * w * v;
            }
            // dL/dC'Y = -2 M_N P, stored transposed so the backward pass is axpys.
            let gbt = &mut self.gbt[k * m * d..(k + 1) * m * d];
            for i in 0..d {
                for a in 0..m {
                    gbt[a * d + i] = -2.0 * w * self.ev.mp[i * m + a];
                }
            }
        }
        Ok(loss)
    }

    /// Row gradients of the current trial: row t gets 2 H_t c_t + J_t y_t, H_t and J_t
    /// summing the stored gradients of the prefixes that contain t.
    fn backward_trial<T: GlmScalar>(&mut self, steps: usize, gc: &mut [T]) {
        let (d, m) = (self.d, self.m);
        let kk = self.order.len();
        let longest = self.order[kk - 1];
        for v in &mut gc[longest * d..steps * d] {
            *v = T::from_f64(0.0);
        }
        self.h.fill(0.0);
        self.jt.fill(0.0);
        for k in (0..kk).rev() {
            axpy(1.0, &self.ga[k * d * d..(k + 1) * d * d], &mut self.h);
            axpy(1.0, &self.gbt[k * m * d..(k + 1) * m * d], &mut self.jt);
            let lo = if k > 0 { self.order[k - 1] } else { 0 };
            let hi = self.order[k];
            if hi > lo {
                // Rows lo..hi: G = C H (GEMM; H symmetric) + Y J' (thin: axpys).
                let g64 = &mut self.g64[lo * d..hi * d];
                gemm64::a_b(
                    g64,
                    &self.c64[lo * d..hi * d],
                    &self.h,
                    hi - lo,
                    d,
                    d,
                    false,
                );
                gemm64::a_b(
                    g64,
                    &self.y64[lo * m..hi * m],
                    &self.jt,
                    hi - lo,
                    m,
                    d,
                    true,
                );
                for (g, &v) in gc[lo * d..hi * d].iter_mut().zip(g64.iter()) {
                    *g = T::from_f64(v);
                }
            }
        }
    }
}

/// [`TrialBatchLoss::loss_and_grad`] with fresh buffers (allocates per call; keep a
/// [`TrialBatchLoss`] to avoid that).
#[allow(clippy::too_many_arguments)]
pub fn trials_loss_and_grad<T: GlmScalar>(
    prior: &MniwPrior,
    c: &[T],
    y: &[T],
    trials: usize,
    steps: usize,
    prefixes: &[usize],
    prefixes_per_trial: usize,
    out_gc: &mut [T],
    out_prior_grad: &mut PriorGrad,
) -> Result<f64, GlmError> {
    TrialBatchLoss::new().loss_and_grad(
        prior,
        c,
        y,
        trials,
        steps,
        prefixes,
        prefixes_per_trial,
        out_gc,
        out_prior_grad,
    )
}
