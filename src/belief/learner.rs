//! [`BeliefLearner`]: one interface for beliefs trained from a buffer of trials
//! (VariBAD's VAE, GLiBRL's marginal likelihood, and any new one). The trainer holds at
//! most one learner: it records every transition into it, calls [`BeliefLearner::update`]
//! once per policy update, copies the trained weights into the belief that acts, writes
//! the update's statistics under the learner's own column names, and checkpoints it.

use super::trials::TrialColumns;
use super::Transition;
use crate::codec;
use crate::error::StateError;
use crate::nn::{Adam, Params};

/// A belief's training side: its canonical weights, optimiser and trial buffer.
pub trait BeliefLearner: Send {
    /// Names of the statistics [`BeliefLearner::update`] returns (metrics columns).
    fn columns(&self) -> &'static [&'static str];
    /// Records one batched transition; rows whose trial ends here complete a trial.
    fn record(&mut self, step: &Transition<'_>, trial_end: &[bool]);
    /// Trains on the buffer (once it holds a batch). Returns one value per column if
    /// any update ran.
    fn update(&mut self, threads: usize) -> Option<Vec<f64>>;
    /// The trained weights, to install into the belief that acts.
    fn params(&self) -> &Params;
    /// The trials it trains from.
    fn trials(&self) -> &TrialStore;
    /// The trials it trains from, to fill directly (`bamdp bench --learn-only` replays
    /// synthesised trials of the env's shapes).
    fn trials_mut(&mut self) -> &mut TrialStore;
    /// Complete trials per batch: [`BeliefLearner::update`] trains once the buffer
    /// holds this many.
    fn batch_trials(&self) -> usize;
    /// The buffer holds a batch, so [`BeliefLearner::update`] trains.
    fn has_batch(&self) -> bool {
        self.trials().buffer.len() >= self.batch_trials()
    }
    /// The complete training state.
    fn save_state(&self) -> LearnerState;
    /// Restores [`BeliefLearner::save_state`]'s output of a learner built from the same
    /// config.
    fn load_state(&mut self, state: LearnerState) -> Result<(), StateError>;
}

/// A learner's state: weights, optimiser moments and the trial buffer (stored as
/// tensors) and the rest (trials being recorded, random stream) encoded by
/// [`crate::codec`].
#[derive(Clone, Debug, PartialEq)]
pub struct LearnerState {
    pub params: Params,
    pub adam: Adam,
    pub buffer: TrialColumns,
    pub rest: Vec<u8>,
}

/// Checks that a saved learner's weights have the layout of `expected` (the learner
/// the config builds); `section` names the config section that decides it.
pub fn check_layout(saved: &Params, expected: &Params, section: &str) -> Result<(), StateError> {
    if saved.slots != expected.slots || saved.data.len() != expected.data.len() {
        return Err(StateError::Mismatch(format!(
            "the belief's weights do not match the [{section}] config"
        )));
    }
    Ok(())
}

/// The trials a learner trains from: the ring buffer of recent complete trials, the
/// trials being recorded (one per env row) and the stream batches are drawn from.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrialStore {
    pub buffer: super::trials::TrialBuffer,
    pub collector: super::trials::TrialCollector,
    pub rng: crate::rng::Rng,
}

impl TrialStore {
    /// A buffer of `capacity` trials, recording `rows` rows.
    pub fn new(
        capacity: usize,
        rows: usize,
        obs_dim: usize,
        action_width: usize,
        rng: crate::rng::Rng,
    ) -> Self {
        TrialStore {
            buffer: super::trials::TrialBuffer::new(capacity, obs_dim, action_width),
            collector: super::trials::TrialCollector::new(rows, obs_dim, action_width),
            rng,
        }
    }
    /// The store as the buffer's columns and the rest's [`crate::codec`] bytes (what
    /// [`LearnerState`] holds).
    pub fn save_parts(&self) -> (TrialColumns, Vec<u8>) {
        (
            self.buffer.to_columns(),
            codec::encode(&(&self.collector, &self.rng)),
        )
    }

    /// The store [`TrialStore::save_parts`] saved; `what` names it in errors.
    pub fn from_parts(
        buffer: &TrialColumns,
        rest: &[u8],
        what: &str,
    ) -> Result<TrialStore, StateError> {
        let (collector, rng) = codec::decode(rest, what)?;
        let buffer = super::trials::TrialBuffer::from_columns(buffer).map_err(|detail| {
            StateError::Decode {
                what: what.to_string(),
                detail,
            }
        })?;
        Ok(TrialStore {
            buffer,
            collector,
            rng,
        })
    }

    /// Records one batched transition; trials ending here enter the buffer.
    pub fn record(&mut self, step: &Transition<'_>, trial_end: &[bool]) {
        self.collector.record(step);
        self.collector.finish(trial_end, &mut self.buffer);
    }
}
