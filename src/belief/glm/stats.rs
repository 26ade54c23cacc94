//! Additive sufficient statistics of a batch of rows: C'C, C'Y, Y'Y and the row
//! count. Adding, merging and permuting rows never changes the posterior.

use super::error::check_len;
use super::GlmError;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub d: usize,
    pub m: usize,
    /// Number of rows (f64 so that weighted or merged counts need no conversion).
    pub n: f64,
    /// C'C, `d x d` (full, symmetric).
    pub ctc: Vec<f64>,
    /// C'Y, `d x m`.
    pub cty: Vec<f64>,
    /// Y'Y, `m x m` (full, symmetric).
    pub yty: Vec<f64>,
}

impl Stats {
    /// Statistics of zero rows.
    pub fn new(d: usize, m: usize) -> Self {
        Stats {
            d,
            m,
            n: 0.0,
            ctc: vec![0.0; d * d],
            cty: vec![0.0; d * m],
            yty: vec![0.0; m * m],
        }
    }

    /// Statistics of `rows` rows, `c` is `rows x d`, `y` is `rows x m`.
    pub fn from_rows(
        d: usize,
        m: usize,
        c: &[f64],
        y: &[f64],
        rows: usize,
    ) -> Result<Self, GlmError> {
        let mut s = Stats::new(d, m);
        s.add_rows(c, y, rows)?;
        Ok(s)
    }

    /// Adds one row. Panics if `c.len() != d` or `y.len() != m` (a programming error on
    /// a hot path; [`Stats::add_rows`] checks and returns an error instead).
    pub fn add_row(&mut self, c: &[f64], y: &[f64]) {
        let (d, m) = (self.d, self.m);
        assert!(
            c.len() == d && y.len() == m,
            "Stats::add_row: c has {} entries (d = {d}), y has {} (m = {m})",
            c.len(),
            y.len()
        );
        for i in 0..d {
            let ci = c[i];
            if ci != 0.0 {
                super::linalg::axpy(ci, c, &mut self.ctc[i * d..i * d + d]);
                super::linalg::axpy(ci, y, &mut self.cty[i * m..i * m + m]);
            }
        }
        for i in 0..m {
            super::linalg::axpy(y[i], y, &mut self.yty[i * m..i * m + m]);
        }
        self.n += 1.0;
    }

    /// Adds `rows` rows.
    pub fn add_rows(&mut self, c: &[f64], y: &[f64], rows: usize) -> Result<(), GlmError> {
        check_len("c", c.len(), rows * self.d)?;
        check_len("y", y.len(), rows * self.m)?;
        for t in 0..rows {
            self.add_row(
                &c[t * self.d..(t + 1) * self.d],
                &y[t * self.m..(t + 1) * self.m],
            );
        }
        Ok(())
    }

    /// Adds another batch's statistics (of the same shape).
    pub fn merge(&mut self, other: &Stats) -> Result<(), GlmError> {
        check_len("other.ctc", other.ctc.len(), self.d * self.d)?;
        check_len("other.cty", other.cty.len(), self.d * self.m)?;
        check_len("other.yty", other.yty.len(), self.m * self.m)?;
        self.n += other.n;
        for (a, b) in [
            (&mut self.ctc, &other.ctc),
            (&mut self.cty, &other.cty),
            (&mut self.yty, &other.yty),
        ] {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        Ok(())
    }

    pub(crate) fn check(&self) -> Result<(), GlmError> {
        check_len("stats.ctc", self.ctc.len(), self.d * self.d)?;
        check_len("stats.cty", self.cty.len(), self.d * self.m)?;
        check_len("stats.yty", self.yty.len(), self.m * self.m)
    }
}
