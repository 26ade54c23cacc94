//! The training loop, top to bottom: build the method's parts from the config, then
//! per update collect a rollout from the batched environments (the [`Actor`] steps:
//! belief update -> policy or planner -> action -> env step), train the belief's
//! learner on its trial buffer, compute advantages and update the policy (PPO, or EM
//! on the planner's targets for improver `smc`). The complete training state is
//! [`Checkpoint`], so a resumed run continues bit-identically.
//!
//! What a method builds (memory, belief, learner, planner) comes from its
//! [`Method`] impl (`crate::method`); nothing here depends on which method it is.

use super::actor::{
    input_norm, install_belief_params, make_plan_hook, spec_width, Actor, TrialResult,
};
pub use super::checkpoint::{Checkpoint, CHECKPOINT_FORMAT};
use crate::belief::Transition;
use crate::config::{Baseline, Config, PpoConfig};
use crate::env::{self, BatchEnv, Split};
use crate::error::UserError;
use crate::improve::normalize::{InputNorm, NormMode, RewardScaler};
use crate::improve::ppo::{self, RolloutBuffer, UpdateStats};
use crate::improve::{baseline, em};
use crate::method::{self, BeliefLearner, Method};
use crate::nn::{Adam, AgentNet, Params};
use crate::rng::{streams, Rng};

// Kept for callers of the former single-file trainer.
pub use super::actor::{ActorState, PlanHook};
pub use crate::method::glibrl::glibrl_model;
pub use crate::method::varibad::varibad_model;

/// The belief a method acts with (None: the policy's own memory, or nothing).
pub fn make_belief(
    cfg: &Config,
    spec: &crate::env::EnvSpec,
    rows: usize,
) -> Result<Option<Box<dyn crate::belief::BatchedBelief>>, UserError> {
    method::lookup(cfg.method).belief(cfg, spec, rows)
}

/// The network and its parameters for a config and env, deterministically from the seed.
pub fn build_agent(
    cfg: &Config,
    spec: &crate::env::EnvSpec,
    belief_dim: usize,
) -> Result<(AgentNet, Params), UserError> {
    Ok(method::build_agent(
        method::lookup(cfg.method),
        cfg,
        spec,
        belief_dim,
    ))
}

/// Everything a training run holds; [`Checkpoint`] is its serialisable image.
pub struct Trainer {
    pub cfg: Config,
    pub method: &'static dyn Method,
    pub env: Box<dyn BatchEnv>,
    pub net: AgentNet,
    pub params: Params,
    pub adam: Adam,
    pub actor: Actor,
    pub minibatch_rng: Rng,
    /// The policy input's running normaliser (`ppo.norm_obs`, `ppo.norm_belief`).
    pub input_norm: Option<InputNorm>,
    pub reward_scaler: Option<RewardScaler>,
    /// Trains the belief from a buffer of trials (learned beliefs only).
    pub learner: Option<Box<dyn BeliefLearner>>,
    pub update: u64,
    pub frames: u64,
    /// The last rollout (read by `bamdp bench --learn-only`, which replays it).
    pub buf: RolloutBuffer,
    /// The planner's target of every rollout sample (improver "smc").
    targets: Vec<f32>,
    raw_rewards: Vec<f32>,
    /// The observations before the current step (the `s` of recorded transitions).
    prev_obs: Vec<f32>,
}

/// What one update produced, for metrics.
#[derive(Clone, Debug, Default)]
pub struct UpdateReport {
    pub stats: UpdateStats,
    pub finished: Vec<TrialResult>,
    pub lr: f64,
    pub rollout_s: f64,
    pub learn_s: f64,
    /// The learner's statistics of this update, one per [`BeliefLearner::columns`]
    /// (once its buffer holds a batch).
    pub learner: Option<Vec<f64>>,
}

impl Trainer {
    /// The trainer of the config's built-in method.
    pub fn new(cfg: &Config) -> Result<Self, UserError> {
        Self::with_method(cfg, method::lookup(cfg.method))
    }

    /// The trainer of any [`Method`] (one defined outside bamdp, too), with the rest
    /// of the config.
    pub fn with_method(cfg: &Config, method: &'static dyn Method) -> Result<Self, UserError> {
        let rows = cfg.run.num_envs;
        // Before the env or any buffer exists: a one-row batch sizes a row.
        super::guard::check_training_memory(cfg, 0, 0)?;
        let options = cfg.env_options();
        let probe = env::probe(&cfg.env, Split::Train, cfg.seed, None, &options)?;
        let row_bytes = probe.as_ref().map_or(0, |p| p.row_bytes);
        if let Some(p) = &probe {
            super::guard::check_training_memory(cfg, p.spec.obs_dim, row_bytes)?;
        }
        let mut env = env::make(&cfg.env, rows, Split::Train, cfg.seed, &options)?;
        drop(probe);
        let spec = env.spec().clone();
        super::guard::check_training_memory(cfg, spec.obs_dim, row_bytes)?;
        let belief = method.belief(cfg, &spec, rows)?;
        let bdim = belief.as_ref().map_or(0, |b| b.feature_dim());
        let (net, params) = method::build_agent(method, cfg, &spec, bdim);
        super::guard::check_sequence_states(cfg, net.state_dim())?;
        super::guard::check_linear_baseline(cfg, &spec)?;
        let mut actor = Actor::new(&net, env.as_mut(), belief, cfg.seed, streams::ACTIONS);
        actor.plan = make_plan_hook(method, cfg, env.as_ref())?;
        let learner = method.learner(cfg, &spec, rows)?;
        let input_norm = input_norm(cfg, method.name(), spec.obs_dim, bdim)?;
        let buf = RolloutBuffer::new(
            cfg.run.steps_per_update,
            rows,
            net.input_dim,
            net.state_dim(),
            spec_width(&net),
        )
        .with_sequence_steps(cfg.ppo.sequence_steps(cfg.run.steps_per_update));
        let targets = if actor.plan.is_some() {
            vec![0.0; cfg.run.steps_per_update * rows * em::target_width(&net)]
        } else {
            Vec::new()
        };
        Ok(Trainer {
            targets,
            adam: Adam::new(params.len(), cfg.ppo.adam_eps),
            minibatch_rng: Rng::stream(cfg.seed, streams::MINIBATCH, 0),
            input_norm,
            reward_scaler: cfg
                .ppo
                .norm_reward
                .then(|| RewardScaler::new(rows, cfg.ppo.gamma)),
            learner,
            update: 0,
            frames: 0,
            buf,
            raw_rewards: vec![0.0; rows],
            prev_obs: vec![0.0; rows * spec.obs_dim],
            cfg: cfg.clone(),
            method,
            env,
            net,
            params,
            actor,
        })
    }

    pub fn frames_per_update(&self) -> u64 {
        (self.cfg.run.num_envs * self.cfg.run.steps_per_update) as u64
    }

    pub fn total_updates(&self) -> u64 {
        self.cfg.run.total_frames.div_ceil(self.frames_per_update())
    }

    /// Names of the learner's metrics columns (none without a learner).
    pub fn learner_columns(&self) -> &'static [&'static str] {
        self.learner.as_ref().map_or(&[], |l| l.columns())
    }

    /// Collects one rollout and runs one update of the belief's learner and the policy.
    pub fn train_update(&mut self) -> UpdateReport {
        let t0 = std::time::Instant::now();
        let mut report = UpdateReport::default();
        let steps = self.cfg.run.steps_per_update;
        for t in 0..steps {
            self.rollout_step(t, &mut report.finished);
        }
        let baseline_loss = match self.cfg.ppo.baseline {
            Baseline::Value => {
                let mut last = std::mem::take(&mut self.buf.last_value);
                self.actor.peek_values(
                    &self.net,
                    &self.params,
                    self.input_norm.as_ref(),
                    &mut last,
                );
                self.buf.last_value = last;
                None
            }
            Baseline::Linear => Some(baseline::fit_rollout(
                &mut self.buf,
                self.actor.spec.obs_dim,
                self.cfg.ppo.gamma,
            )),
        };
        self.buf
            .compute_gae(self.cfg.ppo.gamma as f32, self.cfg.ppo.gae_lambda as f32);
        report.rollout_s = t0.elapsed().as_secs_f64();

        let t1 = std::time::Instant::now();
        if let Some(learner) = self.learner.as_mut() {
            report.learner = learner.update(self.cfg.run.threads);
            if report.learner.is_some() {
                install_belief_params(&mut self.actor, learner.params());
            }
        }
        let lr = if self.cfg.ppo.anneal_lr {
            self.cfg.ppo.lr * (1.0 - self.update as f64 / self.total_updates() as f64)
        } else {
            self.cfg.ppo.lr
        };
        report.stats = self.improve_policy(lr);
        if let Some(loss) = baseline_loss {
            // The critic is not trained; the column reports the baseline's fit.
            report.stats.value_loss = loss;
        }
        report.learn_s = t1.elapsed().as_secs_f64();
        report.lr = lr;
        self.update += 1;
        self.frames += self.frames_per_update();
        report
    }

    /// Step `t` of the rollout: act, store the sample (and the planner's target), feed
    /// the learner, scale the reward.
    fn rollout_step(&mut self, t: usize, finished: &mut Vec<TrialResult>) {
        let (steps, rows) = (self.cfg.run.steps_per_update, self.cfg.run.num_envs);
        let id = self.net.input_dim;
        if self.buf.sequence_starts_at(t) {
            self.buf.h0_at(t).copy_from_slice(&self.actor.state.h);
        }
        let span = t * rows..(t + 1) * rows;
        self.prev_obs.copy_from_slice(&self.actor.state.obs);
        self.actor.step(
            &self.net,
            &self.params,
            self.env.as_mut(),
            NormMode::Updating(self.input_norm.as_mut()),
            &mut self.buf.x[t * rows * id..(t + 1) * rows * id],
            &mut self.buf.reset[span.clone()],
            &mut self.buf.logp[span.clone()],
            &mut self.buf.values[span.clone()],
            finished,
        );
        let w = self.buf.action_width;
        self.buf.actions[t * rows * w..(t + 1) * rows * w].copy_from_slice(&self.actor.actions);
        if let Some(hook) = self.actor.plan.as_ref() {
            let tw = self.targets.len() / (steps * rows);
            let dst = &mut self.targets[t * rows * tw..(t + 1) * rows * tw];
            if hook.out.target.is_empty() {
                // Continuous actions: the target is the weighted root actions' mean and
                // variance.
                let d = tw / 2;
                for r in 0..rows {
                    dst[r * tw..r * tw + d]
                        .copy_from_slice(&hook.out.root_mean[r * d..(r + 1) * d]);
                    dst[r * tw + d..(r + 1) * tw]
                        .copy_from_slice(&hook.out.root_var[r * d..(r + 1) * d]);
                }
            } else {
                dst.copy_from_slice(&hook.out.target);
            }
        }
        let out = &self.actor.out;
        for (i, r) in span.clone().enumerate() {
            // A BAMDP trial has a fixed horizon: its end is the end of the decision
            // process. Episode ends inside a trial do not cut returns (same task, the
            // agent's memory continues).
            self.buf.terminal[r] = out.trial_end[i];
            self.buf.truncated[r] = false;
        }
        // Learned beliefs train from complete trials of (s, a, r, s').
        if let Some(learner) = self.learner.as_mut() {
            let step = Transition {
                obs: &self.prev_obs,
                action: &self.actor.actions,
                reward: &out.reward,
                next_obs: &out.final_obs,
                episode_end: &[],
            };
            learner.record(&step, &out.trial_end);
        }
        self.raw_rewards.copy_from_slice(&out.reward);
        if let Some(sc) = self.reward_scaler.as_mut() {
            sc.scale(&mut self.raw_rewards, &out.trial_end);
        }
        self.buf.rewards[span].copy_from_slice(&self.raw_rewards);
    }

    /// The policy update of the rollout: PPO, or EM on the planner's targets.
    fn improve_policy(&mut self, lr: f64) -> UpdateStats {
        if self.actor.plan.is_some() {
            let em = em::update(
                &self.net,
                &mut self.params,
                &mut self.adam,
                &self.buf,
                &self.targets,
                &self.cfg.ppo,
                self.cfg.smc.value_coef,
                lr,
                &mut self.minibatch_rng,
                self.cfg.run.threads,
            );
            UpdateStats {
                policy_loss: em.policy_loss,
                value_loss: em.value_loss,
                entropy: em.entropy,
                grad_norm: em.grad_norm,
                ..Default::default()
            }
        } else {
            let linear = self.cfg.ppo.baseline == Baseline::Linear;
            // With the linear baseline nothing trains the critic: no value loss.
            let ppo_cfg = PpoConfig {
                value_coef: if linear { 0.0 } else { self.cfg.ppo.value_coef },
                ..self.cfg.ppo.clone()
            };
            ppo::update(
                &self.net,
                &mut self.params,
                &mut self.adam,
                &self.buf,
                &ppo_cfg,
                lr,
                &mut self.minibatch_rng,
                self.cfg.run.threads,
            )
        }
    }
}
