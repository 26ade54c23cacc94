//! What the MuJoCo batches share, whoever simulates them (the native batch,
//! `mujoco::batch`, or the Python workers, `python`): the task and reset-seed draws of
//! a row ([`TaskDraw`], [`episode_seed`]) and the saved state ([`ReplayState`]) — a
//! row is restored by resetting its simulator with the saved task and seed and
//! replaying the episode's actions, since MuJoCo is deterministic.
//!
//! ```
//! use bamdp::env::replay::{episode_seed, TaskDraw};
//! use bamdp::env::Split;
//! use bamdp::rng::Rng;
//!
//! let mut rng = Rng::new(3);
//! let (_, velocity) = TaskDraw::Velocity.draw(&mut rng, Split::Train, 0, 0, 4);
//! assert!((0.0..3.0).contains(&velocity));
//! // Held-out task lists are visited in turn: row 1's third trial of a 4-row batch.
//! assert_eq!(TaskDraw::List(10).draw(&mut rng, Split::Test, 1, 2, 4), (9, 0.0));
//! assert!(episode_seed(&mut rng) < 1 << 63);
//! ```

use super::{EnvEvents, Split};
use crate::error::StateError;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// How a row's next task is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskDraw {
    /// HalfCheetah-Vel: a target velocity uniform in [0, 3).
    Velocity,
    /// A direction, -1 or +1 with equal probability (HalfCheetah-Dir, Ant-Dir).
    Direction,
    /// An index into a list of this many tasks (MetaWorld): uniform on the train
    /// split; on the test split visited in turn, so a meta-test over as many trials as
    /// there are tasks plays each task equally often.
    List(usize),
}

impl TaskDraw {
    /// The task `(index, value)` of `row`'s `trial`-th trial (0-based) in a batch of
    /// `rows` rows, drawn from the row's stream.
    pub fn draw(
        self,
        rng: &mut Rng,
        split: Split,
        row: usize,
        trial: u64,
        rows: usize,
    ) -> (u32, f64) {
        match self {
            TaskDraw::Velocity => (0, 3.0 * rng.uniform()),
            TaskDraw::Direction => (0, if rng.uniform() < 0.5 { -1.0 } else { 1.0 }),
            TaskDraw::List(n) => {
                let n = n as u64;
                match split {
                    Split::Train => (rng.below(n) as u32, 0.0),
                    Split::Test => (turn(row, trial, rows, n as usize) as u32, 0.0),
                }
            }
        }
    }
}

/// The position in a list of `n` taken in turn of row `row`'s `trial`-th trial (0-based)
/// in a batch of `rows` rows: the rows take the positions one after another, round
/// after round.
pub fn turn(row: usize, trial: u64, rows: usize, n: usize) -> usize {
    ((row as u64 + trial * rows as u64) % n as u64) as usize
}

/// The order in which an evaluation visits a task list so that any prefix of it covers
/// the classes evenly: the first task of each class (classes in order of first
/// appearance), then the second of each, and so on; a class that runs out drops out of
/// the round. Row `r`'s `j`-th trial of a batch of `rows` rows then plays the task at
/// position `r + j rows` (as the held-out lists are played in list order).
///
/// ```
/// use bamdp::env::replay::classes_in_turn;
/// let class = |i: u32| Some(["a", "a", "a", "b", "b", "c"][i as usize]);
/// assert_eq!(classes_in_turn(6, class), vec![0, 3, 5, 1, 4, 2]);
/// ```
pub fn classes_in_turn(
    num_tasks: usize,
    class_of: impl Fn(u32) -> Option<&'static str>,
) -> Vec<u32> {
    let classes = tasks_by_class(num_tasks, class_of);
    let longest = classes.iter().map(|(_, t)| t.len()).max().unwrap_or(0);
    (0..longest)
        .flat_map(|k| classes.iter().filter_map(move |(_, t)| t.get(k).copied()))
        .collect()
}

/// The task list's indices grouped by class, classes in order of first appearance
/// (tasks without a class form one group under `None`).
pub fn tasks_by_class(
    num_tasks: usize,
    class_of: impl Fn(u32) -> Option<&'static str>,
) -> Vec<(Option<&'static str>, Vec<u32>)> {
    let mut classes: Vec<(Option<&'static str>, Vec<u32>)> = Vec::new();
    for i in 0..num_tasks as u32 {
        let c = class_of(i);
        match classes.iter_mut().find(|(name, _)| *name == c) {
            Some((_, tasks)) => tasks.push(i),
            None => classes.push((c, vec![i])),
        }
    }
    classes
}

/// The seed a row's next episode is reset with (63 bits: Python's seeds are signed).
pub fn episode_seed(rng: &mut Rng) -> u64 {
    rng.next_u64() >> 1
}

/// The saved state of a batch of replayed MuJoCo rows, one entry per row in each list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayState {
    pub env: String,
    pub split: Split,
    pub task_index: Vec<u32>,
    /// The task values' bits (exact in JSON).
    pub task_value_bits: Vec<u64>,
    pub episode_seed: Vec<u64>,
    /// Step within the episode.
    pub ep_t: Vec<u32>,
    /// Episode within the trial.
    pub ep: Vec<u32>,
    pub rng: Vec<Rng>,
    /// Trials started.
    pub trials: Vec<u64>,
    /// The current episode's (clipped) actions, to replay.
    pub history: Vec<Vec<f32>>,
    /// Worker failures survived (batches of worker processes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EnvEvents>,
}

/// The shape a [`ReplayState`] must have to be restored into a batch.
pub struct ReplayShape<'a> {
    pub env: &'a str,
    pub split: Split,
    pub rows: usize,
    /// Size of the split's task list (0 for a continuous task space).
    pub num_tasks: usize,
    pub episode_len: usize,
    pub episodes_per_trial: usize,
    pub act_dim: usize,
}

impl ReplayState {
    /// Decodes a saved state and checks every field against `shape` before anything
    /// is restored.
    pub fn load(state: &serde_json::Value, shape: &ReplayShape) -> Result<Self, StateError> {
        let name = shape.env;
        let s = ReplayState::deserialize(state).map_err(|e| StateError::Decode {
            what: format!("{name} state"),
            detail: e.to_string(),
        })?;
        super::check_saved_state(
            name,
            shape.split,
            shape.rows,
            &s.env,
            s.split,
            &[
                ("task_index", s.task_index.len()),
                ("task_value_bits", s.task_value_bits.len()),
                ("episode_seed", s.episode_seed.len()),
                ("ep_t", s.ep_t.len()),
                ("ep", s.ep.len()),
                ("rng", s.rng.len()),
                ("trials", s.trials.len()),
                ("history", s.history.len()),
            ],
        )?;
        let bad = |m: String| Err(StateError::Mismatch(format!("{name} state: {m}")));
        for r in 0..shape.rows {
            if s.task_index[r] as usize >= shape.num_tasks.max(1) {
                return bad(format!(
                    "row {r} task index {} out of range",
                    s.task_index[r]
                ));
            }
            if s.ep_t[r] as usize >= shape.episode_len
                || s.ep[r] as usize >= shape.episodes_per_trial
            {
                return bad(format!("row {r} counters out of range"));
            }
            if s.history[r].len() != s.ep_t[r] as usize * shape.act_dim {
                return bad(format!(
                    "row {r} action history does not match its step count"
                ));
            }
        }
        Ok(s)
    }
}
