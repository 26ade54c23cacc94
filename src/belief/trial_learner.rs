//! [`TrialLearner`]: the one learner of beliefs trained by gradient steps on batches of
//! complete trials (VariBAD's ELBO, GLiBRL's marginal likelihood, the toy belief of
//! tests/toy_belief.rs). It owns the buffer of trials, the optimiser and the update
//! loop — draw a batch, ask the model for its loss gradient, take an Adam step — and
//! is the [`BeliefLearner`] the trainer holds; the model supplies only its loss and
//! gradient ([`TrialModel`]) and names its metrics columns.
//!
//! ```
//! use bamdp::belief::trial_learner::{TrialLearner, TrialModel, TrialSettings};
//! use bamdp::belief::learner::{BeliefLearner, TrialStore};
//! use bamdp::belief::trials::TrialRecord;
//! use bamdp::nn::Params;
//! use bamdp::rng::Rng;
//!
//! /// Fits a constant `c` to every reward (squared error).
//! struct MeanReward(Params);
//!
//! impl TrialModel for MeanReward {
//!     fn columns(&self) -> &'static [&'static str] {
//!         &["mean_loss"]
//!     }
//!     fn params(&self) -> &Params {
//!         &self.0
//!     }
//!     fn params_mut(&mut self) -> &mut Params {
//!         &mut self.0
//!     }
//!     fn loss_and_grad(
//!         &self,
//!         batch: &[&TrialRecord],
//!         _rng: &mut Rng,
//!         _threads: usize,
//!         stats: &mut [f64],
//!         steps: usize,
//!     ) -> Vec<f32> {
//!         let c = self.0.data[0];
//!         let errors: Vec<f32> = batch.iter().flat_map(|t| t.rewards.iter().map(|r| c - r)).collect();
//!         let n = errors.len() as f32;
//!         stats[0] += errors.iter().map(|e| (e * e) as f64).sum::<f64>() / n as f64 / steps as f64;
//!         vec![2.0 * errors.iter().sum::<f32>() / n]
//!     }
//! }
//!
//! let mut params = Params::new();
//! params.bias("c", 1, 0.0);
//! let settings = TrialSettings { lr: 1e-2, num_updates: 2, batch_trials: 4, buffer_trials: 16 };
//! let trials = TrialStore::new(settings.buffer_trials, 2, 3, 1, Rng::new(1));
//! let learner = TrialLearner::new(MeanReward(params), settings, trials, "mean");
//! assert_eq!(learner.columns(), &["mean_loss"]);
//! assert!(!learner.has_batch());
//! ```

use super::learner::{check_layout, BeliefLearner, LearnerState, TrialStore};
use super::trials::TrialRecord;
use super::Transition;
use crate::error::StateError;
use crate::nn::{Adam, Params};
use crate::rng::Rng;

/// A belief model trained on batches of complete trials: its weights and the loss
/// gradient of one batch.
pub trait TrialModel: Send + Sync {
    /// Names of the statistics [`TrialModel::loss_and_grad`] reports (metrics columns).
    fn columns(&self) -> &'static [&'static str];
    /// The trained weights.
    fn params(&self) -> &Params;
    /// The trained weights, for the optimiser.
    fn params_mut(&mut self) -> &mut Params;
    /// The loss gradient (layout of [`TrialModel::params`]) on one batch of trials,
    /// computed on up to `threads` threads with a result that does not depend on them.
    /// Any noise the loss needs is drawn from `rng`. The step's statistics go into
    /// `stats` (one per column) as its share of the update's summary over its `steps`
    /// gradient steps — usually `value / steps`, so the update reports their mean.
    fn loss_and_grad(
        &self,
        batch: &[&TrialRecord],
        rng: &mut Rng,
        threads: usize,
        stats: &mut [f64],
        steps: usize,
    ) -> Vec<f32>;
    /// Called after every optimiser step (e.g. to project the weights back onto their
    /// valid region).
    fn after_step(&mut self) {}
}

/// The optimisation settings every trial learner shares (each belief's config section
/// carries them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrialSettings {
    /// Adam's learning rate.
    pub lr: f64,
    /// Gradient steps per policy update.
    pub num_updates: usize,
    /// Trials per batch.
    pub batch_trials: usize,
    /// Capacity of the buffer of recent trials.
    pub buffer_trials: usize,
}

/// A [`TrialModel`] with its optimiser and trials: the [`BeliefLearner`] of any belief
/// trained from trials.
pub struct TrialLearner<M> {
    pub model: M,
    pub adam: Adam,
    pub trials: TrialStore,
    pub settings: TrialSettings,
    /// The config section that builds the model, named when a checkpoint does not fit.
    section: &'static str,
}

impl<M: TrialModel> TrialLearner<M> {
    /// A learner of `model` from `trials` (usually empty, `settings.buffer_trials`
    /// capacity), with fresh Adam moments.
    pub fn new(
        model: M,
        settings: TrialSettings,
        trials: TrialStore,
        section: &'static str,
    ) -> Self {
        TrialLearner {
            adam: Adam::new(model.params().len(), 1e-8),
            model,
            trials,
            settings,
            section,
        }
    }

    /// A learner of `model` with an empty buffer of `settings.buffer_trials` trials
    /// shaped for `rows` rows of `spec`'s env, its sampling stream `rng`.
    pub fn for_env(
        model: M,
        settings: TrialSettings,
        spec: &crate::env::EnvSpec,
        rows: usize,
        rng: Rng,
        section: &'static str,
    ) -> Self {
        let trials = TrialStore::new(
            settings.buffer_trials,
            rows,
            spec.obs_dim,
            spec.action.width(),
            rng,
        );
        Self::new(model, settings, trials, section)
    }

    /// The configured number of gradient steps on batches drawn from the buffer (none
    /// until it holds a full batch). Returns the update's statistics, if any step ran.
    pub fn train(&mut self, threads: usize) -> Option<Vec<f64>> {
        let s = self.settings;
        if self.trials.buffer.len() < s.batch_trials {
            return None;
        }
        let mut stats = vec![0.0; self.model.columns().len()];
        for _ in 0..s.num_updates {
            let idx = self
                .trials
                .buffer
                .sample(s.batch_trials, &mut self.trials.rng);
            let batch = self.trials.buffer.gather(&idx);
            let grad = self.model.loss_and_grad(
                &batch,
                &mut self.trials.rng,
                threads,
                &mut stats,
                s.num_updates,
            );
            self.adam
                .step(&mut self.model.params_mut().data, &grad, s.lr);
            self.model.after_step();
        }
        Some(stats)
    }
}

impl<M: TrialModel> BeliefLearner for TrialLearner<M> {
    fn columns(&self) -> &'static [&'static str] {
        self.model.columns()
    }
    fn record(&mut self, step: &Transition<'_>, trial_end: &[bool]) {
        self.trials.record(step, trial_end);
    }
    fn update(&mut self, threads: usize) -> Option<Vec<f64>> {
        self.train(threads)
    }
    fn params(&self) -> &Params {
        self.model.params()
    }
    fn trials(&self) -> &TrialStore {
        &self.trials
    }
    fn trials_mut(&mut self) -> &mut TrialStore {
        &mut self.trials
    }
    fn batch_trials(&self) -> usize {
        self.settings.batch_trials
    }
    fn save_state(&self) -> LearnerState {
        let (buffer, rest) = self.trials.save_parts();
        LearnerState {
            params: self.model.params().clone(),
            adam: self.adam.clone(),
            buffer,
            rest,
        }
    }
    fn load_state(&mut self, state: LearnerState) -> Result<(), StateError> {
        check_layout(&state.params, self.model.params(), self.section)?;
        let what = format!("[{}] trials", self.section);
        self.trials = TrialStore::from_parts(&state.buffer, &state.rest, &what)?;
        *self.model.params_mut() = state.params;
        self.adam = state.adam;
        Ok(())
    }
}
