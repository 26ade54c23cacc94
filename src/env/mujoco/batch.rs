//! A batch of natively simulated rows: the same tasks, reset seeds, episode and trial
//! ends as the Python bridge ([`crate::env::python::PyBatchEnv`]) — row `i` draws from
//! `Rng::stream(seed, TRAIN_TASKS|TEST_TASKS, i)` in the same order: the task at the
//! start of a trial, then `next_u64() >> 1` as the seed of every episode's reset.
//!
//! A step runs on `threads` threads of a [`Pool`] made with the batch; they take rows
//! one at a time from a shared counter, so rows of costly classes spread over all of
//! them. A row's simulation depends only on its own stream and actions and writes only
//! its own outputs, so results depend neither on the thread count nor on which thread
//! stepped which row. Checkpoints store the streams, counters and the current episode's
//! actions; a resumed batch resets each row with its saved task and seed and replays
//! those actions (MuJoCo is deterministic).

use crate::env::replay::{
    classes_in_turn, episode_seed, tasks_by_class, turn, ReplayShape, ReplayState,
};
use crate::env::{ActionSpace, BatchEnv, EnvSpec, Split, StepOut};
use crate::error::{StateError, UserError};
use crate::rng::{streams, Rng};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::par::Pool;

/// What one step of one row reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outcome {
    pub reward: f32,
    pub terminated: bool,
    pub success: bool,
}

/// One row's simulator.
pub trait RowSim: Send {
    /// Starts an episode of task (`task_index`, `task_value`) from the reset `seed`
    /// and writes its first observation.
    fn reset(&mut self, task_index: u32, task_value: f64, seed: u64, obs: &mut [f32]);
    /// Applies an action (already clipped to the action box); writes the observation.
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Outcome;
    /// `env_steps` env steps' worth of bare `mj_step` calls with every control at
    /// `ctrl` and nothing else: the physics share of a step, for benchmarks.
    fn bare_steps(&mut self, env_steps: usize, ctrl: f64);
    /// The bytes this row holds in memory, from MuJoCo's own sizes (its `mjData`, and
    /// its model when the row owns a copy), for the memory guards
    /// ([`crate::env::BatchEnv::row_bytes`]).
    fn bytes(&self) -> usize;
}

/// A family's spaces and time layout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub obs_dim: usize,
    pub act_dim: usize,
    /// Every action dimension's box.
    pub act_bounds: (f32, f32),
    pub episode_len: usize,
    pub episodes_per_trial: usize,
    pub has_success: bool,
}

/// A task family: its spaces, time layout, task distribution, and row simulators.
pub trait Family {
    fn name(&self) -> &'static str;
    fn shape(&self) -> Shape;
    /// Size of the split's task list; 0 for a continuous task space.
    fn num_tasks(&self) -> usize;
    /// The task of `row`'s `trial`-th trial (0-based) in a batch of `rows` rows.
    fn draw_task(
        &self,
        rng: &mut Rng,
        split: Split,
        row: usize,
        trial: u64,
        rows: usize,
    ) -> (u32, f64);
    fn row(&self) -> Result<Box<dyn RowSim>, UserError>;
    /// The class of task `index` (MetaWorld's env name), for families of classes.
    fn task_class(&self, index: u32) -> Option<&'static str> {
        let _ = index;
        None
    }
    /// The simulator versions to record with a run.
    fn versions(&self) -> Vec<(String, String)> {
        vec![
            ("mujoco".into(), super::lib::MUJOCO_VERSION.into()),
            ("backend".into(), "native".into()),
        ]
    }
}

/// One row's simulator, streams and counters.
struct Row {
    sim: Box<dyn RowSim>,
    rng: Rng,
    task_index: u32,
    task_value: f64,
    episode_seed: u64,
    /// Step within the episode, episode within the trial, trials started.
    ep_t: u32,
    ep: u32,
    trials: u64,
    /// The current episode's clipped actions (replayed after a resume).
    history: Vec<f32>,
    /// The last step's outputs, copied into the batch's `StepOut` after the step.
    out: RowOut,
}

/// One row's outputs of one step.
struct RowOut {
    obs: Vec<f32>,
    final_obs: Vec<f32>,
    reward: f32,
    terminated: bool,
    truncated: bool,
    trial_end: bool,
    success: bool,
    episode_index: u32,
}

/// The row inside `m`, also after a panic in an earlier step (it was re-raised there).
fn row_mut(m: &mut Mutex<Row>) -> &mut Row {
    m.get_mut().unwrap_or_else(|e| e.into_inner())
}

/// Per-batch constants every row needs while stepping.
#[derive(Clone)]
struct Layout {
    od: usize,
    ad: usize,
    low: f32,
    high: f32,
    ep_len: u32,
    k: u32,
    split: Split,
    rows: usize,
    /// Episodes from this index on end at their first success (`u32::MAX`: never).
    success_ends_from: u32,
    /// The task list's order when rows take it in turn (evaluation:
    /// `BatchEnv::visit_tasks_in_turn`); `None`: the family draws.
    in_turn: Option<Arc<[u32]>>,
}

/// A natively simulated batch (see the module doc).
pub struct NativeBatch {
    spec: EnvSpec,
    split: Split,
    layout: Layout,
    /// Each row behind a lock: the pool's threads claim rows from a counter, each row
    /// once per step, so the lock is never contended; it makes the sharing safe.
    rows: Vec<Mutex<Row>>,
    /// The family: task draws for every row.
    family: std::sync::Arc<dyn Family + Send + Sync>,
    /// The threads a step runs on, made once with the batch.
    pool: Pool,
    num_tasks: usize,
    versions: Vec<(String, String)>,
}

impl NativeBatch {
    pub fn new(
        family: std::sync::Arc<dyn Family + Send + Sync>,
        num_envs: usize,
        split: Split,
        seed: u64,
        episodes_per_trial: Option<usize>,
        threads: usize,
    ) -> Result<NativeBatch, UserError> {
        if num_envs == 0 {
            return Err(UserError::invalid(
                "run.num_envs",
                "0",
                "a positive number of rows",
            ));
        }
        let shape = family.shape();
        let k = episodes_per_trial.unwrap_or(shape.episodes_per_trial);
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
        let (low, high) = shape.act_bounds;
        let layout = Layout {
            od: shape.obs_dim,
            ad: shape.act_dim,
            low,
            high,
            ep_len: shape.episode_len as u32,
            k: k as u32,
            split,
            rows: num_envs,
            success_ends_from: u32::MAX,
            in_turn: None,
        };
        let mut rows = Vec::with_capacity(num_envs);
        for i in 0..num_envs {
            rows.push(Mutex::new(Row {
                sim: family.row()?,
                rng: Rng::stream(seed, label, i as u64),
                task_index: 0,
                task_value: 0.0,
                episode_seed: 0,
                ep_t: 0,
                ep: 0,
                trials: 0,
                history: Vec::with_capacity(shape.episode_len * layout.ad),
                out: RowOut {
                    obs: vec![0.0; layout.od],
                    final_obs: vec![0.0; layout.od],
                    reward: 0.0,
                    terminated: false,
                    truncated: false,
                    trial_end: false,
                    success: false,
                    episode_index: 0,
                },
            }));
        }
        let mut env = NativeBatch {
            spec: EnvSpec {
                name: family.name(),
                obs_dim: layout.od,
                action: ActionSpace::Continuous {
                    dim: layout.ad,
                    low,
                    high,
                },
                episode_len: shape.episode_len,
                episodes_per_trial: k,
                has_success: shape.has_success,
            },
            split,
            layout,
            rows,
            pool: Pool::new(threads.clamp(1, num_envs)),
            num_tasks: family.num_tasks(),
            versions: family.versions(),
            family,
        };
        // The first trials' tasks and seeds (`reset` keeps them: no trial has begun).
        let mut obs = vec![0.0; env.layout.od];
        for (r, row) in env.rows.iter_mut().enumerate() {
            reset_row(row_mut(row), r, true, &env.layout, &*env.family, &mut obs);
        }
        Ok(env)
    }

    /// Row `r`'s task: (index into the split's task list, task value).
    pub fn task(&self, r: usize) -> (u32, f64) {
        let row = self.row(r);
        (row.task_index, row.task_value)
    }
    /// The seed row `r`'s current episode was reset with.
    pub fn episode_seed(&self, r: usize) -> u64 {
        self.row(r).episode_seed
    }

    fn row(&self, r: usize) -> std::sync::MutexGuard<'_, Row> {
        self.rows[r].lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Draw<'a> = &'a (dyn Family + Send + Sync);

/// Starts row `r`'s next episode (and a new trial's task if `new_trial`); writes the
/// first observation. The draws are the bridge's `push_reset`.
fn reset_row(row: &mut Row, r: usize, new_trial: bool, l: &Layout, draw: Draw, obs: &mut [f32]) {
    if new_trial {
        let (i, v) = match &l.in_turn {
            Some(order) => (order[turn(r, row.trials, l.rows, order.len())], 0.0),
            None => draw.draw_task(&mut row.rng, l.split, r, row.trials, l.rows),
        };
        row.task_index = i;
        row.task_value = v;
        row.trials += 1;
        row.ep = 0;
    }
    row.episode_seed = episode_seed(&mut row.rng);
    row.ep_t = 0;
    row.history.clear();
    row.sim
        .reset(row.task_index, row.task_value, row.episode_seed, obs);
}

/// Steps row `r` with its (unclipped) `action`; writes the row's outputs into `row.out`.
fn step_row(row: &mut Row, r: usize, action: &[f32], l: &Layout, draw: Draw) {
    let mut clipped = [0f32; 64];
    let a = &mut clipped[..l.ad];
    for (x, y) in a.iter_mut().zip(action) {
        *x = y.clamp(l.low, l.high);
    }
    let o = row.sim.step(a, &mut row.out.final_obs);
    row.history.extend_from_slice(a);
    row.ep_t += 1;
    let terminated = o.terminated || (o.success && row.ep >= l.success_ends_from);
    let limit = row.ep_t == l.ep_len;
    let end = terminated || limit;
    let trial_end = end && row.ep + 1 == l.k;
    row.out.reward = o.reward;
    row.out.terminated = terminated;
    row.out.success = o.success;
    row.out.episode_index = row.ep;
    row.out.truncated = !terminated && limit;
    row.out.trial_end = trial_end;
    if end {
        if !trial_end {
            row.ep += 1;
        }
        let mut obs = std::mem::take(&mut row.out.obs);
        reset_row(row, r, trial_end, l, draw, &mut obs);
        row.out.obs = obs;
    } else {
        row.out.obs.copy_from_slice(&row.out.final_obs);
    }
}

impl BatchEnv for NativeBatch {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn num_envs(&self) -> usize {
        self.rows.len()
    }

    /// Row 0's simulator (every row of a family holds the same models) and the row's
    /// own buffers: observations and the episode's action history.
    fn row_bytes(&self) -> usize {
        let row = self.row(0);
        let buffers = 4 * (2 * row.out.obs.capacity() + row.history.capacity());
        std::mem::size_of::<Mutex<Row>>() + buffers + row.sim.bytes()
    }

    fn reset(&mut self, obs: &mut [f32]) {
        let od = self.layout.od;
        assert_eq!(
            obs.len(),
            self.rows.len() * od,
            "NativeBatch::reset: obs buffer size"
        );
        for (r, (row, o)) in self.rows.iter_mut().zip(obs.chunks_mut(od)).enumerate() {
            let row = row_mut(row);
            if row.ep == 0 && row.ep_t == 0 {
                // The trial has not begun: its task and first episode stay (MuJoCo is
                // deterministic, so resetting again with the same seed gives the same
                // first observation).
                row.sim
                    .reset(row.task_index, row.task_value, row.episode_seed, o);
            } else {
                reset_row(row, r, true, &self.layout, &*self.family, o);
            }
        }
    }

    fn step(&mut self, actions: &[f32], out: &mut StepOut) {
        let n = self.rows.len();
        let (od, ad) = (self.layout.od, self.layout.ad);
        out.assert_sized(n, od, "NativeBatch::step");
        assert_eq!(actions.len(), n * ad, "NativeBatch::step: actions length");
        assert!(ad <= 64, "NativeBatch: action width {ad} above 64");
        assert!(
            !actions.iter().any(|a| a.is_nan()),
            "NativeBatch::step: NaN action"
        );
        let next = AtomicUsize::new(0);
        let (rows, layout, draw) = (&self.rows, &self.layout, &*self.family);
        self.pool.run(&|| loop {
            let r = next.fetch_add(1, Ordering::Relaxed);
            let Some(row) = rows.get(r) else { break };
            let mut row = row.lock().unwrap_or_else(|e| e.into_inner());
            step_row(&mut row, r, &actions[r * ad..(r + 1) * ad], layout, draw);
        });
        for (r, row) in self.rows.iter_mut().enumerate() {
            let o = &row_mut(row).out;
            out.obs[r * od..(r + 1) * od].copy_from_slice(&o.obs);
            out.final_obs[r * od..(r + 1) * od].copy_from_slice(&o.final_obs);
            out.reward[r] = o.reward;
            out.terminated[r] = o.terminated;
            out.truncated[r] = o.truncated;
            out.trial_end[r] = o.trial_end;
            out.success[r] = o.success;
            out.episode_index[r] = o.episode_index;
        }
    }

    fn save_state(&self) -> serde_json::Value {
        let rows: Vec<_> = (0..self.rows.len()).map(|r| self.row(r)).collect();
        let saved = ReplayState {
            env: self.spec.name.to_string(),
            split: self.split,
            task_index: rows.iter().map(|r| r.task_index).collect(),
            task_value_bits: rows.iter().map(|r| r.task_value.to_bits()).collect(),
            episode_seed: rows.iter().map(|r| r.episode_seed).collect(),
            ep_t: rows.iter().map(|r| r.ep_t).collect(),
            ep: rows.iter().map(|r| r.ep).collect(),
            rng: rows.iter().map(|r| r.rng.clone()).collect(),
            trials: rows.iter().map(|r| r.trials).collect(),
            history: rows.iter().map(|r| r.history.clone()).collect(),
            events: None,
        };
        serde_json::to_value(saved).expect("NativeBatch state serialises")
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<(), StateError> {
        let s = ReplayState::load(
            state,
            &ReplayShape {
                env: self.spec.name,
                split: self.split,
                rows: self.rows.len(),
                num_tasks: self.num_tasks,
                episode_len: self.layout.ep_len as usize,
                episodes_per_trial: self.layout.k as usize,
                act_dim: self.layout.ad,
            },
        )?;
        let (od, ad) = (self.layout.od, self.layout.ad);
        let mut obs = vec![0.0f32; od];
        for (r, row) in self.rows.iter_mut().enumerate() {
            let row = row_mut(row);
            row.task_index = s.task_index[r];
            row.task_value = f64::from_bits(s.task_value_bits[r]);
            row.episode_seed = s.episode_seed[r];
            row.ep_t = s.ep_t[r];
            row.ep = s.ep[r];
            row.rng = s.rng[r].clone();
            row.trials = s.trials[r];
            row.history = s.history[r].clone();
            row.sim
                .reset(row.task_index, row.task_value, row.episode_seed, &mut obs);
            for a in row.history.chunks(ad) {
                row.sim.step(a, &mut obs);
            }
        }
        Ok(())
    }

    fn versions(&self) -> Vec<(String, String)> {
        self.versions.clone()
    }

    fn terminate_on_success_from(&mut self, first: usize) -> Result<(), UserError> {
        if !self.spec.has_success {
            return Err(UserError::Other(format!(
                "env `{}` cannot end episodes at success: it has no success signal",
                self.spec.name
            )));
        }
        self.layout.success_ends_from = u32::try_from(first).unwrap_or(u32::MAX);
        Ok(())
    }

    fn visit_tasks_in_turn(&mut self) -> Result<(), UserError> {
        if self.num_tasks == 0 {
            return Err(UserError::Other(format!(
                "env `{}` draws its tasks from a continuous space: there is no task list to visit in turn",
                self.spec.name
            )));
        }
        let order: Arc<[u32]> =
            classes_in_turn(self.num_tasks, |i| self.family.task_class(i)).into();
        let (rows, od) = (self.rows.len(), self.layout.od);
        let mut obs = vec![0.0; od];
        for (r, row) in self.rows.iter_mut().enumerate() {
            let row = row_mut(row);
            // A trial not begun takes its task from the order: the trial it was drawn
            // for is the row's last started one.
            if row.ep == 0 && row.ep_t == 0 && row.trials > 0 {
                row.task_index = order[turn(r, row.trials - 1, rows, order.len())];
                row.task_value = 0.0;
                row.sim
                    .reset(row.task_index, row.task_value, row.episode_seed, &mut obs);
            }
        }
        self.layout.in_turn = Some(order);
        Ok(())
    }

    fn task_index(&self, r: usize) -> Option<u32> {
        (self.num_tasks > 0).then(|| self.row(r).task_index)
    }

    fn task_class(&self, index: u32) -> Option<&'static str> {
        self.family.task_class(index)
    }

    fn task_classes(&self) -> Vec<&'static str> {
        tasks_by_class(self.num_tasks, |i| self.family.task_class(i))
            .into_iter()
            .filter_map(|(class, _)| class)
            .collect()
    }
}
