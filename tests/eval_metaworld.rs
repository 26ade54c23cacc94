//! `bamdp eval --protocol metaworld` (src/run/eval_metaworld.rs): the native MetaWorld
//! batch ends evaluation episodes at their first success and adaptation episodes
//! never; the CLI's report has one row per test task; bad input exits 2.
//! (Agreement with MetaWorld's own `metalearning_evaluation` is tested from Python:
//! python/tests/test_metaworld.py.)
//!
//! Needs `pip install -r python/requirements.txt` (MuJoCo's library and MetaWorld's
//! models); without it the MetaWorld tests print a notice and return.

use bamdp::env::mujoco::metaworld::{class, task_vectors};
use bamdp::env::{self, EnvOptions, Split, StepOut};
mod cli_support;
mod python_support;
use cli_support::{assert_user_error, bamdp};

fn metaworld_available() -> bool {
    python_support::can_import("metaworld", "test")
}

/// Trains `configs/<env>/rl2.toml` with the `sets` overrides into a run folder in
/// `dir`; returns the run's path.
fn train_rl2(dir: &tempfile::TempDir, env: &str, sets: &[&str]) -> String {
    let run = dir.path().join("run").display().to_string();
    let preset = format!("{}/configs/{env}/rl2.toml", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["train", "--config", &preset, "--out", &run];
    for set in sets {
        args.extend(["--set", set]);
    }
    let o = bamdp(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    run
}

/// A scripted reach: the hand moves straight to the task's goal (MetaWorld's reach
/// goal is the last three values of the task vector), so every episode succeeds.
#[test]
fn evaluation_episodes_end_at_success_and_adaptation_episodes_do_not() {
    if !metaworld_available() {
        return;
    }
    let (rows, seed) = (2, 7u64);
    let mut env = env::make_with(
        "ml1-reach",
        rows,
        Split::Test,
        seed,
        Some(3),
        &EnvOptions::default(),
    )
    .unwrap();
    env.terminate_on_success_from(1).unwrap();
    let goals = task_vectors(class("reach-v3").unwrap(), seed as u32 + 1);
    let spec = env.spec().clone();
    let mut obs = vec![0.0f32; rows * spec.obs_dim];
    env.reset(&mut obs);
    let tasks: Vec<usize> = (0..rows)
        .map(|r| env.task_index(r).unwrap() as usize)
        .collect();
    assert!(
        tasks[0] != tasks[1] && tasks.iter().all(|&t| t < goals.len()),
        "{tasks:?}"
    );
    let mut out = StepOut::new(rows, spec.obs_dim);
    let mut actions = vec![0.0f32; rows * 4];
    // Per row: the steps of each ended episode and how it ended.
    let mut ends: Vec<Vec<(usize, bool, bool)>> = vec![Vec::new(); rows];
    let mut steps = vec![0usize; rows];
    let mut succeeded_in_first = vec![false; rows];
    while ends.iter().any(|e| e.len() < 3) {
        for r in 0..rows {
            let goal = &goals[tasks[r]][3..6];
            for j in 0..3 {
                let to_goal = goal[j] as f32 - obs[r * spec.obs_dim + j];
                actions[r * 4 + j] = (50.0 * to_goal).clamp(-1.0, 1.0);
            }
        }
        env.step(&actions, &mut out);
        for r in 0..rows {
            if ends[r].len() >= 3 {
                continue;
            }
            steps[r] += 1;
            if ends[r].is_empty() && out.success[r] {
                succeeded_in_first[r] = true;
            }
            if out.terminated[r] || out.truncated[r] {
                ends[r].push((steps[r], out.terminated[r], out.success[r]));
                steps[r] = 0;
            }
        }
        obs.copy_from_slice(&out.obs);
    }
    for r in 0..rows {
        assert!(
            succeeded_in_first[r],
            "row {r}: the scripted reach never succeeded"
        );
        let (len, terminated, _) = ends[r][0];
        assert_eq!(
            (len, terminated),
            (500, false),
            "row {r}: the adaptation episode runs out"
        );
        for &(len, terminated, success) in &ends[r][1..] {
            assert!(len < 500 && terminated && success, "row {r}: {:?}", ends[r]);
        }
    }
}

#[test]
fn metaworld_protocol_reports_every_test_task_once() {
    if !metaworld_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = train_rl2(
        &dir,
        "ml1-reach",
        &[
            "run.num_envs=2",
            "run.steps_per_update=500",
            "run.total_frames=1000",
            "ppo.minibatches=1",
        ],
    );
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--run", &run, "--num-tasks", "6"];
        args.extend_from_slice(extra);
        bamdp(&args)
    };
    let o = eval(&[
        "--protocol",
        "metaworld",
        "--adaptation-episodes",
        "1",
        "--evaluation-episodes",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["episodes_per_task"], 2);
    let m = &v["metaworld"];
    let per_task = m["per_task"].as_array().unwrap();
    let tasks: Vec<u64> = per_task
        .iter()
        .map(|t| t["task"].as_u64().unwrap())
        .collect();
    // The first six held-out tasks, each once (rows take the list in turn, row r's
    // first trial on task r), in task order.
    assert_eq!(tasks, [0, 1, 2, 3, 4, 5]);
    let mean = |key: &str| {
        per_task
            .iter()
            .map(|t| t[key].as_f64().unwrap())
            .sum::<f64>()
            / per_task.len() as f64
    };
    assert!((m["success_rate"].as_f64().unwrap() - mean("success_rate")).abs() < 1e-12);
    assert!((m["mean_return"].as_f64().unwrap() - mean("mean_return")).abs() < 1e-9);
    // The summary covers the evaluation episodes: the same figures.
    assert_eq!(
        (
            v["summary"]["first"].as_u64(),
            v["summary"]["last"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert!((v["summary"]["return_mean"].as_f64().unwrap() - mean("mean_return")).abs() < 1e-9);
    // Text output: one row per task and the overall line.
    let o = eval(&[
        "--protocol",
        "metaworld",
        "--adaptation-episodes",
        "1",
        "--evaluation-episodes",
        "1",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("MetaWorld protocol"), "{text}");
    assert!(text.contains("over 6 tasks"), "{text}");
    // The trial protocol does not take MetaWorld's flags, nor MetaWorld's --episodes-per-task.
    assert_user_error(
        &eval(&["--evaluation-episodes", "2"]),
        &["--protocol", "trial"],
    );
    assert_user_error(
        &eval(&["--protocol", "metaworld", "--episodes-per-task", "4"]),
        &["--episodes-per-task", "--adaptation-episodes"],
    );
    assert_user_error(
        &eval(&["--protocol", "metaworld", "--evaluation-episodes", "0"]),
        &["--evaluation-episodes", "positive"],
    );
}

/// A MAML run takes MetaWorld's protocol: its adapted episodes are the protocol's
/// evaluation episodes, its JSON carries the keys every method's evaluation has (so
/// `bamdp sweep` and `bamdp report` treat it as any other run), and its own pre/post
/// figures agree with them.
#[test]
fn maml_runs_take_metaworlds_protocol_and_report_beside_the_others() {
    if !metaworld_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("runs").join("maml");
    let run = run.to_str().unwrap();
    let preset = format!("{}/configs/ml1-reach/maml.toml", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["train", "--config", &preset, "--out", run];
    for set in [
        "maml.meta_batch=2",
        "maml.episodes_per_task=1",
        "maml.post_episodes=1",
        "maml.hidden=[16]",
        "run.total_frames=2000",
        "run.threads=1",
    ] {
        args.extend(["--set", set]);
    }
    let o = bamdp(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bamdp(&[
        "eval",
        "--run",
        run,
        "--num-tasks",
        "4",
        "--protocol",
        "metaworld",
        "--adaptation-episodes",
        "1",
        "--evaluation-episodes",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = |x: &serde_json::Value| x.as_f64().unwrap();
    assert_eq!(
        (
            v["adaptation_episodes"].as_u64(),
            v["evaluation_episodes"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(v["episode_returns"].as_array().unwrap().len(), 3);
    let m = &v["metaworld"];
    let tasks: Vec<u64> = m["per_task"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"].as_u64().unwrap())
        .collect();
    assert_eq!(tasks, [0, 1, 2, 3]);
    assert_eq!(
        (
            m["adaptation_episodes"].as_u64(),
            m["evaluation_episodes"].as_u64()
        ),
        (Some(1), Some(2))
    );
    // The protocol's evaluation episodes are the adapted ones, and the first is the
    // unadapted policy's.
    assert!(
        (f(&m["success_rate"]) - f(&v["success_post"])).abs() < 1e-12,
        "{v}"
    );
    assert!(
        (f(&v["summary"]["return_mean"]) - f(&v["return_post"])).abs() < 1e-9,
        "{v}"
    );
    assert!(
        (f(&v["episode_returns"][0]) - f(&v["return_pre"])).abs() < 1e-9,
        "{v}"
    );
    // `bamdp report` reads it as it reads every method's eval.json.
    std::fs::write(format!("{run}/eval.json"), &o.stdout).unwrap();
    let out = dir.path().join("report");
    let o = bamdp(&[
        "report",
        dir.path().join("runs").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(summary.contains("| maml | 1 (1) |"), "{summary}");
    // The trial protocol's flags stay refused for MAML runs, as for the others.
    assert_user_error(
        &bamdp(&["eval", "--run", run, "--evaluation-episodes", "2"]),
        &["--protocol", "trial"],
    );
}

#[test]
fn unknown_protocols_and_envs_that_cannot_end_at_success_exit_2() {
    let o = bamdp(&["eval", "--run", "no-such-run", "--protocol", "meta-world"]);
    assert_user_error(&o, &["--protocol", "meta-world", "trial, metaworld"]);
    // GridNavi reports success but cannot end episodes at it.
    let dir = tempfile::tempdir().unwrap();
    let run = train_rl2(
        &dir,
        "gridnavi",
        &[
            "run.total_frames=3840",
            "run.num_envs=8",
            "ppo.minibatches=2",
        ],
    );
    let o = bamdp(&[
        "eval",
        "--run",
        &run,
        "--protocol",
        "metaworld",
        "--num-tasks",
        "4",
    ]);
    assert_user_error(
        &o,
        &[
            "gridnavi",
            "cannot end episodes at their first success",
            "ml1-reach",
        ],
    );
}

#[test]
fn envs_without_success_are_refused() {
    if !metaworld_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = train_rl2(
        &dir,
        "cheetah-vel",
        &[
            "run.num_envs=2",
            "run.steps_per_update=400",
            "run.total_frames=800",
            "ppo.minibatches=1",
        ],
    );
    let o = bamdp(&[
        "eval",
        "--run",
        &run,
        "--protocol",
        "metaworld",
        "--num-tasks",
        "2",
    ]);
    assert_user_error(
        &o,
        &[
            "--protocol",
            "metaworld",
            "cheetah-vel",
            "no success signal",
        ],
    );
}

/// The ML10 presets' meta-test (`eval.num_tasks = 250`, all 250 test tasks' rows at
/// once) passes the memory guard now that a row holds one Sawyer model (~27 MB): 250
/// rows of a one-row probe's bytes need ~6 GB (one model per class made it ~26 GB,
/// refused on a 24 GiB machine). The guard's arithmetic only: the rows are not built.
#[test]
fn the_ml10_meta_test_rows_pass_the_memory_guard() {
    use bamdp::run::guard::{check_eval_memory, machine_memory};
    if !metaworld_available() {
        return;
    }
    let probe = env::probe("ml10", Split::Test, 0, None, &EnvOptions::default())
        .unwrap()
        .expect("ml10 runs natively by default");
    let rows = 250;
    let need = rows as u128 * probe.row_bytes as u128;
    eprintln!(
        "ml10 test: row_bytes {}, {rows} rows {need} bytes",
        probe.row_bytes
    );
    assert!(
        (16 << 20..32 << 20).contains(&probe.row_bytes),
        "an ML10 test row holds one model: {} bytes",
        probe.row_bytes
    );
    match machine_memory() {
        Some((available, _)) if available >= need + (1 << 30) => {
            check_eval_memory(rows, Some(10), "ml10", rows, probe.row_bytes).unwrap()
        }
        other => eprintln!("NOTICE: {other:?} bytes (available, total): guard check skipped"),
    }
}

/// `bamdp sweep` meta-tests a MetaWorld run on the training tasks too (eval-train.json,
/// the training split's tasks in turn) besides the held-out ones (eval.json), both by
/// MetaWorld's protocol with the evaluation episodes by the mode, and the report's
/// per-class tables read both.
#[test]
fn sweep_meta_tests_training_and_held_out_tasks() {
    if !metaworld_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep").display().to_string();
    let preset = format!("{}/configs/ml1-reach/rl2.toml", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["sweep", "--config", &preset, "--seeds", "1", "--jobs", "1"];
    for set in [
        "run.num_envs=2",
        "run.steps_per_update=500",
        "run.total_frames=1000",
        "run.threads=1",
        "ppo.minibatches=1",
        "eval.num_tasks=3",
    ] {
        args.extend(["--set", set]);
    }
    args.extend(["--out", &out]);
    let o = bamdp(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = dir.path().join("sweep/ml1-reach/rl2/seed-1");
    let read = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(run.join(name)).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    for (name, split) in [("eval.json", "test"), ("eval-train.json", "train")] {
        let v = read(name);
        assert_eq!(v["split"], split, "{name}");
        // The evaluation episodes act by the mode, as MetaWorld's agents do.
        assert_eq!(v["greedy"], true, "{name}");
        assert_eq!(v["num_tasks"], 3, "{name}");
        // 10 adaptation and 3 evaluation episodes, one score per task.
        assert_eq!(v["episodes_per_task"], 13, "{name}");
        // ... from the first evaluation episode on.
        assert_eq!(v["greedy_from_episode"], 10, "{name}");
        // One class (reach), so the tasks in turn are the list's first three, each
        // once: uniform draws from 50 would rarely be.
        let tasks: Vec<u64> = v["metaworld"]["per_task"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["task"].as_u64().unwrap())
            .collect();
        assert_eq!(tasks, [0, 1, 2], "{name}");
        assert_eq!(
            v["tasks_in_turn"].as_bool(),
            (split == "train").then_some(true),
            "{name}"
        );
    }
    let report = dir.path().join("report").display().to_string();
    let o = bamdp(&["report", &out, "--out", &report]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = std::fs::read_to_string(dir.path().join("report/summary.md")).unwrap();
    assert!(summary.contains("eval-train.json"), "{summary}");
}

/// An evaluation on ML10's training split takes the tasks in turn, the classes
/// round-robin: ten rows start on the first task of each of the ten training classes,
/// and their next trials go round the classes again with each class's second task.
#[test]
fn training_tasks_in_turn_go_round_the_classes() {
    if !metaworld_available() {
        return;
    }
    let rows = 10;
    let mut env = env::make_with(
        "ml10",
        rows,
        Split::Train,
        4,
        Some(1),
        &EnvOptions::default(),
    )
    .unwrap();
    env.visit_tasks_in_turn().unwrap();
    let spec = env.spec().clone();
    let mut obs = vec![0.0; rows * spec.obs_dim];
    env.reset(&mut obs);
    let tasks = |env: &dyn env::BatchEnv| -> Vec<(u32, &'static str)> {
        (0..rows)
            .map(|r| {
                let i = env.task_index(r).unwrap();
                (i, env.task_class(i).unwrap())
            })
            .collect()
    };
    let first = tasks(env.as_ref());
    let classes: Vec<&str> = first.iter().map(|t| t.1).collect();
    let mut distinct = classes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), rows, "one class per row: {classes:?}");
    // The training list is class-major, 50 tasks per class.
    let indices: Vec<u32> = first.iter().map(|t| t.0).collect();
    assert_eq!(
        indices,
        (0..rows as u32).map(|c| 50 * c).collect::<Vec<_>>()
    );
    // One episode per trial: after one episode every row starts its second trial.
    let actions = vec![0.0; rows * spec.action.width()];
    let mut out = StepOut::new(rows, spec.obs_dim);
    for _ in 0..spec.episode_len {
        env.step(&actions, &mut out);
    }
    assert!(out.trial_end.iter().all(|&e| e));
    let second = tasks(env.as_ref());
    assert_eq!(
        second.iter().map(|t| t.0).collect::<Vec<_>>(),
        (0..rows as u32).map(|c| 50 * c + 1).collect::<Vec<_>>()
    );
    // Without a task list there is nothing to take in turn: an error, not a panic.
    let mut grid = env::make("gridnavi", 1, Split::Train, 0, &EnvOptions::default()).unwrap();
    assert!(grid.visit_tasks_in_turn().is_err());
}
