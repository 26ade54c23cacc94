//! Exact resumption and reproducibility: a run split by a checkpoint (or by Ctrl-C)
//! produces the same metrics as an uninterrupted one, and the thread count changes
//! nothing.

mod run_support;
use bamdp::run::train::{self, TrainArgs};
use run_support::metrics;
use std::path::{Path, PathBuf};
use std::process::Command;

fn preset() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/gridnavi/rl2.toml")
}

fn small(frames: u64) -> Vec<String> {
    vec![
        format!("run.total_frames={frames}"),
        "run.num_envs=8".into(),
        "ppo.minibatches=2".into(),
        "run.checkpoint_every=3".into(),
        // Frames per update (8 x 45) do not align with trials (60 steps): resumption must
        // carry recurrent state and half-finished trials across the checkpoint.
        "run.steps_per_update=45".into(),
    ]
}

fn run(out: &Path, overrides: Vec<String>, resume: bool) {
    train::train(&TrainArgs {
        config: (!resume).then(preset),
        overrides,
        out: Some(out.to_path_buf()),
        resume,
        force: false,
        quiet: true,
    })
    .unwrap();
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let per_update = 8 * 45;
    let whole = dir.path().join("whole");
    run(&whole, small(10 * per_update), false);
    let split = dir.path().join("split");
    run(&split, small(4 * per_update), false);
    run(
        &split,
        vec![format!("run.total_frames={}", 10 * per_update)],
        true,
    );
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 10);
    assert_eq!(a, b, "resumed metrics differ from the uninterrupted run");
}

/// The transformer's per-row key/value caches cross the checkpoint mid-trial (45-step
/// updates, 60-step trials), and the next update's segments start from them.
#[test]
fn resumed_transformer_run_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let per_update = 8 * 45;
    let with_method = |frames: u64| {
        let mut o = small(frames);
        o.push("method=\"transformer\"".into());
        o
    };
    let whole = dir.path().join("whole");
    run(&whole, with_method(6 * per_update), false);
    let split = dir.path().join("split");
    run(&split, with_method(4 * per_update), false);
    run(
        &split,
        vec![format!("run.total_frames={}", 6 * per_update)],
        true,
    );
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 6);
    assert_eq!(
        a, b,
        "resumed transformer metrics differ from the uninterrupted run"
    );
}

/// Meta-World+'s Gaussian head (`policy.std = "state"`) through a checkpoint and on
/// two threads: trials of 20 steps, updates of 15, so the split falls mid-trial.
#[test]
fn state_std_head_resumes_exactly_on_any_thread_count() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/functions-1d/rl2.toml");
    let dir = tempfile::tempdir().unwrap();
    let per_update = 8 * 15;
    let o = |updates: usize, threads: usize| {
        vec![
            format!("run.total_frames={}", updates * per_update),
            "run.num_envs=8".into(),
            "run.steps_per_update=15".into(),
            "run.checkpoint_every=3".into(),
            "ppo.minibatches=2".into(),
            "policy.hidden=[16]".into(),
            "policy.std=state".into(),
            format!("run.threads={threads}"),
        ]
    };
    let whole = dir.path().join("whole");
    train_with(&config, &whole, o(6, 1), false);
    let split = dir.path().join("split");
    train_with(&config, &split, o(4, 2), false);
    train_with(
        &config,
        &split,
        vec![format!("run.total_frames={}", 6 * per_update)],
        true,
    );
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 6);
    assert_eq!(a, b, "state-std run differs when resumed on two threads");
    let text = std::fs::read_to_string(whole.join("config.toml")).unwrap();
    assert!(text.contains("std = \"state\""), "{text}");
}

#[test]
fn thread_count_does_not_change_results() {
    let dir = tempfile::tempdir().unwrap();
    for (method, extra) in [
        ("rl2", vec![]),
        // One sequence per minibatch (as the ML10 presets): one chunk, whose actor,
        // critic and GRU parameter gradients run side by side on the idle thread.
        ("rl2", vec!["ppo.minibatches=8".to_string()]),
        ("transformer", vec![]),
        // Truncated BPTT: 15-step sequences, 24 of them in 4 minibatches.
        (
            "rl2",
            vec![
                "ppo.bptt_steps=15".to_string(),
                "ppo.minibatches=4".to_string(),
            ],
        ),
        ("transformer", vec!["ppo.bptt_steps=15".to_string()]),
        // Time-ordered overlapping pieces (Meta-World+'s RL2): 15 steps every 10, 4 of
        // them per 45-step rollout, each minibatch one piece of every env in 2 chunks.
        (
            "rl2",
            vec![
                "ppo.bptt_order=\"time\"".to_string(),
                "ppo.bptt_steps=15".to_string(),
                "ppo.bptt_overlap=5".to_string(),
                "ppo.minibatches=4".to_string(),
            ],
        ),
        ("varibad", vec!["varibad.batch_trials=10".to_string()]),
        // The basis networks in two chunks of trials on the run's threads.
        ("glibrl", vec!["glibrl.batch_trials=5".to_string()]),
    ] {
        let tag = format!("{method}{}", extra.len());
        let one = dir.path().join(format!("{tag}-one"));
        let two = dir.path().join(format!("{tag}-two"));
        let mut o = small(7 * 360);
        o.push(format!("method=\"{method}\""));
        o.extend(extra);
        let mut o1 = o.clone();
        o1.push("run.threads=1".into());
        let mut o2 = o;
        o2.push("run.threads=2".into());
        run(&one, o1, false);
        run(&two, o2, false);
        assert_eq!(metrics(&one), metrics(&two), "{method}");
    }
}

#[test]
fn ctrl_c_saves_a_checkpoint_that_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let per_update = 8 * 45;
    let total = 60 * per_update;
    let whole = dir.path().join("whole");
    run(&whole, small(total as u64), false);

    let out = dir.path().join("interrupted");
    let mut args = vec![
        "train".to_string(),
        "--config".into(),
        preset().display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    for s in small(total as u64) {
        args.push("--set".into());
        args.push(s);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_bamdp"))
        .args(&args)
        .spawn()
        .unwrap();
    // Wait until training is under way, then interrupt.
    let csv = out.join("metrics.csv");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&csv)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 3
    {
        assert!(start.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "Ctrl-C should save and exit 0");
    let done = metrics(&out).len();
    assert!(
        done < 60,
        "interrupt came too late to test anything ({done} updates)"
    );
    run(&out, vec![], true);
    assert_eq!(metrics(&whole), metrics(&out));
}

#[test]
fn kill_9_mid_run_then_resume_equals_uninterrupted_run() {
    // A process killed at any instant leaves the last committed checkpoint whole
    // (meta.json is the commit point); resuming from it reproduces the metrics.
    let dir = tempfile::tempdir().unwrap();
    let per_update = 8 * 45;
    let total = 40 * per_update;
    let mut sets = small(total as u64);
    sets.push("run.checkpoint_every=1".into());
    let whole = dir.path().join("whole");
    run(&whole, sets.clone(), false);

    let out = dir.path().join("killed");
    let mut args = vec![
        "train".to_string(),
        "--config".into(),
        preset().display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    for s in sets {
        args.push("--set".into());
        args.push(s);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_bamdp"))
        .args(&args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let meta = out.join("checkpoint/meta.json");
    let start = std::time::Instant::now();
    while !meta.exists() {
        assert!(start.elapsed().as_secs() < 120, "training did not start");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(30));
    child.kill().unwrap();
    child.wait().unwrap();
    let done = metrics(&out).len();
    assert!(
        done < 40,
        "the kill came too late to test anything ({done} updates)"
    );
    run(&out, vec![], true);
    assert_eq!(metrics(&whole), metrics(&out));
}

#[test]
fn checkpoint_tensor_file_is_what_safetensors_serialises() {
    // The checkpoint writes its tensors file piece by piece (no copy into one buffer):
    // the bytes must be exactly the library's.
    use bamdp::run::checkpoint::store::{read_f32, Column, TensorFile};
    let cells: Vec<f32> = (0..37).map(|i| (i % 5) as f32).collect();
    let rewards: Vec<f32> = (0..37).map(|i| i as f32 * -0.1).collect();
    let tensors = [
        ("z.cells", Column::narrowest(&cells, vec![37])),
        ("a.rewards", Column::narrowest(&rewards, vec![37, 1])),
        ("m.lengths", Column::u32(&[3, 1, 4], vec![3])),
        ("theta", Column::f64(&[0.5, -2.0], vec![2])),
        ("w", Column::f32(&[1.0, 2.0, 3.0], vec![3])),
    ];
    let ours: Vec<u8> = TensorFile::new(&tensors).unwrap().pieces().concat();
    let theirs = safetensors::serialize(tensors.iter().map(|(n, c)| (*n, c.view())), None).unwrap();
    assert_eq!(ours, theirs);
    let st = safetensors::SafeTensors::deserialize(&ours).unwrap();
    assert_eq!(
        st.tensor("z.cells").unwrap().dtype(),
        safetensors::Dtype::U8
    );
    assert_eq!(read_f32(&st, "z.cells", Some(37)).unwrap(), cells);
    assert_eq!(read_f32(&st, "a.rewards", Some(37)).unwrap(), rewards);
    // -0.0 is not a byte: the column stays F32 and reads back bit for bit.
    let signed = Column::narrowest(&[1.0, -0.0], vec![2]);
    assert_eq!(signed.dtype, safetensors::Dtype::F32);
}

#[test]
fn checkpoint_round_trips() {
    use bamdp::config::Config;
    use bamdp::run::trainer::Trainer;
    let cfg = Config::load(&preset(), &small(3 * 360)).unwrap();
    let mut a = Trainer::new(&cfg).unwrap();
    a.train_update();
    a.train_update();
    let ck = a.checkpoint();
    let mut b = Trainer::new(&cfg).unwrap();
    b.restore(ck.clone()).unwrap();
    assert_eq!(b.checkpoint(), ck);
    // Through the files on disk.
    let dir = tempfile::tempdir().unwrap();
    bamdp::run::checkpoint::save(dir.path(), &ck, &a).unwrap();
    assert_eq!(bamdp::run::checkpoint::load(dir.path()).unwrap(), ck);
    let (ra, rb) = (a.train_update(), b.train_update());
    assert_eq!(ra.stats.policy_loss, rb.stats.policy_loss);
    assert_eq!(a.params, b.params);
}

#[test]
fn resumed_varibad_run_equals_uninterrupted_run() {
    // Checkpoints carry the VAE, its optimiser, the trial buffer and the trials being
    // recorded; the split falls mid-trial, after the first VAE updates.
    let varibad = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/gridnavi/varibad.toml");
    let dir = tempfile::tempdir().unwrap();
    let per_update = 8 * 45;
    let overrides = |updates: usize| {
        let mut o = small((updates * per_update) as u64);
        o.push("varibad.batch_trials=10".into());
        o
    };
    let whole = dir.path().join("whole");
    train_with(&varibad, &whole, overrides(9), false);
    let split = dir.path().join("split");
    train_with(&varibad, &split, overrides(5), false);
    train_with(
        &varibad,
        &split,
        vec![format!("run.total_frames={}", 9 * per_update)],
        true,
    );
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 9);
    // The VAE trained before and after the split (its loss columns are filled).
    let text = std::fs::read_to_string(whole.join("metrics.csv")).unwrap();
    let last = text.lines().last().unwrap();
    assert!(!last.ends_with("NaN"), "no VAE update happened: {last}");
    assert_eq!(
        a, b,
        "resumed VariBAD metrics differ from the uninterrupted run"
    );
}

#[test]
fn resumed_point_robot_varibad_run_equals_uninterrupted_run() {
    // Continuous actions, the MLP reward decoder and the state decoder through a
    // checkpoint: trials are 300 steps, so with 8 rows x 45 steps per update the first
    // trials end in update 7; the split (after update 8) falls between VAE updates and
    // mid-trial.
    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/point_robot/varibad.toml");
    let dir = tempfile::tempdir().unwrap();
    let per_update = 8 * 45;
    let overrides = |updates: usize| {
        let mut o = small((updates * per_update) as u64);
        for kv in [
            "varibad.batch_trials=4",
            "varibad.gru_hidden=16",
            "varibad.subsample_elbos=4",
            "varibad.decode_state=true",
            "policy.hidden=[16]",
        ] {
            o.push(kv.into());
        }
        o
    };
    let whole = dir.path().join("whole");
    train_with(&preset, &whole, overrides(10), false);
    let split = dir.path().join("split");
    train_with(&preset, &split, overrides(8), false);
    train_with(
        &preset,
        &split,
        vec![format!("run.total_frames={}", 10 * per_update)],
        true,
    );
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 10);
    let text = std::fs::read_to_string(whole.join("metrics.csv")).unwrap();
    let last = text.lines().last().unwrap();
    assert!(!last.ends_with("NaN"), "no VAE update happened: {last}");
    assert_eq!(
        a, b,
        "resumed point-robot VariBAD metrics differ from the uninterrupted run"
    );
}

fn train_with(config: &Path, out: &Path, overrides: Vec<String>, resume: bool) {
    train::train(&TrainArgs {
        config: (!resume).then(|| config.to_path_buf()),
        overrides,
        out: Some(out.to_path_buf()),
        resume,
        force: false,
        quiet: true,
    })
    .unwrap();
}

#[test]
fn resumed_and_threaded_varibased_runs_equal_the_plain_run() {
    // Planning state (per-row trial steps and planner streams), the VAE and the EM
    // update all survive a mid-trial checkpoint; the planner's thread chunks and the
    // M-step's gradient chunks change nothing.
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/gridnavi/varibased.toml");
    let dir = tempfile::tempdir().unwrap();
    let per_update = 8 * 45;
    let overrides = |updates: usize, threads: usize| {
        let mut o = small((updates * per_update) as u64);
        o.push("varibad.batch_trials=10".into());
        o.push("smc.particles=8".into());
        o.push(format!("run.threads={threads}"));
        o
    };
    let whole = dir.path().join("whole");
    train_with(&cfg, &whole, overrides(7, 1), false);
    let split = dir.path().join("split");
    train_with(&cfg, &split, overrides(4, 2), false);
    train_with(
        &cfg,
        &split,
        vec![format!("run.total_frames={}", 7 * per_update)],
        true,
    );
    let (a, b) = (metrics(&whole), metrics(&split));
    assert_eq!(a.len(), 7);
    assert_eq!(a, b, "resumed / threaded VariBASeD metrics differ");
}

#[test]
fn glibrl_smc_on_point_robot_is_thread_invariant() {
    // The continuous-action path: weighted root actions, the Gaussian cross-entropy,
    // GLiBRL's exact MNIW reward draws.
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/point_robot/glibrl.toml");
    let dir = tempfile::tempdir().unwrap();
    let o = |threads: usize| {
        vec![
            "improver=smc".to_string(),
            "ppo.norm_reward=false".into(),
            "run.num_envs=4".into(),
            "run.steps_per_update=150".into(),
            "run.total_frames=2400".into(),
            "ppo.minibatches=2".into(),
            "glibrl.batch_trials=2".into(),
            "smc.particles=8".into(),
            "smc.depth=3".into(),
            format!("run.threads={threads}"),
        ]
    };
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    train_with(&cfg, &one, o(1), false);
    train_with(&cfg, &two, o(2), false);
    let (a, b) = (metrics(&one), metrics(&two));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "GLiBRL x SMC metrics depend on the thread count");
}
