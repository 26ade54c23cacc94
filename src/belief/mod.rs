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

pub mod glibrl;
pub mod glm;
pub mod learner;
pub mod oracle;
pub mod trial_learner;
pub mod trials;
pub mod variational;

use crate::rng::Rng;

/// One batched transition, row-major, `rows` rows.
#[derive(Clone, Copy, Debug)]
pub struct Transition<'a> {
    pub obs: &'a [f32],
    /// Actions as stored in the action buffer (discrete: index as f32).
    pub action: &'a [f32],
    /// The environment's raw reward (never a normalised one: beliefs model the task).
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
    /// [`Belief::gather`] onto `state` itself, for a non-decreasing `src` of one entry
    /// per row (the planner's resampling), copying only the rows that change; `false`
    /// (state untouched) where a belief does not offer it, and the caller gathers into
    /// a second state. GLiBRL's rows (a d x d posterior each) are worth the saving.
    fn gather_in_place(&self, _state: &mut Self::State, _src: &[usize]) -> bool {
        false
    }
    /// The trainable parameters of a learned belief (None for exact beliefs), so a
    /// trainer can install updated weights into the copy that acts.
    fn params_mut(&mut self) -> Option<&mut crate::nn::Params> {
        None
    }
}

/// A belief that can predict rewards, so that particles can be simulated under it.
pub trait PlanningBelief: Belief + Sync
where
    Self::State: Send + Sync,
{
    /// Buffers for [`PlanningBelief::sample_rewards`].
    type Scratch: Send;
    fn predictive_scratch(&self) -> Self::Scratch;
    /// For every row of `state`: draw `nested` task samples from the row's belief and a
    /// reward from their equal mixture for the transition `(s, a, s')`; write the drawn
    /// reward to `sampled` and the mixture's mean reward to `mean`. Row `i` draws its
    /// random numbers from `rngs[i / rows_per_rng]`, rows in order.
    #[allow(clippy::too_many_arguments)]
    fn sample_rewards(
        &self,
        state: &Self::State,
        tr: &RewardQuery<'_>,
        nested: usize,
        rngs: &mut [Rng],
        rows_per_rng: usize,
        sampled: &mut [f32],
        mean: &mut [f32],
        scratch: &mut Self::Scratch,
    );
    /// [`Belief::update`] on the transitions whose rewards the last
    /// [`PlanningBelief::sample_rewards`] call with this `scratch` drew (same rows,
    /// `tr.reward` the drawn rewards): a belief may reuse what it computed there.
    fn update_sampled(
        &self,
        state: &mut Self::State,
        tr: &Transition<'_>,
        scratch: &mut Self::Scratch,
    ) {
        let _ = scratch;
        self.update(state, tr)
    }
}

/// The transitions whose rewards a belief is asked to predict, row-major.
#[derive(Clone, Copy, Debug)]
pub struct RewardQuery<'a> {
    pub obs: &'a [f32],
    pub action: &'a [f32],
    pub next_obs: &'a [f32],
    /// The belief's features of these rows ([`Belief::features`] of the state the
    /// query is made under), which the planner has at hand: a belief may read its
    /// posterior summary from them instead of recomputing it.
    pub features: &'a [f32],
}

/// A belief together with its batched state, behind an object-safe interface, so the
/// training loop can hold "whatever belief this method uses" without generics.
pub trait BatchedBelief: Send {
    fn feature_dim(&self) -> usize;
    fn reset(&mut self, mask: &[bool]);
    fn update(&mut self, tr: &Transition<'_>);
    fn features(&self, out: &mut [f32]);
    /// The batched state, encoded by [`crate::codec`] (checkpoints).
    fn save_state(&self) -> Vec<u8>;
    fn load_state(&mut self, bytes: &[u8]) -> Result<(), crate::error::StateError>;
    /// See [`Belief::params_mut`].
    fn params_mut(&mut self) -> Option<&mut crate::nn::Params>;
    /// The concrete [`Batched`] behind this object, for code that needs the typed
    /// model and state (a planner).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The [`BatchedBelief`] of any [`Belief`] whose state serialises.
pub struct Batched<B: Belief> {
    pub model: B,
    pub state: B::State,
}

impl<B: Belief> Batched<B> {
    pub fn new(model: B, rows: usize) -> Self {
        let state = model.init(rows);
        Batched { model, state }
    }
}

impl<B> BatchedBelief for Batched<B>
where
    B: Belief + Send + 'static,
    B::State: Send + serde::Serialize + serde::de::DeserializeOwned,
{
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn feature_dim(&self) -> usize {
        self.model.feature_dim()
    }
    fn reset(&mut self, mask: &[bool]) {
        self.model.reset(&mut self.state, mask)
    }
    fn update(&mut self, tr: &Transition<'_>) {
        self.model.update(&mut self.state, tr)
    }
    fn features(&self, out: &mut [f32]) {
        self.model.features(&self.state, out)
    }
    fn save_state(&self) -> Vec<u8> {
        crate::codec::encode(&self.state)
    }
    fn load_state(&mut self, bytes: &[u8]) -> Result<(), crate::error::StateError> {
        self.state = crate::codec::decode(bytes, "belief state")?;
        Ok(())
    }
    fn params_mut(&mut self) -> Option<&mut crate::nn::Params> {
        self.model.params_mut()
    }
}
