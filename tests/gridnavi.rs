//! GridNavi dynamics, task streams, checkpoint state, and its exact belief.

use bamdp::belief::oracle::{GridBeliefState, GridNaviBelief, PRIOR_MASK};
use bamdp::belief::{Belief, Transition};
use bamdp::env::gridnavi::{cell_index, GridNavi, CANDIDATE_CELLS};
use bamdp::env::{BatchEnv, Split, StepOut};
use bamdp::rng::{streams, Rng};
mod common;
use common::allocs;

const NOOP: f32 = 0.0;
const UP: f32 = 1.0;
const RIGHT: f32 = 2.0;
const DOWN: f32 = 3.0;
const LEFT: f32 = 4.0;

/// One-row env with a known goal.
fn one_row(goal: (usize, usize)) -> (GridNavi, StepOut) {
    let mut env = GridNavi::new(1, Split::Train, 0);
    let mut obs = [0.0; 2];
    env.reset(&mut obs);
    env.set_goal(0, goal);
    (env, StepOut::new(1, 2))
}

fn step1(env: &mut GridNavi, out: &mut StepOut, a: f32) {
    env.step(&[a], out);
}

/// The `k`-th goal (0-based) row `row` draws from its stream.
fn nth_goal(seed: u64, label: u64, row: u64, k: usize) -> (usize, usize) {
    let mut rng = Rng::stream(seed, label, row);
    let mut g = (0, 0);
    for _ in 0..=k {
        g = CANDIDATE_CELLS[rng.below(21) as usize];
    }
    g
}

/// Random actions for `n` rows, row `i`'s actions from its own stream (so they do not
/// depend on `n`).
struct Actions(Vec<Rng>, Vec<f32>);
impl Actions {
    fn new(n: usize) -> Self {
        Actions(
            (0..n).map(|i| Rng::stream(99, 0, i as u64)).collect(),
            vec![0.0; n],
        )
    }
    fn next(&mut self) -> &[f32] {
        for (a, r) in self.1.iter_mut().zip(&mut self.0) {
            *a = r.below(5) as f32;
        }
        &self.1
    }
}

/// Goals of every row at the start of each of `trials` trials, under random actions.
fn goal_sequences(n: usize, split: Split, seed: u64, trials: usize) -> Vec<Vec<(usize, usize)>> {
    let mut env = GridNavi::new(n, split, seed);
    let mut obs = vec![0.0; 2 * n];
    env.reset(&mut obs);
    let mut out = StepOut::new(n, 2);
    let mut acts = Actions::new(n);
    let mut seqs: Vec<Vec<_>> = (0..n).map(|i| vec![env.goal(i)]).collect();
    for _ in 0..trials * 60 {
        env.step(acts.next(), &mut out);
        for (i, s) in seqs.iter_mut().enumerate() {
            if out.trial_end[i] {
                s.push(env.goal(i));
            }
        }
    }
    seqs
}

#[test]
fn spec_matches_varibad() {
    let env = GridNavi::new(2, Split::Train, 0);
    let s = env.spec();
    assert_eq!(s.name, "gridnavi");
    assert_eq!(s.obs_dim, 2);
    assert_eq!(s.action, bamdp::env::ActionSpace::Discrete(5));
    assert_eq!(
        (s.episode_len, s.episodes_per_trial, s.trial_len()),
        (15, 4, 60)
    );
    assert!(s.has_success);
    assert_eq!(env.num_envs(), 2);
    assert!(bamdp::env::make("gridnavi", 3, Split::Test, 1, &Default::default()).is_ok());
}

#[test]
fn each_action_moves_in_its_direction_and_walls_hold() {
    let (mut env, mut out) = one_row((4, 4));
    let mut go = |a: f32, want: (f32, f32)| {
        step1(&mut env, &mut out, a);
        assert_eq!((out.obs[0], out.obs[1]), want, "action {a}");
        assert_eq!(env.position(0), (want.0 as usize, want.1 as usize));
    };
    go(LEFT, (0.0, 0.0)); // wall
    go(DOWN, (0.0, 0.0)); // wall
    go(UP, (0.0, 1.0)); // up is y + 1
    go(RIGHT, (1.0, 1.0)); // right is x + 1
    go(NOOP, (1.0, 1.0));
    go(DOWN, (1.0, 0.0)); // down is y - 1
    go(LEFT, (0.0, 0.0)); // left is x - 1
    for x in 1..=4 {
        go(RIGHT, (x as f32, 0.0));
    }
    go(RIGHT, (4.0, 0.0)); // wall
    go(DOWN, (4.0, 0.0)); // wall
    go(UP, (4.0, 1.0)); // 14 steps so far
}

#[test]
fn walls_on_top_edge() {
    let (mut env, mut out) = one_row((2, 0));
    for _ in 0..4 {
        step1(&mut env, &mut out, UP);
    }
    assert_eq!(env.position(0), (0, 4));
    step1(&mut env, &mut out, UP);
    assert_eq!(env.position(0), (0, 4));
    step1(&mut env, &mut out, LEFT);
    assert_eq!(env.position(0), (0, 4));
}

#[test]
fn reward_sequence_for_known_goal() {
    let (mut env, mut out) = one_row((2, 1));
    let plan = [
        (RIGHT, -0.1, (1, 0)),
        (RIGHT, -0.1, (2, 0)),
        (UP, 1.0, (2, 1)),
        (NOOP, 1.0, (2, 1)), // staying on the goal keeps paying
        (UP, -0.1, (2, 2)),
        (DOWN, 1.0, (2, 1)),
        (LEFT, -0.1, (1, 1)),
    ];
    for (a, r, cell) in plan {
        step1(&mut env, &mut out, a);
        assert_eq!(out.reward[0], r as f32);
        assert_eq!(out.success[0], r > 0.0);
        assert_eq!(env.position(0), cell);
        assert!(!out.terminated[0] && !out.truncated[0] && !out.trial_end[0]);
    }
}

#[test]
fn truncation_at_15_with_final_obs_and_reset_obs() {
    let (mut env, mut out) = one_row((4, 4));
    for t in 1..=15 {
        step1(&mut env, &mut out, RIGHT);
        let x = (t.min(4)) as f32;
        assert_eq!(out.episode_index[0], 0);
        assert!(!out.terminated[0]);
        if t < 15 {
            assert!(!out.truncated[0]);
            assert_eq!(out.obs, vec![x, 0.0]);
            assert_eq!(out.final_obs, out.obs, "final_obs = obs without an end");
        } else {
            assert!(out.truncated[0] && !out.trial_end[0]);
            assert_eq!(out.final_obs, vec![4.0, 0.0]);
            assert_eq!(out.obs, vec![0.0, 0.0]);
        }
    }
    assert_eq!(env.position(0), (0, 0));
    assert_eq!(env.goal(0), (4, 4), "same task in the next episode");
    step1(&mut env, &mut out, UP);
    assert_eq!(out.episode_index[0], 1);
    assert_eq!(out.obs, vec![0.0, 1.0]);
}

#[test]
fn reward_on_the_last_step_of_an_episode() {
    // The reward of the truncating step is about the final cell, not the reset one.
    let (mut env, mut out) = one_row((2, 0));
    step1(&mut env, &mut out, RIGHT);
    step1(&mut env, &mut out, RIGHT);
    for _ in 0..13 {
        step1(&mut env, &mut out, NOOP);
    }
    assert!(out.truncated[0]);
    assert_eq!(out.reward[0], 1.0);
    assert!(out.success[0]);
    assert_eq!(out.final_obs, vec![2.0, 0.0]);
}

#[test]
fn trial_ends_exactly_at_step_60_with_a_new_task() {
    let n = 5;
    let seed = 42;
    let mut env = GridNavi::new(n, Split::Train, seed);
    let mut obs = vec![0.0; 2 * n];
    env.reset(&mut obs); // the trials have not begun: construction's draws stay
    for i in 0..n {
        assert_eq!(
            env.goal(i),
            nth_goal(seed, streams::TRAIN_TASKS, i as u64, 0)
        );
    }
    let first: Vec<_> = (0..n).map(|i| env.goal(i)).collect();
    let mut out = StepOut::new(n, 2);
    let mut acts = Actions::new(n);
    for t in 1..=60u32 {
        env.step(acts.next(), &mut out);
        for (i, &goal) in first.iter().enumerate() {
            assert_eq!(out.episode_index[i], (t - 1) / 15);
            assert_eq!(out.truncated[i], t % 15 == 0);
            assert_eq!(out.trial_end[i], t == 60);
            assert!(!out.terminated[i]);
            if t < 60 {
                assert_eq!(env.goal(i), goal);
            }
        }
    }
    for i in 0..n {
        assert_eq!(
            env.goal(i),
            nth_goal(seed, streams::TRAIN_TASKS, i as u64, 1)
        );
        assert_eq!(env.position(i), (0, 0));
        assert_eq!(env.trial_step(i), 0);
    }
    assert!(out.obs.iter().all(|&v| v == 0.0));
    // The next step is episode 0 of the new trial.
    env.step(acts.next(), &mut out);
    assert!(out.episode_index.iter().all(|&e| e == 0));
}

#[test]
fn reset_starts_fresh_trials() {
    let n = 3;
    let mut env = GridNavi::new(n, Split::Test, 7);
    let mut obs = vec![1.0; 2 * n];
    env.reset(&mut obs);
    let mut out = StepOut::new(n, 2);
    let mut acts = Actions::new(n);
    for _ in 0..20 {
        env.step(acts.next(), &mut out);
    }
    env.reset(&mut obs);
    assert!(obs.iter().all(|&v| v == 0.0));
    for i in 0..n {
        assert_eq!(env.trial_step(i), 0);
        assert_eq!(env.position(i), (0, 0));
        assert_eq!(env.goal(i), nth_goal(7, streams::TEST_TASKS, i as u64, 1));
    }
    env.step(acts.next(), &mut out);
    assert!(out.episode_index.iter().all(|&e| e == 0));
}

/// `reset` never throws away a task nobody played: not right after construction (the
/// actor resets the batch it is given), not twice in a row, not right after a trial
/// ended; only a trial that has begun is replaced.
#[test]
fn reset_keeps_tasks_whose_trial_has_not_begun() {
    let n = 2;
    let mut env = GridNavi::new(n, Split::Test, 3);
    let goal = |env: &GridNavi, k| {
        (0..n)
            .map(|i| (env.goal(i), nth_goal(3, streams::TEST_TASKS, i as u64, k)))
            .collect::<Vec<_>>()
    };
    let same = |pairs: Vec<((usize, usize), (usize, usize))>| pairs.iter().all(|(a, b)| a == b);
    let mut obs = vec![0.0; 2 * n];
    env.reset(&mut obs);
    env.reset(&mut obs);
    assert!(same(goal(&env, 0)));
    let mut out = StepOut::new(n, 2);
    for _ in 0..60 {
        env.step(&[NOOP, NOOP], &mut out);
    }
    assert!(out.trial_end.iter().all(|&e| e));
    env.reset(&mut obs);
    assert!(same(goal(&env, 1)), "the task drawn at the trial end stays");
    env.step(&[NOOP, NOOP], &mut out);
    env.reset(&mut obs);
    assert!(same(goal(&env, 2)), "a begun trial is replaced");
}

#[test]
fn goals_are_uniform_over_the_21_candidates() {
    let n = 21_000;
    let env = GridNavi::new(n, Split::Train, 3);
    let mut counts = [0usize; 25];
    for i in 0..n {
        let (x, y) = env.goal(i);
        assert!(
            !(x < 2 && y < 2),
            "goal {:?} in the excluded corner",
            (x, y)
        );
        counts[cell_index(x, y)] += 1;
    }
    // Each count is Binomial(21000, 1/21): mean 1000, sd ~31; allow 5 sd.
    for &(x, y) in &CANDIDATE_CELLS {
        let c = counts[cell_index(x, y)];
        assert!((850..=1150).contains(&c), "cell {:?}: {c}", (x, y));
    }
    assert_eq!(counts.iter().sum::<usize>(), n);
}

#[test]
fn goal_sequence_of_one_row_covers_all_candidates() {
    let seqs = goal_sequences(1, Split::Train, 5, 400);
    let mut seen = [false; 25];
    for &(x, y) in &seqs[0] {
        seen[cell_index(x, y)] = true;
    }
    for &(x, y) in &CANDIDATE_CELLS {
        assert!(seen[cell_index(x, y)], "{:?} never drawn", (x, y));
    }
}

#[test]
fn tasks_are_deterministic_and_independent_of_batch_size() {
    let a = goal_sequences(3, Split::Train, 11, 4);
    let b = goal_sequences(8, Split::Train, 11, 4);
    let c = goal_sequences(8, Split::Train, 11, 4);
    assert_eq!(b, c, "same seed, same goals");
    assert_eq!(a[..], b[..3], "row i's tasks do not depend on num_envs");
    assert_ne!(b, goal_sequences(8, Split::Train, 12, 4), "seed matters");
    for (i, s) in b.iter().enumerate() {
        for (k, &g) in s.iter().enumerate() {
            // Construction draws goal 0 (`reset` keeps it: no trial has begun), each
            // trial end the next one.
            assert_eq!(g, nth_goal(11, streams::TRAIN_TASKS, i as u64, k));
        }
    }
}

#[test]
fn train_and_test_streams_differ() {
    let train = goal_sequences(8, Split::Train, 1, 3);
    let test = goal_sequences(8, Split::Test, 1, 3);
    assert_ne!(train, test);
    let env = GridNavi::new(4, Split::Test, 1);
    assert_eq!(env.split(), Split::Test);
    for i in 0..4 {
        assert_eq!(env.goal(i), nth_goal(1, streams::TEST_TASKS, i as u64, 0));
    }
}

/// Every output of `steps` steps, for bitwise comparison.
fn record(env: &mut GridNavi, acts: &mut Actions, steps: usize) -> Vec<String> {
    let n = env.num_envs();
    let mut out = StepOut::new(n, 2);
    (0..steps)
        .map(|_| {
            env.step(acts.next(), &mut out);
            format!(
                "{out:?} {:?}",
                (0..n).map(|i| env.goal(i)).collect::<Vec<_>>()
            )
        })
        .collect()
}

#[test]
fn save_load_continues_bit_identically() {
    let n = 6;
    let mut env = GridNavi::new(n, Split::Train, 21);
    let mut obs = vec![0.0; 2 * n];
    env.reset(&mut obs);
    let mut acts = Actions::new(n);
    record(&mut env, &mut acts, 37); // mid-episode, mid-trial
    let saved = env.save_state();
    let text = serde_json::to_string(&saved).unwrap();
    let acts_at_save = Actions(acts.0.clone(), acts.1.clone());
    let expected = record(&mut env, &mut acts, 300);

    // A batch from another seed takes over the saved state completely.
    let mut other = GridNavi::new(n, Split::Train, 999);
    other
        .load_state(&serde_json::from_str(&text).unwrap())
        .unwrap();
    let mut acts = acts_at_save;
    assert_eq!(record(&mut other, &mut acts, 300), expected);
}

#[test]
fn load_state_rejects_malformed_input() {
    let n = 2;
    let src = GridNavi::new(n, Split::Train, 4);
    let good = src.save_state();
    let mut env = GridNavi::new(n, Split::Train, 5);
    let before = env.save_state();

    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (serde_json::json!(null), "gridnavi state"),
        (serde_json::json!({"goal": []}), "missing field"),
        (edit(&|v| v["env"] = "cheetah".into()), "saved by env"),
        (edit(&|v| v["split"] = "test".into()), "split"),
        (edit(&|v| v["split"] = "val".into()), "unknown variant"),
        (
            edit(&|v| v["goal"][1] = serde_json::json!([1, 1])),
            "not a candidate",
        ),
        (
            edit(&|v| v["goal"][1] = serde_json::json!([1, 300])),
            "gridnavi state",
        ),
        (
            edit(&|v| v["pos"][0] = serde_json::json!([5, 0])),
            "off the grid",
        ),
        (edit(&|v| v["t"][0] = 60.into()), "trial length"),
        (edit(&|v| v["t"][0] = (-1).into()), "gridnavi state"),
        (
            edit(&|v| v["rng"] = serde_json::json!([])),
            "`rng` has 0 rows",
        ),
        (
            edit(&|v| v["rng"][0] = serde_json::json!("x")),
            "gridnavi state",
        ),
        (edit(&|v| v["extra"] = 1.into()), "unknown field"),
    ];
    for (bad, msg) in cases {
        let err = env.load_state(&bad).unwrap_err().to_string();
        assert!(err.contains(msg), "{err:?} should mention {msg:?}");
        assert_eq!(
            env.save_state(),
            before,
            "a failed load leaves the batch as it was"
        );
    }
    // Right data, wrong batch size.
    let mut three = GridNavi::new(3, Split::Train, 4);
    assert!(three
        .load_state(&good)
        .unwrap_err()
        .to_string()
        .contains("this batch has 3"));
    env.load_state(&good).unwrap();
    assert_eq!(env.save_state(), good);
}

#[test]
#[should_panic(expected = "not an index")]
fn fractional_action_panics() {
    let (mut env, mut out) = one_row((4, 4));
    step1(&mut env, &mut out, 1.5);
}

#[test]
#[should_panic(expected = "not in 0..5")]
fn out_of_range_action_panics() {
    let (mut env, mut out) = one_row((4, 4));
    step1(&mut env, &mut out, 5.0);
}

#[test]
fn step_and_belief_do_not_allocate() {
    let n = 64;
    let mut env = GridNavi::new(n, Split::Train, 0);
    let mut out = StepOut::new(n, 2);
    let mut prev = vec![0.0; 2 * n];
    env.reset(&mut prev);
    let acts: Vec<Vec<f32>> = {
        let mut a = Actions::new(n);
        (0..200).map(|_| a.next().to_vec()).collect()
    };
    let b = GridNaviBelief;
    let mut state = b.init(n);
    let mut scratch = b.init(n);
    let mut feats = vec![0.0; n * 25];
    let src: Vec<usize> = (0..n).rev().collect();
    let before = allocs();
    for a in &acts {
        env.step(a, &mut out);
        b.update(
            &mut state,
            &Transition {
                obs: &prev,
                action: a,
                reward: &out.reward,
                next_obs: &out.final_obs,
                episode_end: &out.truncated,
            },
        );
        b.reset(&mut state, &out.trial_end);
        b.features(&state, &mut feats);
        b.gather(&state, &src, &mut scratch);
        prev.copy_from_slice(&out.obs);
    }
    assert_eq!(allocs(), before);
}

// ---- the exact belief ----

/// Step `env` (one row) and feed the transition to the belief.
fn act(env: &mut GridNavi, out: &mut StepOut, b: &GridNaviBelief, s: &mut GridBeliefState, a: f32) {
    let prev = out.obs.clone();
    env.step(&[a], out);
    b.update(
        s,
        &Transition {
            obs: &prev,
            action: &[a],
            reward: &out.reward,
            next_obs: &out.final_obs,
            episode_end: &out.truncated,
        },
    );
    b.reset(s, &out.trial_end);
}

#[test]
fn belief_on_a_hand_worked_trajectory() {
    let (mut env, mut out) = one_row((3, 0));
    out.obs = vec![0.0, 0.0];
    let b = GridNaviBelief;
    let mut s = b.init(1);
    assert_eq!(b.num_candidates(&s, 0), 21);
    let plan = [
        (NOOP, 21),  // (0,0): not a candidate
        (UP, 21),    // (0,1): not a candidate
        (UP, 20),    // (0,2) ruled out
        (UP, 19),    // (0,3)
        (RIGHT, 18), // (1,3)
        (DOWN, 17),  // (1,2)
        (RIGHT, 16), // (2,2)
        (DOWN, 15),  // (2,1)
        (UP, 15),    // (2,2) again: nothing new
        (DOWN, 15),  // (2,1) again
        (DOWN, 14),  // (2,0)
        (UP, 14),    // (2,1) again
        (DOWN, 14),  // (2,0) again
        (NOOP, 14),  // (2,0) again
        (RIGHT, 1),  // (3,0): the goal, step 15 ends the episode
    ];
    for (k, (a, want)) in plan.into_iter().enumerate() {
        act(&mut env, &mut out, &b, &mut s, a);
        assert_eq!(b.num_candidates(&s, 0), want, "after step {}", k + 1);
    }
    assert!(out.truncated[0] && out.reward[0] == 1.0);
    let p = b.probs(&s, 0);
    assert_eq!(p[cell_index(3, 0)], 1.0);
    assert_eq!(p.iter().sum::<f32>(), 1.0);
    // The belief survives episode ends within the trial...
    for _ in 15..59 {
        act(&mut env, &mut out, &b, &mut s, UP);
        assert_eq!(b.num_candidates(&s, 0), 1);
        assert!(!out.trial_end[0]);
    }
    // ...and returns to the prior at the trial end.
    act(&mut env, &mut out, &b, &mut s, UP);
    assert!(out.trial_end[0]);
    assert_eq!(s.masks[0], PRIOR_MASK);
    assert_eq!(b.num_candidates(&s, 0), 21);
}

#[test]
fn belief_after_one_uninformative_episode() {
    // Walk the bottom row and up the right column: 4 + 4 candidate cells ruled out
    // ((1,0) is not a candidate, (4,0) counted once).
    let (mut env, mut out) = one_row((0, 4));
    out.obs = vec![0.0, 0.0];
    let b = GridNaviBelief;
    let mut s = b.init(1);
    for a in [RIGHT; 4].into_iter().chain([UP; 4]) {
        act(&mut env, &mut out, &b, &mut s, a);
    }
    assert_eq!(b.num_candidates(&s, 0), 21 - 7);
    let p = b.probs(&s, 0);
    assert_eq!(p[cell_index(0, 4)], 1.0 / 14.0);
    assert_eq!(p[cell_index(4, 2)], 0.0);
}

/// Posterior by enumeration: uniform over the candidate goals under which every
/// observed (cell after the move, reward) pair is what GridNavi would have produced.
fn brute_force(history: &[((usize, usize), f32)]) -> [f32; 25] {
    let consistent: Vec<_> = CANDIDATE_CELLS
        .iter()
        .filter(|&&g| {
            history
                .iter()
                .all(|&(cell, r)| r == if cell == g { 1.0 } else { -0.1 })
        })
        .collect();
    assert!(!consistent.is_empty(), "the true goal is always consistent");
    let mut p = [0.0; 25];
    for &&(x, y) in &consistent {
        p[cell_index(x, y)] = 1.0 / consistent.len() as f32;
    }
    p
}

#[test]
fn belief_equals_bayes_by_enumeration() {
    let n = 16;
    let mut env = GridNavi::new(n, Split::Train, 8);
    let mut obs = vec![0.0; 2 * n];
    env.reset(&mut obs);
    let mut out = StepOut::new(n, 2);
    let b = GridNaviBelief;
    let mut s = b.init(n);
    let mut feats = vec![0.0; n * 25];
    let mut history: Vec<Vec<((usize, usize), f32)>> = vec![Vec::new(); n];
    // Biased random walks (mostly up/right) reach far cells and sometimes the goal.
    let mut rngs: Vec<Rng> = (0..n).map(|i| Rng::stream(3, 0, i as u64)).collect();
    let mut acts = vec![0.0; n];
    let mut collapses = 0;
    for _ in 0..60 * 25 {
        for (a, r) in acts.iter_mut().zip(&mut rngs) {
            *a = r.categorical(&[0.1, 0.3, 0.3, 0.15, 0.15]) as f32;
        }
        let prev = obs.clone();
        env.step(&acts, &mut out);
        b.update(
            &mut s,
            &Transition {
                obs: &prev,
                action: &acts,
                reward: &out.reward,
                next_obs: &out.final_obs,
                episode_end: &out.truncated,
            },
        );
        b.features(&s, &mut feats);
        for i in 0..n {
            let cell = (
                out.final_obs[2 * i] as usize,
                out.final_obs[2 * i + 1] as usize,
            );
            history[i].push((cell, out.reward[i]));
            let want = brute_force(&history[i]);
            assert_eq!(b.probs(&s, i), want, "row {i}");
            assert_eq!(&feats[i * 25..(i + 1) * 25], &want[..]);
            if b.num_candidates(&s, i) == 1 {
                collapses += 1;
            }
            if out.trial_end[i] {
                history[i].clear();
            }
        }
        b.reset(&mut s, &out.trial_end);
        obs.copy_from_slice(&out.obs);
    }
    assert!(collapses > 0, "the walks should find some goals");
}
