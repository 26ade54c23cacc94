//! Acting: one step of a batch of environments with a network — belief features and
//! network input, memory resets at trial starts, the planner's call (improver `smc`),
//! action sampling, the env step, the belief update and trial bookkeeping. Shared by
//! training and evaluation; allocates nothing per step.

use crate::belief::{BatchedBelief, Transition};
use crate::config::Config;
use crate::env::{BatchEnv, EnvSpec, StepOut};
use crate::error::UserError;
use crate::improve::normalize::{InputNorm, NormMode};
use crate::improve::smc::{NetPolicy, PlanOut, PlanStep, SmcSettings};
use crate::method::{Improver, Method};
use crate::nn::agent::Scratch;
use crate::nn::head::{argmax, Head};
use crate::nn::host;
use crate::nn::{AgentNet, Params};
use crate::rng::{streams, Rng};
use serde::{Deserialize, Serialize};

/// Observations are clipped to this many standard deviations after normalisation.
pub const OBS_CLIP: f32 = 10.0;

/// The policy input's normaliser `cfg` asks for (`ppo.norm_obs`, `ppo.norm_belief`),
/// with fresh statistics, for observations of `obs_dim` and a belief of `feature_dim`
/// features (0: the method's policy reads none).
pub fn input_norm(
    cfg: &Config,
    method: &str,
    obs_dim: usize,
    feature_dim: usize,
) -> Result<Option<InputNorm>, UserError> {
    if cfg.ppo.norm_belief && feature_dim == 0 {
        return Err(UserError::invalid(
            "ppo.norm_belief",
            "true",
            &format!("false for method {method} (its policy reads no belief features)"),
        ));
    }
    Ok(
        InputNorm::span(cfg.ppo.norm_obs, cfg.ppo.norm_belief, obs_dim, feature_dim)
            .map(|span| InputNorm::new(span, OBS_CLIP)),
    )
}

/// Which episodes of a trial act by the policy's mode (the planner's most likely
/// action) instead of sampling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Greedy {
    /// Every action is sampled (training, and evaluations unless asked).
    #[default]
    Never,
    /// Episodes from this one on (0-based): 0 for a whole trial, `adaptation` for
    /// MetaWorld's protocol, whose agents explore while adapting and act by the mode in
    /// the evaluation episodes (`eval_action`).
    FromEpisode(usize),
}

impl Greedy {
    /// `FromEpisode(first)` when `greedy`, else `Never`: a greedy flag and where the
    /// evaluated episodes start.
    pub fn when(greedy: bool, first: usize) -> Greedy {
        if greedy {
            Greedy::FromEpisode(first)
        } else {
            Greedy::Never
        }
    }

    /// The first episode acting greedily (`None`: never).
    pub fn first(self) -> Option<usize> {
        match self {
            Greedy::FromEpisode(first) => Some(first),
            Greedy::Never => None,
        }
    }

    /// Whether a step of episode `episode` (0-based) acts greedily.
    pub fn at(self, episode: usize) -> bool {
        matches!(self, Greedy::FromEpisode(first) if episode >= first)
    }
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
    method: &dyn Method,
    cfg: &Config,
    env: &dyn BatchEnv,
) -> Result<Option<PlanHook>, UserError> {
    if cfg.improver != Improver::Smc {
        return Ok(None);
    }
    let c = &cfg.smc;
    let settings = SmcSettings {
        config: c.clone(),
        gamma: cfg.ppo.gamma,
    };
    let dynamics = env.known_dynamics()?;
    let spec = env.spec();
    let planner = method
        .planner(spec, settings, dynamics, env.num_envs(), cfg.run.threads)
        .ok_or_else(|| {
            UserError::invalid(
                "improver",
                "smc",
                &format!(
                    "\"ppo\" for method {:?} on env {:?}",
                    method.name(),
                    cfg.env
                ),
            )
        })?;
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
    /// The row that played it.
    pub row: usize,
    /// Its task's index in the split's task list, where the env has one
    /// ([`BatchEnv::task_index`]).
    pub task: Option<u32>,
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
    /// One row's Gaussian mean and log standard deviations ([`Head::gaussian_row`]).
    gaussian_row: Vec<f32>,
    values: Vec<f32>,
    probs: Vec<f32>,
    x_next: Vec<f32>,
    h_tmp: Vec<f32>,
    pub out: StepOut,
    pub actions: Vec<f32>,
    episode_ends: Vec<bool>,
    /// Each row's current task (read at trial start, reported with the trial).
    trial_task: Vec<Option<u32>>,
    /// The episode of the trial (0-based) each row's next step belongs to, for
    /// `greedy`. Not checkpointed: only evaluations (fresh actors) act greedily.
    episode: Vec<usize>,
    pub greedy: Greedy,
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
            logits: vec![0.0; rows * net.out_width()],
            gaussian_row: vec![0.0; net.out_width()],
            values: vec![0.0; rows],
            probs: vec![0.0; net.num_actions],
            x_next: vec![0.0; rows * net.input_dim],
            h_tmp: vec![0.0; rows * sd],
            out: StepOut::new(rows, spec.obs_dim),
            actions: vec![0.0; rows * spec_width(net)],
            episode_ends: vec![false; rows],
            trial_task: (0..rows).map(|r| env.task_index(r)).collect(),
            episode: vec![0; rows],
            greedy: Greedy::Never,
            plan: None,
            spec,
            rows,
        };
        if let Some(b) = actor.belief.as_mut() {
            b.reset(&vec![true; rows]);
        }
        actor
    }

    /// Writes the network input of the current step for every row into `x`, with the
    /// belief's features computed now, then normalised as `norm` says.
    fn build_input(&mut self, net: &AgentNet, norm: &mut NormMode<'_>, x: &mut [f32]) {
        if let Some(b) = self.belief.as_ref() {
            b.features(&mut self.belief_features);
        }
        let (od, id) = (self.spec.obs_dim, net.input_dim);
        let st = &self.state;
        for r in 0..self.rows {
            let xr = &mut x[r * id..(r + 1) * id];
            xr[..od].copy_from_slice(&st.obs[r * od..(r + 1) * od]);
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
        let x = &mut x[..self.rows * id];
        norm.observe(x, self.rows, id);
        if let Some(n) = norm.current() {
            x.chunks_exact_mut(id).for_each(|xr| n.normalize_row(xr));
        }
    }

    /// One step of the whole batch: builds inputs (written to `x`), resets memory at
    /// trial starts (flags written to `reset`), runs the network, samples actions, steps
    /// the env, advances beliefs and bookkeeping. Returns the log-probabilities and values
    /// through the provided slices. Completed trials are appended to `finished`.
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::needless_range_loop)] // parallel arrays share one index
    pub fn step(
        &mut self,
        net: &AgentNet,
        params: &Params,
        env: &mut dyn BatchEnv,
        mut norm: NormMode<'_>,
        x: &mut [f32],
        reset: &mut [f32],
        logp: &mut [f32],
        values: &mut [f32],
        finished: &mut Vec<TrialResult>,
    ) {
        let rows = self.rows;
        let sd = net.state_dim();
        self.build_input(net, &mut norm, x);
        let norm = norm.current();
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
            let policy = NetPolicy { net, params, norm };
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
        match Head::of(net) {
            Head::Categorical => {
                host::log_softmax_rows(&mut self.logits, na);
                for r in 0..rows {
                    let lp = &self.logits[r * na..(r + 1) * na];
                    let rng = &mut self.state.action_rngs[r];
                    let greedy = self.greedy.at(self.episode[r]);
                    let a = match planned {
                        // The planner's target (its most likely action when greedy).
                        Some(plan) => {
                            let q = &plan.target[r * na..(r + 1) * na];
                            if greedy {
                                argmax(q)
                            } else {
                                rng.categorical(q)
                            }
                        }
                        None => Head::sample_categorical(lp, &mut self.probs, rng, greedy),
                    };
                    logp[r] = lp[a];
                    self.actions[r] = a as f32;
                    let enc = &mut self.state.prev_action[r * na..(r + 1) * na];
                    enc.iter_mut().for_each(|v| *v = 0.0);
                    enc[a] = 1.0;
                }
            }
            head => {
                let ow = net.out_width();
                for r in 0..rows {
                    let span = r * na..(r + 1) * na;
                    let (mean, log_std) = head.gaussian_row(
                        params,
                        &self.logits[r * ow..(r + 1) * ow],
                        &mut self.gaussian_row,
                    );
                    let rng = &mut self.state.action_rngs[r];
                    let greedy = self.greedy.at(self.episode[r]);
                    logp[r] = match planned {
                        // The planner's weighted root actions (their mean when greedy).
                        Some(plan) => {
                            let k = plan.weights.len() / rows;
                            let chosen: &[f32] = if greedy {
                                &plan.root_mean[span.clone()]
                            } else {
                                let j = rng.categorical(&plan.weights[r * k..(r + 1) * k]);
                                &plan.root_actions[(r * k + j) * na..(r * k + j + 1) * na]
                            };
                            self.actions[span.clone()].copy_from_slice(chosen);
                            Head::gaussian_log_prob(chosen, mean, log_std)
                        }
                        None => Head::sample_gaussian(
                            mean,
                            log_std,
                            rng,
                            greedy,
                            &mut self.actions[span],
                        ),
                    };
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
            self.episode[r] = if self.out.trial_end[r] {
                0
            } else if self.out.episode_end(r) {
                e + 1
            } else {
                e
            };
            st.trial_step[r] = if self.out.trial_end[r] {
                0
            } else {
                st.trial_step[r] + 1
            };
            if self.out.trial_end[r] {
                finished.push(TrialResult {
                    returns: st.ep_returns[r * k..(r + 1) * k].to_vec(),
                    success: st.ep_success[r * k..(r + 1) * k].to_vec(),
                    row: r,
                    task: self.trial_task[r],
                });
                self.trial_task[r] = env.task_index(r);
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
        norm: Option<&InputNorm>,
        out: &mut [f32],
    ) {
        let mut x = std::mem::take(&mut self.x_next);
        self.build_input(net, &mut NormMode::Frozen(norm), &mut x);
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

/// The planner's random streams of an actor whose actions use `action_stream`.
pub fn plan_streams(seed: u64, action_stream: u64, rows: usize) -> Vec<Rng> {
    (0..rows)
        .map(|r| Rng::stream(seed, streams::PLAN + 16 * action_stream, r as u64))
        .collect()
}

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
pub fn spec_width(net: &AgentNet) -> usize {
    Head::of(net).action_width(net.num_actions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{self, EnvOptions, Split};
    use crate::nn::host::Act;

    /// Steps a memoryless policy on GridNavi through one trial per row and returns, per
    /// step, the episode it belonged to and whether row 0 drew from its action stream
    /// (a greedy action draws nothing).
    fn draws_by_episode(greedy: Greedy) -> Vec<(u32, bool)> {
        let mut env =
            env::make_with("gridnavi", 2, Split::Test, 5, None, &EnvOptions::default()).unwrap();
        let spec = env.spec().clone();
        let (mut p, mut rng) = (Params::new(), Rng::new(1));
        let net = AgentNet::new(&mut p, spec.obs_dim, 5, &[8], Act::Tanh, None, &mut rng);
        let mut actor = Actor::new(&net, env.as_mut(), None, 9, streams::EVAL_ACTIONS);
        actor.greedy = greedy;
        let rows = 2;
        let (mut x, mut reset) = (vec![0.0; rows * net.input_dim], vec![0.0; rows]);
        let (mut logp, mut values, mut done) = (vec![0.0; rows], vec![0.0; rows], Vec::new());
        let mut seen = Vec::new();
        while done.is_empty() {
            let before = actor.state.action_rngs[0].clone();
            actor.step(
                &net,
                &p,
                env.as_mut(),
                NormMode::Frozen(None),
                &mut x,
                &mut reset,
                &mut logp,
                &mut values,
                &mut done,
            );
            seen.push((
                actor.out.episode_index[0],
                actor.state.action_rngs[0] != before,
            ));
        }
        seen
    }

    #[test]
    fn greedy_episodes_draw_no_actions_and_the_others_sample() {
        let k = 4; // GridNavi's episodes per trial
        let never = draws_by_episode(Greedy::Never);
        assert_eq!(never.last().unwrap().0 as usize, k - 1);
        assert!(never.iter().all(|&(_, drew)| drew));
        assert!(draws_by_episode(Greedy::FromEpisode(0))
            .iter()
            .all(|&(_, drew)| !drew));
        // MetaWorld's protocol with 2 adaptation episodes: they sample, the rest act by
        // the mode.
        let from_two = draws_by_episode(Greedy::FromEpisode(2));
        assert!(from_two.iter().any(|&(e, _)| e == 3));
        for (episode, drew) in from_two {
            assert_eq!(drew, episode < 2, "episode {episode}");
        }
    }
}
