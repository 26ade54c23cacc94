//! A batch of natively simulated rows: the same tasks, reset seeds, episode and trial
//! ends as the Python bridge ([`crate::env::python::PyBatchEnv`]) — row `i` draws from
//! `Rng::stream(seed, TRAIN_TASKS|TEST_TASKS, i)` in the same order: the task at the
//! start of a trial, then `next_u64() >> 1` as the seed of every episode's reset.
//!
//! Rows are split into `threads` contiguous chunks stepped in parallel; a row's
//! simulation depends only on its own stream and actions, so results do not depend on
//! the thread count. Checkpoints store the streams, counters and the current episode's
//! actions; a resumed batch resets each row with its saved task and seed and replays
//! those actions (MuJoCo is deterministic).

use crate::env::replay::{episode_seed, ReplayShape, ReplayState};
use crate::env::{ActionSpace, BatchEnv, EnvSpec, Split, StepOut};
use crate::error::{StateError, UserError};
use crate::rng::{streams, Rng};

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
}

/// A natively simulated batch (see the module doc).
pub struct NativeBatch {
    spec: EnvSpec,
    split: Split,
    layout: Layout,
    rows: Vec<Row>,
    /// The family: task draws for every row.
    family: std::sync::Arc<dyn Family + Send + Sync>,
    threads: usize,
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
        };
        let mut rows = Vec::with_capacity(num_envs);
        for i in 0..num_envs {
            rows.push(Row {
                sim: family.row()?,
                rng: Rng::stream(seed, label, i as u64),
                task_index: 0,
                task_value: 0.0,
                episode_seed: 0,
                ep_t: 0,
                ep: 0,
                trials: 0,
                history: Vec::with_capacity(shape.episode_len * layout.ad),
            });
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
            threads: threads.max(1),
            num_tasks: family.num_tasks(),
            versions: family.versions(),
            family,
        };
        // The first trials' tasks and seeds (`reset` keeps them: no trial has begun).
        let mut obs = vec![0.0; env.layout.od];
        for (r, row) in env.rows.iter_mut().enumerate() {
            reset_row(row, r, true, &env.layout, &*env.family, &mut obs);
        }
        Ok(env)
    }

    /// Row `r`'s task: (index into the split's task list, task value).
    pub fn task(&self, r: usize) -> (u32, f64) {
        (self.rows[r].task_index, self.rows[r].task_value)
    }
    /// The seed row `r`'s current episode was reset with.
    pub fn episode_seed(&self, r: usize) -> u64 {
        self.rows[r].episode_seed
    }
}

type Draw<'a> = &'a (dyn Family + Send + Sync);

/// Starts row `r`'s next episode (and a new trial's task if `new_trial`); writes the
/// first observation. The draws are the bridge's `push_reset`.
fn reset_row(row: &mut Row, r: usize, new_trial: bool, l: &Layout, draw: Draw, obs: &mut [f32]) {
    if new_trial {
        let (i, v) = draw.draw_task(&mut row.rng, l.split, r, row.trials, l.rows);
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

/// The rows `first..` of a chunk and their slices of a step's outputs.
struct Chunk<'a> {
    first: usize,
    rows: &'a mut [Row],
    actions: &'a [f32],
    obs: &'a mut [f32],
    final_obs: &'a mut [f32],
    reward: &'a mut [f32],
    terminated: &'a mut [bool],
    truncated: &'a mut [bool],
    trial_end: &'a mut [bool],
    success: &'a mut [bool],
    episode_index: &'a mut [u32],
}

fn step_chunk(c: Chunk, l: &Layout, draw: Draw) {
    let (od, ad) = (l.od, l.ad);
    let mut clipped = [0f32; 64];
    for (j, row) in c.rows.iter_mut().enumerate() {
        let a = &mut clipped[..ad];
        for (x, y) in a.iter_mut().zip(&c.actions[j * ad..(j + 1) * ad]) {
            assert!(!y.is_nan(), "NativeBatch::step: NaN action");
            *x = y.clamp(l.low, l.high);
        }
        let fin = &mut c.final_obs[j * od..(j + 1) * od];
        let o = row.sim.step(a, fin);
        row.history.extend_from_slice(a);
        row.ep_t += 1;
        let terminated = o.terminated || (o.success && row.ep >= l.success_ends_from);
        c.reward[j] = o.reward;
        c.terminated[j] = terminated;
        c.success[j] = o.success;
        c.episode_index[j] = row.ep;
        let limit = row.ep_t == l.ep_len;
        c.truncated[j] = !terminated && limit;
        let end = terminated || limit;
        c.trial_end[j] = end && row.ep + 1 == l.k;
        let obs = &mut c.obs[j * od..(j + 1) * od];
        if end {
            let new_trial = c.trial_end[j];
            if !new_trial {
                row.ep += 1;
            }
            reset_row(row, c.first + j, new_trial, l, draw, obs);
        } else {
            obs.copy_from_slice(fin);
        }
    }
}

impl BatchEnv for NativeBatch {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn num_envs(&self) -> usize {
        self.rows.len()
    }

    fn reset(&mut self, obs: &mut [f32]) {
        let od = self.layout.od;
        assert_eq!(
            obs.len(),
            self.rows.len() * od,
            "NativeBatch::reset: obs buffer size"
        );
        for (r, (row, o)) in self.rows.iter_mut().zip(obs.chunks_mut(od)).enumerate() {
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
        let per = n.div_ceil(self.threads.min(n));
        let chunks = self
            .rows
            .chunks_mut(per)
            .zip(actions.chunks(per * ad))
            .zip(out.obs.chunks_mut(per * od))
            .zip(out.final_obs.chunks_mut(per * od))
            .zip(out.reward.chunks_mut(per))
            .zip(out.terminated.chunks_mut(per))
            .zip(out.truncated.chunks_mut(per))
            .zip(out.trial_end.chunks_mut(per))
            .zip(out.success.chunks_mut(per))
            .zip(out.episode_index.chunks_mut(per))
            .enumerate()
            .map(
                |(
                    ci,
                    (
                        (
                            (
                                (
                                    (((((rows, actions), obs), final_obs), reward), terminated),
                                    truncated,
                                ),
                                trial_end,
                            ),
                            success,
                        ),
                        episode_index,
                    ),
                )| Chunk {
                    first: ci * per,
                    rows,
                    actions,
                    obs,
                    final_obs,
                    reward,
                    terminated,
                    truncated,
                    trial_end,
                    success,
                    episode_index,
                },
            );
        let (layout, draw) = (&self.layout, &*self.family);
        if per == n {
            chunks.for_each(|c| step_chunk(c, layout, draw));
        } else {
            std::thread::scope(|s| {
                let mut chunks: Vec<Chunk> = chunks.collect();
                let mine = chunks.remove(0);
                for c in chunks {
                    s.spawn(move || step_chunk(c, layout, draw));
                }
                step_chunk(mine, layout, draw);
            });
        }
    }

    fn save_state(&self) -> serde_json::Value {
        let saved = ReplayState {
            env: self.spec.name.to_string(),
            split: self.split,
            task_index: self.rows.iter().map(|r| r.task_index).collect(),
            task_value_bits: self.rows.iter().map(|r| r.task_value.to_bits()).collect(),
            episode_seed: self.rows.iter().map(|r| r.episode_seed).collect(),
            ep_t: self.rows.iter().map(|r| r.ep_t).collect(),
            ep: self.rows.iter().map(|r| r.ep).collect(),
            rng: self.rows.iter().map(|r| r.rng.clone()).collect(),
            trials: self.rows.iter().map(|r| r.trials).collect(),
            history: self.rows.iter().map(|r| r.history.clone()).collect(),
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

    fn task_index(&self, r: usize) -> Option<u32> {
        (self.num_tasks > 0).then(|| self.rows[r].task_index)
    }

    fn task_class(&self, index: u32) -> Option<&'static str> {
        self.family.task_class(index)
    }
}
