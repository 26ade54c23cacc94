//! GridNavi (VariBAD's grid world): owns the grid dynamics, the goal (task) distribution,
//! the per-row task streams and the batch's checkpoint state.
//!
//! - 5x5 cells; the agent starts every episode at (0, 0) and observes its cell `(x, y)`
//!   as two f32 in `0..=4`.
//! - Actions `0..5` = noop, up, right, down, left. As in the reference
//!   (`lmzintgraf/varibad`, `environments/navigation/gridworld.py`, `state_transition`),
//!   **up is `y + 1`**, down `y - 1`, right `x + 1`, left `x - 1` (origin bottom-left,
//!   as in its plots). A move off the grid leaves the agent where it is.
//! - The goal is uniform over the 21 cells outside {(0,0), (0,1), (1,0), (1,1)}
//!   ([`CANDIDATE_CELLS`]). The reward is about the cell *after* the move: +1.0 when it is
//!   the goal, -0.1 otherwise, every step (the agent may stay on the goal and keep
//!   collecting +1); `success` mirrors "on the goal after the move".
//! - 15 steps per episode (time limit: `truncated`, never `terminated`), 4 episodes per
//!   trial; after the 4th episode `trial_end` is set and the row draws a new goal.
//!
//! Row `i` draws its goals from `Rng::stream(seed, TRAIN_TASKS or TEST_TASKS, i)`, so a
//! row's task sequence does not depend on the batch size. GridNavi has no train/test
//! split of its own: the test split is fresh tasks from a separate stream.
//!
//! Cells are numbered by [`cell_index`]`(x, y) = 5 * x + y`, the layout of the
//! reference's `task_to_id`, so the 25-wide belief vector is laid out like VariBAD's.

use super::{ActionSpace, BatchEnv, EnvSpec, Split, StepOut};
use crate::error::StateError;
use crate::rng::{streams, Rng};
use serde::{Deserialize, Serialize};

/// Side length of the grid.
pub const GRID: usize = 5;
/// Number of cells (and width of a belief over the goal).
pub const NUM_CELLS: usize = GRID * GRID;
/// Steps per episode.
pub const EPISODE_LEN: usize = 15;
/// Episodes per trial.
pub const EPISODES_PER_TRIAL: usize = 4;
/// Reward on the goal cell.
pub const GOAL_REWARD: f32 = 1.0;
/// Reward on any other cell.
pub const STEP_REWARD: f32 = -0.1;

/// The 21 possible goals `(x, y)`, in the reference's order (x-major, excluding the start
/// cell and its three neighbours).
pub const CANDIDATE_CELLS: [(usize, usize); 21] = {
    let mut cells = [(0, 0); 21];
    let mut k = 0;
    let mut x = 0;
    while x < GRID {
        let mut y = 0;
        while y < GRID {
            if x >= 2 || y >= 2 {
                cells[k] = (x, y);
                k += 1;
            }
            y += 1;
        }
        x += 1;
    }
    cells
};

/// Index of cell `(x, y)` in `0..25`: `5 * x + y` (the reference's `task_to_id` layout).
#[inline]
pub const fn cell_index(x: usize, y: usize) -> usize {
    x * GRID + y
}

/// Inverse of [`cell_index`].
#[inline]
pub const fn cell_of(index: usize) -> (usize, usize) {
    (index / GRID, index % GRID)
}

/// Whether `(x, y)` is one of the 21 possible goals.
#[inline]
pub const fn is_candidate(x: usize, y: usize) -> bool {
    x < GRID && y < GRID && (x >= 2 || y >= 2)
}

/// The cell reached from `(x, y)` by `action` (0..5); off-grid moves stay in place.
/// Panics on an action outside `0..5`.
#[inline]
pub fn move_cell(x: u8, y: u8, action: u32) -> (u8, u8) {
    const MAX: u8 = GRID as u8 - 1;
    match action {
        0 => (x, y),
        1 => (x, (y + 1).min(MAX)),
        2 => ((x + 1).min(MAX), y),
        3 => (x, y.saturating_sub(1)),
        4 => (x.saturating_sub(1), y),
        _ => panic!("GridNavi: action {action} is not in 0..5"),
    }
}

/// A batch of GridNavi environments (see the module doc).
pub struct GridNavi {
    spec: EnvSpec,
    split: Split,
    /// Goal cell per row.
    goal: Vec<[u8; 2]>,
    /// Agent cell per row.
    pos: Vec<[u8; 2]>,
    /// Steps taken in the current trial per row, `0..60`; the episode is `t / 15`.
    t: Vec<u32>,
    /// Task stream per row.
    rng: Vec<Rng>,
}

/// What `save_state` writes; `load_state` checks every field before using any.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    env: String,
    split: Split,
    goal: Vec<[u8; 2]>,
    pos: Vec<[u8; 2]>,
    t: Vec<u32>,
    rng: Vec<Rng>,
}

impl GridNavi {
    /// `num_envs` rows drawing tasks from `split`'s streams for `seed`. The rows start a
    /// trial right away (goals drawn, agents at (0, 0)); `reset` starts fresh ones.
    /// The same batch with `k` episodes per trial instead of 4 (evaluating adaptation
    /// beyond the training horizon). Call before stepping.
    pub fn with_episodes_per_trial(mut self, k: usize) -> GridNavi {
        assert!(k > 0, "episodes per trial must be positive");
        self.spec.episodes_per_trial = k;
        self
    }

    pub fn new(num_envs: usize, split: Split, seed: u64) -> GridNavi {
        let label = match split {
            Split::Train => streams::TRAIN_TASKS,
            Split::Test => streams::TEST_TASKS,
        };
        let mut env = GridNavi {
            spec: EnvSpec {
                name: "gridnavi",
                obs_dim: 2,
                action: ActionSpace::Discrete(5),
                episode_len: EPISODE_LEN,
                episodes_per_trial: EPISODES_PER_TRIAL,
                has_success: true,
            },
            split,
            goal: vec![[0, 0]; num_envs],
            pos: vec![[0, 0]; num_envs],
            t: vec![0; num_envs],
            rng: (0..num_envs)
                .map(|i| Rng::stream(seed, label, i as u64))
                .collect(),
        };
        for i in 0..num_envs {
            env.new_trial(i);
        }
        env
    }

    /// The split this batch draws tasks from.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Goal cell `(x, y)` of `row`.
    pub fn goal(&self, row: usize) -> (usize, usize) {
        let [x, y] = self.goal[row];
        (x as usize, y as usize)
    }

    /// Agent cell `(x, y)` of `row`.
    pub fn position(&self, row: usize) -> (usize, usize) {
        let [x, y] = self.pos[row];
        (x as usize, y as usize)
    }

    /// Steps taken so far in `row`'s current trial (`0..60`).
    pub fn trial_step(&self, row: usize) -> usize {
        self.t[row] as usize
    }

    /// Replace `row`'s goal (for tests and hand-worked cases); position and counters are
    /// kept. Panics if `cell` is not one of [`CANDIDATE_CELLS`].
    pub fn set_goal(&mut self, row: usize, cell: (usize, usize)) {
        assert!(
            is_candidate(cell.0, cell.1),
            "GridNavi::set_goal: {cell:?} is not a candidate goal"
        );
        self.goal[row] = [cell.0 as u8, cell.1 as u8];
    }

    /// Start a fresh trial on `row`: new goal from its stream, agent at the start.
    fn new_trial(&mut self, row: usize) {
        let (x, y) = CANDIDATE_CELLS[self.rng[row].below(CANDIDATE_CELLS.len() as u64) as usize];
        self.goal[row] = [x as u8, y as u8];
        self.pos[row] = [0, 0];
        self.t[row] = 0;
    }
}

impl BatchEnv for GridNavi {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn num_envs(&self) -> usize {
        self.goal.len()
    }

    fn reset(&mut self, obs: &mut [f32]) {
        let n = self.num_envs();
        assert_eq!(obs.len(), n * 2, "GridNavi::reset: obs buffer size");
        for i in 0..n {
            // A trial that has not begun is fresh already: its task stays.
            if self.t[i] != 0 {
                self.new_trial(i);
            }
        }
        obs.fill(0.0);
    }

    fn step(&mut self, actions: &[f32], out: &mut StepOut) {
        let n = self.num_envs();
        // Check sizes once, so the loop below cannot go out of bounds half-way.
        assert_eq!(actions.len(), n, "GridNavi::step: actions length");
        out.assert_sized(n, 2, "GridNavi::step");
        let trial_len_u32 = (EPISODE_LEN * self.spec.episodes_per_trial) as u32;
        for (i, &a) in actions.iter().enumerate() {
            let action = a as u32;
            // One compare rejects negative, fractional and NaN actions (the cast would
            // silently turn them into another action); `move_cell` rejects >= 5.
            assert!(
                action as f32 == a,
                "GridNavi: action {a} is not an index in 0..5"
            );
            let [x, y] = self.pos[i];
            let (x, y) = move_cell(x, y, action);
            let on_goal = [x, y] == self.goal[i];
            let t = self.t[i];
            let next_t = t + 1;
            let episode_end = next_t.is_multiple_of(EPISODE_LEN as u32);

            out.reward[i] = if on_goal { GOAL_REWARD } else { STEP_REWARD };
            out.success[i] = on_goal;
            out.terminated[i] = false;
            out.truncated[i] = episode_end;
            out.trial_end[i] = next_t == trial_len_u32;
            out.episode_index[i] = t / EPISODE_LEN as u32;
            out.final_obs[2 * i] = x as f32;
            out.final_obs[2 * i + 1] = y as f32;

            if next_t == trial_len_u32 {
                self.new_trial(i);
            } else if episode_end {
                // Same task, next episode.
                self.pos[i] = [0, 0];
                self.t[i] = next_t;
            } else {
                self.pos[i] = [x, y];
                self.t[i] = next_t;
            }
            let [x, y] = self.pos[i];
            out.obs[2 * i] = x as f32;
            out.obs[2 * i + 1] = y as f32;
        }
    }

    fn save_state(&self) -> serde_json::Value {
        let saved = Saved {
            env: self.spec.name.to_string(),
            split: self.split,
            goal: self.goal.clone(),
            pos: self.pos.clone(),
            t: self.t.clone(),
            rng: self.rng.clone(),
        };
        serde_json::to_value(saved).expect("GridNavi state serialises")
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<(), StateError> {
        let s = Saved::deserialize(state).map_err(|e| StateError::Decode {
            what: "gridnavi state".to_string(),
            detail: e.to_string(),
        })?;
        let n = self.num_envs();
        super::check_saved_state(
            self.spec.name,
            self.split,
            n,
            &s.env,
            s.split,
            &[
                ("goal", s.goal.len()),
                ("pos", s.pos.len()),
                ("t", s.t.len()),
                ("rng", s.rng.len()),
            ],
        )?;
        let trial_len = (EPISODE_LEN * self.spec.episodes_per_trial) as u32;
        for i in 0..n {
            let [gx, gy] = s.goal[i];
            if !is_candidate(gx as usize, gy as usize) {
                return Err(StateError::Mismatch(format!(
                    "gridnavi state: row {i} goal ({gx}, {gy}) is not a candidate cell"
                )));
            }
            let [px, py] = s.pos[i];
            if px as usize >= GRID || py as usize >= GRID {
                return Err(StateError::Mismatch(format!(
                    "gridnavi state: row {i} position ({px}, {py}) is off the grid"
                )));
            }
            if s.t[i] >= trial_len {
                return Err(StateError::Mismatch(format!(
                    "gridnavi state: row {i} step {} is not below the trial length {trial_len}",
                    s.t[i]
                )));
            }
        }
        self.goal = s.goal;
        self.pos = s.pos;
        self.t = s.t;
        self.rng = s.rng;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_cells_are_the_21_non_start_cells() {
        assert_eq!(CANDIDATE_CELLS.len(), 21);
        for (x, y) in CANDIDATE_CELLS {
            assert!(is_candidate(x, y));
            assert!(!(x < 2 && y < 2));
        }
        // Distinct, in the reference's x-major order.
        let idx: Vec<usize> = CANDIDATE_CELLS
            .iter()
            .map(|&(x, y)| cell_index(x, y))
            .collect();
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn cell_index_round_trips() {
        for i in 0..NUM_CELLS {
            let (x, y) = cell_of(i);
            assert_eq!(cell_index(x, y), i);
        }
        assert_eq!(cell_index(1, 0), 5);
        assert_eq!(cell_index(0, 1), 1);
    }

    #[test]
    fn moves_follow_the_reference_directions() {
        assert_eq!(move_cell(2, 2, 0), (2, 2));
        assert_eq!(move_cell(2, 2, 1), (2, 3)); // up: y + 1
        assert_eq!(move_cell(2, 2, 2), (3, 2)); // right: x + 1
        assert_eq!(move_cell(2, 2, 3), (2, 1)); // down: y - 1
        assert_eq!(move_cell(2, 2, 4), (1, 2)); // left: x - 1
        assert_eq!(move_cell(0, 0, 3), (0, 0));
        assert_eq!(move_cell(0, 0, 4), (0, 0));
        assert_eq!(move_cell(4, 4, 1), (4, 4));
        assert_eq!(move_cell(4, 4, 2), (4, 4));
    }

    #[test]
    #[should_panic(expected = "not in 0..5")]
    fn bad_action_panics() {
        move_cell(0, 0, 5);
    }
}

/// GridNavi's task-independent dynamics (moves, episode layout) for planners: the goal
/// changes rewards only.
#[derive(Clone, Copy, Debug)]
pub struct GridDynamics {
    pub episodes_per_trial: usize,
}

impl super::KnownDynamics for GridDynamics {
    fn obs_dim(&self) -> usize {
        2
    }
    fn action(&self) -> ActionSpace {
        ActionSpace::Discrete(5)
    }
    fn episode_len(&self) -> usize {
        EPISODE_LEN
    }
    fn episodes_per_trial(&self) -> usize {
        self.episodes_per_trial
    }
    fn first_obs(&self, out: &mut [f32]) {
        out.fill(0.0);
    }
    fn next_obs(&self, obs: &[f32], action: &[f32], _t: usize, out: &mut [f32]) {
        let (x, y) = move_cell(obs[0] as u8, obs[1] as u8, action[0] as u32);
        out[0] = x as f32;
        out[1] = y as f32;
    }
}
