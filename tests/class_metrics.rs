//! `classes.csv` (src/run/class_metrics.rs): MetaWorld ML10 training runs (RL2's loop
//! and MAML's) log every training class's trials and success per update, in agreement
//! with metrics.csv, and continue the file on `--resume`; envs without classes write
//! none.
//!
//! Needs `pip install -r python/requirements.txt` (MetaWorld's models); without it the
//! ML10 test prints a notice and returns.

mod cli_support;
mod python_support;
use cli_support::bamdp;

fn csv(path: &std::path::Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect())
        .collect();
    (header, rows)
}

fn column(header: &[String], name: &str) -> usize {
    header.iter().position(|c| c == name).unwrap()
}

#[test]
fn ml10_training_logs_each_class_in_agreement_with_metrics_and_resumes() {
    if !python_support::can_import("metaworld", "test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let preset = format!("{}/configs/ml10/rl2.toml", env!("CARGO_MANIFEST_DIR"));
    // One ML10 trial (10 episodes of 500 steps) per row and update.
    let sets = [
        "run.num_envs=10",
        "run.steps_per_update=5000",
        "run.threads=1",
        "ppo.epochs=1",
        "ppo.minibatches=1",
        "policy.hidden=[16]",
        "rl2.gru_hidden=16",
    ];
    let train = |extra: &[&str]| {
        let run = run.display().to_string();
        let mut args = vec!["train", "--out", &run];
        args.extend(extra);
        for s in sets {
            args.extend(["--set", s]);
        }
        let o = bamdp(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    train(&["--config", &preset, "--set", "run.total_frames=50000"]);
    train(&["--resume", "--set", "run.total_frames=100000"]);

    let (header, rows) = csv(&run.join("classes.csv"));
    let classes: Vec<&str> = header
        .iter()
        .filter_map(|c| c.strip_prefix("success/"))
        .collect();
    assert_eq!(
        classes.len(),
        10,
        "ML10 has 10 training classes: {header:?}"
    );
    assert!(classes.contains(&"reach-v3") && !classes.contains(&"door-close-v3"));
    let (m_header, m_rows) = csv(&run.join("metrics.csv"));
    assert_eq!(
        rows.len(),
        2,
        "one row per update, resumed without duplicates"
    );
    for (r, m) in rows.iter().zip(&m_rows) {
        assert_eq!(r[..2], m[..2], "update and frames");
        // The classes' trials are the update's trials ...
        let trials: f64 = classes
            .iter()
            .map(|c| r[column(&header, &format!("trials/{c}"))])
            .sum();
        assert_eq!(trials, m[column(&m_header, "trials")]);
        // ... and their successful episodes metrics.csv's, which averages over trials
        // per episode.
        let successes: f64 = classes
            .iter()
            .map(|c| {
                let n = r[column(&header, &format!("trials/{c}"))];
                let s = r[column(&header, &format!("success/{c}"))];
                assert_eq!(n == 0.0, s.is_nan(), "{c}: {n} trials, success {s}");
                if n == 0.0 {
                    0.0
                } else {
                    n * 10.0 * s
                }
            })
            .sum();
        let per_episode: f64 = (1..=10)
            .map(|e| m[column(&m_header, &format!("success_ep{e}"))])
            .sum();
        assert!(
            (successes - trials * per_episode).abs() < 1e-9,
            "{successes} successful episodes against metrics.csv's {}",
            trials * per_episode
        );
    }
}

/// MAML's own loop logs the same file: per class, its tasks' adaptation and adapted
/// episodes together, in agreement with metrics.csv's `success_pre` / `success_post`.
#[test]
fn ml10_maml_training_logs_each_class_in_agreement_with_metrics() {
    if !python_support::can_import("metaworld", "test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let preset = format!("{}/configs/ml10/maml.toml", env!("CARGO_MANIFEST_DIR"));
    let run_s = run.display().to_string();
    let mut args = vec!["train", "--config", &preset, "--out", &run_s];
    // 5 tasks x (1 adaptation + 1 adapted episode of 500 steps) per update, 2 updates.
    for s in [
        "maml.meta_batch=5",
        "maml.episodes_per_task=1",
        "maml.post_episodes=1",
        "maml.hidden=[16]",
        "run.total_frames=10000",
        "run.threads=1",
    ] {
        args.extend(["--set", s]);
    }
    let o = bamdp(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (header, rows) = csv(&run.join("classes.csv"));
    let (m_header, m_rows) = csv(&run.join("metrics.csv"));
    assert_eq!((rows.len(), header.len()), (2, 2 + 2 * 10));
    for (r, m) in rows.iter().zip(&m_rows) {
        assert_eq!(r[..2], m[..2], "update and frames");
        let (mut trials, mut successes) = (0.0, 0.0);
        for pair in r[2..].chunks(2) {
            trials += pair[0];
            if pair[0] > 0.0 {
                successes += pair[0] * 2.0 * pair[1];
            }
        }
        assert_eq!(trials, 5.0);
        let pre = m[column(&m_header, "success_pre")];
        let post = m[column(&m_header, "success_post")];
        assert!(
            (successes - 5.0 * (pre + post)).abs() < 1e-9,
            "{successes} {pre} {post}"
        );
    }
}

#[test]
fn envs_without_task_classes_write_no_classes_csv() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let preset = format!("{}/configs/gridnavi/rl2.toml", env!("CARGO_MANIFEST_DIR"));
    let run_s = run.display().to_string();
    let o = bamdp(&[
        "train",
        "--config",
        &preset,
        "--out",
        &run_s,
        "--set",
        "run.total_frames=2000",
        "--set",
        "run.threads=1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(run.join("metrics.csv").exists());
    assert!(!run.join("classes.csv").exists());
}
