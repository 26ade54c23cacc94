//! A MAML policy acting for a caller that steps the environment itself (the embedding
//! API, [`crate::api::RunAgent`], and through it MetaWorld's `MetaLearningAgent`
//! protocol): each row acts with its own parameters, records its adaptation samples,
//! and [`MamlAgent::adapt`] takes the inner step on them, exactly as the meta-test's
//! [`super::rollout::Collector`] does at the end of an adaptation block (same
//! advantages: returns to go, the per-task linear baseline, GAE, standardisation; same
//! inner step, [`Maml::inner_step`]). A row's parameters return to the meta-parameters
//! at the end of its trial.
//!
//! ```
//! use bamdp::improve::maml::agent::{MamlAgent, MamlSettings};
//! use bamdp::improve::maml::policy::{Activation, Head, Policy};
//! use bamdp::rng::Rng;
//! let policy = Policy::new(2, &[8], Activation::Tanh, Head::Gaussian { dim: 2 });
//! let theta = policy.init(&mut Rng::new(0));
//! let rngs = vec![Rng::new(1)];
//! let mut agent = MamlAgent::new(policy, theta.clone(), MamlSettings::default(), rngs, (-1.0, 1.0));
//! let mut a = [0.0f32; 2];
//! for (obs, reward) in [([0.1f32, 0.2], 1.0f32), ([0.3, -0.1], 0.0), ([-0.2, 0.4], 0.5)] {
//!     agent.act(&obs, &mut a);
//!     agent.observe(&[reward], &[false], &[false], &[false]);
//! }
//! agent.adapt(); // three steps with different advantages: the weights move
//! assert_ne!(agent.theta(0), &theta[..]);
//! ```

use super::meta::{AdaptBatch, Maml};
use super::policy::{Actor, Policy, Tape};
use super::rollout::AdvantageSettings;
use crate::improve::baseline::{gae, returns_to_go, standardize, LinearBaseline};
use crate::rng::Rng;

/// What the inner step needs besides the policy.
#[derive(Clone, Copy, Debug)]
pub struct MamlSettings {
    pub inner_lr: f64,
    pub first_order: bool,
    pub advantages: AdvantageSettings,
    /// Act by the policy's mode once adapted (`bamdp eval --greedy` on a MAML run).
    pub greedy_adapted: bool,
}

impl Default for MamlSettings {
    fn default() -> Self {
        MamlSettings {
            inner_lr: 0.1,
            first_order: false,
            advantages: AdvantageSettings {
                gamma: 0.99,
                gae_lambda: 1.0,
                normalize: true,
            },
            greedy_adapted: false,
        }
    }
}

/// One row's samples since its last inner step.
#[derive(Clone, Debug, Default)]
struct Samples {
    batch: AdaptBatch,
    rewards: Vec<f64>,
    steps: Vec<usize>,
    ends: Vec<bool>,
}

/// See the module doc.
pub struct MamlAgent {
    policy: Policy,
    meta_theta: Vec<f64>,
    thetas: Vec<Vec<f64>>,
    adapted: Vec<bool>,
    samples: Vec<Samples>,
    step_in_episode: Vec<usize>,
    settings: MamlSettings,
    rngs: Vec<Rng>,
    actor: Actor,
    action: Vec<f64>,
    head: Vec<f64>,
    bounds: (f32, f32),
}

impl MamlAgent {
    /// One row per action stream in `rngs`; actions are clamped to `bounds`.
    pub fn new(
        policy: Policy,
        theta: Vec<f64>,
        settings: MamlSettings,
        rngs: Vec<Rng>,
        bounds: (f32, f32),
    ) -> MamlAgent {
        let rows = rngs.len();
        MamlAgent {
            actor: Actor::new(&policy),
            action: vec![0.0; policy.action_width()],
            head: vec![0.0; policy.out_dim()],
            thetas: vec![theta.clone(); rows],
            meta_theta: theta,
            adapted: vec![false; rows],
            samples: vec![Samples::default(); rows],
            step_in_episode: vec![0; rows],
            settings,
            rngs,
            policy,
            bounds,
        }
    }

    pub fn rows(&self) -> usize {
        self.rngs.len()
    }

    /// Row `r`'s current parameters.
    pub fn theta(&self, r: usize) -> &[f64] {
        &self.thetas[r]
    }

    /// Actions for `obs` (`rows * obs_dim`) into `actions` (`rows * action width`).
    pub fn act(&mut self, obs: &[f32], actions: &mut [f32]) {
        let od = self.policy.obs_dim;
        let aw = self.policy.action_width();
        for r in 0..self.rows() {
            let o = &obs[r * od..(r + 1) * od];
            let greedy = self.adapted[r] && self.settings.greedy_adapted;
            self.actor.act(
                &self.policy,
                &self.thetas[r],
                o,
                greedy,
                &mut self.rngs[r],
                &mut self.action,
                &mut self.head,
            );
            for j in 0..aw {
                actions[r * aw + j] = (self.action[j] as f32).clamp(self.bounds.0, self.bounds.1);
            }
            let s = &mut self.samples[r].batch;
            s.obs.extend(o.iter().map(|&x| x as f64));
            s.actions.extend_from_slice(&self.action);
        }
    }

    /// The outcome of the last actions: rewards, episode ends and trial ends per row.
    pub fn observe(
        &mut self,
        reward: &[f32],
        terminated: &[bool],
        truncated: &[bool],
        trial_end: &[bool],
    ) {
        for r in 0..self.rows() {
            let end = terminated[r] || truncated[r];
            let s = &mut self.samples[r];
            s.rewards.push(reward[r] as f64);
            s.steps.push(self.step_in_episode[r]);
            s.ends.push(end);
            self.step_in_episode[r] = if end { 0 } else { self.step_in_episode[r] + 1 };
            if trial_end[r] {
                self.thetas[r].clone_from(&self.meta_theta);
                self.adapted[r] = false;
                s.clear();
            }
        }
    }

    /// The inner step of every row on its samples since its last inner step (rows
    /// without samples keep their parameters).
    pub fn adapt(&mut self) {
        let od = self.policy.obs_dim;
        let maml = Maml {
            policy: &self.policy,
            inner_lr: self.settings.inner_lr,
            first_order: self.settings.first_order,
            threads: 1,
        };
        let mut tape = Tape::default();
        let a = self.settings.advantages;
        for r in 0..self.rows() {
            let s = &mut self.samples[r];
            let n = s.rewards.len();
            if n == 0 {
                continue;
            }
            // The samples of the last act without its outcome are not a step.
            s.batch.obs.truncate(n * od);
            s.batch.actions.truncate(n * self.action.len());
            // An episode still running is cut here (GAE needs every sample's episode
            // to end within the batch; MetaWorld calls adapt after whole episodes).
            s.ends[n - 1] = true;
            let mut ret = vec![0.0; n];
            returns_to_go(&s.rewards, &s.ends, a.gamma, &mut ret);
            let baseline = LinearBaseline::fit(&s.batch.obs, &s.steps, &ret, od);
            let mut values = vec![0.0; n];
            baseline.predict(&s.batch.obs, &s.steps, od, &mut values);
            let mut adv = vec![0.0; n];
            gae(
                &s.rewards,
                &values,
                &s.ends,
                a.gamma,
                a.gae_lambda,
                &mut adv,
            );
            if a.normalize {
                standardize(&mut adv);
            }
            s.batch.advantages = adv;
            self.thetas[r] = maml.inner_step(&self.thetas[r], &s.batch, &mut tape);
            self.adapted[r] = true;
            s.clear();
        }
    }
}

impl Samples {
    fn clear(&mut self) {
        self.batch.obs.clear();
        self.batch.actions.clear();
        self.batch.advantages.clear();
        self.rewards.clear();
        self.steps.clear();
        self.ends.clear();
    }
}
