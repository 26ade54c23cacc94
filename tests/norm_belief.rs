//! `ppo.norm_belief`: the belief's features enter the policy normalised by running
//! statistics, which checkpoints carry (exact resume), evaluation uses, and a run of a
//! method without belief features refuses.

mod run_support;
use bamdp::config::Config;
use bamdp::run::train::{self, TrainArgs};
use bamdp::run::trainer::Trainer;
use run_support::metrics;
use std::path::{Path, PathBuf};
use std::process::Command;

fn preset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/gridnavi/{name}.toml"))
}

/// 8 rows x 45 steps per update (trials of 60 steps cross the updates).
fn small(updates: u64, norm_belief: bool) -> Vec<String> {
    vec![
        format!("run.total_frames={}", updates * 8 * 45),
        "run.num_envs=8".into(),
        "run.steps_per_update=45".into(),
        "run.checkpoint_every=3".into(),
        "ppo.minibatches=2".into(),
        "glibrl.batch_trials=4".into(),
        format!("ppo.norm_belief={norm_belief}"),
    ]
}

/// Per feature column of the last rollout's policy inputs: the mean.
fn feature_means(t: &Trainer) -> Vec<f64> {
    let (id, od) = (t.buf.input_dim, t.env.spec().obs_dim);
    let rows = t.buf.x.len() / id;
    (od..id)
        .map(|j| (0..rows).map(|r| t.buf.x[r * id + j] as f64).sum::<f64>() / rows as f64)
        .collect()
}

#[test]
fn the_policy_reads_glibrls_features_normalised_only_with_the_switch() {
    let plain = Config::load(&preset("glibrl"), &small(3, false)).unwrap();
    let normed = Config::load(&preset("glibrl"), &small(3, true)).unwrap();
    let (mut a, mut b) = (
        Trainer::new(&plain).unwrap(),
        Trainer::new(&normed).unwrap(),
    );
    // GridNavi's GLiBRL preset does not normalise observations: the statistics cover
    // exactly the features, which follow the 2 observations.
    assert!(a.input_norm.is_none());
    let norm = b.input_norm.as_ref().unwrap();
    assert_eq!(norm.start, 2);
    assert_eq!(norm.start + norm.rms.mean.len(), b.buf.input_dim);
    for _ in 0..3 {
        a.train_update();
        b.train_update();
    }
    // Without the switch the log-precisions sit near ln(1 / init_lambda0) = 4.6; with
    // it every feature column is centred (the statistics include the rollout itself).
    let raw = feature_means(&a);
    assert!(
        raw.iter().any(|m| m.abs() > 2.0),
        "raw feature means {raw:?}"
    );
    let centred = feature_means(&b);
    assert!(
        centred.iter().all(|m| m.abs() < 1.0),
        "normalised feature means {centred:?}"
    );
}

fn train_run(out: &Path, config: Option<PathBuf>, overrides: Vec<String>) {
    train::train(&TrainArgs {
        resume: config.is_none(),
        config,
        overrides,
        out: Some(out.to_path_buf()),
        force: false,
        quiet: true,
    })
    .unwrap();
}

#[test]
fn normalised_runs_resume_exactly_and_evaluate_with_their_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    train_run(&whole, Some(preset("glibrl")), small(7, true));
    let split = dir.path().join("split");
    train_run(&split, Some(preset("glibrl")), small(4, true));
    train_run(
        &split,
        None,
        vec![format!("run.total_frames={}", 7 * 8 * 45)],
    );
    let plain = dir.path().join("plain");
    train_run(&plain, Some(preset("glibrl")), small(7, false));
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 7);
    assert_eq!(a, b, "resumed metrics differ from the uninterrupted run");
    assert_ne!(a, metrics(&plain), "the switch changed nothing");

    let eval = |run: &Path| {
        Command::new(env!("CARGO_BIN_EXE_bamdp"))
            .args(["eval", "--num-tasks", "4", "--json", "--run"])
            .arg(run)
            .output()
            .unwrap()
    };
    let ok = eval(&whole);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // A config that no longer asks for the statistics the checkpoint holds is refused.
    let config = whole.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("norm_belief = true"), "{text}");
    std::fs::write(
        &config,
        text.replace("norm_belief = true", "norm_belief = false"),
    )
    .unwrap();
    let refused = eval(&whole);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("meta.json") && err.contains("ppo.norm_belief"),
        "{err}"
    );
}

#[test]
fn methods_without_belief_features_refuse_the_switch() {
    let cfg = Config::load(&preset("rl2"), &["ppo.norm_belief=true".to_string()]).unwrap();
    let err = Trainer::new(&cfg)
        .err()
        .expect("rl2 with ppo.norm_belief trains");
    let text = err.to_string();
    assert!(
        text.contains("ppo.norm_belief") && text.contains("rl2") && text.contains("false"),
        "{text}"
    );
}
