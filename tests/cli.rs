//! The `bamdp` binary end to end: listing, bad input (exit code 2, a message naming the
//! file/key/value, never a panic), run-folder safety, and a tiny train + eval.

use std::path::Path;
use std::process::{Command, Output};
mod cli_support;
mod python_support;
use cli_support::{assert_user_error, bamdp, stderr};

fn preset() -> String {
    format!("{}/configs/gridnavi/rl2.toml", env!("CARGO_MANIFEST_DIR"))
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn lists_envs_and_methods() {
    let o = bamdp(&["envs"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("gridnavi"));
    let o = bamdp(&["methods"]);
    let out = String::from_utf8_lossy(&o.stdout);
    for m in ["rl2", "oracle", "memoryless", "varibased", "glibrl-smc"] {
        assert!(out.contains(m), "{out}");
    }
    // Every runnable combination with its preset(s).
    assert!(
        out.contains("varibad x smc") && out.contains("configs/gridnavi/varibased.toml"),
        "{out}"
    );
    assert!(
        out.contains("glibrl x smc") && out.contains("configs/gridnavi/glibrl-smc.toml"),
        "{out}"
    );
    // `bamdp envs` aligns its second column.
    let o = bamdp(&["envs"]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let starts: Vec<usize> = text
        .lines()
        .map(|l| l.find("  ").unwrap() + l[l.find("  ").unwrap()..].find(|c| c != ' ').unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] == w[1]), "{text}");
}

#[test]
fn unknown_env_and_method_name_file_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "bad_env.toml", "env = \"gridworld9\"\n");
    let o = bamdp(&[
        "train",
        "--config",
        &f,
        "--out",
        &dir.path().join("r").display().to_string(),
    ]);
    assert_user_error(&o, &["bad_env.toml", "env", "gridworld9", "gridnavi"]);
    let f = write(dir.path(), "bad_method.toml", "method = \"pearl\"\n");
    let o = bamdp(&["bench", "--config", &f, "--seconds", "1"]);
    assert_user_error(&o, &["bad_method.toml", "method", "pearl", "rl2"]);
}

#[test]
fn bad_overrides_and_sizes_are_rejected() {
    let p = preset();
    for (set, needles) in [
        ("ppo.epochs=abc", vec!["ppo.epochs", "abc"]),
        ("run.num_envs=0", vec!["run.num_envs", "0"]),
        ("ppo.lr=-0.1", vec!["ppo.lr", "-0.1"]),
        (
            "run.steps_per_update=-5",
            vec!["run.steps_per_update", "-5"],
        ),
        ("ppo.minibatches=5", vec!["ppo.minibatches", "5"]),
        ("ppo.nonsense=1", vec!["nonsense"]),
        (
            "policy.activation=\"sigmoid\"",
            vec!["policy.activation", "sigmoid"],
        ),
    ] {
        let o = bamdp(&["bench", "--config", &p, "--set", set, "--seconds", "1"]);
        assert_user_error(&o, &needles);
    }
    let o = bamdp(&["bench", "--config", "/no/such/file.toml"]);
    assert_user_error(&o, &["/no/such/file.toml"]);
}

#[test]
fn bad_simulator_bridge_variables_name_the_variable_and_what_is_allowed() {
    // Checked before any Python worker starts, so no Python packages are needed.
    let cfg = format!(
        "{}/configs/cheetah-vel/rl2.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    for (var, value, allowed) in [
        ("BAMDP_ENV_SPIN_US", "abc", "microseconds from 0"),
        ("BAMDP_ENV_SPIN_US", "5000000", "to 1000000"),
        (
            "BAMDP_ENV_WORKERS",
            "0",
            "a positive number of worker processes",
        ),
        ("BAMDP_ENV_TIMEOUT_S", "-1", "a positive number of seconds"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_bamdp"))
            .args(["bench", "--config", &cfg, "--seconds", "1"])
            .args(["--set", "env_backend=python"])
            .env(var, value)
            .output()
            .expect("bamdp runs");
        assert_user_error(&o, &[var, value, allowed]);
    }
}

#[test]
fn unknown_key_in_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "typo.toml", "[ppo]\nlearning_rate = 0.1\n");
    let o = bamdp(&["bench", "--config", &f, "--seconds", "1"]);
    assert_user_error(&o, &["typo.toml", "learning_rate"]);
}

#[test]
fn eval_rejects_missing_and_corrupt_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let o = bamdp(&[
        "eval",
        "--run",
        &dir.path().join("nothing").display().to_string(),
    ]);
    assert_user_error(&o, &["nothing"]);
    let run = dir.path().join("run");
    std::fs::create_dir_all(run.join("checkpoint")).unwrap();
    std::fs::copy(preset(), run.join("config.toml")).unwrap();
    let o = bamdp(&["eval", "--run", &run.display().to_string()]);
    assert_user_error(&o, &["checkpoint", "no checkpoint"]);
    // A checkpoint of the former JSON format is refused by name.
    std::fs::write(run.join("checkpoint/state.json"), b"{\"format\": 1, \"upd").unwrap();
    let o = bamdp(&["eval", "--run", &run.display().to_string()]);
    assert_user_error(&o, &["state.json", "JSON format"]);
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    let o = bamdp(&[
        "eval",
        "--run",
        &run.display().to_string(),
        "--split",
        "validation",
    ]);
    assert_user_error(&o, &["--split", "validation"]);
}

#[test]
fn unwritable_or_existing_output_folders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "a_file", "x");
    let out = format!("{file}/run");
    let o = bamdp(&[
        "train",
        "--config",
        &preset(),
        "--out",
        &out,
        "--set",
        "run.total_frames=960",
    ]);
    assert_user_error(&o, &["a_file"]);

    let existing = dir.path().join("existing");
    std::fs::create_dir_all(&existing).unwrap();
    std::fs::write(existing.join("keep.txt"), b"precious").unwrap();
    let o = bamdp(&[
        "train",
        "--config",
        &preset(),
        "--out",
        &existing.display().to_string(),
        "--set",
        "run.total_frames=960",
    ]);
    assert_user_error(&o, &["existing", "--force"]);
    assert_eq!(
        std::fs::read(existing.join("keep.txt")).unwrap(),
        b"precious"
    );
}

#[test]
fn tiny_train_then_eval_json() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.display().to_string();
    let o = bamdp(&[
        "train",
        "--config",
        &preset(),
        "--out",
        &run_s,
        "--set",
        "run.total_frames=3840",
        "--set",
        "run.num_envs=8",
        "--set",
        "ppo.minibatches=2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "config.toml",
        "metrics.csv",
        "run.json",
        "checkpoint/meta.json",
    ] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    let tb: Vec<_> = std::fs::read_dir(run.join("tb")).unwrap().collect();
    assert!(!tb.is_empty(), "no TensorBoard event file");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8, "{csv}");
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["seed"], 1);

    // The evaluation every check below repeats (same seed, so the same trials), with
    // `extra` flags.
    let eval_with = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--run",
            &run_s,
            "--json",
            "--num-tasks",
            "20",
            "--episodes-per-task",
            "6",
        ];
        args.extend_from_slice(extra);
        bamdp(&args)
    };
    let o = eval_with(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["method"], "rl2");
    assert_eq!(v["env"], "gridnavi");
    assert_eq!(v["split"], "test");
    assert_eq!(v["num_tasks"], 20);
    assert_eq!(v["episode_returns"].as_array().unwrap().len(), 6);
    assert_eq!(v["episode_returns_ci95"].as_array().unwrap().len(), 6);
    assert_eq!(v["success_rate"].as_array().unwrap().len(), 6);
    // From 15 steps of -0.1 (as f32: -1.5000000223... when no goal is ever hit; the
    // mean over tasks may round by an ulp) up to 15 of +1.
    let lowest = 15.0 * (-0.1f32) as f64 - 1e-9;
    for r in v["episode_returns"].as_array().unwrap() {
        let r = r.as_f64().unwrap();
        assert!(
            (lowest..=15.0).contains(&r),
            "episode return {r} outside what GridNavi allows"
        );
    }

    // The same evaluation with every trial written out: its columns average to the
    // report's per-episode figures.
    let trials = dir.path().join("trials.csv");
    let o = eval_with(&["--trials-csv", trials.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(w["episode_returns"], v["episode_returns"]);
    let text = std::fs::read_to_string(&trials).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..4], ["trial", "task", "row", "return_ep1"]);
    assert_eq!(header.len(), 3 + 6 + 6, "{header:?}");
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').skip(3).map(|x| x.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 20);
    for e in 0..6 {
        let mean = rows.iter().map(|r| r[e]).sum::<f64>() / 20.0;
        let want = v["episode_returns"][e].as_f64().unwrap();
        assert!((mean - want).abs() < 1e-9, "episode {e}: {mean} vs {want}");
        let success = rows.iter().map(|r| r[6 + e]).sum::<f64>() / 20.0;
        let want = v["success_rate"][e].as_f64().unwrap();
        assert!(
            (success - want).abs() < 1e-12,
            "episode {e}: {success} vs {want}"
        );
    }
    let o = bamdp(&[
        "eval",
        "--run",
        &run_s,
        "--num-tasks",
        "2",
        "--trials-csv",
        dir.path().join("no/such/dir/t.csv").to_str().unwrap(),
    ]);
    assert_user_error(&o, &["no/such/dir/t.csv"]);

    // The same evaluation (same seed) summarised over episodes 4-6: the summary is the
    // mean of those episodes' figures; ranges outside the trial are user errors.
    let summarised = |range: &str| eval_with(&["--summary-episodes", range]);
    let o = summarised("4-6");
    assert!(o.status.success(), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(w["episode_returns"], v["episode_returns"]);
    let mean = |key: &str| {
        v[key].as_array().unwrap()[3..6]
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum::<f64>()
            / 3.0
    };
    let s = &w["summary"];
    assert_eq!(
        (s["first"].as_u64(), s["last"].as_u64()),
        (Some(4), Some(6))
    );
    assert!((s["return_mean"].as_f64().unwrap() - mean("episode_returns")).abs() < 1e-9);
    assert!((s["success_rate"].as_f64().unwrap() - mean("success_rate")).abs() < 1e-9);
    for bad in ["5-7", "0-2", "3-2", "x"] {
        assert_user_error(&summarised(bad), &["--summary-episodes", bad]);
    }

    // `--set` changes the run's config for one evaluation and is recorded: another
    // seed draws other tasks (so other returns); a key the flags already decide
    // (`eval.num_tasks` under --num-tasks) changes nothing but the record.
    assert!(v.get("overrides").is_none(), "{v}");
    let o = eval_with(&["--set", "eval.num_tasks=3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(w["episode_returns"], v["episode_returns"]);
    assert_eq!(w["overrides"], serde_json::json!(["eval.num_tasks=3"]));
    let o = eval_with(&["--set", "seed=2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(w["episode_returns"], v["episode_returns"]);
    // Unknown keys and bad values name --set; a key that reshapes the network no longer
    // fits the checkpoint, and the error says which files to look at.
    assert_user_error(
        &eval_with(&["--set", "rl2.no_such_key=1"]),
        &["no_such_key"],
    );
    assert_user_error(&eval_with(&["--set", "ppo.lr=-1"]), &["--set", "ppo.lr"]);
    assert_user_error(
        &eval_with(&["--set", "rl2.gru_hidden=7"]),
        &["meta.json", "config.toml", "--set"],
    );
}

#[test]
fn corrupt_or_truncated_checkpoints_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.display().to_string();
    let o = bamdp(&[
        "train",
        "--config",
        &preset(),
        "--out",
        &run_s,
        "--set",
        "run.total_frames=960",
        "--set",
        "run.num_envs=8",
        "--set",
        "ppo.minibatches=2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("checkpoint/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["version"], 3);
    assert_eq!(meta["method"], "rl2");
    assert_eq!(meta["env"], "gridnavi");
    let files: Vec<String> = meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    for name in &files {
        let path = run.join("checkpoint").join(name);
        let good = std::fs::read(&path).unwrap();
        // Truncated, then one byte changed.
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x40;
        for bad in [good[..good.len() / 2].to_vec(), flipped] {
            std::fs::write(&path, &bad).unwrap();
            for args in [
                vec!["eval", "--run", &run_s],
                vec![
                    "train",
                    "--resume",
                    "--out",
                    &run_s,
                    "--set",
                    "run.total_frames=1920",
                ],
            ] {
                let o = bamdp(&args);
                assert_user_error(&o, &[name.as_str(), "corrupt checkpoint"]);
                assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
            }
        }
        std::fs::write(&path, &good).unwrap();
    }
    let o = bamdp(&["eval", "--run", &run_s, "--num-tasks", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A checkpoint of the previous binary format (2: the trial buffer inside the state
    // file) is refused by its version, in one line.
    let meta_path = run.join("checkpoint/meta.json");
    let good = std::fs::read(&meta_path).unwrap();
    let mut old = meta.clone();
    old["version"] = 2.into();
    std::fs::write(&meta_path, serde_json::to_vec(&old).unwrap()).unwrap();
    for args in [
        vec!["eval", "--run", &run_s],
        vec!["train", "--resume", "--out", &run_s],
    ] {
        let o = bamdp(&args);
        assert_user_error(&o, &["meta.json", "format 2", "reads format 3 only"]);
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    }
    std::fs::write(&meta_path, good).unwrap();
}

#[test]
fn sizes_that_cannot_fit_are_refused_before_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r").display().to_string();
    for set in ["run.num_envs=100000000", "run.steps_per_update=2000000000"] {
        let o = bamdp(&[
            "train",
            "--config",
            &preset(),
            "--out",
            &out,
            "--force",
            "--set",
            set,
            "--set",
            "ppo.minibatches=1",
        ]);
        assert_user_error(
            &o,
            &[set.split('=').next().unwrap(), "GiB", "/proc/meminfo"],
        );
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
    }
    let varibased = format!(
        "{}/configs/gridnavi/varibased.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let o = bamdp(&[
        "train",
        "--config",
        &varibased,
        "--out",
        &out,
        "--force",
        "--set",
        "smc.particles=1000000000",
    ]);
    assert_user_error(&o, &["smc.particles", "GiB", "/proc/meminfo"]);

    let run = dir.path().join("run");
    let run_s = run.display().to_string();
    let o = bamdp(&[
        "train",
        "--config",
        &preset(),
        "--out",
        &run_s,
        "--set",
        "run.total_frames=480",
        "--set",
        "run.num_envs=8",
        "--set",
        "ppo.minibatches=2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bamdp(&["eval", "--run", &run_s, "--num-tasks", "1000000000000"]);
    assert_user_error(&o, &["--num-tasks", "GiB", "/proc/meminfo"]);
}

/// `bytes` of the machine's `/proc/meminfo` field `name` (`MemAvailable:`).
fn meminfo(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with(name)).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Runs `bamdp args` with its address space limited to `limit` bytes (so that a
/// regression allocates at most that much, never the machine's memory), stdin closed;
/// returns its output and peak resident bytes (`wait4`).
fn bamdp_limited(args: &[&str], limit: u64) -> (Output, u64) {
    use std::io::Read;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::Stdio;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bamdp"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Reaped by `wait4` below, which also reports its peak memory.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.spawn().expect("bamdp runs");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    out.extend(reader.join().unwrap());
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; the pid is our unwaited child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out,
        stderr: err,
    };
    (output, usage.ru_maxrss as u64 * 1024)
}

/// `bamdp train` of configs/ml10/maml.toml into `out` with one adaptation and one
/// post-adaptation episode per task and the `sets` overrides, under an address-space
/// `limit` (see [`bamdp_limited`]).
fn train_ml10_maml_limited(out: &str, sets: &[&str], limit: u64) -> (Output, u64) {
    let preset = format!("{}/configs/ml10/maml.toml", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["train", "--config", &preset, "--out", out];
    for set in ["maml.episodes_per_task=1", "maml.post_episodes=1"]
        .iter()
        .chain(sets)
    {
        args.extend(["--set", set]);
    }
    bamdp_limited(&args, limit)
}

/// A MAML meta-batch of native MetaWorld rows whose env rows alone exceed the memory
/// available is refused with exit code 2 before the rows exist: the process stays
/// small (the rows are sized on a one-row batch), instead of building rows until the
/// OOM killer stops it (or, under the limit here, MuJoCo fails to allocate).
#[test]
fn a_meta_batch_of_metaworld_rows_that_cannot_fit_is_refused_before_the_rows_exist() {
    if !python_support::can_import("mujoco, metaworld", "MetaWorld memory guard test") {
        return;
    }
    // An ML10 row holds the largest of its split's Sawyer models, ~27 MB
    // (tests/env_memory.rs): at 25 MiB a row or more, this many rows need twice the
    // memory available.
    let available = meminfo("MemAvailable:");
    let rows = (2 * available).div_ceil(25 << 20) + 1;
    if rows > 4096 {
        eprintln!("NOTICE: {available} bytes available: 4096 ML10 rows fit; test skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r").display().to_string();
    let batch = format!("maml.meta_batch={rows}");
    let (o, peak) = train_ml10_maml_limited(&out, &[&batch], 4 << 30);
    assert_user_error(
        &o,
        &[
            &batch.replace('=', " = "),
            "per row of env ml10",
            "/proc/meminfo",
        ],
    );
    // The probe: one row and the family's models (~250 MB); building the rows before
    // refusing would fill the 4 GiB limit.
    assert!(
        peak < 1 << 30,
        "peak resident memory {peak} bytes before refusing {rows} rows"
    );
    assert!(!Path::new(&out).join("checkpoint").exists());
}

/// When MuJoCo itself cannot allocate (here: an address-space limit below what rows
/// the guard lets through need), the run stops with MuJoCo's message on stderr and
/// exit code 1, instead of MuJoCo's default "Press Enter to exit ..." prompt.
#[test]
fn a_mujoco_allocation_failure_exits_with_its_message() {
    if !python_support::can_import("mujoco, metaworld", "MuJoCo error handler test") {
        return;
    }
    // 150 ML1 rows of ~21 MB each: ~3.2 GB, which the guard lets through with 6 GiB
    // available, under a 1 GiB limit.
    if meminfo("MemAvailable:") < 6 << 30 {
        eprintln!("NOTICE: less than 6 GiB available; MuJoCo error handler test skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r").display().to_string();
    let (o, _) = train_ml10_maml_limited(
        &out,
        &["env=ml1-reach", "maml.meta_batch=150", "run.threads=1"],
        1 << 30,
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains("MuJoCo error: Could not allocate memory"),
        "stderr: {err}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains("Press Enter"), "stdout: {stdout}");
}

/// `bamdp bench --learn-only` synthesises its rollout from the policy head: it runs for
/// each Gaussian head and with the linear baseline (before, the state head panicked).
#[test]
fn bench_learn_only_runs_with_every_gaussian_head() {
    let f = format!(
        "{}/configs/functions-1d/rl2.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    for extra in [
        vec!["policy.std=parameter"],
        vec!["policy.std=state"],
        vec!["policy.std=state", "ppo.baseline=linear"],
    ] {
        let mut args = vec!["bench", "--config", &f, "--learn-only", "--seconds", "0.2"];
        let sets = ["run.num_envs=4", "policy.hidden=[16]", "rl2.gru_hidden=16"];
        for s in sets.iter().chain(&extra) {
            args.extend(["--set", s]);
        }
        let o = bamdp(&args);
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
    }
}
