//! Running normalisers for observations and rewards (as in OpenAI baselines'
//! VecNormalize): statistics update online and are saved in checkpoints.

use serde::{Deserialize, Serialize};

/// Running mean and variance per dimension (parallel-variance merge of batches).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningMeanStd {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    pub count: f64,
}

impl RunningMeanStd {
    pub fn new(dim: usize) -> Self {
        RunningMeanStd {
            mean: vec![0.0; dim],
            var: vec![1.0; dim],
            count: 1e-4,
        }
    }

    /// Merges a batch of `rows` rows (`rows * dim` values).
    pub fn update(&mut self, x: &[f32], rows: usize) {
        self.update_strided(x, rows, self.mean.len(), 0);
    }

    /// Merges `rows` rows read from wider rows: row `r`'s values are
    /// `x[r * stride + offset..][..dim]` (a part of each row of a batch of inputs).
    pub fn update_strided(&mut self, x: &[f32], rows: usize, stride: usize, offset: usize) {
        let dim = self.mean.len();
        if rows == 0 {
            return;
        }
        let at = |r: usize, d: usize| x[r * stride + offset + d] as f64;
        for d in 0..dim {
            let (mut m, mut s) = (0.0f64, 0.0f64);
            for r in 0..rows {
                m += at(r, d);
            }
            m /= rows as f64;
            for r in 0..rows {
                s += (at(r, d) - m).powi(2);
            }
            let bvar = s / rows as f64;
            let n = rows as f64;
            let tot = self.count + n;
            let delta = m - self.mean[d];
            let new_mean = self.mean[d] + delta * n / tot;
            let m2 = self.var[d] * self.count + bvar * n + delta * delta * self.count * n / tot;
            self.mean[d] = new_mean;
            self.var[d] = m2 / tot;
        }
        self.count += rows as f64;
    }

    /// `(x - mean) / sqrt(var + eps)`, clipped to [-clip, clip], in place.
    pub fn normalize(&self, x: &mut [f32], clip: f32) {
        let dim = self.mean.len();
        for row in x.chunks_mut(dim) {
            for (d, v) in row.iter_mut().enumerate() {
                let z = (*v as f64 - self.mean[d]) / (self.var[d] + 1e-8).sqrt();
                *v = (z as f32).clamp(-clip, clip);
            }
        }
    }
}

/// The policy input's normaliser: one [`RunningMeanStd`] over the contiguous part of
/// the input `[obs | belief features]` that `ppo.norm_obs` and `ppo.norm_belief` select
/// (the observations, the features, or both), starting at input element `start`;
/// normalised values are clipped to `[-clip, clip]`. One set of statistics, so a
/// checkpoint holds it as before whichever part it covers.
#[derive(Clone, Debug, PartialEq)]
pub struct InputNorm {
    pub rms: RunningMeanStd,
    pub start: usize,
    pub clip: f32,
}

impl InputNorm {
    /// The part of an input row of `obs_dim` observations followed by `feature_dim`
    /// belief features that the two switches select (`None`: neither).
    pub fn span(
        norm_obs: bool,
        norm_belief: bool,
        obs_dim: usize,
        feature_dim: usize,
    ) -> Option<std::ops::Range<usize>> {
        match (norm_obs, norm_belief && feature_dim > 0) {
            (false, false) => None,
            (true, false) => Some(0..obs_dim),
            (false, true) => Some(obs_dim..obs_dim + feature_dim),
            (true, true) => Some(0..obs_dim + feature_dim),
        }
    }

    /// Fresh statistics over `span`.
    pub fn new(span: std::ops::Range<usize>, clip: f32) -> Self {
        InputNorm {
            rms: RunningMeanStd::new(span.len()),
            start: span.start,
            clip,
        }
    }

    /// Normalises the covered part of one input row in place.
    pub fn normalize_row(&self, row: &mut [f32]) {
        let n = self.rms.mean.len();
        self.rms
            .normalize(&mut row[self.start..self.start + n], self.clip);
    }

    /// Takes the covered part of `rows` raw input rows of width `stride` into the
    /// statistics.
    pub fn observe(&mut self, x: &[f32], rows: usize, stride: usize) {
        self.rms.update_strided(x, rows, stride, self.start);
    }

    /// Installs statistics saved in a checkpoint into the normaliser a config asks for
    /// (`norm`). They must cover the same inputs: a normaliser without saved statistics,
    /// saved statistics without a normaliser or of another width mean the config's
    /// `ppo.norm_obs` / `ppo.norm_belief` differ from those of the run that saved them.
    pub fn install_saved(
        norm: Option<&mut InputNorm>,
        saved: Option<RunningMeanStd>,
    ) -> Result<(), SavedStatsMismatch> {
        match (norm, saved) {
            (Some(n), Some(rms)) if rms.mean.len() == n.rms.mean.len() => {
                n.rms = rms;
                Ok(())
            }
            (None, None) => Ok(()),
            _ => Err(SavedStatsMismatch),
        }
    }
}

/// Saved input statistics that do not fit the normaliser a config asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedStatsMismatch;

impl std::fmt::Display for SavedStatsMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the checkpoint's input normaliser does not match ppo.norm_obs / ppo.norm_belief",
        )
    }
}

impl std::error::Error for SavedStatsMismatch {}

/// What a step does with the policy input's normaliser.
pub enum NormMode<'a> {
    /// Normalise with the statistics as they are (evaluation, acting).
    Frozen(Option<&'a InputNorm>),
    /// Take the step's raw inputs into the statistics first, then normalise (training).
    Updating(Option<&'a mut InputNorm>),
}

impl NormMode<'_> {
    /// Takes `rows` raw input rows of width `stride` into the statistics when updating.
    pub fn observe(&mut self, x: &[f32], rows: usize, stride: usize) {
        if let NormMode::Updating(Some(n)) = self {
            n.observe(x, rows, stride);
        }
    }

    /// The normaliser to apply now.
    pub fn current(&self) -> Option<&InputNorm> {
        match self {
            NormMode::Frozen(n) => *n,
            NormMode::Updating(n) => n.as_deref(),
        }
    }
}

/// Scales rewards by the running standard deviation of the discounted return, which
/// keeps value targets at unit scale without shifting rewards (shifts would change the
/// optimal policy).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardScaler {
    pub gamma: f64,
    pub returns: Vec<f64>,
    pub rms: RunningMeanStd,
}

impl RewardScaler {
    pub fn new(rows: usize, gamma: f64) -> Self {
        RewardScaler {
            gamma,
            returns: vec![0.0; rows],
            rms: RunningMeanStd::new(1),
        }
    }

    /// Scales one step's rewards in place; `reset` marks rows whose return restarts
    /// after this step (end of the decision process).
    pub fn scale(&mut self, rewards: &mut [f32], reset: &[bool]) {
        let rets: Vec<f32> = self
            .returns
            .iter_mut()
            .zip(rewards.iter())
            .map(|(g, &r)| {
                *g = *g * self.gamma + r as f64;
                *g as f32
            })
            .collect();
        self.rms.update(&rets, rets.len());
        let std = (self.rms.var[0] + 1e-8).sqrt() as f32;
        for (i, r) in rewards.iter_mut().enumerate() {
            *r = (*r / std).clamp(-10.0, 10.0);
            if reset[i] {
                self.returns[i] = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_a_row_part_equal_those_of_the_part_alone() {
        // Rows of width 5 whose columns 1..3 are the covered part.
        let x: Vec<f32> = (0..40)
            .map(|i| ((i * 13) % 11) as f32 * 0.5 - 2.0)
            .collect();
        let part: Vec<f32> = x.chunks(5).flat_map(|r| r[1..3].to_vec()).collect();
        let mut whole = InputNorm::new(1..3, 10.0);
        whole.observe(&x, 8, 5);
        let mut alone = RunningMeanStd::new(2);
        alone.update(&part, 8);
        assert_eq!(whole.rms, alone);
        assert_ne!(alone, RunningMeanStd::new(2));
    }

    #[test]
    fn saved_statistics_install_only_where_they_fit() {
        let saved = || {
            let mut rms = RunningMeanStd::new(3);
            rms.update(&[1.0, 2.0, 3.0, 3.0, 5.0, 9.0], 2);
            rms
        };
        let mut norm = InputNorm::new(2..5, 10.0);
        assert_eq!(
            InputNorm::install_saved(Some(&mut norm), Some(saved())),
            Ok(())
        );
        assert_eq!(norm.rms, saved());
        assert_eq!(InputNorm::install_saved(None, None), Ok(()));
        let mut other = InputNorm::new(0..2, 10.0);
        let fresh = other.clone();
        assert_eq!(
            InputNorm::install_saved(Some(&mut other), Some(saved())),
            Err(SavedStatsMismatch)
        );
        assert_eq!(
            other, fresh,
            "a refused install leaves the normaliser as it was"
        );
        assert!(InputNorm::install_saved(Some(&mut other), None).is_err());
        assert!(InputNorm::install_saved(None, Some(saved())).is_err());
    }

    #[test]
    fn running_stats_match_batch_stats() {
        let xs: Vec<f32> = (0..100).map(|i| ((i * 37) % 17) as f32 - 3.0).collect();
        let mut rms = RunningMeanStd::new(1);
        for chunk in xs.chunks(7) {
            rms.update(chunk, chunk.len());
        }
        let n = xs.len() as f64;
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(
            (rms.mean[0] - mean).abs() < 1e-3,
            "{} {}",
            rms.mean[0],
            mean
        );
        assert!(
            (rms.var[0] - var).abs() / var < 1e-3,
            "{} {}",
            rms.var[0],
            var
        );
    }
}
