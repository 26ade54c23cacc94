//! Point-robot dynamics, rewards, goal distribution, task streams and checkpoint state.

use bamdp::env::point_robot::{goal_at, PointRobot, EPISODES_PER_TRIAL, EPISODE_LEN};
use bamdp::env::{make, make_with, ActionSpace, BatchEnv, EnvOptions, Split, StepOut};
use bamdp::rng::{streams, Rng};
mod common;
use common::allocs;

/// One-row env with a known goal.
fn one_row(goal: [f32; 2], sparse: bool) -> (PointRobot, StepOut) {
    let mut env = PointRobot::new(1, Split::Train, 0, sparse);
    let mut obs = [0.0; 2];
    env.reset(&mut obs);
    env.set_goal(0, goal);
    (env, StepOut::new(1, 2))
}

/// The `k`-th goal (0-based) row `row` draws from its stream, as f32.
fn nth_goal(seed: u64, label: u64, row: u64, k: usize) -> [f32; 2] {
    let mut rng = Rng::stream(seed, label, row);
    let mut g = [0.0; 2];
    for _ in 0..=k {
        g = goal_at(rng.uniform() * std::f64::consts::PI);
    }
    [g[0] as f32, g[1] as f32]
}

/// The f64 position after one clipped step of `a` from `p`, written out by hand:
/// the step `0.1 * a` is taken in f32, the sum in f64 (the reference's dtypes).
fn by_hand(p: f64, a: f32) -> f64 {
    p + (0.1f32 * a.clamp(-1.0, 1.0)) as f64
}

/// Unbounded Gaussian actions (scaled by 2, so many get clipped) for `n` rows, row
/// `i`'s from its own stream (so they do not depend on the batch size).
struct Actions {
    rngs: Vec<Rng>,
    buf: Vec<f32>,
}

impl Actions {
    fn new(n: usize) -> Self {
        Actions {
            rngs: (0..n as u64)
                .map(|i| Rng::stream(99, streams::ACTIONS, i))
                .collect(),
            buf: vec![0.0; 2 * n],
        }
    }
    fn next(&mut self) -> &[f32] {
        for (i, r) in self.rngs.iter_mut().enumerate() {
            self.buf[2 * i] = 2.0 * r.normal() as f32;
            self.buf[2 * i + 1] = 2.0 * r.normal() as f32;
        }
        &self.buf
    }
}

#[test]
fn spec_matches_varibad() {
    for (sparse, name) in [(false, "point_robot"), (true, "point_robot_sparse")] {
        let env = PointRobot::new(3, Split::Train, 0, sparse);
        let s = env.spec();
        assert_eq!(s.name, name);
        assert_eq!(s.obs_dim, 2);
        assert_eq!(
            s.action,
            ActionSpace::Continuous {
                dim: 2,
                low: -1.0,
                high: 1.0
            }
        );
        assert_eq!(s.episode_len, 100);
        assert_eq!(s.episodes_per_trial, 3);
        assert_eq!((EPISODE_LEN, EPISODES_PER_TRIAL), (100, 3));
        assert_eq!(s.trial_len(), 300);
        assert!(s.has_success);
        assert_eq!(env.num_envs(), 3);
        assert_eq!(env.sparse(), sparse);
        for i in 0..3 {
            assert_eq!(env.position(i), [0.0, 0.0]);
            assert_eq!(env.trial_step(i), 0);
        }
    }
}

#[test]
fn make_builds_both_variants_and_overrides_episodes() {
    for (name, sparse) in [("point_robot", false), ("point_robot_sparse", true)] {
        let env = make(name, 2, Split::Test, 5, &EnvOptions::default()).unwrap();
        assert_eq!(env.spec().name, name);
        assert_eq!(env.spec().episodes_per_trial, 3);
        let env = make_with(name, 2, Split::Test, 5, None, &EnvOptions::default()).unwrap();
        assert_eq!(env.spec().episodes_per_trial, 3);
        let mut env = make_with(name, 2, Split::Test, 5, Some(5), &EnvOptions::default()).unwrap();
        assert_eq!(env.spec().episodes_per_trial, 5);
        assert_eq!(env.spec().trial_len(), 500);
        // The trial ends after the 5th episode, not the 3rd.
        let mut out = StepOut::new(2, 2);
        for t in 1..=500 {
            env.step(&[0.0; 4], &mut out);
            assert_eq!(out.trial_end[0], t == 500, "step {t}");
            assert_eq!(out.truncated[0], t % 100 == 0, "step {t}");
        }
        // Same goals as the directly built batch.
        let direct = PointRobot::new(2, Split::Test, 5, sparse);
        let made = make(name, 2, Split::Test, 5, &EnvOptions::default()).unwrap();
        assert_eq!(made.save_state(), direct.save_state());
    }
}

#[test]
fn actions_are_clipped_to_the_box() {
    let (mut env, mut out) = one_row([0.0, 1.0], false);
    // Far outside the box: clipped to (+1, -1), a step of (0.1, -0.1).
    env.step(&[5.0, -3.0], &mut out);
    let (x, y) = (by_hand(0.0, 1.0), by_hand(0.0, -1.0));
    assert_eq!(out.obs, vec![x as f32, y as f32]);
    assert_eq!(env.position(0), [0.1, -0.1]);
    // Infinite actions clip too.
    env.step(&[f32::NEG_INFINITY, f32::INFINITY], &mut out);
    assert_eq!(
        env.position(0),
        [by_hand(x, -1.0) as f32, by_hand(y, 1.0) as f32]
    );
    assert_eq!(env.position(0), [0.0, 0.0]);
    // Exactly on the bounds: unchanged.
    env.step(&[1.0, 1.0], &mut out);
    assert_eq!(env.position(0), [0.1, 0.1]);
}

#[test]
fn position_accumulates_a_tenth_of_each_action() {
    let (mut env, mut out) = one_row([0.0, 1.0], false);
    let actions = [[0.5, 0.25], [-0.3, 0.7], [0.9, -1.0], [-2.0, 0.0]];
    let (mut x, mut y) = (0.0f64, 0.0f64);
    for a in actions {
        env.step(&a, &mut out);
        x = by_hand(x, a[0]);
        y = by_hand(y, a[1]);
        assert_eq!(out.obs, vec![x as f32, y as f32]);
        assert_eq!(out.final_obs, out.obs);
        assert_eq!(env.position(0), [x as f32, y as f32]);
    }
    // 0.05 - 0.03 + 0.09 - 0.1 = 0.01 ; 0.025 + 0.07 - 0.1 + 0 = -0.005
    assert!((x - 0.01).abs() < 1e-7, "{x}");
    assert!((y + 0.005).abs() < 1e-7, "{y}");
}

#[test]
fn dense_reward_is_minus_the_distance_after_the_move() {
    // Goal at angle 0: (1, 0). One step of (1, 1) reaches (0.1, 0.1):
    // distance sqrt(0.9^2 + 0.1^2) = sqrt(0.82).
    let (mut env, mut out) = one_row([1.0, 0.0], false);
    env.step(&[1.0, 1.0], &mut out);
    let p = by_hand(0.0, 1.0);
    let d = ((1.0 - p) * (1.0 - p) + p * p).sqrt();
    assert_eq!(out.reward[0], (-d) as f32);
    assert!((out.reward[0] + 0.82f32.sqrt()).abs() < 1e-6);
    assert!(!out.success[0]);
    // Walking straight up to the goal (0, 1): reward -|1 - 0.1 k|, success within 0.2.
    // Each step is 0.1f32 = 0.100000001490116..., so after 8 steps the point is just
    // inside the radius (distance 0.19999998...) and after 12 just outside (0.20000002...).
    let (mut env, mut out) = one_row([0.0, 1.0], false);
    for k in 1..=12 {
        env.step(&[0.0, 1.0], &mut out);
        let expected = -(1.0f64 - 0.1 * k as f64).abs();
        assert!((out.reward[0] as f64 - expected).abs() < 1e-6, "k={k}");
        assert_eq!(out.success[0], (8..=11).contains(&k), "k={k}");
        assert!(!out.terminated[0] && !out.truncated[0] && !out.trial_end[0]);
    }
}

#[test]
fn sparse_reward_pays_one_minus_distance_only_within_the_radius() {
    let (mut env, mut out) = one_row([0.0, 1.0], true);
    // After k steps up the point is at (0, k * 0.1f32); the goal radius is 0.2. At k = 8
    // the distance is 0.19999998.. (inside), at k = 12 it is 0.20000002.. (outside).
    let expected = [
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, // k = 1..=7: distance >= 0.3
        0.8, 0.9, 1.0, 0.9, // k = 8..=11: 1 - distance
        0.0, 0.0, 0.0, // k = 12..=14: just outside, 0.3, 0.4
    ];
    for (k, &r) in expected.iter().enumerate() {
        env.step(&[0.0, 1.0], &mut out);
        assert!(
            (out.reward[0] - r).abs() < 1e-6,
            "k={} {}",
            k + 1,
            out.reward[0]
        );
        assert_eq!(out.success[0], r > 0.0, "k={}", k + 1);
        if r == 0.0 {
            assert_eq!(out.reward[0], 0.0);
        }
    }
    // Off to the side: (0.1, 0.1) is 0.906 from (1, 0): nothing.
    let (mut env, mut out) = one_row([1.0, 0.0], true);
    env.step(&[1.0, 1.0], &mut out);
    assert_eq!(out.reward[0], 0.0);
    assert!(!out.success[0]);
    // Goal at the start's neighbour: 0.1 away after one step of (0, 1) toward (0, 0.2).
    let (mut env, mut out) = one_row([0.0, 0.2], true);
    env.step(&[0.0, 1.0], &mut out);
    let d = 0.2f32 as f64 - by_hand(0.0, 1.0);
    assert_eq!(out.reward[0], (1.0 - d) as f32);
    assert!(out.success[0]);
}

#[test]
fn truncation_at_100_with_final_obs_and_reset_obs() {
    let (mut env, mut out) = one_row([0.0, 1.0], false);
    let goal = env.goal(0);
    let mut y = 0.0f64;
    for t in 1..=100 {
        // Up for 5 steps, then stay.
        let a = if t <= 5 { 1.0 } else { 0.0 };
        env.step(&[0.0, a], &mut out);
        y = by_hand(y, a);
        assert_eq!(out.episode_index[0], 0);
        assert!(!out.terminated[0]);
        assert!(!out.trial_end[0]);
        assert_eq!(out.truncated[0], t == 100, "t={t}");
        assert!(out.episode_end(0) == (t == 100));
        assert_eq!(out.final_obs, vec![0.0, y as f32]);
        if t < 100 {
            assert_eq!(out.obs, out.final_obs);
        }
    }
    // The reward of the last step is still paid, about the final position.
    assert!((out.reward[0] + 0.5).abs() < 1e-6);
    // The next episode starts at the origin, same goal.
    assert_eq!(out.obs, vec![0.0, 0.0]);
    assert_eq!(env.position(0), [0.0, 0.0]);
    assert_eq!(env.goal(0), goal);
    assert_eq!(env.trial_step(0), 100);
    env.step(&[1.0, 0.0], &mut out);
    assert_eq!(out.episode_index[0], 1);
    assert_eq!(out.obs, vec![0.1, 0.0]);
    assert!(!out.truncated[0]);
}

#[test]
fn trial_ends_after_the_third_episode_with_a_new_goal() {
    let seed = 17;
    for (split, label) in [
        (Split::Train, streams::TRAIN_TASKS),
        (Split::Test, streams::TEST_TASKS),
    ] {
        let n = 3;
        let mut env = PointRobot::new(n, split, seed, true);
        let mut out = StepOut::new(n, 2);
        for i in 0..n {
            assert_eq!(env.goal(i), nth_goal(seed, label, i as u64, 0));
        }
        for trial in 0..2 {
            for t in 1..=300u32 {
                env.step(&[0.3; 6], &mut out);
                for i in 0..n {
                    assert_eq!(out.truncated[i], t % 100 == 0, "t={t}");
                    assert_eq!(out.trial_end[i], t == 300, "t={t}");
                    assert!(!out.terminated[i]);
                    assert_eq!(out.episode_index[i], (t - 1) / 100);
                    if t < 300 {
                        assert_eq!(env.goal(i), nth_goal(seed, label, i as u64, trial));
                    }
                }
            }
            for i in 0..n {
                assert_eq!(env.goal(i), nth_goal(seed, label, i as u64, trial + 1));
                assert_eq!(env.trial_step(i), 0);
                assert_eq!(&out.obs[2 * i..2 * i + 2], &[0.0, 0.0]);
                // final_obs: 100 steps of 0.1 * 0.3 from the origin.
                let mut p = 0.0;
                for _ in 0..100 {
                    p = by_hand(p, 0.3);
                }
                assert_eq!(&out.final_obs[2 * i..2 * i + 2], &[p as f32, p as f32]);
            }
        }
    }
}

#[test]
fn reset_starts_fresh_trials() {
    let mut env = PointRobot::new(2, Split::Train, 3, false);
    let mut out = StepOut::new(2, 2);
    for _ in 0..150 {
        env.step(&[1.0, 0.5, -0.5, 1.0], &mut out);
    }
    let mut obs = [7.0; 4];
    env.reset(&mut obs);
    assert_eq!(obs, [0.0; 4]);
    for i in 0..2 {
        assert_eq!(env.position(i), [0.0, 0.0]);
        assert_eq!(env.trial_step(i), 0);
        assert_eq!(env.goal(i), nth_goal(3, streams::TRAIN_TASKS, i as u64, 1));
    }
    env.step(&[0.0; 4], &mut out);
    assert_eq!(out.episode_index, vec![0, 0]);
}

#[test]
fn goals_lie_on_the_upper_unit_semicircle_and_spread_over_it() {
    let n = 4000;
    let env = PointRobot::new(n, Split::Train, 11, false);
    let bins = 8;
    let mut counts = vec![0usize; bins];
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for i in 0..n {
        let [x, y] = env.goal(i);
        let r = ((x as f64).powi(2) + (y as f64).powi(2)).sqrt();
        assert!((r - 1.0).abs() < 1e-6, "row {i}: radius {r}");
        assert!(y >= 0.0, "row {i}: y {y}");
        let angle = (y as f64).atan2(x as f64);
        lo = lo.min(angle);
        hi = hi.max(angle);
        let b = ((angle / std::f64::consts::PI) * bins as f64) as usize;
        counts[b.min(bins - 1)] += 1;
    }
    // Uniform in angle: 500 per bin, standard deviation ~21.
    for c in &counts {
        assert!((*c as f64 - 500.0).abs() < 110.0, "{counts:?}");
    }
    assert!(lo < 0.01 && hi > std::f64::consts::PI - 0.01, "{lo} {hi}");
    // One row's own sequence of goals spreads too.
    let mut env = PointRobot::new(1, Split::Test, 11, false);
    let mut out = StepOut::new(1, 2);
    let mut seen = [false; 4];
    for _ in 0..40 {
        let [x, y] = env.goal(0);
        let b = ((y as f64).atan2(x as f64) / std::f64::consts::PI * 4.0) as usize;
        seen[b.min(3)] = true;
        for _ in 0..300 {
            env.step(&[0.0, 0.0], &mut out);
        }
    }
    assert_eq!(seen, [true; 4]);
}

/// Goals, rewards, observations and ends of every row for `steps` steps, as bit strings.
fn record(env: &mut PointRobot, acts: &mut Actions, steps: usize) -> Vec<String> {
    let n = env.num_envs();
    let mut out = StepOut::new(n, 2);
    let mut log = Vec::new();
    for _ in 0..steps {
        env.step(acts.next(), &mut out);
        for i in 0..n {
            let g = env.goal(i);
            log.push(format!(
                "{i} {:x} {:x} {:x} {:x} {:x} {:x} {:x} {} {} {} {}",
                out.reward[i].to_bits(),
                out.obs[2 * i].to_bits(),
                out.obs[2 * i + 1].to_bits(),
                out.final_obs[2 * i].to_bits(),
                out.final_obs[2 * i + 1].to_bits(),
                g[0].to_bits(),
                g[1].to_bits(),
                out.truncated[i],
                out.trial_end[i],
                out.success[i],
                out.episode_index[i],
            ));
        }
    }
    log
}

fn row_log(log: &[String], row: usize) -> Vec<&str> {
    let prefix = format!("{row} ");
    log.iter()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| l.as_str())
        .collect()
}

#[test]
fn deterministic_and_independent_of_batch_size() {
    for sparse in [false, true] {
        let a = record(
            &mut PointRobot::new(2, Split::Train, 8, sparse),
            &mut Actions::new(2),
            700,
        );
        let b = record(
            &mut PointRobot::new(2, Split::Train, 8, sparse),
            &mut Actions::new(2),
            700,
        );
        assert_eq!(a, b);
        let c = record(
            &mut PointRobot::new(5, Split::Train, 8, sparse),
            &mut Actions::new(5),
            700,
        );
        for row in 0..2 {
            assert_eq!(row_log(&a, row), row_log(&c, row), "row {row}");
        }
        // Rows differ from each other, and another seed differs.
        assert_ne!(
            row_log(&c, 0).iter().map(|l| &l[2..]).collect::<Vec<_>>(),
            row_log(&c, 1).iter().map(|l| &l[2..]).collect::<Vec<_>>()
        );
        let d = record(
            &mut PointRobot::new(2, Split::Train, 9, sparse),
            &mut Actions::new(2),
            700,
        );
        assert_ne!(a, d);
    }
}

#[test]
fn train_and_test_streams_differ() {
    let n = 16;
    let mut train = PointRobot::new(n, Split::Train, 4, false);
    let mut test = PointRobot::new(n, Split::Test, 4, false);
    assert_eq!(train.split(), Split::Train);
    assert_eq!(test.split(), Split::Test);
    let mut out = StepOut::new(n, 2);
    for _ in 0..3 {
        for i in 0..n {
            assert_ne!(train.goal(i), test.goal(i), "row {i}");
        }
        for _ in 0..300 {
            train.step(&[0.0; 32], &mut out);
            test.step(&[0.0; 32], &mut out);
        }
    }
}

#[test]
fn save_load_continues_bit_identically() {
    for sparse in [false, true] {
        let n = 4;
        let mut env = PointRobot::new(n, Split::Test, 21, sparse);
        let mut acts = Actions::new(n);
        // Mid-episode, mid-trial, after a trial end.
        record(&mut env, &mut acts, 437);
        // Through a JSON string, as a checkpoint file would be.
        let text = serde_json::to_string(&env.save_state()).unwrap();
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut acts2 = Actions {
            rngs: acts.rngs.clone(),
            buf: acts.buf.clone(),
        };
        let expected = record(&mut env, &mut acts, 800);

        // A fresh batch with a different seed: everything comes from the state.
        let mut resumed = PointRobot::new(n, Split::Test, 1234, sparse);
        resumed.load_state(&state).unwrap();
        assert_eq!(resumed.save_state(), state);
        for i in 0..n {
            assert_eq!(resumed.trial_step(i), 437 % 300);
        }
        let got = record(&mut resumed, &mut acts2, 800);
        assert_eq!(got, expected);
    }
}

#[test]
fn load_state_rejects_malformed_input() {
    let mut env = PointRobot::new(2, Split::Train, 1, false);
    let mut out = StepOut::new(2, 2);
    for _ in 0..5 {
        env.step(&[0.5, 0.5, -0.5, 0.5], &mut out);
    }
    let good = env.save_state();
    let before = env.save_state();

    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut s = good.clone();
        f(&mut s);
        s
    };
    let nan = f64::NAN.to_bits();
    let inf = f64::INFINITY.to_bits();
    let bad: Vec<(&str, serde_json::Value)> = vec![
        ("not an object", serde_json::json!(3)),
        ("null", serde_json::Value::Null),
        ("empty", serde_json::json!({})),
        (
            "unknown field",
            edit(&|s| s["extra"] = serde_json::json!(1)),
        ),
        (
            "missing field",
            edit(&|s| {
                s.as_object_mut().unwrap().remove("rng");
            }),
        ),
        (
            "other env",
            edit(&|s| s["env"] = serde_json::json!("point_robot_sparse")),
        ),
        (
            "gridnavi",
            edit(&|s| s["env"] = serde_json::json!("gridnavi")),
        ),
        (
            "other split",
            edit(&|s| s["split"] = serde_json::json!("test")),
        ),
        (
            "bad split",
            edit(&|s| s["split"] = serde_json::json!("val")),
        ),
        (
            "short goal",
            edit(&|s| s["goal_bits"] = serde_json::json!([[0, 0]])),
        ),
        (
            "long pos",
            edit(&|s| s["pos_bits"] = serde_json::json!([[0, 0], [0, 0], [0, 0]])),
        ),
        (
            "three coords",
            edit(&|s| s["pos_bits"] = serde_json::json!([[0, 0, 0], [0, 0, 0]])),
        ),
        (
            "float bits",
            edit(&|s| s["goal_bits"] = serde_json::json!([[0.5, 0], [0, 0]])),
        ),
        (
            "negative bits",
            edit(&|s| s["goal_bits"] = serde_json::json!([[-1, 0], [0, 0]])),
        ),
        (
            "NaN goal",
            edit(&|s| s["goal_bits"] = serde_json::json!([[nan, 0], [0, 0]])),
        ),
        (
            "infinite pos",
            edit(&|s| s["pos_bits"] = serde_json::json!([[0, 0], [0, inf]])),
        ),
        ("short t", edit(&|s| s["t"] = serde_json::json!([1]))),
        (
            "t at trial length",
            edit(&|s| s["t"] = serde_json::json!([0, 300])),
        ),
        ("negative t", edit(&|s| s["t"] = serde_json::json!([-1, 0]))),
        (
            "huge t",
            edit(&|s| s["t"] = serde_json::json!([0, 1u64 << 40])),
        ),
        ("t string", edit(&|s| s["t"] = serde_json::json!(["1", 0]))),
        ("short rng", edit(&|s| s["rng"] = serde_json::json!([]))),
        (
            "bad rng",
            edit(&|s| s["rng"][0] = serde_json::json!({"s": [1, 2, 3]})),
        ),
    ];
    for (what, state) in bad {
        let err = env.load_state(&state);
        assert!(err.is_err(), "{what}: accepted");
        assert_eq!(env.save_state(), before, "{what}: state changed");
    }
    // The good one still loads.
    env.load_state(&good).unwrap();
    // A batch with more episodes per trial accepts a later step.
    let mut long = PointRobot::new(2, Split::Train, 1, false).with_episodes_per_trial(4);
    let s = edit(&|s| s["t"] = serde_json::json!([0, 399]));
    long.load_state(&s).unwrap();
    assert!(env.load_state(&s).is_err());
}

#[test]
#[should_panic(expected = "NaN")]
fn nan_action_panics() {
    let (mut env, mut out) = one_row([0.0, 1.0], false);
    env.step(&[0.0, f32::NAN], &mut out);
}

#[test]
#[should_panic(expected = "actions length")]
fn wrong_action_width_panics() {
    let (mut env, mut out) = one_row([0.0, 1.0], false);
    env.step(&[0.0], &mut out);
}

#[test]
fn step_does_not_allocate() {
    let n = 8;
    let mut env = PointRobot::new(n, Split::Train, 2, true);
    let mut out = StepOut::new(n, 2);
    let mut acts = Actions::new(n);
    let mut buf = vec![0.0; 2 * n];
    // Cross several episode and trial ends.
    let before = allocs();
    for _ in 0..700 {
        buf.copy_from_slice(acts.next());
        env.step(&buf, &mut out);
    }
    assert_eq!(allocs(), before);
}
