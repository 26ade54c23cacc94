//! `glibrl`: exact MNIW posteriors of generalised linear models over learnable basis
//! functions; the policy reads the posterior summaries; the bases and priors are trained
//! by the marginal likelihood of trials from a buffer ([`GlmLearner`]). With
//! `improver = "smc"` this is GLiBRL x SMC.

use super::Method;
use crate::belief::glibrl::{self, GlibrlModel, GlibrlSpec, GlibrlStats};
use crate::belief::learner::{check_layout, BeliefLearner, LearnerState, TrialStore};
use crate::belief::{Batched, BatchedBelief, Transition};
use crate::codec;
use crate::config::{Config, GlibrlConfig};
use crate::env::{ActionSpace, EnvSpec, KnownDynamics};
use crate::error::{StateError, UserError};
use crate::improve::smc::{NetPlanner, PlanStep, SmcSettings};
use crate::nn::{Adam, Params};
use crate::rng::{streams, Rng};

pub struct Glibrl;

impl Method for Glibrl {
    fn name(&self) -> &'static str {
        "glibrl"
    }
    fn about(&self) -> &'static str {
        "GLiBRL: exact MNIW posteriors of GLMs over learnable basis functions, trained by marginal likelihood; the policy sees (s, posterior summaries), PPO"
    }
    fn belief(
        &self,
        cfg: &Config,
        spec: &EnvSpec,
        rows: usize,
    ) -> Result<Option<Box<dyn BatchedBelief>>, UserError> {
        Ok(Some(Box::new(Batched::new(glibrl_model(cfg, spec)?, rows))))
    }
    fn learner(
        &self,
        cfg: &Config,
        spec: &EnvSpec,
        rows: usize,
    ) -> Result<Option<Box<dyn BeliefLearner>>, UserError> {
        let model = glibrl_model(cfg, spec)?;
        Ok(Some(Box::new(GlmLearner {
            adam: Adam::new(model.params.len(), 1e-8),
            trials: TrialStore::new(
                cfg.glibrl.buffer_trials,
                rows,
                spec.obs_dim,
                spec.action.width(),
                Rng::stream(cfg.seed, streams::VAE, 1),
            ),
            model,
            settings: cfg.glibrl.clone(),
        })))
    }
    fn planner(
        &self,
        _spec: &EnvSpec,
        settings: SmcSettings,
        dynamics: Box<dyn KnownDynamics>,
        rows: usize,
        threads: usize,
    ) -> Option<Box<dyn PlanStep>> {
        Some(Box::new(NetPlanner::<GlibrlModel>::new(
            settings, dynamics, rows, threads,
        )))
    }
}

/// The GLiBRL model a config describes, initialised deterministically from the seed.
pub fn glibrl_model(cfg: &Config, spec: &EnvSpec) -> Result<GlibrlModel, UserError> {
    let g = &cfg.glibrl;
    if let Some(&j) = g.transition_dims.iter().find(|&&j| j >= spec.obs_dim) {
        return Err(UserError::invalid(
            "glibrl.transition_dims",
            &format!("{:?}", g.transition_dims),
            &format!(
                "state dimensions below {} (env {} has {}-dimensional observations; {j} is out of range)",
                spec.obs_dim, spec.name, spec.obs_dim
            ),
        ));
    }
    let (action_dim, discrete_actions) = match spec.action {
        ActionSpace::Discrete(n) => (n, true),
        ActionSpace::Continuous { dim, .. } => (dim, false),
    };
    let gspec = GlibrlSpec {
        obs_dim: spec.obs_dim,
        action_dim,
        discrete_actions,
        basis_hidden: g.basis_hidden.clone(),
        features: g.features,
        reward_head: g.reward_head,
        transition_dims: g.transition_dims.clone(),
        init_lambda0: g.init_lambda0,
        init_psi0: g.init_psi0,
        init_nu0: g.init_nu0,
        noise_floor: g.noise_floor,
    };
    Ok(GlibrlModel::new(
        gspec,
        &mut Rng::stream(cfg.seed, streams::INIT, 2),
    ))
}

/// The learning side of GLiBRL: the canonical model, its optimiser and its trials.
pub struct GlmLearner {
    pub model: GlibrlModel,
    pub adam: Adam,
    pub trials: TrialStore,
    pub settings: GlibrlConfig,
}

impl GlmLearner {
    /// The configured number of marginal-likelihood updates (none until the buffer holds
    /// a full batch). Returns the mean statistics, if any update ran.
    pub fn train(&mut self) -> Option<GlibrlStats> {
        let g = &self.settings;
        if self.trials.buffer.len() < g.batch_trials {
            return None;
        }
        let rng = &mut self.trials.rng;
        let mut mean = GlibrlStats::default();
        for _ in 0..g.num_updates {
            let idx = self.trials.buffer.sample(g.batch_trials, rng);
            let trials = self.trials.buffer.gather(&idx);
            let steps = trials[0].len();
            let prefixes = glibrl::sample_prefixes(trials.len(), steps, g.prefixes, rng);
            let (stats, grad) = self
                .model
                .loss_and_grad(&trials, &prefixes, g.prefixes + 1)
                .expect("GLiBRL priors stay valid under the projected updates");
            self.adam.step(&mut self.model.params.data, &grad, g.lr);
            self.model.project_prior();
            mean.loss += stats.loss / g.num_updates as f64;
            mean.reward_noise = stats.reward_noise;
        }
        Some(mean)
    }
}

impl BeliefLearner for GlmLearner {
    fn columns(&self) -> &'static [&'static str] {
        &["glm_loss", "glm_reward_noise"]
    }
    fn record(&mut self, step: &Transition<'_>, trial_end: &[bool]) {
        self.trials.record(step, trial_end);
    }
    fn update(&mut self, _threads: usize) -> Option<Vec<f64>> {
        self.train().map(|s| vec![s.loss, s.reward_noise])
    }
    fn params(&self) -> &Params {
        &self.model.params
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
        LearnerState {
            params: self.model.params.clone(),
            adam: self.adam.clone(),
            rest: codec::encode(&self.trials),
        }
    }
    fn load_state(&mut self, state: LearnerState) -> Result<(), StateError> {
        check_layout(&state.params, &self.model.params, "glibrl")?;
        self.trials = codec::decode(&state.rest, "GLiBRL trials")?;
        self.model.params = state.params;
        self.adam = state.adam;
        Ok(())
    }
}
