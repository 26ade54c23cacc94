//! `glibrl`: exact MNIW posteriors of generalised linear models over learnable basis
//! functions; the policy reads the posterior summaries; the bases and priors are trained
//! by the marginal likelihood of trials from a buffer ([`GlmLearner`]). With
//! `improver = "smc"` this is GLiBRL x SMC.

use super::Method;
use crate::belief::glibrl::{self, GlibrlModel, GlibrlSpec, PolicyInput};
use crate::belief::learner::BeliefLearner;
use crate::belief::trial_learner::{TrialLearner, TrialModel, TrialSettings};
use crate::belief::trials::TrialRecord;
use crate::belief::{Batched, BatchedBelief};
use crate::config::Config;
use crate::env::probes::{reward_probes, WITH_PROBES};
use crate::env::{ActionSpace, EnvSpec, KnownDynamics};
use crate::error::UserError;
use crate::improve::smc::{NetPlanner, PlanStep, SmcSettings};
use crate::nn::Params;
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
        let g = &cfg.glibrl;
        let objective = MarginalLikelihood {
            model: glibrl_model(cfg, spec)?,
            prefixes: g.prefixes,
        };
        let settings = TrialSettings {
            lr: g.lr,
            num_updates: g.num_updates,
            batch_trials: g.batch_trials,
            buffer_trials: g.buffer_trials,
        };
        Ok(Some(Box::new(GlmLearner::for_env(
            objective,
            settings,
            spec,
            rows,
            Rng::stream(cfg.seed, streams::VAE, 1),
            "glibrl",
        ))))
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
    let probes = reward_probes(spec);
    if g.policy_input == PolicyInput::Probes && (probes.is_none() || !g.reward_head) {
        let why = if g.reward_head {
            format!("env {} has no reward probes", spec.name)
        } else {
            "glibrl.reward_head is false".to_string()
        };
        return Err(UserError::invalid(
            "glibrl.policy_input",
            "probes",
            &format!(
                "\"diagonal\" or \"correlations\" here ({why}); \"probes\" needs the reward head and an env with reward probes: {}",
                WITH_PROBES.join(", ")
            ),
        ));
    }
    let gspec = GlibrlSpec {
        obs_dim: spec.obs_dim,
        action_dim,
        discrete_actions,
        config: g.clone(),
        probes,
    };
    Ok(GlibrlModel::new(
        gspec,
        &mut Rng::stream(cfg.seed, streams::INIT, 2),
    ))
}

/// GLiBRL's marginal-likelihood objective for [`TrialLearner`]: the model and the
/// random prefixes per trial.
pub struct MarginalLikelihood {
    pub model: GlibrlModel,
    /// Random prefixes `log p(Y_{1..n})` per trial added to the full-trial term.
    pub prefixes: usize,
}

/// The learning side of GLiBRL: the canonical model, its optimiser and its trials.
pub type GlmLearner = TrialLearner<MarginalLikelihood>;

impl TrialModel for MarginalLikelihood {
    /// The mean loss of the update and the reward noise after its last step.
    fn columns(&self) -> &'static [&'static str] {
        &["glm_loss", "glm_reward_noise"]
    }
    fn params(&self) -> &Params {
        &self.model.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.model.params
    }
    fn loss_and_grad(
        &self,
        trials: &[&TrialRecord],
        rng: &mut Rng,
        threads: usize,
        stats: &mut [f64],
        steps: usize,
    ) -> Vec<f32> {
        let prefixes = glibrl::sample_prefixes(trials.len(), trials[0].len(), self.prefixes, rng);
        let (step, grad) = self
            .model
            .loss_and_grad_on(trials, &prefixes, self.prefixes + 1, threads)
            .expect("GLiBRL priors stay valid under the projected updates");
        stats[0] += step.loss / steps as f64;
        stats[1] = step.reward_noise;
        grad
    }
    fn after_step(&mut self) {
        self.model.project_prior();
    }
}
