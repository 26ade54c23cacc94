//! The PPO training loop for belief x PPO methods, top to bottom: build the agent from
//! the config, collect a rollout from the batched environments (belief update -> policy
//! -> action -> env step), compute advantages, update. Also owns the complete training
//! state that a checkpoint stores, so a resumed run continues bit-identically.
//!
//! Methods today:
//! - `rl2`: the policy's own GRU memory over (s, a_prev, r_prev, done_prev) is the
//!   belief; PPO's gradient flows through it (back-propagation through the rollout).
//! - `oracle`: the policy reads the environment's exact belief next to the observation
//!   (the ceiling for learned beliefs).
//! - `varibad`: a GRU encoder gives q(m | history) = N(mu, diag sigma^2), trained as a
//!   VAE on the trial's rewards from a buffer of recent trials (several VAE updates per
//!   policy update); the policy reads (s, mu, log sigma^2) with no gradient into the
//!   encoder.
//! - `memoryless`: the policy sees only the current observation (the floor).

use crate::belief::glibrl::{self, GlibrlModel, GlibrlSpec, GlibrlStats};
use crate::belief::oracle::GridNaviBelief;
use crate::belief::trials::{TrialBuffer, TrialCollector, TrialRecord};
use crate::belief::variational::{
    ElboDraw, GruPath, RewardDecoderKind, VaeStats, VaribadModel, VaribadSpec,
};
use crate::belief::{Batched, BatchedBelief, Transition};
use crate::config::{Activation, Config};
use crate::env::{self, ActionSpace, BatchEnv, EnvSpec, Split, StepOut};
use crate::error::UserError;
use crate::improve::em;
use crate::improve::normalize::{RewardScaler, RunningMeanStd};
use crate::improve::ppo::{self, RolloutBuffer, UpdateStats};
use crate::improve::smc::{NetPlanner, NetPolicy, PlanOut, PlanStep, SmcSettings};
use crate::nn::agent::Scratch;
use crate::nn::host::{self, Act};
use crate::nn::{Adam, AgentNet, CoreSpec, MemorySpec, Params};
use crate::rng::{streams, Rng};
use serde::{Deserialize, Serialize};

pub use crate::config::METHODS;

/// Observations are clipped to this many standard deviations after normalisation.
const OBS_CLIP: f32 = 10.0;

/// The exact belief of an environment, for the oracle method.
pub fn oracle_belief(env_name: &str, rows: usize) -> Result<Box<dyn BatchedBelief>, UserError> {
    match env_name {
        "gridnavi" => Ok(Box::new(crate::belief::Batched::new(
            crate::belief::oracle::GridNaviBelief,
            rows,
        ))),
        other => Err(UserError::invalid(
            "method",
            "oracle",
            &format!(
                "a method other than `oracle` for env {other:?}, which exposes no exact belief"
            ),
        )),
    }
}

/// The VariBAD model a config describes, initialised deterministically from the seed.
pub fn varibad_model(cfg: &Config, spec: &EnvSpec) -> Result<VaribadModel, UserError> {
    let v = &cfg.varibad;
    let num_cells = match (v.reward_decoder, spec.name) {
        (RewardDecoderKind::Multihead, "gridnavi") => 25,
        (RewardDecoderKind::Multihead, other) => {
            return Err(UserError::invalid(
                "varibad.reward_decoder",
                "multihead",
                &format!(
                    "`mlp` for env {other:?} (the multi-head decoder needs a grid: env gridnavi)"
                ),
            ))
        }
        (RewardDecoderKind::Mlp, _) => 0,
    };
    let vspec = VaribadSpec {
        obs_dim: spec.obs_dim,
        action_dim: spec.action.input_width(),
        continuous_actions: matches!(spec.action, ActionSpace::Continuous { .. }),
        state_embed: v.state_embed,
        action_embed: v.action_embed,
        reward_embed: v.reward_embed,
        gru_hidden: v.gru_hidden,
        latent: v.latent,
        decoder_hidden: v.decoder_hidden.clone(),
        num_cells,
        reward_decoder: v.reward_decoder,
        reward_input_state: v.reward_input_state,
        reward_input_action: v.reward_input_action,
        reward_loss_coeff: v.reward_loss_coeff,
        decode_state: v.decode_state,
        state_loss_coeff: v.state_loss_coeff,
        state_decoder_hidden: v.state_decoder_hidden.clone(),
        kl_weight: v.kl_weight,
        kl_to_prior: v.kl_to_prior,
        kl_sum_over_trials: v.kl_sum_over_trials,
    };
    Ok(VaribadModel::new(
        vspec,
        &mut Rng::stream(cfg.seed, streams::INIT, 1),
    ))
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

/// The belief a method acts with (None: the policy's own memory, or nothing).
pub fn make_belief(
    cfg: &Config,
    spec: &EnvSpec,
    rows: usize,
) -> Result<Option<Box<dyn BatchedBelief>>, UserError> {
    Ok(match cfg.method.as_str() {
        "oracle" => Some(oracle_belief(&cfg.env, rows)?),
        "varibad" => Some(Box::new(Batched::new(varibad_model(cfg, spec)?, rows))),
        "glibrl" => Some(Box::new(Batched::new(glibrl_model(cfg, spec)?, rows))),
        _ => None,
    })
}

/// The network and its parameters for a config and env, deterministically from the seed.
pub fn build_agent(
    cfg: &Config,
    spec: &EnvSpec,
    belief_dim: usize,
) -> Result<(AgentNet, Params), UserError> {
    let (n_actions, gaussian) = match spec.action {
        ActionSpace::Discrete(n) => (n, false),
        ActionSpace::Continuous { dim, .. } => (dim, true),
    };
    let act = match cfg.policy.activation {
        Activation::Tanh => Act::Tanh,
        Activation::Relu => Act::Relu,
    };
    let mut rng = Rng::stream(cfg.seed, streams::INIT, 0);
    let mut params = Params::new();
    let net = match cfg.method.as_str() {
        "rl2" => {
            let mem = MemorySpec {
                obs_dim: spec.obs_dim,
                action_dim: n_actions,
                obs_embed: cfg.rl2.obs_embed,
                action_embed: cfg.rl2.action_embed,
                reward_embed: cfg.rl2.reward_embed,
                hidden: cfg.rl2.gru_hidden,
                core: Default::default(),
            };
            AgentNet::new(
                &mut params,
                spec.obs_dim + n_actions + 2,
                n_actions,
                &cfg.policy.hidden,
                act,
                Some(mem),
                &mut rng,
            )
        }
        "transformer" => {
            let t = &cfg.transformer;
            let mem = MemorySpec {
                obs_dim: spec.obs_dim,
                action_dim: n_actions,
                obs_embed: t.obs_embed,
                action_embed: t.action_embed,
                reward_embed: t.reward_embed,
                hidden: t.width,
                core: CoreSpec::Transformer(t.spec()),
            };
            AgentNet::new(
                &mut params,
                spec.obs_dim + n_actions + 2,
                n_actions,
                &cfg.policy.hidden,
                act,
                Some(mem),
                &mut rng,
            )
        }
        "oracle" | "varibad" | "glibrl" => AgentNet::new(
            &mut params,
            spec.obs_dim + belief_dim,
            n_actions,
            &cfg.policy.hidden,
            act,
            None,
            &mut rng,
        ),
        "memoryless" => AgentNet::new(
            &mut params,
            spec.obs_dim,
            n_actions,
            &cfg.policy.hidden,
            act,
            None,
            &mut rng,
        ),
        other => {
            return Err(UserError::invalid(
                "method",
                other,
                &format!(
                    "one of: {}",
                    METHODS.iter().map(|m| m.0).collect::<Vec<_>>().join(", ")
                ),
            ))
        }
    };
    let net = if gaussian {
        net.with_gaussian_head(&mut params)
    } else {
        net
    };
    Ok((net, params))
}

/// Per-row acting state: what the agent carries from one step to the next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActorState {
    pub obs: Vec<f32>,
    /// Recurrent memory, `rows * state_dim`.
    pub h: Vec<f32>,
    /// The previous action as the network sees it (one-hot or the raw vector), `rows * A`.
    pub prev_action: Vec<f32>,
    pub prev_reward: Vec<f32>,
    pub prev_done: Vec<f32>,
    /// The next step starts a trial (memory and belief reset).
    pub trial_start: Vec<bool>,
    /// Return of each episode of the current trial so far, `rows * k`.
    pub ep_returns: Vec<f64>,
    /// Success seen in each episode of the current trial, `rows * k`.
    pub ep_success: Vec<bool>,
    pub action_rngs: Vec<Rng>,
    /// Step within the current trial of each row (the planner simulates from it).
    #[serde(default)]
    pub trial_step: Vec<u32>,
    /// The planner's random stream per row (improver "smc").
    #[serde(default)]
    pub plan_rngs: Vec<Rng>,
}

/// Planning while acting (improver "smc"): the planner, its latest output per row,
/// and whether actions are drawn from its target or from the amortised policy.
pub struct PlanHook {
    pub planner: Box<dyn PlanStep>,
    pub out: PlanOut,
    pub act_by_planner: bool,
}

/// The planner hook of a config (None unless `improver = "smc"`).
pub fn make_plan_hook(
    cfg: &Config,
    spec: &EnvSpec,
    rows: usize,
) -> Result<Option<PlanHook>, UserError> {
    if cfg.improver != "smc" {
        return Ok(None);
    }
    let c = &cfg.smc;
    let settings = SmcSettings {
        particles: c.particles,
        nested: c.nested,
        depth: c.depth,
        eta: c.eta,
        gamma: cfg.ppo.gamma,
        resample_below: c.resample_below,
        advantage_reward: c.advantage_reward,
    };
    let dynamics = env::known_dynamics(spec)?;
    let threads = cfg.run.threads;
    let planner: Box<dyn PlanStep> = match cfg.method.as_str() {
        "oracle" if cfg.env == "gridnavi" => Box::new(NetPlanner::<GridNaviBelief>::new(
            settings, dynamics, rows, threads,
        )),
        "varibad" => Box::new(NetPlanner::<VaribadModel>::new(
            settings, dynamics, rows, threads,
        )),
        "glibrl" => Box::new(NetPlanner::<GlibrlModel>::new(
            settings, dynamics, rows, threads,
        )),
        other => {
            return Err(UserError::invalid(
                "improver",
                "smc",
                &format!("\"ppo\" for method {other:?} on env {:?}", cfg.env),
            ))
        }
    };
    Ok(Some(PlanHook {
        planner,
        out: PlanOut::default(),
        act_by_planner: c.act == "planner",
    }))
}

/// One completed trial's per-episode returns and successes.
#[derive(Clone, Debug, Default)]
pub struct TrialResult {
    pub returns: Vec<f64>,
    pub success: Vec<bool>,
}

/// Acts in a batch of environments with a network: shared by training and evaluation.
pub struct Actor {
    pub spec: EnvSpec,
    pub rows: usize,
    pub state: ActorState,
    pub belief: Option<Box<dyn BatchedBelief>>,
    belief_features: Vec<f32>,
    scratch: Scratch,
    logits: Vec<f32>,
    values: Vec<f32>,
    probs: Vec<f32>,
    x_next: Vec<f32>,
    h_tmp: Vec<f32>,
    pub out: StepOut,
    pub actions: Vec<f32>,
    episode_ends: Vec<bool>,
    pub greedy: bool,
    pub plan: Option<PlanHook>,
}

impl Actor {
    pub fn new(
        net: &AgentNet,
        env: &mut dyn BatchEnv,
        belief: Option<Box<dyn BatchedBelief>>,
        seed: u64,
        action_stream: u64,
    ) -> Self {
        let spec = env.spec().clone();
        let rows = env.num_envs();
        let mut obs = vec![0.0; rows * spec.obs_dim];
        env.reset(&mut obs);
        let k = spec.episodes_per_trial;
        let sd = net.state_dim();
        let bdim = belief.as_ref().map_or(0, |b| b.feature_dim());
        let mut actor = Actor {
            state: ActorState {
                obs,
                h: vec![0.0; rows * sd],
                prev_action: vec![0.0; rows * net.num_actions],
                prev_reward: vec![0.0; rows],
                prev_done: vec![0.0; rows],
                trial_start: vec![true; rows],
                ep_returns: vec![0.0; rows * k],
                ep_success: vec![false; rows * k],
                action_rngs: (0..rows)
                    .map(|r| Rng::stream(seed, action_stream, r as u64))
                    .collect(),
                trial_step: vec![0; rows],
                plan_rngs: plan_streams(seed, action_stream, rows),
            },
            belief,
            belief_features: vec![0.0; rows * bdim],
            scratch: net.scratch(rows),
            logits: vec![0.0; rows * net.num_actions],
            values: vec![0.0; rows],
            probs: vec![0.0; net.num_actions],
            x_next: vec![0.0; rows * net.input_dim],
            h_tmp: vec![0.0; rows * sd],
            out: StepOut::new(rows, spec.obs_dim),
            actions: vec![0.0; rows * spec_width(net)],
            episode_ends: vec![false; rows],
            greedy: false,
            plan: None,
            spec,
            rows,
        };
        if let Some(b) = actor.belief.as_mut() {
            b.reset(&vec![true; rows]);
        }
        actor
    }

    /// Writes the network input of the current step for every row into `x`.
    fn build_input(&mut self, net: &AgentNet, obs_rms: Option<&RunningMeanStd>, x: &mut [f32]) {
        let (od, id) = (self.spec.obs_dim, net.input_dim);
        let st = &self.state;
        for r in 0..self.rows {
            let xr = &mut x[r * id..(r + 1) * id];
            xr[..od].copy_from_slice(&st.obs[r * od..(r + 1) * od]);
            if let Some(rms) = obs_rms {
                rms.normalize(&mut xr[..od], OBS_CLIP);
            }
            if net.memory.is_some() {
                let rest = &mut xr[od..];
                let na = net.num_actions;
                if !st.trial_start[r] {
                    rest[..na].copy_from_slice(&st.prev_action[r * na..(r + 1) * na]);
                    rest[na] = st.prev_reward[r];
                    rest[na + 1] = st.prev_done[r];
                } else {
                    rest[..na + 2].iter_mut().for_each(|v| *v = 0.0);
                }
            } else if self.belief.is_some() {
                let bd = id - od;
                xr[od..].copy_from_slice(&self.belief_features[r * bd..(r + 1) * bd]);
            }
        }
    }

    /// One step of the whole batch: builds inputs (written to `x`), resets memory at
    /// trial starts (flags written to `reset`), runs the network, samples actions, steps
    /// the env, advances beliefs and bookkeeping. Returns the log-probabilities and values
    /// through the provided slices. Completed trials are appended to `finished`.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        net: &AgentNet,
        params: &Params,
        env: &mut dyn BatchEnv,
        obs_rms: Option<&RunningMeanStd>,
        x: &mut [f32],
        reset: &mut [f32],
        logp: &mut [f32],
        values: &mut [f32],
        finished: &mut Vec<TrialResult>,
    ) {
        let rows = self.rows;
        let sd = net.state_dim();
        if let Some(b) = self.belief.as_ref() {
            b.features(&mut self.belief_features);
        }
        self.build_input(net, obs_rms, x);
        for r in 0..rows {
            let start = self.state.trial_start[r];
            reset[r] = if start { 1.0 } else { 0.0 };
            if start {
                self.state.h[r * sd..(r + 1) * sd]
                    .iter_mut()
                    .for_each(|v| *v = 0.0);
            }
        }
        net.step(
            params,
            x,
            rows,
            &mut self.state.h,
            &mut self.scratch,
            &mut self.logits,
            &mut self.values,
        );
        values.copy_from_slice(&self.values);
        let na = net.num_actions;
        let mut planned = None;
        if let (Some(hook), Some(belief)) = (self.plan.as_mut(), self.belief.as_ref()) {
            let policy = NetPolicy {
                net,
                params,
                obs_rms,
                obs_clip: OBS_CLIP,
            };
            hook.planner.plan(
                belief.as_ref(),
                &policy,
                &self.state.obs,
                &self.state.trial_step,
                &mut self.state.plan_rngs,
                &mut hook.out,
            );
            if hook.act_by_planner {
                planned = Some(&hook.out);
            }
        }
        match net.log_std {
            None => {
                host::log_softmax_rows(&mut self.logits, na);
                for r in 0..rows {
                    let lp = &self.logits[r * na..(r + 1) * na];
                    let a = if let Some(plan) = planned {
                        let q = &plan.target[r * na..(r + 1) * na];
                        if self.greedy {
                            argmax(q)
                        } else {
                            self.state.action_rngs[r].categorical(q)
                        }
                    } else if self.greedy {
                        lp.iter()
                            .enumerate()
                            .fold(0, |best, (i, &v)| if v > lp[best] { i } else { best })
                    } else {
                        for (p, &l) in self.probs.iter_mut().zip(lp) {
                            *p = l.exp();
                        }
                        self.state.action_rngs[r].categorical(&self.probs)
                    };
                    logp[r] = lp[a];
                    self.actions[r] = a as f32;
                    let enc = &mut self.state.prev_action[r * na..(r + 1) * na];
                    enc.iter_mut().for_each(|v| *v = 0.0);
                    enc[a] = 1.0;
                }
            }
            Some(slot) => {
                // Diagonal Gaussian: a = mean + std * z; the env clips to its bounds.
                let log_std = params.get(slot);
                for r in 0..rows {
                    let mut lp = 0.0f32;
                    if let Some(plan) = planned {
                        // The planner's weighted root actions (their mean when greedy).
                        let k = plan.weights.len() / rows;
                        let chosen: &[f32] = if self.greedy {
                            &plan.root_mean[r * na..(r + 1) * na]
                        } else {
                            let j = self.state.action_rngs[r]
                                .categorical(&plan.weights[r * k..(r + 1) * k]);
                            &plan.root_actions[(r * k + j) * na..(r * k + j + 1) * na]
                        };
                        for j in 0..na {
                            let i = r * na + j;
                            self.actions[i] = chosen[j];
                            let z = (chosen[j] - self.logits[i]) * (-log_std[j]).exp();
                            lp += gaussian_log_density(z, log_std[j]);
                        }
                        logp[r] = lp;
                        continue;
                    }
                    for j in 0..na {
                        let i = r * na + j;
                        let z = if self.greedy {
                            0.0
                        } else {
                            self.state.action_rngs[r].normal() as f32
                        };
                        self.actions[i] = self.logits[i] + log_std[j].exp() * z;
                        lp += gaussian_log_density(z, log_std[j]);
                    }
                    logp[r] = lp;
                }
                self.state.prev_action.copy_from_slice(&self.actions);
            }
        }
        env.step(&self.actions, &mut self.out);

        let k = self.spec.episodes_per_trial;
        if let Some(b) = self.belief.as_mut() {
            for (r, e) in self.episode_ends.iter_mut().enumerate() {
                *e = self.out.episode_end(r);
            }
            b.update(&Transition {
                obs: &self.state.obs,
                action: &self.actions,
                reward: &self.out.reward,
                next_obs: &self.out.final_obs,
                episode_end: &self.episode_ends,
            });
            b.reset(&self.out.trial_end);
        }
        let st = &mut self.state;
        for r in 0..rows {
            let e = self.out.episode_index[r] as usize;
            st.ep_returns[r * k + e] += self.out.reward[r] as f64;
            st.ep_success[r * k + e] |= self.out.success[r];
            st.prev_reward[r] = self.out.reward[r];
            st.prev_done[r] = if self.out.episode_end(r) { 1.0 } else { 0.0 };
            st.trial_start[r] = self.out.trial_end[r];
            st.trial_step[r] = if self.out.trial_end[r] {
                0
            } else {
                st.trial_step[r] + 1
            };
            if self.out.trial_end[r] {
                finished.push(TrialResult {
                    returns: st.ep_returns[r * k..(r + 1) * k].to_vec(),
                    success: st.ep_success[r * k..(r + 1) * k].to_vec(),
                });
                st.ep_returns[r * k..(r + 1) * k]
                    .iter_mut()
                    .for_each(|v| *v = 0.0);
                st.ep_success[r * k..(r + 1) * k]
                    .iter_mut()
                    .for_each(|v| *v = false);
            }
        }
        st.obs.copy_from_slice(&self.out.obs);
    }

    /// Value of the current state of every row, without advancing anything.
    pub fn peek_values(
        &mut self,
        net: &AgentNet,
        params: &Params,
        obs_rms: Option<&RunningMeanStd>,
        out: &mut [f32],
    ) {
        if let Some(b) = self.belief.as_ref() {
            b.features(&mut self.belief_features);
        }
        let mut x = std::mem::take(&mut self.x_next);
        self.build_input(net, obs_rms, &mut x);
        let sd = net.state_dim();
        self.h_tmp.copy_from_slice(&self.state.h);
        for r in 0..self.rows {
            if self.state.trial_start[r] {
                self.h_tmp[r * sd..(r + 1) * sd]
                    .iter_mut()
                    .for_each(|v| *v = 0.0);
            }
        }
        net.step(
            params,
            &x,
            self.rows,
            &mut self.h_tmp,
            &mut self.scratch,
            &mut self.logits,
            out,
        );
        self.x_next = x;
    }
}

/// Index of the largest value (the first among equals).
fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

/// The planner's random streams of an actor whose actions use `action_stream`.
fn plan_streams(seed: u64, action_stream: u64, rows: usize) -> Vec<Rng> {
    (0..rows)
        .map(|r| Rng::stream(seed, streams::PLAN + 16 * action_stream, r as u64))
        .collect()
}

/// The VAE side of VariBAD: the canonical model, its optimiser, the buffer of recent
/// trials and the trials being recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VaeLearner {
    pub model: VaribadModel,
    pub adam: Adam,
    pub buffer: TrialBuffer,
    pub collector: TrialCollector,
    pub rng: Rng,
}

impl VaeLearner {
    /// The configured number of VAE updates on batches from the buffer (none until it
    /// holds a full batch). Returns the mean statistics, if any update ran.
    fn update(&mut self, cfg: &Config, threads: usize) -> Option<VaeStats> {
        let v = &cfg.varibad;
        if self.buffer.len() < v.batch_trials {
            return None;
        }
        let opt = |n: usize| (n > 0).then_some(n);
        let latent = self.model.spec.latent;
        let mut mean = VaeStats::default();
        for _ in 0..v.num_updates {
            let idx = self.buffer.sample(v.batch_trials, &mut self.rng);
            let trials = self.buffer.gather(&idx);
            // The batch's gradient in a fixed number of chunks, noise drawn in order,
            // computed on up to `threads` threads and summed in order: identical
            // results for any thread count.
            let per = trials.len().div_ceil(VAE_CHUNKS.min(trials.len()));
            let chunks: Vec<(&[&TrialRecord], ElboDraw)> = trials
                .chunks(per)
                .map(|c| {
                    let draw = ElboDraw::sample(
                        c[0].len(),
                        c.len(),
                        latent,
                        &mut self.rng,
                        opt(v.subsample_elbos),
                        opt(v.subsample_decodes),
                    );
                    (c, draw)
                })
                .collect();
            let model = &self.model;
            let n = trials.len();
            let results: Vec<(VaeStats, Vec<f32>)> = if threads > 1 && chunks.len() > 1 {
                std::thread::scope(|s| {
                    let handles: Vec<_> = chunks
                        .iter()
                        .map(|(c, d)| {
                            s.spawn(move || model.chunk_loss_and_grad(c, d, GruPath::Fused, n))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("VAE gradient thread"))
                        .collect()
                })
            } else {
                chunks
                    .iter()
                    .map(|(c, d)| model.chunk_loss_and_grad(c, d, GruPath::Fused, n))
                    .collect()
            };
            let mut grad = vec![0.0f32; self.model.params.len()];
            for ((c, _), (stats, g)) in chunks.iter().zip(&results) {
                grad.iter_mut().zip(g).for_each(|(a, b)| *a += b);
                let w = c.len() as f64 / n as f64 / v.num_updates as f64;
                mean.loss += stats.loss / v.num_updates as f64;
                mean.reconstruction += stats.reconstruction * w;
                mean.kl += stats.kl * w;
                mean.state_reconstruction += stats.state_reconstruction * w;
            }
            self.adam.step(&mut self.model.params.data, &grad, v.lr);
        }
        Some(mean)
    }
}

/// The learning side of GLiBRL: the canonical model, its optimiser, the buffer of
/// recent trials and the trials being recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GlmLearner {
    pub model: GlibrlModel,
    pub adam: Adam,
    pub buffer: TrialBuffer,
    pub collector: TrialCollector,
    pub rng: Rng,
}

impl GlmLearner {
    /// The configured number of marginal-likelihood updates (none until the buffer holds
    /// a full batch). Returns the mean statistics, if any update ran.
    fn update(&mut self, cfg: &Config) -> Option<GlibrlStats> {
        let g = &cfg.glibrl;
        if self.buffer.len() < g.batch_trials {
            return None;
        }
        let mut mean = GlibrlStats::default();
        for _ in 0..g.num_updates {
            let idx = self.buffer.sample(g.batch_trials, &mut self.rng);
            let trials = self.buffer.gather(&idx);
            let steps = trials[0].len();
            let prefixes = glibrl::sample_prefixes(trials.len(), steps, g.prefixes, &mut self.rng);
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

/// Chunks a VAE batch's gradient is computed in (independent of the thread count).
const VAE_CHUNKS: usize = 2;

/// Copies a trained belief's weights (VAE or GLiBRL) into the belief the actor acts
/// with.
/// Rows about to start a trial are reset again, so that they start from the new
/// weights' prior (GLiBRL's learned prior; VariBAD's reset does not depend on weights).
pub fn install_belief_params(actor: &mut Actor, trained: &Params) {
    if let Some(b) = actor.belief.as_mut() {
        if let Some(p) = b.params_mut() {
            p.data.copy_from_slice(&trained.data);
            b.reset(&actor.state.trial_start);
        }
    }
}

/// Width of one action in the env's action buffer for this network.
fn spec_width(net: &AgentNet) -> usize {
    if net.log_std.is_some() {
        net.num_actions
    } else {
        1
    }
}

/// log N(a; mean, std) of one dimension, from the standardised `z = (a - mean) / std`.
#[inline]
pub fn gaussian_log_density(z: f32, log_std: f32) -> f32 {
    -0.5 * z * z - log_std - 0.5 * (2.0 * std::f32::consts::PI).ln()
}

/// Everything a training run holds; `Checkpoint` is its serialisable image.
pub struct Trainer {
    pub cfg: Config,
    pub env: Box<dyn BatchEnv>,
    pub net: AgentNet,
    pub params: Params,
    pub adam: Adam,
    pub actor: Actor,
    pub minibatch_rng: Rng,
    pub obs_rms: Option<RunningMeanStd>,
    pub reward_scaler: Option<RewardScaler>,
    pub vae: Option<VaeLearner>,
    pub glm: Option<GlmLearner>,
    pub update: u64,
    pub frames: u64,
    buf: RolloutBuffer,
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
    /// VAE statistics of this update (VariBAD only, once the buffer holds a batch).
    pub vae: Option<VaeStats>,
    /// GLiBRL statistics of this update (once the buffer holds a batch).
    pub glm: Option<GlibrlStats>,
}

/// The full training state, written atomically as a checkpoint.
#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    pub update: u64,
    pub frames: u64,
    pub params: Params,
    pub adam: Adam,
    pub actor: ActorState,
    pub belief: Option<serde_json::Value>,
    pub env: serde_json::Value,
    pub minibatch_rng: Rng,
    pub obs_rms: Option<RunningMeanStd>,
    pub reward_scaler: Option<RewardScaler>,
    /// Wall-clock seconds of training before this checkpoint (for metrics continuity).
    #[serde(default)]
    pub wall_s: f64,
    #[serde(default)]
    pub vae: Option<VaeLearner>,
    #[serde(default)]
    pub glm: Option<GlmLearner>,
}

pub const CHECKPOINT_FORMAT: u32 = 1;

impl Trainer {
    pub fn new(cfg: &Config) -> Result<Self, UserError> {
        let rows = cfg.run.num_envs;
        let mut env = env::make(&cfg.env, rows, Split::Train, cfg.seed, &cfg.env_options())?;
        let spec = env.spec().clone();
        let belief = make_belief(cfg, &spec, rows)?;
        let bdim = belief.as_ref().map_or(0, |b| b.feature_dim());
        let (net, params) = build_agent(cfg, &spec, bdim)?;
        let mut actor = Actor::new(&net, env.as_mut(), belief, cfg.seed, streams::ACTIONS);
        actor.plan = make_plan_hook(cfg, &spec, rows)?;
        let aw = spec_width(&net);
        let vae = match cfg.method.as_str() {
            "varibad" => {
                let model = varibad_model(cfg, &spec)?;
                Some(VaeLearner {
                    adam: Adam::new(model.params.len(), 1e-8),
                    buffer: TrialBuffer::new(cfg.varibad.buffer_trials, spec.obs_dim, aw),
                    collector: TrialCollector::new(rows, spec.obs_dim, aw),
                    rng: Rng::stream(cfg.seed, streams::VAE, 0),
                    model,
                })
            }
            _ => None,
        };
        let glm = match cfg.method.as_str() {
            "glibrl" => {
                let model = glibrl_model(cfg, &spec)?;
                Some(GlmLearner {
                    adam: Adam::new(model.params.len(), 1e-8),
                    buffer: TrialBuffer::new(cfg.glibrl.buffer_trials, spec.obs_dim, aw),
                    collector: TrialCollector::new(rows, spec.obs_dim, aw),
                    rng: Rng::stream(cfg.seed, streams::VAE, 1),
                    model,
                })
            }
            _ => None,
        };
        let buf = RolloutBuffer::new(
            cfg.run.steps_per_update,
            rows,
            net.input_dim,
            net.state_dim(),
            spec_width(&net),
        );
        let targets = if actor.plan.is_some() {
            vec![0.0; cfg.run.steps_per_update * rows * em::target_width(&net)]
        } else {
            Vec::new()
        };
        Ok(Trainer {
            targets,
            adam: Adam::new(params.len(), cfg.ppo.adam_eps),
            minibatch_rng: Rng::stream(cfg.seed, streams::MINIBATCH, 0),
            obs_rms: cfg.ppo.norm_obs.then(|| RunningMeanStd::new(spec.obs_dim)),
            reward_scaler: cfg
                .ppo
                .norm_reward
                .then(|| RewardScaler::new(rows, cfg.ppo.gamma)),
            vae,
            glm,
            update: 0,
            frames: 0,
            buf,
            raw_rewards: vec![0.0; rows],
            prev_obs: vec![0.0; rows * spec.obs_dim],
            cfg: cfg.clone(),
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

    /// Collects one rollout and runs one PPO update.
    pub fn train_update(&mut self) -> UpdateReport {
        let t0 = std::time::Instant::now();
        let mut report = UpdateReport::default();
        let (steps, rows) = (self.cfg.run.steps_per_update, self.cfg.run.num_envs);
        let id = self.net.input_dim;
        self.buf.h0.copy_from_slice(&self.actor.state.h);
        for t in 0..steps {
            let span = t * rows..(t + 1) * rows;
            self.prev_obs.copy_from_slice(&self.actor.state.obs);
            if let Some(rms) = self.obs_rms.as_mut() {
                rms.update(&self.actor.state.obs, rows);
            }
            self.actor.step(
                &self.net,
                &self.params,
                self.env.as_mut(),
                self.obs_rms.as_ref(),
                &mut self.buf.x[t * rows * id..(t + 1) * rows * id],
                &mut self.buf.reset[span.clone()],
                &mut self.buf.logp[span.clone()],
                &mut self.buf.values[span.clone()],
                &mut report.finished,
            );
            let w = self.buf.action_width;
            self.buf.actions[t * rows * w..(t + 1) * rows * w].copy_from_slice(&self.actor.actions);
            if let Some(hook) = self.actor.plan.as_ref() {
                let tw = self.targets.len() / (steps * rows);
                let dst = &mut self.targets[t * rows * tw..(t + 1) * rows * tw];
                if hook.out.target.is_empty() {
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
            let step = Transition {
                obs: &self.prev_obs,
                action: &self.actor.actions,
                reward: &out.reward,
                next_obs: &out.final_obs,
                episode_end: &[],
            };
            let vae = self
                .vae
                .iter_mut()
                .map(|v| (&mut v.collector, &mut v.buffer));
            let glm = self
                .glm
                .iter_mut()
                .map(|g| (&mut g.collector, &mut g.buffer));
            for (collector, buffer) in vae.chain(glm) {
                collector.record(&step);
                collector.finish(&out.trial_end, buffer);
            }
            self.raw_rewards.copy_from_slice(&out.reward);
            if let Some(sc) = self.reward_scaler.as_mut() {
                sc.scale(&mut self.raw_rewards, &out.trial_end);
            }
            self.buf.rewards[span].copy_from_slice(&self.raw_rewards);
        }
        let mut last = std::mem::take(&mut self.buf.last_value);
        self.actor
            .peek_values(&self.net, &self.params, self.obs_rms.as_ref(), &mut last);
        self.buf.last_value = last;
        self.buf
            .compute_gae(self.cfg.ppo.gamma as f32, self.cfg.ppo.gae_lambda as f32);
        report.rollout_s = t0.elapsed().as_secs_f64();

        let t1 = std::time::Instant::now();
        if let Some(vae) = self.vae.as_mut() {
            report.vae = vae.update(&self.cfg, self.cfg.run.threads);
            if report.vae.is_some() {
                install_belief_params(&mut self.actor, &vae.model.params);
            }
        }
        if let Some(glm) = self.glm.as_mut() {
            report.glm = glm.update(&self.cfg);
            if report.glm.is_some() {
                install_belief_params(&mut self.actor, &glm.model.params);
            }
        }
        let lr = if self.cfg.ppo.anneal_lr {
            self.cfg.ppo.lr * (1.0 - self.update as f64 / self.total_updates() as f64)
        } else {
            self.cfg.ppo.lr
        };
        report.stats = if self.actor.plan.is_some() {
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
            ppo::update(
                &self.net,
                &mut self.params,
                &mut self.adam,
                &self.buf,
                &self.cfg.ppo,
                lr,
                &mut self.minibatch_rng,
                self.cfg.run.threads,
            )
        };
        report.learn_s = t1.elapsed().as_secs_f64();
        report.lr = lr;
        self.update += 1;
        self.frames += self.frames_per_update();
        report
    }

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            format: CHECKPOINT_FORMAT,
            update: self.update,
            frames: self.frames,
            params: self.params.clone(),
            adam: self.adam.clone(),
            actor: self.actor.state.clone(),
            belief: self.actor.belief.as_ref().map(|b| b.save_state()),
            env: self.env.save_state(),
            minibatch_rng: self.minibatch_rng.clone(),
            obs_rms: self.obs_rms.clone(),
            reward_scaler: self.reward_scaler.clone(),
            wall_s: 0.0,
            vae: self.vae.clone(),
            glm: self.glm.clone(),
        }
    }

    /// Restores a checkpoint taken from a trainer built with the same config.
    pub fn restore(&mut self, ck: Checkpoint) -> Result<(), String> {
        if ck.format != CHECKPOINT_FORMAT {
            return Err(format!(
                "checkpoint format {} is not supported (expected {})",
                ck.format, CHECKPOINT_FORMAT
            ));
        }
        if ck.params.slots != self.params.slots || ck.adam.m.len() != self.params.len() {
            return Err(
                "checkpoint parameters do not match the network the config describes".into(),
            );
        }
        let rows = self.cfg.run.num_envs;
        let st = &ck.actor;
        if st.obs.len() != self.actor.state.obs.len()
            || st.h.len() != self.actor.state.h.len()
            || st.action_rngs.len() != rows
        {
            return Err("checkpoint acting state does not match run.num_envs / the network".into());
        }
        self.env.load_state(&ck.env)?;
        let mut ck = ck;
        // Checkpoints from before planning existed lack the planner's per-row state.
        if ck.actor.trial_step.len() != rows {
            ck.actor.trial_step = vec![0; rows];
        }
        if ck.actor.plan_rngs.len() != rows {
            ck.actor.plan_rngs = plan_streams(self.cfg.seed, streams::ACTIONS, rows);
        }
        match (self.actor.belief.as_mut(), &ck.belief) {
            (Some(b), Some(v)) => b.load_state(v)?,
            (None, None) => {}
            _ => return Err("checkpoint belief state does not match the method".into()),
        }
        self.update = ck.update;
        self.frames = ck.frames;
        self.params = ck.params;
        self.adam = ck.adam;
        self.actor.state = ck.actor;
        self.minibatch_rng = ck.minibatch_rng;
        self.obs_rms = ck.obs_rms;
        self.reward_scaler = ck.reward_scaler;
        match (self.vae.is_some(), ck.vae) {
            (true, Some(v)) => {
                if v.model.params.slots
                    != self
                        .vae
                        .as_ref()
                        .map(|x| x.model.params.slots.clone())
                        .unwrap_or_default()
                {
                    return Err("checkpoint VAE does not match the [varibad] config".into());
                }
                install_belief_params(&mut self.actor, &v.model.params);
                self.vae = Some(v);
            }
            (false, None) => {}
            _ => return Err("checkpoint VAE state does not match the method".into()),
        }
        match (self.glm.is_some(), ck.glm) {
            (true, Some(g)) => {
                let expected = self.glm.as_ref().map(|x| &x.model.params.slots);
                if Some(&g.model.params.slots) != expected {
                    return Err("checkpoint GLiBRL model does not match the [glibrl] config".into());
                }
                install_belief_params(&mut self.actor, &g.model.params);
                self.glm = Some(g);
            }
            (false, None) => {}
            _ => return Err("checkpoint GLiBRL state does not match the method".into()),
        }
        Ok(())
    }
}
