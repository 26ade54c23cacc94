//! Exact beliefs for environments that have one. Owns [`GridNaviBelief`], the exact
//! Bayesian posterior over the GridNavi goal, used as an oracle policy input and as the
//! reference when measuring how good a learned belief is.
//!
//! GridNavi's prior is uniform over the 21 candidate cells and its rewards are
//! deterministic, so the posterior is uniform over the candidates consistent with the
//! rewards seen so far; a row's state is a `u32` bitmask over the 25 cells (bit
//! [`cell_index`]`(x, y)` set = still possible).
//!
//! The reward of a step is about the cell *after* the move (`next_obs`): -0.1 rules that
//! cell out, +1 collapses the belief onto it. The cell before the move carries no
//! information of its own (it is either the start cell, never a goal, or the previous
//! step's `next_obs`, already accounted for), so it is not ruled out: doing so would be
//! wrong when the agent steps off the goal it just found. The belief persists across
//! the episodes of a trial and is reset by the caller at trial end (`reset`), as in the
//! reference (`gridworld.py`, `update_belief` / `reset_task`).
//!
//! Differences from the reference: on reaching the goal, VariBAD's oracle puts 0.5 on
//! the goal and 0.5 on a random wrong cell (a "hint" device); here the belief is the
//! exact posterior, all mass on the goal. Rewards must be the raw environment rewards
//! (only their sign is used).
//!
//! If data are inconsistent with every candidate (impossible with GridNavi's own
//! transitions), the row falls back to the prior instead of dividing by zero.

use super::{Belief, PlanningBelief, RewardQuery, Transition};
use crate::env::gridnavi::{
    cell_index, CANDIDATE_CELLS, GOAL_REWARD, GRID, NUM_CELLS, STEP_REWARD,
};
use crate::rng::Rng;

/// Bitmask of the 21 candidate goals: the prior's support.
pub const PRIOR_MASK: u32 = {
    let mut m = 0u32;
    let mut k = 0;
    while k < CANDIDATE_CELLS.len() {
        m |= 1 << cell_index(CANDIDATE_CELLS[k].0, CANDIDATE_CELLS[k].1);
        k += 1;
    }
    m
};

/// The exact belief over the GridNavi goal (see the module doc). Stateless: everything
/// lives in [`GridBeliefState`].
#[derive(Clone, Copy, Debug, Default)]
pub struct GridNaviBelief;

/// Batched GridNavi belief: one bitmask per row over the 25 cells (bit
/// [`cell_index`]`(x, y)` set = the goal may still be at `(x, y)`). The posterior is
/// uniform over the set bits.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GridBeliefState {
    pub masks: Vec<u32>,
}

/// The support actually used for a mask: the mask itself, or the prior if it is empty.
#[inline]
fn support(mask: u32) -> u32 {
    if mask == 0 {
        PRIOR_MASK
    } else {
        mask
    }
}

impl GridNaviBelief {
    /// Number of goals still possible on `row`.
    pub fn num_candidates(&self, state: &GridBeliefState, row: usize) -> usize {
        support(state.masks[row]).count_ones() as usize
    }

    /// Posterior probability of each cell on `row`, indexed by [`cell_index`].
    pub fn probs(&self, state: &GridBeliefState, row: usize) -> [f32; NUM_CELLS] {
        let mut p = [0.0; NUM_CELLS];
        write_probs(state.masks[row], &mut p);
        p
    }
}

/// Uniform probabilities over the support of `mask`, written into 25 slots.
#[inline]
fn write_probs(mask: u32, out: &mut [f32]) {
    let mask = support(mask);
    let p = 1.0 / mask.count_ones() as f32;
    for (c, o) in out.iter_mut().enumerate() {
        *o = if mask >> c & 1 == 1 { p } else { 0.0 };
    }
}

impl Belief for GridNaviBelief {
    type State = GridBeliefState;

    fn feature_dim(&self) -> usize {
        NUM_CELLS
    }

    fn init(&self, rows: usize) -> GridBeliefState {
        GridBeliefState {
            masks: vec![PRIOR_MASK; rows],
        }
    }

    fn reset(&self, state: &mut GridBeliefState, mask: &[bool]) {
        assert_eq!(mask.len(), state.masks.len(), "GridNaviBelief::reset: rows");
        for (m, &r) in state.masks.iter_mut().zip(mask) {
            if r {
                *m = PRIOR_MASK;
            }
        }
    }

    fn update(&self, state: &mut GridBeliefState, tr: &Transition<'_>) {
        let rows = state.masks.len();
        assert!(
            tr.next_obs.len() == 2 * rows && tr.reward.len() == rows,
            "GridNaviBelief::update: transition is not {rows} rows of GridNavi"
        );
        for (i, m) in state.masks.iter_mut().enumerate() {
            let (x, y) = (tr.next_obs[2 * i], tr.next_obs[2 * i + 1]);
            debug_assert!(
                (0.0..GRID as f32).contains(&x) && (0.0..GRID as f32).contains(&y),
                "GridNaviBelief: next_obs ({x}, {y}) is not a cell"
            );
            let bit = 1u32 << cell_index(x as usize, y as usize);
            let next = if tr.reward[i] > 0.0 {
                *m & bit
            } else {
                *m & !bit
            };
            // Inconsistent data: start over from the prior rather than keep an empty set.
            *m = if next == 0 { PRIOR_MASK } else { next };
        }
    }

    fn features(&self, state: &GridBeliefState, out: &mut [f32]) {
        assert_eq!(out.len(), state.masks.len() * NUM_CELLS, "features size");
        for (&m, o) in state.masks.iter().zip(out.chunks_exact_mut(NUM_CELLS)) {
            write_probs(m, o);
        }
    }

    fn gather(&self, from: &GridBeliefState, src: &[usize], into: &mut GridBeliefState) {
        // Reuses `into`'s buffer: no allocation once it has the capacity.
        into.masks.clear();
        into.masks.extend(src.iter().map(|&j| from.masks[j]));
    }
}

/// The `k`-th (0-based) set bit of `mask`.
fn nth_set_bit(mut mask: u32, k: usize) -> usize {
    for _ in 0..k {
        mask &= mask - 1;
    }
    mask.trailing_zeros() as usize
}

impl PlanningBelief for GridNaviBelief {
    type Scratch = ();

    fn predictive_scratch(&self) {}

    /// Nested samples are goal cells drawn uniformly from the row's support; task j
    /// pays [`GOAL_REWARD`] if `s'` is its goal, else [`STEP_REWARD`].
    fn sample_rewards(
        &self,
        state: &GridBeliefState,
        tr: &RewardQuery<'_>,
        nested: usize,
        rngs: &mut [Rng],
        rows_per_rng: usize,
        sampled: &mut [f32],
        mean: &mut [f32],
        _: &mut (),
    ) {
        for (i, &m) in state.masks.iter().enumerate() {
            let m = support(m);
            let count = m.count_ones() as u64;
            let cell = cell_index(tr.next_obs[2 * i] as usize, tr.next_obs[2 * i + 1] as usize);
            let rng = &mut rngs[i / rows_per_rng];
            let mut hits = 0usize;
            for _ in 0..nested {
                if nth_set_bit(m, rng.below(count) as usize) == cell {
                    hits += 1;
                }
            }
            let p = hits as f32 / nested as f32;
            sampled[i] = if rng.uniform_f32() < p {
                GOAL_REWARD
            } else {
                STEP_REWARD
            };
            mean[i] = p * GOAL_REWARD + (1.0 - p) * STEP_REWARD;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(b: &GridNaviBelief, s: &mut GridBeliefState, cell: (usize, usize), r: f32) {
        let next = [cell.0 as f32, cell.1 as f32];
        b.update(
            s,
            &Transition {
                obs: &[0.0, 0.0],
                action: &[0.0],
                reward: &[r],
                next_obs: &next,
                episode_end: &[false],
            },
        );
    }

    #[test]
    fn prior_is_uniform_over_21() {
        let b = GridNaviBelief;
        let s = b.init(3);
        assert_eq!(PRIOR_MASK.count_ones(), 21);
        let p = b.probs(&s, 2);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(p[cell_index(0, 0)], 0.0);
        assert_eq!(p[cell_index(1, 1)], 0.0);
        assert_eq!(p[cell_index(4, 4)], 1.0 / 21.0);
    }

    #[test]
    fn no_reward_rules_out_next_cell_only() {
        let b = GridNaviBelief;
        let mut s = b.init(1);
        step(&b, &mut s, (2, 0), -0.1);
        assert_eq!(b.num_candidates(&s, 0), 20);
        // A non-candidate cell changes nothing.
        step(&b, &mut s, (1, 0), -0.1);
        assert_eq!(b.num_candidates(&s, 0), 20);
        // Revisiting changes nothing.
        step(&b, &mut s, (2, 0), -0.1);
        assert_eq!(b.num_candidates(&s, 0), 20);
    }

    #[test]
    fn reward_collapses_and_stepping_off_keeps_it() {
        let b = GridNaviBelief;
        let mut s = b.init(1);
        step(&b, &mut s, (3, 2), 1.0);
        assert_eq!(b.num_candidates(&s, 0), 1);
        step(&b, &mut s, (3, 1), -0.1);
        assert_eq!(b.num_candidates(&s, 0), 1);
        assert_eq!(b.probs(&s, 0)[cell_index(3, 2)], 1.0);
    }

    #[test]
    fn inconsistent_data_falls_back_to_prior() {
        let b = GridNaviBelief;
        let mut s = b.init(1);
        step(&b, &mut s, (3, 2), 1.0);
        step(&b, &mut s, (3, 2), -0.1); // contradicts the reward just seen
        assert_eq!(s.masks[0], PRIOR_MASK);
        let empty = GridBeliefState { masks: vec![0] };
        assert_eq!(b.num_candidates(&empty, 0), 21);
        assert_eq!(b.probs(&empty, 0), b.probs(&b.init(1), 0));
    }

    #[test]
    fn gather_and_reset() {
        let b = GridNaviBelief;
        let from = GridBeliefState {
            masks: vec![1 << 10, 1 << 20, PRIOR_MASK],
        };
        let mut into = b.init(2);
        b.gather(&from, &[1, 1], &mut into);
        assert_eq!(into.masks, vec![1 << 20, 1 << 20]);
        b.reset(&mut into, &[false, true]);
        assert_eq!(into.masks, vec![1 << 20, PRIOR_MASK]);
    }
}
