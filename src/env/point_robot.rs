//! Point-robot navigation (VariBAD's `PointEnv-v0` / `SparsePointEnv-v0`): a point on
//! the plane must find a goal on the upper unit semicircle. Owns the dynamics, the goal
//! (task) distribution, the dense and sparse rewards, the per-row task streams and the
//! batch's checkpoint state.
//!
//! Every fact below is from the reference, `lmzintgraf/varibad` (files at its `HEAD`):
//! - **Start**: every episode starts at the origin `(0, 0)` (`point_robot.py`,
//!   `PointEnv.reset_model`: `np.zeros(2)`; `SparsePointEnv.reset_model`:
//!   `np.array([0, 0])`). The observation is the position, 2 values.
//! - **Actions**: a 2-D box `[-1, 1]^2` (`PointEnv.__init__`, `action_space`); `step`
//!   clips the action to that box (`np.clip(action, low, high)`) and moves by a tenth of
//!   it: `state = state + 0.1 * action` (`PointEnv.step`). The agent's Gaussian samples
//!   are unbounded, so the clipping happens here, inside [`BatchEnv::step`].
//! - **Goals**: `semi_circle_goal_sampler`: `angle = uniform(0, pi)`, radius `1.0`,
//!   `goal = (cos angle, sin angle)`, the default sampler and the one both registrations
//!   ask for (`environments/__init__.py`, `goal_sampler: 'semi-circle'`).
//! - **Dense reward** (`point_robot`): the negative L2 distance from the position *after*
//!   the move to the goal, every step (`PointEnv.step`).
//! - **Sparse reward** (`point_robot_sparse`): with `d` that distance, `1 - d` when
//!   `-d >= -goal_radius`, else `0` (`SparsePointEnv.sparsify_rewards` zeroes the dense
//!   reward outside the radius, and `step` adds `+1` inside it).
//! - **Goal radius** `0.2` (`SparsePointEnv.__init__` default and both registrations'
//!   `goal_radius` in `environments/__init__.py`). `success` is "within the goal radius
//!   after the move" (`d <= 0.2`, the sparse reward's own test) in both variants; the
//!   dense variant uses the radius only for `success`.
//! - **Episode length** 100 steps (`max_episode_steps=100` in both registrations); the
//!   env itself never returns `done`, so episodes end only by the time limit
//!   (`truncated`, never `terminated`).
//! - **Episodes per trial** 3 (`config/pointrobot/args_pointrobot_varibad.py`,
//!   `--max_rollouts_per_task 3`); after the 3rd episode `trial_end` is set and the row
//!   draws a new goal (the reference's `VariBadWrapper.reset` calls `reset_task`).
//!   Between episodes of a trial only the position is reset (`reset_mdp`).
//!
//! Arithmetic follows the reference's dtypes: the step `0.1 * action` is computed in f32
//! (NumPy multiplies the policy's float32 action by the Python float in float32), the
//! position, goal, distance and rewards in f64; observations and rewards are handed out
//! as f32.
//!
//! Row `i` draws its goals from `Rng::stream(seed, TRAIN_TASKS or TEST_TASKS, i)`, so a
//! row's task sequence does not depend on the batch size. The reference has no train/test
//! split of goals: the test split is fresh goals from a separate stream.

use super::{ActionSpace, BatchEnv, EnvSpec, Split, StepOut};
use crate::error::StateError;
use crate::rng::{streams, Rng};
use serde::{Deserialize, Serialize};

/// Steps per episode (`max_episode_steps`).
pub const EPISODE_LEN: usize = 100;
/// Episodes per trial (`max_rollouts_per_task`).
pub const EPISODES_PER_TRIAL: usize = 3;
/// Lower bound of each action dimension.
pub const ACTION_LOW: f32 = -1.0;
/// Upper bound of each action dimension.
pub const ACTION_HIGH: f32 = 1.0;
/// The clipped action is scaled by this before it is added to the position.
pub const ACTION_SCALE: f32 = 0.1;
/// Radius of the circle goals are drawn on.
pub const GOAL_DISTANCE: f64 = 1.0;
/// Distance to the goal within which the sparse reward is paid and `success` is set.
pub const GOAL_RADIUS: f64 = 0.2;

/// The goal at `angle` (radians) on the circle of radius [`GOAL_DISTANCE`].
#[inline]
pub fn goal_at(angle: f64) -> [f64; 2] {
    [GOAL_DISTANCE * angle.cos(), GOAL_DISTANCE * angle.sin()]
}

/// The position after applying `action` (clipped to the bounds) at `pos`.
/// Panics on a NaN action (a bug in the agent; the reference's `contains` check fails).
#[inline]
pub fn move_point(pos: [f64; 2], action: [f32; 2]) -> [f64; 2] {
    let mut next = pos;
    for d in 0..2 {
        let a = action[d];
        assert!(!a.is_nan(), "PointRobot: action {a} is NaN");
        let delta = ACTION_SCALE * a.clamp(ACTION_LOW, ACTION_HIGH);
        next[d] = pos[d] + delta as f64;
    }
    next
}

/// Euclidean distance between `a` and `b`.
#[inline]
pub fn distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    let dx = a[0] - b[0];
    let dy = a[1] - b[1];
    (dx * dx + dy * dy).sqrt()
}

/// Reward for ending a step at distance `d` from the goal: `-d` (dense), or `1 - d`
/// within [`GOAL_RADIUS`] and `0` outside (sparse).
#[inline]
pub fn reward(d: f64, sparse: bool) -> f64 {
    let dense = -d;
    if !sparse {
        dense
    } else if dense >= -GOAL_RADIUS {
        dense + 1.0
    } else {
        0.0
    }
}

/// A batch of point-robot environments (see the module doc).
pub struct PointRobot {
    spec: EnvSpec,
    split: Split,
    sparse: bool,
    /// Goal per row.
    goal: Vec<[f64; 2]>,
    /// Position per row.
    pos: Vec<[f64; 2]>,
    /// Steps taken in the current trial per row; the episode is `t / EPISODE_LEN`.
    t: Vec<u32>,
    /// Task stream per row.
    rng: Vec<Rng>,
}

/// What `save_state` writes; `load_state` checks every field before using any. Goals
/// and positions are stored as IEEE-754 bit patterns so they round-trip exactly.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    env: String,
    split: Split,
    goal_bits: Vec<[u64; 2]>,
    pos_bits: Vec<[u64; 2]>,
    t: Vec<u32>,
    rng: Vec<Rng>,
}

fn to_bits(v: &[[f64; 2]]) -> Vec<[u64; 2]> {
    v.iter().map(|p| [p[0].to_bits(), p[1].to_bits()]).collect()
}

fn from_bits(v: &[[u64; 2]]) -> Vec<[f64; 2]> {
    v.iter()
        .map(|p| [f64::from_bits(p[0]), f64::from_bits(p[1])])
        .collect()
}

impl PointRobot {
    /// `num_envs` rows drawing goals from `split`'s streams for `seed`, with the sparse
    /// reward if `sparse`. The rows start a trial right away (goals drawn, points at the
    /// origin); `reset` starts fresh ones.
    pub fn new(num_envs: usize, split: Split, seed: u64, sparse: bool) -> PointRobot {
        let label = match split {
            Split::Train => streams::TRAIN_TASKS,
            Split::Test => streams::TEST_TASKS,
        };
        let mut env = PointRobot {
            spec: EnvSpec {
                name: if sparse {
                    "point_robot_sparse"
                } else {
                    "point_robot"
                },
                obs_dim: 2,
                action: ActionSpace::Continuous {
                    dim: 2,
                    low: ACTION_LOW,
                    high: ACTION_HIGH,
                },
                episode_len: EPISODE_LEN,
                episodes_per_trial: EPISODES_PER_TRIAL,
                has_success: true,
            },
            split,
            sparse,
            goal: vec![[0.0, 0.0]; num_envs],
            pos: vec![[0.0, 0.0]; num_envs],
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

    /// The same batch with `k` episodes per trial instead of 3 (evaluating adaptation
    /// beyond the training horizon). Call before stepping.
    pub fn with_episodes_per_trial(mut self, k: usize) -> PointRobot {
        assert!(k > 0, "episodes per trial must be positive");
        self.spec.episodes_per_trial = k;
        self
    }

    /// The split this batch draws tasks from.
    pub fn split(&self) -> Split {
        self.split
    }

    /// Whether this batch pays the sparse reward.
    pub fn sparse(&self) -> bool {
        self.sparse
    }

    /// Goal `[x, y]` of `row`.
    pub fn goal(&self, row: usize) -> [f32; 2] {
        let [x, y] = self.goal[row];
        [x as f32, y as f32]
    }

    /// Position `[x, y]` of `row` (what the next observation shows).
    pub fn position(&self, row: usize) -> [f32; 2] {
        let [x, y] = self.pos[row];
        [x as f32, y as f32]
    }

    /// Steps taken so far in `row`'s current trial.
    pub fn trial_step(&self, row: usize) -> usize {
        self.t[row] as usize
    }

    /// Replace `row`'s goal (for tests and hand-worked cases); position and counters are
    /// kept. Panics on a non-finite goal.
    pub fn set_goal(&mut self, row: usize, goal: [f32; 2]) {
        assert!(
            goal.iter().all(|g| g.is_finite()),
            "PointRobot::set_goal: {goal:?} is not finite"
        );
        self.goal[row] = [goal[0] as f64, goal[1] as f64];
    }

    /// Start a fresh trial on `row`: new goal from its stream, point at the origin.
    fn new_trial(&mut self, row: usize) {
        let angle = self.rng[row].uniform() * std::f64::consts::PI;
        self.goal[row] = goal_at(angle);
        self.pos[row] = [0.0, 0.0];
        self.t[row] = 0;
    }

    fn trial_len(&self) -> u32 {
        (EPISODE_LEN * self.spec.episodes_per_trial) as u32
    }
}

impl BatchEnv for PointRobot {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn num_envs(&self) -> usize {
        self.goal.len()
    }

    fn reset(&mut self, obs: &mut [f32]) {
        let n = self.num_envs();
        assert_eq!(obs.len(), n * 2, "PointRobot::reset: obs buffer size");
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
        assert_eq!(actions.len(), 2 * n, "PointRobot::step: actions length");
        out.assert_sized(n, 2, "PointRobot::step");
        let trial_len = self.trial_len();
        for i in 0..n {
            let next = move_point(self.pos[i], [actions[2 * i], actions[2 * i + 1]]);
            let d = distance(next, self.goal[i]);
            let t = self.t[i];
            let next_t = t + 1;
            let episode_end = next_t.is_multiple_of(EPISODE_LEN as u32);

            out.reward[i] = reward(d, self.sparse) as f32;
            out.success[i] = -d >= -GOAL_RADIUS;
            out.terminated[i] = false;
            out.truncated[i] = episode_end;
            out.trial_end[i] = next_t == trial_len;
            out.episode_index[i] = t / EPISODE_LEN as u32;
            out.final_obs[2 * i] = next[0] as f32;
            out.final_obs[2 * i + 1] = next[1] as f32;

            if next_t == trial_len {
                self.new_trial(i);
            } else if episode_end {
                // Same task, next episode.
                self.pos[i] = [0.0, 0.0];
                self.t[i] = next_t;
            } else {
                self.pos[i] = next;
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
            goal_bits: to_bits(&self.goal),
            pos_bits: to_bits(&self.pos),
            t: self.t.clone(),
            rng: self.rng.clone(),
        };
        serde_json::to_value(saved).expect("PointRobot state serialises")
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<(), StateError> {
        let name = self.spec.name;
        let s = Saved::deserialize(state).map_err(|e| StateError::Decode {
            what: format!("{name} state"),
            detail: e.to_string(),
        })?;
        let n = self.num_envs();
        super::check_saved_state(
            name,
            self.split,
            n,
            &s.env,
            s.split,
            &[
                ("goal_bits", s.goal_bits.len()),
                ("pos_bits", s.pos_bits.len()),
                ("t", s.t.len()),
                ("rng", s.rng.len()),
            ],
        )?;
        let goal = from_bits(&s.goal_bits);
        let pos = from_bits(&s.pos_bits);
        let trial_len = self.trial_len();
        for i in 0..n {
            if !goal[i].iter().all(|g| g.is_finite()) {
                return Err(StateError::Mismatch(format!(
                    "{name} state: row {i} goal {:?} is not finite",
                    goal[i]
                )));
            }
            if !pos[i].iter().all(|p| p.is_finite()) {
                return Err(StateError::Mismatch(format!(
                    "{name} state: row {i} position {:?} is not finite",
                    pos[i]
                )));
            }
            if s.t[i] >= trial_len {
                return Err(StateError::Mismatch(format!(
                    "{name} state: row {i} step {} is not below the trial length {trial_len}",
                    s.t[i]
                )));
            }
        }
        self.goal = goal;
        self.pos = pos;
        self.t = s.t;
        self.rng = s.rng;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_reward_is_one_minus_distance_inside_the_radius() {
        assert_eq!(reward(0.0, true), 1.0);
        assert_eq!(reward(0.1, true), 0.9);
        assert_eq!(reward(0.2, true), 0.8);
        assert_eq!(reward(0.2000001, true), 0.0);
        assert_eq!(reward(0.5, false), -0.5);
    }

    #[test]
    fn moves_are_clipped_and_scaled() {
        assert_eq!(
            move_point([0.0, 0.0], [5.0, -7.0]),
            [0.1f32 as f64, -0.1f32 as f64]
        );
        assert_eq!(
            move_point([1.0, 1.0], [0.5, 0.0]),
            [1.0 + (0.1f32 * 0.5) as f64, 1.0]
        );
    }
}

/// The point robot's task-independent dynamics for planners: the goal changes rewards
/// only; the move is [`move_point`] from the origin at every episode start.
#[derive(Clone, Copy, Debug)]
pub struct PointDynamics {
    pub episodes_per_trial: usize,
}

impl super::KnownDynamics for PointDynamics {
    fn obs_dim(&self) -> usize {
        2
    }
    fn action(&self) -> ActionSpace {
        ActionSpace::Continuous {
            dim: 2,
            low: ACTION_LOW,
            high: ACTION_HIGH,
        }
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
        let next = move_point([obs[0] as f64, obs[1] as f64], [action[0], action[1]]);
        out[0] = next[0] as f32;
        out[1] = next[1] as f32;
    }
}
