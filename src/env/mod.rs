//! Batched BAMDP environments: the trait every environment implements, the task
//! splits, and the per-step output with its three kinds of end.
//!
//! A *trial* is `episodes_per_trial` consecutive episodes of one task. The batch steps
//! all its environments in lock-step; each row owns a deterministic random stream for
//! its tasks ([`crate::rng::Rng::stream`]), so results never depend on thread count.
//!
//! Ends are reported separately, because they mean different things to a learner:
//! - `terminated`: the episode reached a true terminal state (no bootstrapping);
//! - `truncated`: the episode hit its time limit (bootstrap from `final_obs`);
//! - `trial_end`: the last episode of the trial ended; the belief resets and the row
//!   starts a fresh trial on a newly sampled task.
//!
//! `new` leaves a batch ready to step (first tasks drawn); `reset` starts fresh trials.
//! A task, once drawn, is played: `reset` draws a new task only for rows whose current
//! trial has begun, so resetting a batch that was just built (as the actor does) keeps
//! its first tasks, and a test split's task list is played in turn without gaps.
//! After any episode end the row is reset automatically: `obs` holds the first
//! observation of the next episode and `final_obs` the last one of the ended episode.

pub mod functions;
pub mod gridnavi;
pub mod mujoco;
pub mod point_robot;
pub mod probes;
pub mod python;
pub mod replay;

use crate::error::{StateError, UserError};

/// Which task distribution a batch draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn parse(s: &str) -> Result<Split, UserError> {
        match s {
            "train" => Ok(Split::Train),
            "test" => Ok(Split::Test),
            other => Err(UserError::invalid("--split", other, "one of: train, test")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// The action space of an environment.
#[derive(Clone, Debug, PartialEq)]
pub enum ActionSpace {
    /// `n` discrete actions, encoded as `0..n`.
    Discrete(usize),
    /// A box of `dim` continuous actions in `[low, high]` per dimension.
    Continuous { dim: usize, low: f32, high: f32 },
}

impl ActionSpace {
    /// Width of one action in a flat action buffer (1 for discrete).
    pub fn width(&self) -> usize {
        match self {
            ActionSpace::Discrete(_) => 1,
            ActionSpace::Continuous { dim, .. } => *dim,
        }
    }
    /// Width of the action as a network input (one-hot size for discrete).
    pub fn input_width(&self) -> usize {
        match self {
            ActionSpace::Discrete(n) => *n,
            ActionSpace::Continuous { dim, .. } => *dim,
        }
    }
}

/// Static facts about an environment family.
#[derive(Clone, Debug)]
pub struct EnvSpec {
    pub name: &'static str,
    pub obs_dim: usize,
    pub action: ActionSpace,
    /// Steps per episode (the time limit).
    pub episode_len: usize,
    /// Episodes per trial.
    pub episodes_per_trial: usize,
    /// Whether the env reports a success signal.
    pub has_success: bool,
}

impl EnvSpec {
    pub fn trial_len(&self) -> usize {
        self.episode_len * self.episodes_per_trial
    }
    /// Cells of the env's grid, for beliefs with one output per cell (VariBAD's
    /// multi-head reward decoder); None for envs without a grid.
    pub fn grid_cells(&self) -> Option<usize> {
        (self.name == "gridnavi").then_some(gridnavi::NUM_CELLS)
    }
}

/// What a batched step writes; buffers are owned by the caller and reused every step,
/// so stepping allocates nothing. All slices are row-major with `num_envs` rows.
#[derive(Clone, Debug, Default)]
pub struct StepOut {
    /// `num_envs * obs_dim`: the observation to act on next (already reset after an end).
    pub obs: Vec<f32>,
    /// `num_envs * obs_dim`: the last observation of an episode that ended this step
    /// (equal to `obs` on rows where no episode ended).
    pub final_obs: Vec<f32>,
    pub reward: Vec<f32>,
    pub terminated: Vec<bool>,
    pub truncated: Vec<bool>,
    pub trial_end: Vec<bool>,
    /// Success signal at this step (false where the env has none).
    pub success: Vec<bool>,
    /// Index (0-based) within the trial of the episode this step belonged to.
    pub episode_index: Vec<u32>,
}

impl StepOut {
    pub fn new(num_envs: usize, obs_dim: usize) -> Self {
        StepOut {
            obs: vec![0.0; num_envs * obs_dim],
            final_obs: vec![0.0; num_envs * obs_dim],
            reward: vec![0.0; num_envs],
            terminated: vec![false; num_envs],
            truncated: vec![false; num_envs],
            trial_end: vec![false; num_envs],
            success: vec![false; num_envs],
            episode_index: vec![0; num_envs],
        }
    }
    /// Panics (a programming error, not user input) unless every buffer is sized for
    /// `n` rows of `obs_dim` observations; `who` names the caller in the message.
    /// Envs check once before stepping, so a loop cannot go out of bounds half-way.
    pub fn assert_sized(&self, n: usize, obs_dim: usize, who: &str) {
        assert!(
            self.obs.len() == n * obs_dim
                && self.final_obs.len() == n * obs_dim
                && self.reward.len() == n
                && self.terminated.len() == n
                && self.truncated.len() == n
                && self.trial_end.len() == n
                && self.success.len() == n
                && self.episode_index.len() == n,
            "{who}: StepOut not sized for {n} rows (use StepOut::new({n}, {obs_dim}))"
        );
    }

    /// Whether an episode (of any kind of end) finished on row `i` this step.
    #[inline]
    pub fn episode_end(&self, i: usize) -> bool {
        self.terminated[i] || self.truncated[i]
    }
}

/// A batch of environments stepping BAMDP trials in lock-step.
pub trait BatchEnv: Send {
    fn spec(&self) -> &EnvSpec;
    fn num_envs(&self) -> usize;
    /// Start a fresh trial on every row; writes the first observations. A row whose
    /// trial has begun (taken a step) draws its next task; a row whose trial has not
    /// (the batch was just built or reset, or the row's last trial just ended) keeps
    /// the task it drew, which nobody has played yet: no task is drawn and skipped.
    fn reset(&mut self, obs: &mut [f32]);
    /// Apply one action per row. `actions` has `num_envs * spec().action.width()`
    /// values (discrete actions as their index in f32). Actions come from the agent,
    /// not the user: an invalid one is a bug and panics.
    fn step(&mut self, actions: &[f32], out: &mut StepOut);
    /// Serialisable state of the batch (tasks, positions, counters, RNG streams), so a
    /// resumed run continues exactly.
    fn save_state(&self) -> serde_json::Value;
    /// Restores [`BatchEnv::save_state`]'s output of a batch built from the same config;
    /// checks every field before changing anything.
    fn load_state(&mut self, state: &serde_json::Value) -> Result<(), StateError>;
    /// Failures the batch survived so far (worker crashes and hangs of simulators run in
    /// other processes); in-process envs never fail.
    fn events(&self) -> EnvEvents {
        EnvEvents::default()
    }
    /// An error the batch cannot recover from (a simulator worker that could not be
    /// restarted); the caller must stop stepping it. In-process envs never have one.
    fn fatal(&self) -> Option<String> {
        None
    }
    /// Versions of the external simulators behind this batch (`("mujoco", "3.3.0")`,
    /// ...), to record with a run; empty for envs implemented in bamdp.
    fn versions(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The task-independent dynamics a planner simulates (an error for envs whose
    /// tasks change the dynamics or that are simulated in Python).
    fn known_dynamics(&self) -> Result<Box<dyn KnownDynamics>, UserError> {
        known_dynamics(self.spec())
    }
    /// From episode `first` (0-based) of every trial on, ends an episode (`terminated`)
    /// at its first successful step, as MetaWorld's evaluation episodes do
    /// (`terminate_on_success`). An error for envs that cannot.
    fn terminate_on_success_from(&mut self, first: usize) -> Result<(), UserError> {
        let _ = first;
        Err(UserError::Other(format!(
            "env `{}` cannot end episodes at their first success (the natively simulated MetaWorld envs can: {})",
            self.spec().name,
            mujoco::PORTED
                .iter()
                .filter(|n| n.starts_with("ml1-"))
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
    /// From now on rows take the split's task list in turn instead of drawing from it,
    /// classes round-robin ([`replay::classes_in_turn`]): row `r`'s `j`-th trial plays
    /// position `r + j rows` of that order, so an evaluation of n trials covers each
    /// class about n / classes times (the held-out split is played in list order
    /// anyway). Rows whose trial has not begun take their task from the order at once.
    /// For evaluations: the order is not part of the saved state. An error for envs
    /// without a task list.
    fn visit_tasks_in_turn(&mut self) -> Result<(), UserError> {
        Err(UserError::Other(format!(
            "env `{}` has no task list to visit in turn (the natively simulated MetaWorld envs have)",
            self.spec().name
        )))
    }
    /// The bytes one row of the batch holds in this process (its simulator's state and
    /// buffers), which the memory guards (`crate::run::guard`) multiply by the rows a
    /// config asks for. 0 by default: the envs implemented in bamdp keep a few numbers
    /// per row, which the guards' per-sample terms dwarf, and the Python bridge's rows
    /// live in worker processes. The native MuJoCo batch reports its simulators' sizes.
    fn row_bytes(&self) -> usize {
        0
    }
    /// Row `r`'s current task as an index into the split's task list, where tasks are
    /// a list (`None` for continuous task spaces and envs that do not say).
    fn task_index(&self, r: usize) -> Option<u32> {
        let _ = r;
        None
    }
    /// The class of task `index` of the split's list, for families of task classes
    /// (MetaWorld's `reach-v3`, ...), whose success is averaged per class.
    fn task_class(&self, index: u32) -> Option<&'static str> {
        let _ = index;
        None
    }
    /// The split's task classes, each once, in the order of the task list (empty for
    /// envs without classes): what per-class logs have a column for.
    fn task_classes(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

/// The task-independent part of an environment's dynamics, which a planner simulates
/// exactly: how the observation moves under an action, and how episodes and trials
/// are laid out in time.
pub trait KnownDynamics: Send + Sync {
    fn obs_dim(&self) -> usize;
    fn action(&self) -> ActionSpace;
    /// Steps per episode.
    fn episode_len(&self) -> usize;
    fn episodes_per_trial(&self) -> usize;
    /// The observation an episode starts from.
    fn first_obs(&self, out: &mut [f32]);
    /// The observation after `action` (stored width: an index for discrete actions)
    /// from `obs` at step `t` of an episode (before the automatic reset at its end).
    fn next_obs(&self, obs: &[f32], action: &[f32], t: usize, out: &mut [f32]);
}

/// Counts of worker failures a batch recovered from (see [`BatchEnv::events`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnvEvents {
    /// Workers replaced (each crash or hang is one restart).
    pub restarts: u64,
    /// Workers that died or reported an exception.
    pub crashes: u64,
    /// Workers that did not answer within the timeout.
    pub timeouts: u64,
}

/// Checks the header of a saved batch state before any of it is used: it must come
/// from the same env and split, and every per-row field must have one entry per row.
pub fn check_saved_state(
    env: &str,
    split: Split,
    rows: usize,
    saved_env: &str,
    saved_split: Split,
    fields: &[(&str, usize)],
) -> Result<(), StateError> {
    if saved_env != env {
        return Err(StateError::Mismatch(format!(
            "{env} state: saved by env {saved_env:?}, not {env:?}"
        )));
    }
    if saved_split != split {
        return Err(StateError::Mismatch(format!(
            "{env} state: saved for split {}, this batch is split {}",
            saved_split.as_str(),
            split.as_str()
        )));
    }
    for (field, len) in fields {
        if *len != rows {
            return Err(StateError::Mismatch(format!(
                "{env} state: `{field}` has {len} rows, this batch has {rows}"
            )));
        }
    }
    Ok(())
}

/// Names of the environments bamdp knows, with a one-line description.
pub const ENVS: &[(&str, &str)] = &[
    (
        "gridnavi",
        "5x5 grid, goal hidden among 21 cells, 15 steps x 4 episodes, +1 on goal / -0.1 else (VariBAD)",
    ),
    (
        "point_robot",
        "2-D point, goal on the upper unit semicircle, 100 steps x 3 episodes, reward -distance (VariBAD)",
    ),
    (
        "point_robot_sparse",
        "2-D point, goal on the upper unit semicircle, 100 steps x 3 episodes, 1 - distance within 0.2 else 0 (VariBAD)",
    ),
    (
        "functions-1d",
        "random function on [-1,1] (fourier/norm/rational/polynomial/slope, rescaled to [0,1]); query x, reward f(x); 10 queries x 2 episodes (VariBASeD's setting)",
    ),
    (
        "functions-2d",
        "random function on [-1,1]^2 (fourier/norm/rational/polynomial/slope, rescaled to [0,1]); query x, reward f(x); 20 queries x 2 episodes (VariBASeD's setting)",
    ),
    ("functions-1d-<family>", "functions-1d with one family: fourier, norm, rational, polynomial or slope"),
    ("functions-2d-<family>", "functions-2d with one family: fourier, norm, rational, polynomial or slope"),
    ("cheetah-vel", "MuJoCo HalfCheetah (gymnasium v5; native, or Python worker with env_backend = \"python\"), target velocity ~ U(0,3), 200 steps x 2 episodes (VariBAD)"),
    ("cheetah-dir", "MuJoCo HalfCheetah (gymnasium v5; native, or Python worker with env_backend = \"python\"), direction +-1, 200 steps x 2 episodes (VariBAD)"),
    ("ant-dir", "MuJoCo Ant (gymnasium v5; native, or Python worker with env_backend = \"python\"), direction angle +-1 rad, 200 steps x 2 episodes (VariBAD)"),
    ("ml1-<task>", "MetaWorld v3 ML1 on one of its 50 tasks, e.g. ml1-reach, ml1-door-open, ml1-hammer (native, or Python worker with env_backend = \"python\"), 500 steps x 10 episodes, success"),
    ("ml10", "MetaWorld v3 ML10 (native, or Python worker with env_backend = \"python\"): 10 train / 5 test task classes, 500 steps x 10 episodes, success"),
    ("ml45", "MetaWorld v3 ML45 (native, or Python worker with env_backend = \"python\"): 45 train / 5 test task classes, 500 steps x 10 episodes, success"),
];

/// Whether `name` is an env bamdp can build: an entry of [`ENVS`], or a name of a
/// Python-simulated family such as `ml1-reach` (the ML1 task itself is checked by the
/// worker against MetaWorld's list when the batch starts).
pub fn is_known(name: &str) -> bool {
    ENVS.iter().any(|e| e.0 == name)
        || functions::Variant::parse(name).is_some()
        || python::Family::parse(name).is_some()
}

/// Construction options that come from the config rather than the env name; envs they
/// do not concern ignore them (the config rejects them there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvOptions {
    /// Horizon of the `functions-*` envs (`[functions]`).
    pub functions: functions::Options,
    /// Native or Python simulation of MuJoCo / MetaWorld envs (`env_backend`).
    pub backend: mujoco::Backend,
    /// Threads stepping a native batch's rows (`run.threads`; 0 counts as 1).
    pub threads: usize,
}

/// Like [`make`], with the number of episodes per trial overridden (evaluation of
/// adaptation beyond the training horizon).
pub fn make_with(
    name: &str,
    num_envs: usize,
    split: Split,
    seed: u64,
    episodes_per_trial: Option<usize>,
    options: &EnvOptions,
) -> Result<Box<dyn BatchEnv>, UserError> {
    if let (Some(variant), Some(k)) = (functions::Variant::from_env_name(name)?, episodes_per_trial)
    {
        if !(1..=functions::MAX_EPISODES_PER_TRIAL).contains(&k) {
            return Err(UserError::invalid(
                "--episodes-per-task",
                &k.to_string(),
                &format!(
                    "an integer in 1..={} for env {name}",
                    functions::MAX_EPISODES_PER_TRIAL
                ),
            ));
        }
        let mut opts = options.functions;
        opts.episodes_per_trial = Some(k);
        return Ok(Box::new(functions::Functions::new(
            variant, num_envs, split, seed, opts,
        )?));
    }
    match (name, episodes_per_trial) {
        (_, None) => make(name, num_envs, split, seed, options),
        ("gridnavi", Some(k)) => Ok(Box::new(
            gridnavi::GridNavi::new(num_envs, split, seed).with_episodes_per_trial(k),
        )),
        ("point_robot", Some(k)) => Ok(Box::new(
            point_robot::PointRobot::new(num_envs, split, seed, false).with_episodes_per_trial(k),
        )),
        ("point_robot_sparse", Some(k)) => Ok(Box::new(
            point_robot::PointRobot::new(num_envs, split, seed, true).with_episodes_per_trial(k),
        )),
        (n, Some(k)) if python::Family::parse(n).is_some() && options.backend.runs_native(n)? => {
            mujoco::make(n, num_envs, split, seed, Some(k), options.threads)
        }
        (n, Some(k)) if python::Family::parse(n).is_some() => {
            Ok(Box::new(python::PyBatchEnv::new(
                n,
                num_envs,
                split,
                seed,
                Some(k),
                python::Options::from_env()?,
            )?))
        }
        (_, Some(_)) => make(name, num_envs, split, seed, options),
    }
}

/// What the memory guards need to know of an env before its full batch exists, from a
/// one-row batch: the spec and the bytes a row holds ([`BatchEnv::row_bytes`]).
pub struct Probe {
    pub spec: EnvSpec,
    pub row_bytes: usize,
    /// A native MuJoCo family, kept while the probe lives so that the full batch built
    /// next shares its compiled models ([`mujoco::family`]) instead of compiling them
    /// again.
    _family: Option<std::sync::Arc<dyn mujoco::batch::Family + Send + Sync>>,
}

/// Builds a one-row batch of env `name` (as [`make_with`] would build the full one) and
/// returns its [`Probe`]; `None` for envs simulated by the Python bridge, where the
/// probe would start a worker process only to learn sizes that live in that process.
pub fn probe(
    name: &str,
    split: Split,
    seed: u64,
    episodes_per_trial: Option<usize>,
    options: &EnvOptions,
) -> Result<Option<Probe>, UserError> {
    let mujoco_env = python::Family::parse(name).is_some();
    if mujoco_env && !options.backend.runs_native(name)? {
        return Ok(None);
    }
    let family = if mujoco_env {
        Some(mujoco::family(name, split, seed)?)
    } else {
        None
    };
    let env = make_with(name, 1, split, seed, episodes_per_trial, options)?;
    Ok(Some(Probe {
        spec: env.spec().clone(),
        row_bytes: env.row_bytes(),
        _family: family,
    }))
}

/// The task-independent dynamics of `spec`'s environment, for planners; an error for
/// environments whose tasks change the dynamics or that are simulated in Python.
pub fn known_dynamics(spec: &EnvSpec) -> Result<Box<dyn KnownDynamics>, UserError> {
    let k = spec.episodes_per_trial;
    match spec.name {
        "gridnavi" => Ok(Box::new(gridnavi::GridDynamics {
            episodes_per_trial: k,
        })),
        "point_robot" | "point_robot_sparse" => Ok(Box::new(point_robot::PointDynamics {
            episodes_per_trial: k,
        })),
        name => match functions::Variant::parse(name) {
            Some(v) => Ok(Box::new(functions::FunctionDynamics {
                dim: v.dim,
                episode_len: spec.episode_len,
                episodes_per_trial: k,
            })),
            None => Err(UserError::invalid(
                "env",
                name,
                "an env the SMC planner can simulate: gridnavi, point_robot, point_robot_sparse, functions-*",
            )),
        },
    }
}

/// Build a batch of `num_envs` environments of `name` drawing tasks from `split`.
pub fn make(
    name: &str,
    num_envs: usize,
    split: Split,
    seed: u64,
    options: &EnvOptions,
) -> Result<Box<dyn BatchEnv>, UserError> {
    if let Some(variant) = functions::Variant::from_env_name(name)? {
        return Ok(Box::new(functions::Functions::new(
            variant,
            num_envs,
            split,
            seed,
            options.functions,
        )?));
    }
    match name {
        "gridnavi" => Ok(Box::new(gridnavi::GridNavi::new(num_envs, split, seed))),
        "point_robot" => Ok(Box::new(point_robot::PointRobot::new(
            num_envs, split, seed, false,
        ))),
        "point_robot_sparse" => Ok(Box::new(point_robot::PointRobot::new(
            num_envs, split, seed, true,
        ))),
        n if python::Family::parse(n).is_some() && options.backend.runs_native(n)? => {
            mujoco::make(n, num_envs, split, seed, None, options.threads)
        }
        n if python::Family::parse(n).is_some() => Ok(Box::new(python::PyBatchEnv::new(
            n,
            num_envs,
            split,
            seed,
            None,
            python::Options::from_env()?,
        )?)),
        other => Err(UserError::invalid(
            "env.name",
            other,
            &format!(
                "one of: {}",
                ENVS.iter().map(|e| e.0).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}
