//! Beliefs: how a history of transitions becomes the task representation the policy
//! (or a planner) conditions on.
//!
//! A belief model is split in two:
//! - the streaming side, used while acting: a batched [`Belief::State`] (one row per
//!   environment or per simulated particle) that is reset at trial start, advanced by
//!   one transition at a time, read out as features, and can be gathered by row index
//!   (so a planner can clone and resample particles without knowing what is inside);
//! - the training side, which lives with each model (RL2's memory is trained by the
//!   policy loss, VariBAD's by its ELBO, GLiBRL's by the marginal likelihood).
//!
//! Transitions are fed as `(s, a, r, s', episode_end)`; the features after feeding
//! transition t are what the policy sees together with `s'` at step t+1.

pub mod oracle;

/// One batched transition, row-major, `rows` rows.
#[derive(Clone, Copy, Debug)]
pub struct Transition<'a> {
    pub obs: &'a [f32],
    /// Actions as stored in the action buffer (discrete: index as f32).
    pub action: &'a [f32],
    pub reward: &'a [f32],
    /// The observation after the step (for a row whose episode ended: the episode's
    /// final observation, not the reset one).
    pub next_obs: &'a [f32],
    pub episode_end: &'a [bool],
}

/// A belief whose state can be advanced on the host, in a batch, without gradients.
pub trait Belief {
    type State: Clone;

    /// Width of the feature vector this belief gives the policy.
    fn feature_dim(&self) -> usize;
    /// A batch of `rows` prior beliefs.
    fn init(&self, rows: usize) -> Self::State;
    /// Reset the rows flagged in `mask` to the prior (trial start).
    fn reset(&self, state: &mut Self::State, mask: &[bool]);
    /// Condition every row on one more transition.
    fn update(&self, state: &mut Self::State, tr: &Transition<'_>);
    /// Write `rows * feature_dim()` features.
    fn features(&self, state: &Self::State, out: &mut [f32]);
    /// Copy rows `src[i]` of `from` into row `i` of `into` (particle cloning / resampling).
    fn gather(&self, from: &Self::State, src: &[usize], into: &mut Self::State);
}
