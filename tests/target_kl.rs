//! `ppo.target_kl`: an update ends at the first minibatch whose approximate KL exceeds
//! 1.5 x the target (measured before its step, so never at an update's first minibatch),
//! runs that set it log the steps taken, and bad values exit 2.

mod cli_support;
use cli_support::{assert_user_error, bamdp};

/// Trains GridNavi RL2 (2 epochs x 4 minibatches, 3 updates) with `sets`; returns
/// metrics.csv's header and rows.
fn train(sets: &[&str]) -> (Vec<String>, Vec<Vec<f64>>) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run").display().to_string();
    let preset = format!("{}/configs/gridnavi/rl2.toml", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["train", "--config", &preset, "--out", &run];
    for s in ["run.total_frames=2880", "run.threads=1"]
        .iter()
        .chain(sets)
    {
        args.extend(["--set", s]);
    }
    let o = bamdp(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_metrics(&dir.path().join("run/metrics.csv"))
}

fn read_metrics(path: &std::path::Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

/// Every column of `plain` has the same value in `run` (NaN equal to NaN), timings aside.
fn assert_equal_but_timings(run: (&[String], &[Vec<f64>]), plain: (&[String], &[Vec<f64>])) {
    let timing = ["fps", "wall_s", "rollout_s", "learn_s"];
    assert_eq!(run.1.len(), plain.1.len());
    for (r, p) in run.1.iter().zip(plain.1) {
        for (c, v) in plain.0.iter().zip(p) {
            let i = run.0.iter().position(|h| h == c).unwrap();
            assert!(
                timing.contains(&c.as_str()) || r[i] == *v || (r[i].is_nan() && v.is_nan()),
                "{c}: {} in the run, {v} in the plain run",
                r[i]
            );
        }
    }
}

fn minibatches(header: &[String], rows: &[Vec<f64>]) -> Vec<f64> {
    let i = header.iter().position(|c| c == "minibatches").unwrap();
    rows.iter().map(|r| r[i]).collect()
}

#[test]
fn a_tiny_target_stops_each_update_after_its_second_minibatch() {
    // The first minibatch's KL is that of the rollout's own policy (rounding only,
    // ~1e-14); after one Adam step the second's is far above 1.5e-9.
    let (header, rows) = train(&["ppo.target_kl=1e-9"]);
    assert_eq!(rows.len(), 3);
    assert_eq!(minibatches(&header, &rows), [2.0; 3]);
}

#[test]
fn a_loose_target_runs_every_epoch_and_no_target_logs_no_column() {
    let (header, rows) = train(&["ppo.target_kl=1e9"]);
    assert_eq!(minibatches(&header, &rows), [8.0; 3]);
    // The same run without a target: the same numbers, and the columns it always had.
    let (plain_header, plain_rows) = train(&[]);
    assert!(!plain_header.iter().any(|c| c == "minibatches"));
    assert_equal_but_timings((&header, &rows), (&plain_header, &plain_rows));
}

#[test]
fn a_resume_may_add_a_target_and_not_drop_it() {
    // 2 updates without a target, then `--resume` with one to update 3: the kept rows
    // get NaN minibatches, the new one its count, and the rest equals a plain run.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run").display().to_string();
    let preset = format!("{}/configs/gridnavi/rl2.toml", env!("CARGO_MANIFEST_DIR"));
    let first = [
        "train",
        "--config",
        &preset,
        "--out",
        &run,
        "--set",
        "run.total_frames=1920",
        "--set",
        "run.threads=1",
        "--set",
        "run.checkpoint_every=1",
    ];
    let o = bamdp(&first);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let resume = [
        "train",
        "--resume",
        "--out",
        &run,
        "--set",
        "run.total_frames=2880",
        "--set",
        "ppo.target_kl=1e9",
    ];
    let o = bamdp(&resume);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (header, rows) = read_metrics(&dir.path().join("run/metrics.csv"));
    let m = minibatches(&header, &rows);
    assert!(m[0].is_nan() && m[1].is_nan() && m[2] == 8.0, "{m:?}");
    let (plain_header, plain_rows) = train(&[]);
    assert_equal_but_timings((&header, &rows), (&plain_header, &plain_rows));
    // Resuming without the target would stop logging its column: exit 2, metrics.csv
    // intact.
    let before = std::fs::read_to_string(dir.path().join("run/metrics.csv")).unwrap();
    let o = bamdp(&[
        "train",
        "--resume",
        "--out",
        &run,
        "--set",
        "run.total_frames=3840",
        "--set",
        "ppo.target_kl=none",
    ]);
    let after = std::fs::read_to_string(dir.path().join("run/metrics.csv")).unwrap();
    assert_user_error(&o, &["metrics.csv", "minibatches"]);
    assert_eq!(before, after);
}

#[test]
fn bad_targets_exit_2_naming_the_key() {
    let preset = format!("{}/configs/gridnavi/rl2.toml", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run").display().to_string();
    for value in ["0", "-0.01", "nan", "inf"] {
        let set = format!("ppo.target_kl={value}");
        let o = bamdp(&["train", "--config", &preset, "--out", &run, "--set", &set]);
        assert_user_error(&o, &["ppo.target_kl", "a finite number > 0"]);
    }
    let planner = format!(
        "{}/configs/gridnavi/varibased.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let o = bamdp(&[
        "train",
        "--config",
        &planner,
        "--out",
        &run,
        "--set",
        "ppo.target_kl=0.01",
    ]);
    assert_user_error(&o, &["ppo.target_kl", "improver = \"smc\""]);
}
