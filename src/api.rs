//! The small surface that embedders (the Python package in python/, docs/python.md)
//! use: build a batch of environments, train a config, and act with a trained run one
//! step at a time while someone else steps the environment. Everything here wraps the
//! rest of the crate; nothing else in bamdp depends on it.
//!
//! [`RunAgent`] runs the same [`Actor`] as `bamdp eval` (same action streams, same
//! belief updates), so for the same run, seed, rows and observations it takes the
//! same actions. The actor steps its environment itself; here that environment is a
//! stand-in whose `step` hands the actions to the caller and waits for the outcome,
//! so the actor runs on its own thread and [`RunAgent::act`] / [`RunAgent::observe`]
//! pass buffers to and from it.
//!
//! ```
//! use bamdp::api;
//! use bamdp::env::{BatchEnv, StepOut};
//!
//! let mut env = api::make_env("gridnavi", 4, "train", 0, &api::EnvArgs::default())?;
//! let spec = env.spec().clone();
//! let mut obs = vec![0.0; 4 * spec.obs_dim];
//! env.reset(&mut obs);
//! let mut out = StepOut::new(4, spec.obs_dim);
//! env.step(&[0.0, 1.0, 2.0, 3.0], &mut out);
//! assert_eq!(out.reward.len(), 4);
//! assert!(api::make_env("grid", 4, "train", 0, &api::EnvArgs::default()).is_err());
//! # Ok::<(), bamdp::error::UserError>(())
//! ```

use crate::config::Config;
use crate::env::{self, ActionSpace, BatchEnv, EnvSpec, Split, StepOut};
use crate::error::UserError;
use crate::improve::maml::agent::MamlAgent;
use crate::improve::normalize::NormMode;
use crate::method;
use crate::rng::{streams, Rng};
use crate::run::actor::TrialResult;
use crate::run::eval::TrainedAgent;
use crate::run::train::{self, load_checkpoint, load_run_config};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Construction options of [`make_env`] beyond name, size, split and seed.
#[derive(Clone, Copy, Debug, Default)]
pub struct EnvArgs {
    /// Episodes per trial (default: the env's own).
    pub episodes_per_trial: Option<usize>,
    /// Steps per episode of the `functions-*` envs (`functions.episode_len`).
    pub episode_len: Option<usize>,
}

/// A batch of `num_envs` environments `name` drawing tasks from `split` ("train" or
/// "test"), seeded like `bamdp train` / `bamdp eval` seed theirs.
pub fn make_env(
    name: &str,
    num_envs: usize,
    split: &str,
    seed: u64,
    args: &EnvArgs,
) -> Result<Box<dyn BatchEnv>, UserError> {
    let split = Split::parse(split)?;
    if num_envs == 0 {
        return Err(UserError::invalid(
            "num_envs",
            "0",
            "a positive number of environments",
        ));
    }
    if args.episodes_per_trial == Some(0) {
        return Err(UserError::invalid(
            "episodes_per_trial",
            "0",
            "a positive number of episodes",
        ));
    }
    if !env::is_known(name) {
        return Err(UserError::invalid(
            "env",
            name,
            &format!(
                "one of: {}",
                env::ENVS.iter().map(|e| e.0).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let mut options = env::EnvOptions::default();
    options.functions.episode_len = args.episode_len;
    options.functions.check()?;
    env::make_with(
        name,
        num_envs,
        split,
        seed,
        args.episodes_per_trial,
        &options,
    )
}

/// The flag `bamdp train` polls for Ctrl-C, installing its signal handler on the first
/// call. Embedders that keep their own SIGINT handler swap handlers around [`train`].
pub fn interrupt_flag() -> Arc<AtomicBool> {
    train::install_ctrlc()
}

/// Options of [`train`]: the same as `bamdp train`'s flags.
#[derive(Clone, Debug, Default)]
pub struct TrainArgs {
    pub config: Option<PathBuf>,
    pub overrides: Vec<String>,
    pub out: Option<PathBuf>,
    pub resume: bool,
    pub force: bool,
    pub quiet: bool,
}

/// What [`train`] did: the run folder and whether Ctrl-C stopped it early (after
/// saving the checkpoint, as the CLI does).
#[derive(Clone, Debug)]
pub struct Trained {
    pub run: PathBuf,
    pub interrupted: bool,
}

/// Runs `bamdp train` with these flags.
pub fn train(args: &TrainArgs) -> Result<Trained, UserError> {
    let flag = interrupt_flag();
    flag.store(false, Ordering::SeqCst);
    let run = train::train(&train::TrainArgs {
        config: args.config.clone(),
        overrides: args.overrides.clone(),
        out: args.out.clone(),
        resume: args.resume,
        force: args.force,
        quiet: args.quiet,
    })?;
    Ok(Trained {
        run,
        interrupted: flag.swap(false, Ordering::SeqCst),
    })
}

/// Options of [`RunAgent::load`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AgentArgs {
    /// Rows acted for at once (default: `min(eval.num_tasks, 256)`, as `bamdp eval`).
    pub rows: Option<usize>,
    /// Seed of the action streams (default: the run's seed, as `bamdp eval`).
    pub seed: Option<u64>,
    /// Take the most likely action instead of sampling ...
    pub greedy: bool,
    /// ... from this episode of each trial on (0-based; 0: every episode). MetaWorld's
    /// evaluation samples while adapting and acts by the mode afterwards: the number of
    /// adaptation episodes. A MAML agent is greedy once adapted, whatever this says.
    pub greedy_from_episode: usize,
    /// Episodes per trial (default: the env's), as `bamdp eval --episodes-per-task`.
    pub episodes_per_trial: Option<usize>,
}

/// Messages to the actor thread.
enum ToActor {
    /// The first observations of every row (the actor's `reset`).
    Start(Vec<f32>),
    /// The outcome of the actions last handed out.
    Outcome(StepOut),
}

/// The actor's environment: `step` sends the actions to the caller and waits for the
/// outcome the caller observed.
struct RemoteEnv {
    spec: EnvSpec,
    rows: usize,
    first_obs: Vec<f32>,
    actions_tx: SyncSender<Vec<f32>>,
    outcome_rx: Receiver<ToActor>,
    /// The caller went away: the actor loop ends.
    closed: bool,
    spare: Vec<f32>,
}

impl BatchEnv for RemoteEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }
    fn num_envs(&self) -> usize {
        self.rows
    }
    fn reset(&mut self, obs: &mut [f32]) {
        obs.copy_from_slice(&self.first_obs);
    }
    fn step(&mut self, actions: &[f32], out: &mut StepOut) {
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        buf.extend_from_slice(actions);
        if self.actions_tx.send(buf).is_err() {
            self.closed = true;
            return;
        }
        match self.outcome_rx.recv() {
            Ok(ToActor::Outcome(mut o)) => std::mem::swap(out, &mut o),
            // The caller checks the protocol, so only a closed channel ends up here.
            _ => {
                self.closed = true;
                // A harmless outcome: no ends, so the actor's bookkeeping stays in range.
                out.terminated.iter_mut().for_each(|v| *v = false);
                out.truncated.iter_mut().for_each(|v| *v = false);
                out.trial_end.iter_mut().for_each(|v| *v = false);
                out.episode_index.iter_mut().for_each(|v| *v = 0);
            }
        }
    }
    fn save_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn load_state(&mut self, _: &serde_json::Value) -> Result<(), crate::error::StateError> {
        Err(crate::error::StateError::Mismatch(
            "an agent's stand-in environment has no state".into(),
        ))
    }
}

/// A trained run acting on observations that the caller supplies: alternate
/// [`act`](RunAgent::act) and [`observe`](RunAgent::observe).
pub struct RunAgent {
    spec: EnvSpec,
    rows: usize,
    config: Config,
    frames_trained: u64,
    to_actor: Option<SyncSender<ToActor>>,
    actions_rx: Receiver<Vec<f32>>,
    thread: Option<JoinHandle<()>>,
    started: bool,
    /// `act` handed out actions whose outcome has not been observed yet.
    pending: bool,
    episode_index: Vec<u32>,
    /// An outcome buffer recycled between steps.
    spare: Option<StepOut>,
    /// A MAML run acts here instead of on the actor thread.
    maml: Option<MamlAgent>,
}

impl RunAgent {
    /// Loads the latest checkpoint of the run folder `run`, as `bamdp eval` does.
    pub fn load(run: &Path, args: &AgentArgs) -> Result<RunAgent, UserError> {
        if !run.is_dir() {
            return Err(UserError::file(run, "no such run folder"));
        }
        let cfg = load_run_config(run)?;
        let rows = args.rows.unwrap_or(cfg.eval.num_tasks.min(256));
        if rows == 0 {
            return Err(UserError::invalid(
                "num_envs",
                "0",
                "a positive number of rows",
            ));
        }
        // The spec (sizes, horizon) from a one-row batch of the run's env.
        let spec = {
            let mut options = cfg.env_options();
            if args.episodes_per_trial.is_some() {
                options.functions.episodes_per_trial = None;
            }
            env::make_with(
                &cfg.env,
                1,
                Split::Test,
                cfg.seed,
                args.episodes_per_trial,
                &options,
            )?
            .spec()
            .clone()
        };
        let (to_actor, outcome_rx) = sync_channel::<ToActor>(1);
        let (actions_tx, actions_rx) = sync_channel::<Vec<f32>>(1);
        if cfg.improver == "maml" {
            let maml = load_maml(run, &cfg, &spec, rows, args)?;
            return Ok(RunAgent {
                rows,
                episode_index: vec![0; rows],
                spare: None,
                spec,
                frames_trained: maml.1,
                config: cfg,
                to_actor: None,
                actions_rx,
                thread: None,
                started: true,
                pending: false,
                maml: Some(maml.0),
            });
        }
        let ck = load_checkpoint(run)?;
        let mut env = RemoteEnv {
            spec: spec.clone(),
            rows,
            first_obs: Vec::new(),
            actions_tx,
            outcome_rx,
            closed: false,
            spare: Vec::new(),
        };
        let frames_trained = ck.frames;
        let agent = TrainedAgent::load(method::lookup(cfg.method), &cfg, ck, &env, run)?;
        let seed = args.seed.unwrap_or(cfg.seed);
        let greedy = crate::run::actor::Greedy::when(args.greedy, args.greedy_from_episode);
        let thread = std::thread::Builder::new()
            .name("bamdp-agent".into())
            .spawn(move || {
                let Ok(ToActor::Start(first_obs)) = env.outcome_rx.recv() else {
                    return;
                };
                env.first_obs = first_obs;
                let (policy, mut actor) = agent.start(&mut env, seed, greedy);
                let net = &policy.net;
                let mut finished: Vec<TrialResult> = Vec::new();
                let (mut x, mut reset, mut logp, mut values) = (
                    vec![0.0; rows * net.input_dim],
                    vec![0.0; rows],
                    vec![0.0; rows],
                    vec![0.0; rows],
                );
                while !env.closed {
                    actor.step(
                        net,
                        &policy.params,
                        &mut env,
                        NormMode::Frozen(policy.norm.as_ref()),
                        &mut x,
                        &mut reset,
                        &mut logp,
                        &mut values,
                        &mut finished,
                    );
                    finished.clear();
                }
            })
            .map_err(|e| UserError::Other(format!("cannot start the agent's thread: {e}")))?;
        Ok(RunAgent {
            rows,
            episode_index: vec![0; rows],
            spare: Some(StepOut::new(rows, spec.obs_dim)),
            spec,
            frames_trained,
            config: cfg,
            to_actor: Some(to_actor),
            actions_rx,
            thread: Some(thread),
            started: false,
            pending: false,
            maml: None,
        })
    }

    /// Whether the agent adapts its weights in [`adapt`](RunAgent::adapt) (MAML runs);
    /// other methods adapt by acting (memory or belief).
    pub fn adapts_weights(&self) -> bool {
        self.maml.is_some()
    }

    /// MAML's inner step on each row's steps since the trial started or the last
    /// `adapt` (its adaptation episodes); later actions come from the adapted weights
    /// until the row's trial ends. Nothing to do for other methods. Call it between an
    /// [`observe`](RunAgent::observe) and the next [`act`](RunAgent::act).
    pub fn adapt(&mut self) -> Result<(), UserError> {
        if self.pending {
            return Err(UserError::Other(
                "adapt called between act and observe: pass the outcome of the last actions first"
                    .into(),
            ));
        }
        if let Some(m) = self.maml.as_mut() {
            m.adapt();
        }
        Ok(())
    }

    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// The run's resolved config.
    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn frames_trained(&self) -> u64 {
        self.frames_trained
    }

    fn send(&mut self, msg: ToActor) -> Result<(), UserError> {
        let gone = || UserError::Other("the agent's actor thread has stopped".into());
        self.to_actor
            .as_ref()
            .ok_or_else(gone)?
            .send(msg)
            .map_err(|_| gone())
    }

    /// The actions for observations `obs` (`rows * obs_dim`), written to `actions`
    /// (`rows * action width`; discrete actions as their index). The first call starts
    /// the trials at `obs`; after that, `obs` must be the observations passed to the
    /// last [`observe`](RunAgent::observe).
    pub fn act(&mut self, obs: &[f32], actions: &mut [f32]) -> Result<(), UserError> {
        let od = self.spec.obs_dim;
        check_len("obs", obs.len(), self.rows, od)?;
        check_len(
            "actions",
            actions.len(),
            self.rows,
            self.spec.action.width(),
        )?;
        if self.pending {
            return Err(UserError::Other(
                "act called twice without observe: pass the outcome of the last actions first"
                    .into(),
            ));
        }
        if let Some(m) = self.maml.as_mut() {
            m.act(obs, actions);
            self.pending = true;
            return Ok(());
        }
        if !self.started {
            self.send(ToActor::Start(obs.to_vec()))?;
            self.started = true;
        }
        let got = self
            .actions_rx
            .recv()
            .map_err(|_| UserError::Other("the agent's actor thread has stopped".into()))?;
        actions.copy_from_slice(&got);
        self.pending = true;
        Ok(())
    }

    /// The outcome of the last actions: next observations (already reset where an
    /// episode ended), rewards, the three kinds of end per row, and optionally the last
    /// observation of each ended episode and the success signal.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        obs: &[f32],
        reward: &[f32],
        terminated: &[bool],
        truncated: &[bool],
        trial_end: &[bool],
        final_obs: Option<&[f32]>,
        success: Option<&[bool]>,
    ) -> Result<(), UserError> {
        let (n, od) = (self.rows, self.spec.obs_dim);
        check_len("obs", obs.len(), n, od)?;
        check_len("reward", reward.len(), n, 1)?;
        check_len("terminated", terminated.len(), n, 1)?;
        check_len("truncated", truncated.len(), n, 1)?;
        check_len("trial_end", trial_end.len(), n, 1)?;
        if let Some(f) = final_obs {
            check_len("final_obs", f.len(), n, od)?;
        }
        if let Some(s) = success {
            check_len("success", s.len(), n, 1)?;
        }
        if !self.pending {
            return Err(UserError::Other(
                "observe called without act: ask for actions first".into(),
            ));
        }
        let k = self.spec.episodes_per_trial as u32;
        for r in 0..n {
            let end = terminated[r] || truncated[r];
            if trial_end[r] && !end {
                return Err(UserError::invalid(
                    "trial_end",
                    &format!("true on row {r}"),
                    "true only where the episode also ended (terminated or truncated)",
                ));
            }
            if end && !trial_end[r] && self.episode_index[r] + 1 >= k {
                return Err(UserError::invalid(
                    "trial_end",
                    &format!("false on row {r}"),
                    &format!("true at the end of episode {k}, the trial's last"),
                ));
            }
        }
        if let Some(m) = self.maml.as_mut() {
            m.observe(reward, terminated, truncated, trial_end);
            for r in 0..n {
                self.episode_index[r] = if trial_end[r] {
                    0
                } else if terminated[r] || truncated[r] {
                    self.episode_index[r] + 1
                } else {
                    self.episode_index[r]
                };
            }
            self.pending = false;
            return Ok(());
        }
        let mut out = self.spare.take().unwrap_or_else(|| StepOut::new(n, od));
        out.obs.copy_from_slice(obs);
        out.final_obs.copy_from_slice(final_obs.unwrap_or(obs));
        out.reward.copy_from_slice(reward);
        out.terminated.copy_from_slice(terminated);
        out.truncated.copy_from_slice(truncated);
        out.trial_end.copy_from_slice(trial_end);
        match success {
            Some(s) => out.success.copy_from_slice(s),
            None => out.success.iter_mut().for_each(|v| *v = false),
        }
        for r in 0..n {
            out.episode_index[r] = self.episode_index[r];
            self.episode_index[r] = if trial_end[r] {
                0
            } else if terminated[r] || truncated[r] {
                self.episode_index[r] + 1
            } else {
                self.episode_index[r]
            };
        }
        self.send(ToActor::Outcome(out))?;
        self.pending = false;
        Ok(())
    }
}

impl Drop for RunAgent {
    fn drop(&mut self) {
        // Closing both channels ends the actor loop wherever it waits.
        self.to_actor = None;
        let (_tx, rx) = sync_channel(1);
        drop(std::mem::replace(&mut self.actions_rx, rx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The MAML policy of run `run` for `rows` rows acting on `spec`, as `bamdp eval`
/// meta-tests it (same action streams; greedy once adapted with `args.greedy`), and
/// the frames it was trained for.
fn load_maml(
    run: &Path,
    cfg: &Config,
    spec: &EnvSpec,
    rows: usize,
    args: &AgentArgs,
) -> Result<(MamlAgent, u64), UserError> {
    use crate::improve::maml::{agent::MamlSettings, rollout::AdvantageSettings, train};
    let ck = train::load_checkpoint(run)?;
    let policy = train::build_policy(cfg, spec);
    if ck.theta.len() != policy.len() {
        return Err(UserError::file(
            crate::run::train::checkpoint_path(run),
            "checkpoint parameters do not match the run's config.toml",
        ));
    }
    let m = &cfg.maml;
    let settings = MamlSettings {
        inner_lr: m.inner_lr,
        first_order: m.first_order,
        advantages: AdvantageSettings {
            gamma: m.gamma,
            gae_lambda: m.gae_lambda,
            normalize: m.normalize_advantages,
        },
        greedy_adapted: args.greedy,
    };
    let seed = args.seed.unwrap_or(cfg.seed);
    let rngs = (0..rows)
        .map(|r| Rng::stream(seed, streams::EVAL_ACTIONS, r as u64))
        .collect();
    let bounds = match spec.action {
        ActionSpace::Continuous { low, high, .. } => (low, high),
        ActionSpace::Discrete(_) => (f32::NEG_INFINITY, f32::INFINITY),
    };
    Ok((
        MamlAgent::new(policy, ck.theta, settings, rngs, bounds),
        ck.frames,
    ))
}

fn check_len(name: &str, len: usize, rows: usize, width: usize) -> Result<(), UserError> {
    if len != rows * width {
        return Err(UserError::invalid(
            name,
            &format!("{len} values"),
            &format!("{rows} rows x {width} = {} values", rows * width),
        ));
    }
    Ok(())
}
