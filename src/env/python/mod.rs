//! Batched environments simulated in Python worker processes: MuJoCo locomotion meta-tasks
//! (HalfCheetah-Vel, HalfCheetah-Dir, Ant-Dir on gymnasium's v5 envs) and MetaWorld
//! ML1 / ML10 / ML45. Owns the env names (`cheetah-vel`, `cheetah-dir`, `ant-dir`,
//! `ml1-<task>`, `ml10`, `ml45`), the split of a batch's rows over workers, the task and
//! episode-seed streams, the counters that decide episode and trial ends, crash/hang
//! recovery, the versions reported by the simulators, and the batch's checkpoint state.
//!
//! Division of labour: Rust draws every random number (row `i`'s tasks and episode
//! reset seeds come from `Rng::stream(seed, TRAIN_TASKS|TEST_TASKS, i)`), counts steps,
//! and decides truncation and trial ends; a worker only simulates its rows (see
//! `python/bamdp_envs/worker.py`) and reports observation, reward, `terminated` and
//! MetaWorld's `info["success"]`. Actions are clipped to the action box here, before
//! they are sent (the agent's Gaussian samples are unbounded).
//!
//! Task distributions (lmzintgraf/varibad, `environments/mujoco/`): cheetah-vel target
//! velocity `uniform(0, 3)`; cheetah-dir direction `-1` or `+1` with probability 1/2;
//! ant-dir goal `-1` or `+1`, used (as VariBAD does) as an angle in radians: reward is
//! the torso's planar velocity dotted with `(cos g, sin g)`. 200 steps x 2 episodes.
//! MetaWorld: a trial's task is drawn uniformly from the split's task list of the
//! benchmark built with the run's seed (`metaworld.ML1(task, seed)`, `ML10(seed)`,
//! `ML45(seed)`: train tasks for the train split, the held-out test tasks/goals for the
//! test split), horizon 500, 10 episodes per trial. Train trials draw a task uniformly;
//! test trials visit the held-out list in turn (row `r`'s `j`-th trial plays task
//! `(r + j * rows) mod N`), so a meta-test covers every held-out task evenly.
//!
//! Recovery: a worker that dies, reports an exception, or does not answer within the
//! timeout is killed, reaped and replaced; its rows start fresh trials. On the step it
//! happened, those rows report reward 0, `truncated` and `trial_end`, and `final_obs`
//! equal to their previous observation. Each event is logged to stderr and counted in
//! [`BatchEnv::events`].
//!
//! Environment variables: `BAMDP_PYTHON` (interpreter, default `python3`),
//! `BAMDP_ENV_WORKERS` (worker processes, default one per core, at most one per row),
//! `BAMDP_ENV_TIMEOUT_S` (reply timeout for a step, default 60), `BAMDP_ENV_SPIN_US`
//! (how long bamdp and the workers check for the other's next message before blocking,
//! default 1000; see [`Options::spin`]).

pub mod worker;

use super::replay::{episode_seed, ReplayShape, ReplayState, TaskDraw};
use super::{ActionSpace, BatchEnv, EnvEvents, EnvSpec, Split, StepOut};
use crate::error::{StateError, UserError};
use crate::rng::{streams, Rng};
use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use worker::{Worker, WorkerError, INSTALL_HINT, PROTOCOL_VERSION};

/// Steps per episode of the MuJoCo meta-tasks (VariBAD's `max_episode_steps`).
pub const MUJOCO_EPISODE_LEN: usize = 200;
/// Episodes per trial of the MuJoCo meta-tasks (VariBAD's `max_rollouts_per_task`).
pub const MUJOCO_EPISODES_PER_TRIAL: usize = 2;
/// Episodes per trial on MetaWorld (MetaWorld's evaluation adapts for 10 episodes).
pub const METAWORLD_EPISODES_PER_TRIAL: usize = 10;
/// Time allowed for a worker to import its packages and build its benchmark.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a worker simulates.
#[derive(Clone, Debug, PartialEq)]
pub enum Family {
    /// A VariBAD MuJoCo meta-task: `cheetah-vel`, `cheetah-dir` or `ant-dir`.
    Mujoco(&'static str),
    /// A MetaWorld benchmark (`ML1`, `ML10`, `ML45`) and, for ML1, the task (`reach-v3`).
    MetaWorld {
        benchmark: &'static str,
        task: Option<String>,
    },
}

impl Family {
    /// The family behind an env name, or `None` when the name is not a Python env.
    pub fn parse(name: &str) -> Option<Family> {
        match name {
            "cheetah-vel" => Some(Family::Mujoco("cheetah-vel")),
            "cheetah-dir" => Some(Family::Mujoco("cheetah-dir")),
            "ant-dir" => Some(Family::Mujoco("ant-dir")),
            "ml10" => Some(Family::MetaWorld {
                benchmark: "ML10",
                task: None,
            }),
            "ml45" => Some(Family::MetaWorld {
                benchmark: "ML45",
                task: None,
            }),
            _ => name.strip_prefix("ml1-").map(|t| Family::MetaWorld {
                benchmark: "ML1",
                task: Some(format!("{t}-v3")),
            }),
        }
    }
}

/// See [`Options::spin`]: long enough to cover bamdp's turn between two steps of a
/// small policy, short enough that idle workers soon stop using CPU.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(1000);

/// How to start a batch's workers.
#[derive(Clone, Debug)]
pub struct Options {
    pub python: String,
    pub workers: usize,
    pub step_timeout: Duration,
    /// Pipeline parts: each worker's rows are split into this many parts that can be
    /// stepped separately ([`PyBatchEnv::step_begin`] / [`PyBatchEnv::step_end`]), so a
    /// worker simulates one part while bamdp handles another. 1 = lock-step.
    pub parts: usize,
    /// How long each side keeps checking for the other's next message (yielding its
    /// core between checks) before it blocks: a process blocked on a pipe lets its core
    /// idle, and waking an idle core costs tens of microseconds on virtual machines
    /// (docs/benchmarks.md). Zero: always block.
    pub spin: Duration,
}

impl Options {
    /// Defaults, overridden by `BAMDP_PYTHON`, `BAMDP_ENV_WORKERS`, `BAMDP_ENV_TIMEOUT_S`,
    /// `BAMDP_ENV_SPIN_US`.
    pub fn from_env() -> Result<Options, UserError> {
        let python = std::env::var("BAMDP_PYTHON").unwrap_or_else(|_| "python3".into());
        let workers = match std::env::var("BAMDP_ENV_WORKERS") {
            Ok(v) => v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                UserError::invalid(
                    "BAMDP_ENV_WORKERS",
                    &v,
                    "a positive number of worker processes",
                )
            })?,
            Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let step_timeout = match std::env::var("BAMDP_ENV_TIMEOUT_S") {
            Ok(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && s.is_finite())
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    UserError::invalid("BAMDP_ENV_TIMEOUT_S", &v, "a positive number of seconds")
                })?,
            Err(_) => Duration::from_secs(60),
        };
        let spin = match std::env::var("BAMDP_ENV_SPIN_US") {
            Ok(v) => v
                .parse::<u64>()
                .ok()
                .filter(|&us| us <= 1_000_000)
                .map(Duration::from_micros)
                .ok_or_else(|| {
                    UserError::invalid(
                        "BAMDP_ENV_SPIN_US",
                        &v,
                        "microseconds from 0 (never spin) to 1000000",
                    )
                })?,
            Err(_) => DEFAULT_SPIN,
        };
        Ok(Options {
            python,
            workers,
            step_timeout,
            parts: 1,
            spin,
        })
    }
}

/// A `&'static str` for an env name built at run time (`EnvSpec::name`); each distinct
/// name is leaked once.
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap();
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

/// What a worker said when it started.
#[derive(Deserialize, Debug, Clone)]
struct Hello {
    obs_dim: usize,
    act_dim: usize,
    act_low: f32,
    act_high: f32,
    num_tasks: usize,
    versions: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    task_names: Vec<String>,
}

/// A batch of Python-simulated environments (see the module doc).
pub struct PyBatchEnv {
    spec: EnvSpec,
    family: Family,
    split: Split,
    seed: u64,
    opts: Options,
    hello: Hello,
    workers: Vec<Worker>,
    slices: Vec<Range<usize>>,
    task_index: Vec<u32>,
    task_value: Vec<f64>,
    episode_seed: Vec<u64>,
    /// Step within the current episode, and episode within the trial, per row.
    ep_t: Vec<u32>,
    ep: Vec<u32>,
    rng: Vec<Rng>,
    /// Trials started per row (the test split's task cycle).
    trials: Vec<u64>,
    /// Clipped actions of the current episode per row (replayed on `load_state`).
    history: Vec<Vec<f32>>,
    clipped: Vec<f32>,
    last_obs: Vec<f32>,
    /// Pipeline parts: `parts[g][w]` are the rows of part `g` simulated by worker `w`
    /// (a sub-range of `slices[w]`).
    parts: Vec<Vec<Range<usize>>>,
    /// Parts stepped but not yet collected, oldest first.
    in_flight: std::collections::VecDeque<usize>,
    /// `lost[g][w]`: worker `w` was replaced while part `g` was in flight or waiting
    /// for its next step; those rows report a cut trial at part `g`'s next collection.
    lost: Vec<Vec<bool>>,
    /// `send_err[g][w]`: sending part `g`'s step to worker `w` failed.
    send_err: Vec<Vec<Option<WorkerError>>>,
    /// Step replies that arrived while waiting for a reset reply, per worker.
    stash: Vec<std::collections::VecDeque<Vec<u8>>>,
    /// Per row, for the step in flight: its reset record rode along with the step (the
    /// episode hits its time limit), the episode index, and the step count after it.
    pre_reset: Vec<bool>,
    step_ep: Vec<u32>,
    step_t: Vec<u32>,
    /// First observations of rows whose worker was just replaced.
    fresh_obs: Vec<f32>,
    /// Rows that ended early (`terminated`) and need a reset round trip, reused.
    ended: Vec<usize>,
    events: EnvEvents,
    /// Per-worker errors of a reset, reused.
    step_errs: Vec<Option<WorkerError>>,
    /// Set when a worker could not be brought back: the batch cannot continue.
    fatal: Option<String>,
}

fn bench_seed(seed: u64) -> u64 {
    // metaworld seeds NumPy's legacy generator: a 32-bit value.
    seed & 0xFFFF_FFFF
}

fn user_error(name: &str, python: &str, e: WorkerError) -> UserError {
    match e {
        WorkerError::Spawn { .. } => UserError::Other(format!(
            "env `{name}` needs Python: {e}; install Python 3 (or set BAMDP_PYTHON to an interpreter), then run: {INSTALL_HINT}"
        )),
        WorkerError::Reported {
            kind,
            package: Some(pkg),
            message,
        } if kind == "missing_package" => UserError::Other(format!(
            "env `{name}` needs the Python package `{pkg}`, which `{python}` cannot import ({message}); install it with: {INSTALL_HINT}"
        )),
        WorkerError::Reported { kind, message, .. } if kind == "bad_env" => {
            UserError::invalid("env.name", name, &message)
        }
        other => UserError::Other(format!(
            "env `{name}`: the Python worker (`{python}`) failed to start: {other}; check the installation with: {INSTALL_HINT}"
        )),
    }
}

impl PyBatchEnv {
    /// Starts the workers for env `name` (see [`super::ENVS`]) with `num_envs` rows drawing
    /// tasks from `split`; the rows start their first trials right away.
    pub fn new(
        name: &str,
        num_envs: usize,
        split: Split,
        seed: u64,
        episodes_per_trial: Option<usize>,
        opts: Options,
    ) -> Result<PyBatchEnv, UserError> {
        let family = Family::parse(name).ok_or_else(|| {
            UserError::invalid(
                "env.name",
                name,
                "a Python env: cheetah-vel, cheetah-dir, ant-dir, ml1-<task>, ml10, ml45",
            )
        })?;
        if num_envs == 0 {
            return Err(UserError::invalid(
                "run.num_envs",
                "0",
                "a positive number of rows",
            ));
        }
        let nw = opts.workers.clamp(1, num_envs);
        let slices: Vec<Range<usize>> = (0..nw)
            .map(|w| (w * num_envs / nw)..((w + 1) * num_envs / nw))
            .collect();
        // Start all workers before waiting for any: building a MetaWorld benchmark takes
        // a while (ML45: ~50 s), and the workers do it in parallel.
        let mut workers = Vec::with_capacity(nw);
        for s in &slices {
            workers.push(
                send_init(&family, split, seed, s.len(), &opts)
                    .map_err(|e| user_error(name, &opts.python, e))?,
            );
        }
        let mut hello = None;
        for w in &mut workers {
            hello = Some(recv_hello(w).map_err(|e| user_error(name, &opts.python, e))?);
        }
        let hello = hello.expect("at least one worker");
        let (episode_len, k) = match family {
            Family::Mujoco(_) => (MUJOCO_EPISODE_LEN, MUJOCO_EPISODES_PER_TRIAL),
            Family::MetaWorld { .. } => (500, METAWORLD_EPISODES_PER_TRIAL),
        };
        let k = episodes_per_trial.unwrap_or(k);
        if k == 0 {
            return Err(UserError::invalid(
                "episodes per trial",
                "0",
                "a positive number",
            ));
        }
        let label = match split {
            Split::Train => streams::TRAIN_TASKS,
            Split::Test => streams::TEST_TASKS,
        };
        let od = hello.obs_dim;
        let mut env = PyBatchEnv {
            spec: EnvSpec {
                name: intern(name),
                obs_dim: od,
                action: ActionSpace::Continuous {
                    dim: hello.act_dim,
                    low: hello.act_low,
                    high: hello.act_high,
                },
                episode_len,
                episodes_per_trial: k,
                has_success: matches!(family, Family::MetaWorld { .. }),
            },
            family,
            split,
            seed,
            opts,
            hello,
            workers,
            slices,
            task_index: vec![0; num_envs],
            task_value: vec![0.0; num_envs],
            episode_seed: vec![0; num_envs],
            ep_t: vec![0; num_envs],
            ep: vec![0; num_envs],
            rng: (0..num_envs)
                .map(|i| Rng::stream(seed, label, i as u64))
                .collect(),
            trials: vec![0; num_envs],
            history: vec![Vec::new(); num_envs],
            clipped: Vec::new(),
            last_obs: vec![0.0; num_envs * od],
            parts: Vec::new(),
            in_flight: Default::default(),
            lost: Vec::new(),
            send_err: Vec::new(),
            stash: Vec::new(),
            pre_reset: vec![false; num_envs],
            step_ep: vec![0; num_envs],
            step_t: vec![0; num_envs],
            fresh_obs: vec![0.0; num_envs * od],
            ended: Vec::new(),
            events: EnvEvents::default(),
            step_errs: Vec::new(),
            fatal: None,
        };
        let ad = env.hello.act_dim;
        env.clipped = vec![0.0; num_envs * ad];
        let np = env.opts.parts.max(1);
        env.parts = (0..np)
            .map(|g| {
                env.slices
                    .iter()
                    .map(|s| {
                        let len = s.len();
                        (s.start + g * len / np)..(s.start + (g + 1) * len / np)
                    })
                    .collect()
            })
            .collect();
        env.lost = vec![vec![false; env.workers.len()]; np];
        env.send_err = (0..np)
            .map(|_| (0..env.workers.len()).map(|_| None).collect())
            .collect();
        env.stash = vec![Default::default(); env.workers.len()];
        for h in &mut env.history {
            h.reserve(episode_len * ad);
        }
        let mut obs = vec![0.0; num_envs * od];
        env.reset(&mut obs);
        Ok(env)
    }

    /// The task family.
    pub fn family(&self) -> &Family {
        &self.family
    }
    /// The split tasks are drawn from.
    pub fn split(&self) -> Split {
        self.split
    }
    /// Number of worker processes.
    pub fn num_workers(&self) -> usize {
        self.workers.len()
    }
    /// Process id of worker `w` (changes when it is restarted).
    pub fn worker_pid(&self, w: usize) -> u32 {
        self.workers[w].pid
    }
    /// Rows simulated by worker `w`.
    pub fn worker_rows(&self, w: usize) -> Range<usize> {
        self.slices[w].clone()
    }
    /// Kills worker `w` with SIGKILL (to test crash recovery).
    pub fn kill_worker(&mut self, w: usize) {
        self.workers[w].kill();
    }
    /// Makes worker `w` stop answering (to test hang recovery).
    pub fn hang_worker(&mut self, w: usize) {
        self.workers[w].frame().push(b'Z');
        let _ = self.workers[w].send();
    }
    /// Row `r`'s task: an index into the split's task list (MetaWorld) or the task value
    /// (MuJoCo: target velocity, direction, or angle).
    pub fn task(&self, r: usize) -> (u32, f64) {
        (self.task_index[r], self.task_value[r])
    }
    /// The seed the current episode of row `r` was reset with.
    pub fn episode_seed(&self, r: usize) -> u64 {
        self.episode_seed[r]
    }
    /// Size of the split's task list (MetaWorld; 0 for continuous MuJoCo tasks).
    pub fn num_tasks(&self) -> usize {
        self.hello.num_tasks
    }
    /// MetaWorld class name (`reach-v3`, ...) of each task of the split's list.
    pub fn task_names(&self) -> &[String] {
        &self.hello.task_names
    }
    /// Seed handed to the MetaWorld benchmark constructor.
    pub fn benchmark_seed(&self) -> u64 {
        bench_seed(self.seed)
    }

    fn act_dim(&self) -> usize {
        self.hello.act_dim
    }

    fn draw_task(&mut self, r: usize) {
        let draw = match self.family {
            Family::Mujoco("cheetah-vel") => TaskDraw::Velocity,
            Family::Mujoco(_) => TaskDraw::Direction,
            Family::MetaWorld { .. } => TaskDraw::List(self.hello.num_tasks),
        };
        let rows = self.num_envs();
        let (index, value) = draw.draw(&mut self.rng[r], self.split, r, self.trials[r], rows);
        match self.family {
            Family::Mujoco(_) => self.task_value[r] = value,
            Family::MetaWorld { .. } => self.task_index[r] = index,
        }
        self.trials[r] += 1;
    }

    /// Appends row `r`'s reset record (new episode; new task if `new_task`).
    fn push_reset(&mut self, w: usize, r: usize, new_task: bool) {
        if new_task {
            self.draw_task(r);
            self.ep[r] = 0;
        }
        self.episode_seed[r] = episode_seed(&mut self.rng[r]);
        self.ep_t[r] = 0;
        self.history[r].clear();
        let local = (r - self.slices[w].start) as u32;
        let (ti, tv, seed) = (self.task_index[r], self.task_value[r], self.episode_seed[r]);
        let f = self.workers[w].frame_mut();
        f.extend_from_slice(&local.to_le_bytes());
        f.push(new_task as u8);
        f.extend_from_slice(&ti.to_le_bytes());
        f.extend_from_slice(&tv.to_le_bytes());
        f.extend_from_slice(&seed.to_le_bytes());
    }

    /// A worker that cannot be brought back: its rows keep their last observations
    /// (the batch is not stepped again: the training loop stops on [`BatchEnv::fatal`])
    /// and the error is recorded.
    fn give_up(&mut self, w: usize, rows: &std::ops::Range<usize>, why: String) {
        let od = self.spec.obs_dim;
        for r in rows.clone() {
            self.fresh_obs[r * od..(r + 1) * od]
                .copy_from_slice(&self.last_obs[r * od..(r + 1) * od]);
        }
        let msg = format!("env {} worker {w} {why}", self.spec.name);
        eprintln!("bamdp: {msg}");
        self.fatal.get_or_insert(msg);
    }

    /// Replaces worker `w` after `err`; its rows start fresh trials with their first
    /// observations in `fresh_obs`. Every part's rows of this worker are marked `lost`:
    /// steps in flight died with the old process, and rows waiting for their next step
    /// no longer are where their agent thinks (the caller clears the flag of the part
    /// it reports right away).
    fn restart(&mut self, w: usize, err: &WorkerError) {
        let rows = self.slices[w].clone();
        self.stash[w].clear();
        for lost in &mut self.lost {
            lost[w] = true;
        }
        let old = self.workers[w].pid;
        match err {
            WorkerError::Timeout(_) => self.events.timeouts += 1,
            _ => self.events.crashes += 1,
        }
        self.events.restarts += 1;
        eprintln!(
            "bamdp: env {} worker {w} (pid {old}, rows {}..{}) {err}; restarting it, its rows start fresh trials",
            self.spec.name, rows.start, rows.end
        );
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.workers[w].kill();
            self.workers[w].shutdown(Duration::from_millis(200));
            match start_worker(&self.family, self.split, self.seed, rows.len(), &self.opts) {
                Ok((nw, _)) => self.workers[w] = nw,
                Err(e) if attempt < 3 => {
                    eprintln!("bamdp: restarting worker {w} failed ({e}); retrying");
                    continue;
                }
                Err(e) => {
                    self.give_up(
                        w,
                        &rows,
                        format!("could not be restarted after 3 attempts: {e}"),
                    );
                    return;
                }
            }
            self.workers[w].frame().push(b'R');
            self.workers[w]
                .frame_mut()
                .extend_from_slice(&(rows.len() as u32).to_le_bytes());
            for r in rows.clone() {
                self.push_reset(w, r, true);
            }
            let mut obs = std::mem::take(&mut self.fresh_obs);
            let res = self.workers[w]
                .send()
                .and_then(|_| self.recv_obs(w, rows.clone(), &mut obs));
            self.fresh_obs = obs;
            match res {
                Ok(()) => return,
                Err(e) if attempt < 3 => {
                    eprintln!("bamdp: restarted worker {w} failed again ({e}); retrying");
                }
                Err(e) => {
                    self.give_up(w, &rows, format!("keeps failing after restarts: {e}"));
                    return;
                }
            }
        }
    }

    /// Number of pipeline parts ([`Options::parts`]).
    pub fn num_parts(&self) -> usize {
        self.parts.len()
    }

    /// The rows of part `g` (ascending).
    pub fn part_rows(&self, g: usize) -> impl Iterator<Item = usize> + '_ {
        self.parts[g].iter().flat_map(|r| r.clone())
    }

    /// Sends part `g`'s actions to its workers and returns without waiting: the first
    /// half of a pipelined step. `actions` is the whole batch's (`rows x act_dim`);
    /// only part `g`'s rows are read. Collect the part with [`PyBatchEnv::step_end`];
    /// parts are collected in the order they were begun, and a part is begun again
    /// only after it was collected. `step` = every part's begin, then every end.
    #[allow(clippy::needless_range_loop)] // parallel arrays share one index
    pub fn step_begin(&mut self, g: usize, actions: &[f32]) {
        let n = self.num_envs();
        let ad = self.act_dim();
        assert_eq!(
            actions.len(),
            n * ad,
            "PyBatchEnv::step_begin: actions length"
        );
        assert!(
            !self.in_flight.contains(&g),
            "PyBatchEnv::step_begin: part {g} is already in flight"
        );
        let (lo, hi) = (self.hello.act_low, self.hello.act_high);
        let (ep_len, k) = (
            self.spec.episode_len as u32,
            self.spec.episodes_per_trial as u32,
        );
        for w in 0..self.workers.len() {
            let rows = self.parts[g][w].clone();
            if rows.is_empty() || self.lost[g][w] {
                continue;
            }
            for i in rows.start * ad..rows.end * ad {
                let a = actions[i];
                assert!(!a.is_nan(), "PyBatchEnv::step_begin: NaN action");
                self.clipped[i] = a.clamp(lo, hi);
            }
            let local = (rows.start - self.slices[w].start) as u32;
            let f = self.workers[w].frame();
            f.push(b'T');
            f.extend_from_slice(&local.to_le_bytes());
            f.extend_from_slice(&(rows.len() as u32).to_le_bytes());
            for a in &self.clipped[rows.start * ad..rows.end * ad] {
                f.extend_from_slice(&a.to_le_bytes());
            }
            let count_at = f.len();
            f.extend_from_slice(&[0; 4]);
            // Rows reaching their time limit with this step: their reset record (new
            // task and seed, drawn from the row's stream exactly as after the step)
            // rides along, and the worker resets them right after stepping.
            let mut m = 0u32;
            for r in rows.clone() {
                let t = self.ep_t[r] + 1;
                self.step_ep[r] = self.ep[r];
                self.step_t[r] = t;
                self.pre_reset[r] = t == ep_len;
                if t == ep_len {
                    let trial_end = self.ep[r] + 1 == k;
                    if !trial_end {
                        self.ep[r] += 1;
                    }
                    self.push_reset(w, r, trial_end);
                    m += 1;
                }
            }
            self.workers[w].frame_mut()[count_at..count_at + 4].copy_from_slice(&m.to_le_bytes());
            if let Err(e) = self.workers[w].send() {
                self.send_err[g][w] = Some(e);
            }
        }
        self.in_flight.push_back(g);
    }

    /// Collects part `g` (begun with [`PyBatchEnv::step_begin`]) into its rows of `out`
    /// (sized for the whole batch; other rows are left alone): observations, rewards,
    /// episode and trial ends, and the first observation of the next episode where one
    /// ended.
    pub fn step_end(&mut self, g: usize, out: &mut StepOut) {
        let n = self.num_envs();
        let od = self.spec.obs_dim;
        out.assert_sized(n, od, "PyBatchEnv::step_end");
        assert_eq!(
            self.in_flight.front(),
            Some(&g),
            "PyBatchEnv::step_end: parts are collected in the order they were begun"
        );
        self.in_flight.pop_front();
        let ad = self.act_dim();
        let (ep_len, k) = (
            self.spec.episode_len as u32,
            self.spec.episodes_per_trial as u32,
        );
        for w in 0..self.workers.len() {
            let rows = self.parts[g][w].clone();
            if rows.is_empty() {
                continue;
            }
            if self.lost[g][w] {
                self.send_err[g][w] = None;
                self.cut_rows(g, w, out);
                continue;
            }
            let m = rows.clone().filter(|&r| self.pre_reset[r]).count();
            let res = match self.send_err[g][w].take() {
                Some(e) => Err(e),
                None => self.recv_step(w).and_then(|frame| {
                    let c = rows.len();
                    let need = 1 + c * (4 * od + 4 + 1) + m * 4 * od;
                    if frame.first() != Some(&b'O') || frame.len() != need {
                        return Err(WorkerError::Protocol(format!(
                            "step reply of {} bytes, expected {need}",
                            frame.len()
                        )));
                    }
                    let obs_end = 1 + c * 4 * od;
                    read_f32s(
                        &frame[1..obs_end],
                        &mut out.final_obs[rows.start * od..rows.end * od],
                    );
                    read_f32s(
                        &frame[obs_end..obs_end + 4 * c],
                        &mut out.reward[rows.clone()],
                    );
                    let flags_at = obs_end + 4 * c;
                    let mut off = flags_at + c;
                    for (j, r) in rows.clone().enumerate() {
                        let flags = frame[flags_at + j];
                        out.terminated[r] = flags & 1 != 0;
                        out.success[r] = flags & 2 != 0;
                        if self.pre_reset[r] {
                            read_f32s(
                                &frame[off..off + 4 * od],
                                &mut out.obs[r * od..(r + 1) * od],
                            );
                            off += 4 * od;
                        }
                    }
                    self.workers[w].recycle(frame);
                    Ok(())
                }),
            };
            if let Err(e) = res {
                self.restart(w, &e);
                self.cut_rows(g, w, out);
                continue;
            }
            // Counters and ends; rows that terminated before their time limit need a
            // reset round trip.
            let mut ended = std::mem::take(&mut self.ended);
            ended.clear();
            for r in rows.clone() {
                let t = self.step_t[r];
                let ep = self.step_ep[r];
                out.episode_index[r] = ep;
                out.truncated[r] = !out.terminated[r] && t == ep_len;
                let end = out.terminated[r] || t == ep_len;
                out.trial_end[r] = end && ep + 1 == k;
                if self.pre_reset[r] {
                    continue; // reset with the step; counters advanced in step_begin
                }
                self.history[r].extend_from_slice(&self.clipped[r * ad..(r + 1) * ad]);
                self.ep_t[r] = t;
                if end {
                    if ended.is_empty() {
                        self.workers[w].frame().push(b'R');
                        self.workers[w].frame_mut().extend_from_slice(&[0; 4]);
                    }
                    ended.push(r);
                    let trial_end = out.trial_end[r];
                    if !trial_end {
                        self.ep[r] += 1;
                    }
                    self.push_reset(w, r, trial_end);
                } else {
                    out.obs[r * od..(r + 1) * od]
                        .copy_from_slice(&out.final_obs[r * od..(r + 1) * od]);
                }
            }
            if !ended.is_empty() {
                let f = self.workers[w].frame_mut();
                f[5..9].copy_from_slice(&(ended.len() as u32).to_le_bytes());
                let res = self.workers[w].send().and_then(|_| {
                    // Replies to parts begun after this one may come first.
                    loop {
                        let frame = self.workers[w].recv(self.opts.step_timeout)?;
                        if frame.first() == Some(&b'O') {
                            self.stash[w].push_back(frame);
                            continue;
                        }
                        let mut off = 1;
                        for &r in &ended {
                            if frame.first() != Some(&b'r') || off + 4 * od > frame.len() {
                                return Err(WorkerError::Protocol("short reset reply".into()));
                            }
                            read_f32s(
                                &frame[off..off + 4 * od],
                                &mut out.obs[r * od..(r + 1) * od],
                            );
                            off += 4 * od;
                        }
                        self.workers[w].recycle(frame);
                        return Ok(());
                    }
                });
                if let Err(e) = res {
                    self.restart(w, &e);
                    self.cut_rows(g, w, out);
                }
            }
            self.ended = ended;
        }
        for w in 0..self.workers.len() {
            let rows = self.parts[g][w].clone();
            self.last_obs[rows.start * od..rows.end * od]
                .copy_from_slice(&out.obs[rows.start * od..rows.end * od]);
        }
    }

    /// The next step reply of worker `w`: one stashed while waiting for a reset reply,
    /// or the next from the pipe.
    fn recv_step(&mut self, w: usize) -> Result<Vec<u8>, WorkerError> {
        match self.stash[w].pop_front() {
            Some(frame) => Ok(frame),
            None => self.workers[w].recv(self.opts.step_timeout),
        }
    }

    /// Reports part `g`'s rows of worker `w` as cut trials (their worker was replaced):
    /// reward 0, `truncated` and `trial_end`, `final_obs` = the previous observation,
    /// `obs` = the fresh trial's first observation.
    fn cut_rows(&mut self, g: usize, w: usize, out: &mut StepOut) {
        let od = self.spec.obs_dim;
        self.lost[g][w] = false;
        for r in self.parts[g][w].clone() {
            out.final_obs[r * od..(r + 1) * od]
                .copy_from_slice(&self.last_obs[r * od..(r + 1) * od]);
            out.obs[r * od..(r + 1) * od].copy_from_slice(&self.fresh_obs[r * od..(r + 1) * od]);
            out.reward[r] = 0.0;
            out.terminated[r] = false;
            out.truncated[r] = true;
            out.trial_end[r] = true;
            out.success[r] = false;
            out.episode_index[r] = self.step_ep[r];
        }
    }

    /// Receives a reset reply of worker `w` into the `rows` of `obs` (rows listed in
    /// ascending order, as sent).
    fn recv_obs(
        &mut self,
        w: usize,
        rows: impl Iterator<Item = usize>,
        obs: &mut [f32],
    ) -> Result<(), WorkerError> {
        let od = self.spec.obs_dim;
        let frame = self.workers[w].recv(self.opts.step_timeout)?;
        let mut off = 1;
        let body_ok = frame.first() == Some(&b'r');
        for r in rows {
            if !body_ok || off + 4 * od > frame.len() {
                return Err(WorkerError::Protocol("short reset reply".into()));
            }
            read_f32s(&frame[off..off + 4 * od], &mut obs[r * od..(r + 1) * od]);
            off += 4 * od;
        }
        self.workers[w].recycle(frame);
        Ok(())
    }
}

fn read_f32s(bytes: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

fn start_worker(
    family: &Family,
    split: Split,
    seed: u64,
    rows: usize,
    opts: &Options,
) -> Result<(Worker, Hello), WorkerError> {
    let mut w = send_init(family, split, seed, rows, opts)?;
    let hello = recv_hello(&mut w)?;
    Ok((w, hello))
}

/// Spawns a worker and sends its init frame.
fn send_init(
    family: &Family,
    split: Split,
    seed: u64,
    rows: usize,
    opts: &Options,
) -> Result<Worker, WorkerError> {
    let mut w = Worker::spawn(&opts.python, opts.spin)?;
    let mut init = serde_json::json!({
        "protocol": PROTOCOL_VERSION, "split": split.as_str(), "rows": rows,
        "spin_us": opts.spin.as_micros() as u64,
    });
    let family_keys = match family {
        Family::Mujoco(env) => serde_json::json!({ "family": "mujoco", "env": env }),
        Family::MetaWorld { benchmark, task } => serde_json::json!({
            "family": "metaworld", "benchmark": benchmark, "task": task,
            "bench_seed": bench_seed(seed),
        }),
    };
    if let (Some(all), serde_json::Value::Object(keys)) = (init.as_object_mut(), family_keys) {
        all.extend(keys);
    }
    let f = w.frame();
    f.push(b'I');
    f.extend_from_slice(init.to_string().as_bytes());
    w.send()?;
    Ok(w)
}

/// Waits for a started worker's hello.
fn recv_hello(w: &mut Worker) -> Result<Hello, WorkerError> {
    let frame = w.recv(INIT_TIMEOUT)?;
    if frame.first() != Some(&b'H') {
        return Err(WorkerError::Protocol("expected a hello frame".into()));
    }
    serde_json::from_slice(&frame[1..])
        .map_err(|e| WorkerError::Protocol(format!("bad hello: {e}")))
}

impl BatchEnv for PyBatchEnv {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn num_envs(&self) -> usize {
        self.task_index.len()
    }

    #[allow(clippy::needless_range_loop)] // parallel arrays share one index
    fn reset(&mut self, obs: &mut [f32]) {
        let n = self.num_envs();
        assert_eq!(
            obs.len(),
            n * self.spec.obs_dim,
            "PyBatchEnv::reset: obs buffer size"
        );
        assert!(
            self.in_flight.is_empty(),
            "PyBatchEnv::reset with parts in flight (collect them with step_end first)"
        );
        let od = self.spec.obs_dim;
        let mut errs = std::mem::take(&mut self.step_errs);
        errs.resize_with(self.workers.len(), || None);
        // Rows whose trial has not begun keep their task and first observation (see
        // `BatchEnv::reset`); the others start a new trial. A row without a task yet
        // (the batch being built) draws its first.
        let redraw: Vec<bool> = (0..n)
            .map(|r| self.trials[r] == 0 || self.ep[r] > 0 || self.ep_t[r] > 0)
            .collect();
        let mut sent = vec![false; self.workers.len()];
        for w in 0..self.workers.len() {
            let rows = self.slices[w].clone();
            for r in rows.clone().filter(|&r| !redraw[r]) {
                obs[r * od..(r + 1) * od].copy_from_slice(&self.last_obs[r * od..(r + 1) * od]);
            }
            let count = rows.clone().filter(|&r| redraw[r]).count();
            if count == 0 {
                continue;
            }
            self.workers[w].frame().push(b'R');
            self.workers[w]
                .frame_mut()
                .extend_from_slice(&(count as u32).to_le_bytes());
            for r in rows.filter(|&r| redraw[r]) {
                self.push_reset(w, r, true);
            }
            sent[w] = true;
            if let Err(e) = self.workers[w].send() {
                errs[w] = Some(e);
            }
        }
        for w in 0..self.workers.len() {
            if !sent[w] {
                continue;
            }
            let rows = self.slices[w].clone();
            let e = match errs[w].take() {
                Some(e) => Some(e),
                None => self
                    .recv_obs(w, rows.clone().filter(|&r| redraw[r]), obs)
                    .err(),
            };
            if let Some(e) = e {
                self.restart(w, &e);
                let od = self.spec.obs_dim;
                obs[rows.start * od..rows.end * od]
                    .copy_from_slice(&self.fresh_obs[rows.start * od..rows.end * od]);
            }
        }
        self.step_errs = errs;
        for lost in &mut self.lost {
            lost.fill(false);
        }
        self.last_obs.copy_from_slice(obs);
    }

    fn step(&mut self, actions: &[f32], out: &mut StepOut) {
        // All parts go out before any reply is read: with several parts a worker
        // simulates the next part while this process reads the previous one.
        for g in 0..self.parts.len() {
            self.step_begin(g, actions);
        }
        for g in 0..self.parts.len() {
            self.step_end(g, out);
        }
    }

    fn fatal(&self) -> Option<String> {
        self.fatal.clone()
    }

    fn save_state(&self) -> serde_json::Value {
        assert!(
            self.in_flight.is_empty(),
            "PyBatchEnv::save_state with parts in flight"
        );
        let saved = ReplayState {
            env: self.spec.name.to_string(),
            split: self.split,
            task_index: self.task_index.clone(),
            task_value_bits: self.task_value.iter().map(|v| v.to_bits()).collect(),
            episode_seed: self.episode_seed.clone(),
            ep_t: self.ep_t.clone(),
            ep: self.ep.clone(),
            rng: self.rng.clone(),
            trials: self.trials.clone(),
            history: self.history.clone(),
            events: Some(self.events),
        };
        serde_json::to_value(saved).expect("PyBatchEnv state serialises")
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<(), StateError> {
        let name = self.spec.name;
        let n = self.num_envs();
        let ad = self.act_dim();
        let s = ReplayState::load(
            state,
            &ReplayShape {
                env: name,
                split: self.split,
                rows: n,
                num_tasks: self.hello.num_tasks,
                episode_len: self.spec.episode_len,
                episodes_per_trial: self.spec.episodes_per_trial,
                act_dim: ad,
            },
        )?;
        self.task_index = s.task_index;
        self.task_value = s
            .task_value_bits
            .iter()
            .map(|b| f64::from_bits(*b))
            .collect();
        self.episode_seed = s.episode_seed;
        self.ep_t = s.ep_t;
        self.ep = s.ep;
        self.rng = s.rng;
        self.trials = s.trials;
        self.history = s.history;
        self.events = s.events.unwrap_or_default();
        // Bring every simulator to the saved state: reset with the saved task and seed,
        // then replay the episode's actions (MuJoCo is deterministic).
        let od = self.spec.obs_dim;
        let mut obs = vec![0.0f32; n * od];
        for w in 0..self.workers.len() {
            for r in self.slices[w].clone() {
                let local = (r - self.slices[w].start) as u32;
                let (ti, tv, seed) = (self.task_index[r], self.task_value[r], self.episode_seed[r]);
                let hist = std::mem::take(&mut self.history[r]);
                let f = self.workers[w].frame();
                f.push(b'P');
                f.extend_from_slice(&local.to_le_bytes());
                f.push(1);
                f.extend_from_slice(&ti.to_le_bytes());
                f.extend_from_slice(&tv.to_le_bytes());
                f.extend_from_slice(&seed.to_le_bytes());
                f.extend_from_slice(&((hist.len() / ad) as u32).to_le_bytes());
                for a in &hist {
                    f.extend_from_slice(&a.to_le_bytes());
                }
                self.history[r] = hist;
                self.workers[w]
                    .send()
                    .and_then(|_| self.recv_obs(w, std::iter::once(r), &mut obs))
                    .map_err(|e| {
                        StateError::Replay(format!("{name}: replaying row {r} after resume: {e}"))
                    })?;
            }
        }
        self.last_obs = obs;
        Ok(())
    }

    fn events(&self) -> EnvEvents {
        self.events
    }

    fn versions(&self) -> Vec<(String, String)> {
        self.hello
            .versions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl Drop for PyBatchEnv {
    fn drop(&mut self) {
        // Ask all workers to quit first, then reap them (parallel shutdown).
        for w in &mut self.workers {
            w.request_quit();
        }
        for w in &mut self.workers {
            w.shutdown(Duration::from_secs(2));
        }
    }
}
