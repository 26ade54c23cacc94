//! The Python simulator bridge (src/env/python/), against the real packages from
//! python/requirements.txt: the same observations, rewards and success flags as the
//! same simulators driven directly from Python (tests/python/reference.py); MetaWorld's
//! own task splits; crash and hang recovery; clean shutdown; exact resume; and the
//! missing-Python / missing-package errors.
//!
//! These tests need `pip install -r python/requirements.txt` (CI does it in .ci/run).
//! They fail, never skip, when the packages are absent.
#![allow(clippy::needless_range_loop)] // rows index several parallel arrays

use bamdp::env::python::{Options, PyBatchEnv};
use bamdp::env::{BatchEnv, Split, StepOut};
use std::process::{Command, Stdio};
use std::time::Duration;

mod python_support;
use python_support::python;

fn opts(workers: usize) -> Options {
    Options {
        python: python(),
        workers,
        step_timeout: Duration::from_secs(60),
        parts: 1,
        spin: bamdp::env::python::DEFAULT_SPIN,
    }
}

/// A fixed, seed-free action sequence in [-1, 1] (with a few out-of-box values that the
/// bridge must clip).
fn action(t: usize, row: usize, d: usize, dim: usize) -> f32 {
    let x = ((t * 7 + row * 13 + d * 3) as f32 * 0.37).sin() * 1.1;
    let _ = dim;
    x
}

struct Trace {
    obs: Vec<Vec<Vec<f32>>>, // row -> step (0 = first obs) -> obs
    reward: Vec<Vec<f32>>,   // row -> step
    success: Vec<Vec<bool>>, // row -> step
    terminated: Vec<Vec<bool>>,
    seeds: Vec<Vec<u64>>,        // row -> episode reset seeds
    actions: Vec<Vec<Vec<f32>>>, // row -> step -> clipped action
    tasks: Vec<(u32, f64)>,
}

/// Steps `env` for `steps` steps from a fresh reset, recording everything per row.
/// Requires that no trial ends within `steps` (so every row keeps its first task).
fn run(env: &mut PyBatchEnv, steps: usize) -> Trace {
    let n = env.num_envs();
    let od = env.spec().obs_dim;
    let ad = env.spec().action.width();
    let (lo, hi) = match env.spec().action {
        bamdp::env::ActionSpace::Continuous { low, high, .. } => (low, high),
        _ => unreachable!(),
    };
    let mut obs = vec![0.0; n * od];
    env.reset(&mut obs);
    let mut tr = Trace {
        obs: (0..n)
            .map(|r| vec![obs[r * od..(r + 1) * od].to_vec()])
            .collect(),
        reward: vec![Vec::new(); n],
        success: vec![Vec::new(); n],
        terminated: vec![Vec::new(); n],
        seeds: (0..n).map(|r| vec![env.episode_seed(r)]).collect(),
        actions: vec![Vec::new(); n],
        tasks: (0..n).map(|r| env.task(r)).collect(),
    };
    let mut out = StepOut::new(n, od);
    let mut acts = vec![0.0; n * ad];
    for t in 0..steps {
        for r in 0..n {
            for d in 0..ad {
                acts[r * ad + d] = action(t, r, d, ad);
            }
        }
        env.step(&acts, &mut out);
        for r in 0..n {
            assert!(!out.trial_end[r], "trial ended within the recorded steps");
            tr.obs[r].push(out.obs[r * od..(r + 1) * od].to_vec());
            tr.reward[r].push(out.reward[r]);
            tr.success[r].push(out.success[r]);
            tr.terminated[r].push(out.terminated[r]);
            tr.actions[r].push(
                acts[r * ad..(r + 1) * ad]
                    .iter()
                    .map(|a| a.clamp(lo, hi))
                    .collect(),
            );
            if out.episode_end(r) {
                tr.seeds[r].push(env.episode_seed(r));
            }
        }
    }
    tr
}

fn reference(input: serde_json::Value) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/reference.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Python reference");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference.py failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn as_f32s(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Asserts that `tr` equals the reference's replay of the same tasks, seeds and actions,
/// bit for bit (observations and rewards as float32, success flags).
fn check_against_reference(env: &PyBatchEnv, tr: &Trace, bench_seed: u64, split: &str) {
    let rows: Vec<serde_json::Value> = (0..tr.obs.len())
        .map(|r| {
            serde_json::json!({
                "task_index": tr.tasks[r].0,
                "task_value": tr.tasks[r].1,
                "seeds": tr.seeds[r],
                "actions": tr.actions[r],
            })
        })
        .collect();
    let res = reference(serde_json::json!({
        "env": env.spec().name,
        "bench_seed": bench_seed,
        "split": split,
        "episode_len": env.spec().episode_len,
        "rows": rows,
    }));
    let res = res.as_array().unwrap();
    for (r, row) in res.iter().enumerate() {
        let obs = row["obs"].as_array().unwrap();
        assert_eq!(obs.len(), tr.obs[r].len());
        for (t, o) in obs.iter().enumerate() {
            assert_eq!(as_f32s(o), tr.obs[r][t], "row {r} observation {t} differs");
        }
        assert_eq!(
            as_f32s(&row["reward"]),
            tr.reward[r],
            "row {r} rewards differ"
        );
        if let Some(s) = row.get("success") {
            let s: Vec<bool> = s
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_bool().unwrap())
                .collect();
            assert_eq!(s, tr.success[r], "row {r} success flags differ");
        }
        if let Some(s) = row.get("terminated") {
            let s: Vec<bool> = s
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_bool().unwrap())
                .collect();
            assert_eq!(s, tr.terminated[r], "row {r} terminations differ");
        }
    }
}

#[test]
fn cheetah_vel_matches_gymnasium_driven_directly() {
    // 3 rows on 2 workers, 230 steps: crosses the episode end at 200 (reset with a new
    // seed) and a clipped action now and then.
    let mut env = PyBatchEnv::new("cheetah-vel", 3, Split::Train, 11, None, opts(2)).unwrap();
    assert_eq!(env.spec().obs_dim, 17);
    assert_eq!(env.spec().action.width(), 6);
    assert_eq!(env.spec().episode_len, 200);
    assert_eq!(env.spec().episodes_per_trial, 2);
    let tr = run(&mut env, 230);
    for r in 0..3 {
        let v = tr.tasks[r].1;
        assert!(
            (0.0..3.0).contains(&v),
            "target velocity {v} outside [0, 3)"
        );
        assert_eq!(tr.seeds[r].len(), 2, "one reset seed per episode");
    }
    assert_ne!(tr.tasks[0].1, tr.tasks[1].1);
    check_against_reference(&env, &tr, env.benchmark_seed(), "train");
}

#[test]
fn ant_dir_and_cheetah_dir_match_gymnasium_driven_directly() {
    for name in ["ant-dir", "cheetah-dir"] {
        let mut env = PyBatchEnv::new(name, 2, Split::Test, 5, None, opts(1)).unwrap();
        let tr = run(&mut env, 60);
        for r in 0..2 {
            assert!(tr.tasks[r].1 == 1.0 || tr.tasks[r].1 == -1.0);
        }
        check_against_reference(&env, &tr, env.benchmark_seed(), "test");
    }
}

#[test]
fn metaworld_ml1_reach_and_push_match_metaworld_driven_directly() {
    // reach on the train split, push on the held-out test split; 505 steps cross the
    // 500-step horizon.
    for (name, split, s) in [
        ("ml1-reach", Split::Train, "train"),
        ("ml1-push", Split::Test, "test"),
    ] {
        let mut env = PyBatchEnv::new(name, 2, split, 3, None, opts(2)).unwrap();
        assert_eq!(env.spec().obs_dim, 39);
        assert_eq!(env.spec().action.width(), 4);
        assert_eq!(env.spec().episode_len, 500);
        assert!(env.spec().has_success);
        assert_eq!(env.num_tasks(), 50);
        let versions: std::collections::BTreeMap<_, _> = env.versions().into_iter().collect();
        assert_eq!(versions.get("metaworld").map(String::as_str), Some("3.1.1"));
        assert_eq!(versions.get("mujoco").map(String::as_str), Some("3.3.0"));
        let tr = run(&mut env, 505);
        if split == Split::Test {
            // Held-out tasks are visited in turn: consecutive rows, consecutive tasks.
            assert_eq!(tr.tasks[1].0, (tr.tasks[0].0 + 1) % 50);
        }
        check_against_reference(&env, &tr, env.benchmark_seed(), s);
    }
}

#[test]
fn ml10_task_splits_are_metaworlds() {
    let seed = 42;
    let want = reference(serde_json::json!({"mode": "splits", "env": "ml10", "bench_seed": seed}));
    for (split, key) in [(Split::Train, "train"), (Split::Test, "test")] {
        let env = PyBatchEnv::new("ml10", 1, split, seed, None, opts(1)).unwrap();
        let names: Vec<String> = want[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        assert_eq!(env.task_names(), names.as_slice());
    }
    // The published ML10 split (docs/methods.md#metaworld).
    let test: Vec<&str> = want["test_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(
        test,
        [
            "drawer-open-v3",
            "door-close-v3",
            "shelf-place-v3",
            "sweep-into-v3",
            "lever-pull-v3"
        ]
    );
    assert_eq!(want["train_classes"].as_array().unwrap().len(), 10);
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry: gone means exited *and* reaped.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_killed_worker_is_restarted_and_its_rows_start_fresh_trials() {
    let mut env = PyBatchEnv::new("cheetah-vel", 4, Split::Train, 1, None, opts(2)).unwrap();
    let (od, ad) = (env.spec().obs_dim, 6);
    let mut out = StepOut::new(4, od);
    let acts = vec![0.1; 4 * ad];
    for _ in 0..10 {
        env.step(&acts, &mut out);
    }
    let old = env.worker_pid(0);
    let tasks_before: Vec<_> = (0..4).map(|r| env.task(r)).collect();
    env.kill_worker(0);
    env.step(&acts, &mut out);
    let rows = env.worker_rows(0);
    for r in 0..4 {
        let hit = rows.contains(&r);
        assert_eq!(out.trial_end[r], hit, "row {r}");
        assert_eq!(out.truncated[r], hit, "row {r}");
        if hit {
            assert_eq!(out.reward[r], 0.0);
            assert_ne!(env.task(r), tasks_before[r], "row {r} draws a fresh task");
        } else {
            assert_eq!(env.task(r), tasks_before[r]);
        }
    }
    assert_eq!(env.events().restarts, 1);
    assert_eq!(env.events().crashes, 1);
    assert_ne!(env.worker_pid(0), old);
    assert!(!alive(old), "the killed worker was reaped");
    for _ in 0..200 {
        env.step(&acts, &mut out);
    }
    assert!(out.reward.iter().all(|r| r.is_finite()));
    assert_eq!(env.events().restarts, 1);
}

/// Per row and step: observation, final observation, reward, and the end flags.
type RowStep = (Vec<f32>, Vec<f32>, f32, [bool; 4], u32);

fn row_step(out: &StepOut, r: usize, od: usize) -> RowStep {
    (
        out.obs[r * od..(r + 1) * od].to_vec(),
        out.final_obs[r * od..(r + 1) * od].to_vec(),
        out.reward[r],
        [
            out.terminated[r],
            out.truncated[r],
            out.trial_end[r],
            out.success[r],
        ],
        out.episode_index[r],
    )
}

#[test]
fn pipelined_parts_step_every_row_exactly_as_lock_step() {
    // 5 rows on 2 workers (slices of 2 and 3 rows), each split in 2 parts; 420 steps
    // cross two episode ends and a trial end (episodes of 200 steps, 2 per trial), so
    // the resets that ride along with a step and the new tasks are covered.
    let (n, steps) = (5, 420);
    let lock = {
        let mut env = PyBatchEnv::new("cheetah-vel", n, Split::Train, 3, None, opts(2)).unwrap();
        let (od, ad) = (env.spec().obs_dim, env.spec().action.width());
        let mut out = StepOut::new(n, od);
        let mut acts = vec![0.0; n * ad];
        let mut trace: Vec<Vec<RowStep>> = vec![Vec::new(); n];
        for t in 0..steps {
            for r in 0..n {
                for d in 0..ad {
                    acts[r * ad + d] = action(t, r, d, ad);
                }
            }
            env.step(&acts, &mut out);
            for (r, tr) in trace.iter_mut().enumerate() {
                tr.push(row_step(&out, r, od));
            }
        }
        trace
    };
    let mut o = opts(2);
    o.parts = 2;
    let mut env = PyBatchEnv::new("cheetah-vel", n, Split::Train, 3, None, o).unwrap();
    assert_eq!(env.num_parts(), 2);
    let part_rows: Vec<Vec<usize>> = (0..2).map(|g| env.part_rows(g).collect()).collect();
    let mut all: Vec<usize> = part_rows.concat();
    all.sort();
    assert_eq!(
        all,
        (0..n).collect::<Vec<_>>(),
        "parts cover every row once"
    );
    let (od, ad) = (env.spec().obs_dim, env.spec().action.width());
    let mut out = StepOut::new(n, od);
    let mut acts = vec![0.0; n * ad];
    let fill = |acts: &mut [f32], rows: &[usize], t: usize| {
        for &r in rows {
            for d in 0..ad {
                acts[r * ad + d] = action(t, r, d, ad);
            }
        }
    };
    // Double-buffered: both parts in flight; collect the oldest, act on it, resend.
    for (g, rows) in part_rows.iter().enumerate() {
        fill(&mut acts, rows, 0);
        env.step_begin(g, &acts);
    }
    for t in 0..steps {
        for (g, rows) in part_rows.iter().enumerate() {
            env.step_end(g, &mut out);
            for &r in rows {
                assert_eq!(row_step(&out, r, od), lock[r][t], "row {r} step {t}");
            }
            if t + 1 < steps {
                fill(&mut acts, rows, t + 1);
                env.step_begin(g, &acts);
            }
        }
    }
    assert_eq!(env.events().restarts, 0);
}

#[test]
fn a_worker_killed_with_both_parts_in_flight_cuts_only_its_rows() {
    let mut o = opts(2);
    o.parts = 2;
    let mut env = PyBatchEnv::new("cheetah-vel", 4, Split::Train, 1, None, o).unwrap();
    let (od, ad) = (env.spec().obs_dim, 6);
    let mut out = StepOut::new(4, od);
    let acts = vec![0.1; 4 * ad];
    for _ in 0..5 {
        env.step(&acts, &mut out);
    }
    let tasks_before: Vec<_> = (0..4).map(|r| env.task(r)).collect();
    // Parked first, so neither part's step can be answered before the kill lands.
    env.hang_worker(0);
    env.step_begin(0, &acts);
    env.step_begin(1, &acts);
    env.kill_worker(0);
    env.step_end(0, &mut out);
    env.step_end(1, &mut out);
    let rows = env.worker_rows(0);
    for r in 0..4 {
        let hit = rows.contains(&r);
        assert_eq!(out.trial_end[r], hit, "row {r}");
        if hit {
            assert_eq!(out.reward[r], 0.0);
            assert_ne!(env.task(r), tasks_before[r], "row {r} draws a fresh task");
        } else {
            assert_eq!(env.task(r), tasks_before[r]);
        }
    }
    assert_eq!(env.events().restarts, 1, "one restart for both parts");
    for _ in 0..30 {
        env.step(&acts, &mut out);
        assert!(out.trial_end.iter().all(|&e| !e), "no further cuts");
    }
}

#[test]
fn a_hung_worker_times_out_and_is_replaced() {
    let mut o = opts(2);
    o.step_timeout = Duration::from_secs(2);
    let mut env = PyBatchEnv::new("cheetah-dir", 2, Split::Train, 1, None, o).unwrap();
    let mut out = StepOut::new(2, env.spec().obs_dim);
    let acts = vec![0.0; 12];
    env.step(&acts, &mut out);
    let old = env.worker_pid(1);
    env.hang_worker(1);
    env.step(&acts, &mut out);
    assert_eq!(env.events().timeouts, 1);
    assert_eq!(env.events().restarts, 1);
    assert!(out.trial_end[1] && !out.trial_end[0]);
    assert!(!alive(old));
    env.step(&acts, &mut out);
}

#[test]
fn dropping_the_batch_reaps_every_worker() {
    let env = PyBatchEnv::new("cheetah-vel", 3, Split::Train, 1, None, opts(3)).unwrap();
    let pids: Vec<u32> = (0..env.num_workers()).map(|w| env.worker_pid(w)).collect();
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&p| alive(p)));
    drop(env);
    for p in pids {
        assert!(!alive(p), "worker {p} left behind");
    }
}

#[test]
fn save_and_load_state_resume_exactly_mid_episode() {
    let mk = || PyBatchEnv::new("ml1-reach", 2, Split::Train, 9, None, opts(2)).unwrap();
    let mut a = mk();
    let od = a.spec().obs_dim;
    let mut out = StepOut::new(2, od);
    let acts: Vec<Vec<f32>> = (0..60)
        .map(|t| (0..8).map(|i| action(t, i, 0, 4)).collect())
        .collect();
    for x in &acts[..30] {
        a.step(x, &mut out);
    }
    let saved = a.save_state();
    let mut tail_a = Vec::new();
    for x in &acts[30..] {
        a.step(x, &mut out);
        tail_a.push((out.obs.clone(), out.reward.clone(), out.success.clone()));
    }
    let mut b = mk();
    b.load_state(&saved).unwrap();
    for (i, x) in acts[30..].iter().enumerate() {
        b.step(x, &mut out);
        assert_eq!(
            (out.obs.clone(), out.reward.clone(), out.success.clone()),
            tail_a[i],
            "step {i}"
        );
    }
}

fn bamdp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bamdp"))
}

fn write_config(dir: &std::path::Path, env: &str) -> std::path::PathBuf {
    let p = dir.join("c.toml");
    // The bridge is what these tests exercise (cheetah-vel runs natively by default).
    std::fs::write(
        &p,
        format!("method = \"rl2\"\nenv = \"{env}\"\nenv_backend = \"python\"\n"),
    )
    .unwrap();
    p
}

#[test]
fn missing_python_and_missing_packages_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // An interpreter that does not exist.
    let cfg = write_config(dir.path(), "ml1-reach");
    let out = bamdp()
        .args(["bench", "--config"])
        .arg(&cfg)
        .env("BAMDP_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/python3")
            && err.contains("pip install -r python/requirements.txt"),
        "{err}"
    );
    // A real interpreter without the packages: an empty virtual environment.
    let venv = dir.path().join("venv");
    let st = Command::new(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(st.success());
    let py = venv.join("bin/python");
    for (env, pkg) in [("ml1-reach", "`metaworld`"), ("cheetah-vel", "`gymnasium")] {
        let cfg = write_config(dir.path(), env);
        let out = bamdp()
            .args(["bench", "--config"])
            .arg(&cfg)
            .env("BAMDP_PYTHON", &py)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{env}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(pkg), "{env}: {err}");
        assert!(
            err.contains("pip install -r python/requirements.txt"),
            "{err}"
        );
    }
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
        }
    }
    out
}

fn small_cheetah_config(dir: &std::path::Path, frames: u64) -> std::path::PathBuf {
    let p = dir.join("cheetah.toml");
    std::fs::write(
        &p,
        format!(
            "method = \"rl2\"\nenv = \"cheetah-vel\"\nenv_backend = \"python\"\nseed = 3\n[run]\ntotal_frames = {frames}\nnum_envs = 2\nsteps_per_update = 400\nthreads = 1\ncheckpoint_every = 1000\nlog_every = 1\n[policy]\nhidden = [16]\n[rl2]\ngru_hidden = 16\nobs_embed = 8\naction_embed = 4\nreward_embed = 4\n[ppo]\nminibatches = 1\n"
        ),
    )
    .unwrap();
    p
}

fn wait_for_workers(pid: u32, n: usize) -> Vec<u32> {
    let start = std::time::Instant::now();
    loop {
        let c = children(pid);
        if c.len() >= n {
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "workers did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `bamdp train` has logged its first update to `run`/metrics.csv.
fn wait_for_first_update(run: &std::path::Path) {
    let start = std::time::Instant::now();
    while std::fs::read_to_string(run.join("metrics.csv")).map_or(0, |m| m.lines().count()) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "training did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn training_survives_a_killed_worker_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_cheetah_config(dir.path(), 80_000);
    let run = dir.path().join("run");
    let child = bamdp()
        .args(["train", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&run)
        .env("BAMDP_ENV_WORKERS", "2")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let workers = wait_for_workers(child.id(), 2);
    wait_for_first_update(&run); // mid-run
    let st = Command::new("kill")
        .args(["-KILL", &workers[0].to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restarting it"), "{err}");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|c| *c == "env_restarts")
        .expect("env_restarts column");
    let last: Vec<&str> = metrics.lines().last().unwrap().split(',').collect();
    assert_eq!(
        last[col].parse::<f64>().unwrap(),
        1.0,
        "one restart counted"
    );
    assert_eq!(
        last[1].parse::<f64>().unwrap(),
        80_000.0,
        "training ran to the end"
    );
    let sims = std::fs::read_to_string(run.join("simulators.json")).unwrap();
    assert!(sims.contains("\"mujoco\": \"3.3.0\""), "{sims}");
    assert!(!alive(workers[0]) && !alive(workers[1]));
}

#[test]
fn ctrl_c_checkpoints_and_leaves_no_worker_behind() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_cheetah_config(dir.path(), 4_000_000);
    let run = dir.path().join("run");
    let child = bamdp()
        .args(["train", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&run)
        .env("BAMDP_ENV_WORKERS", "2")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let workers = wait_for_workers(child.id(), 2);
    // Interrupt mid-training (SIGINT before the handler is installed would simply
    // terminate bamdp; its workers then exit on end of input).
    wait_for_first_update(&run);
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        !err.contains("restarting"),
        "Ctrl-C must not look like a crash: {err}"
    );
    assert!(run.join("checkpoint/meta.json").exists());
    for w in workers {
        assert!(!alive(w), "worker {w} left behind");
    }
}
