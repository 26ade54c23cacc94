//! `bamdp train`: the run folder around a [`Trainer`]: resolved config, provenance,
//! metrics.csv (and classes.csv for envs with task classes), TensorBoard events,
//! progress display, periodic and Ctrl-C checkpoints, and exact resumption.

use super::checkpoint;
use super::class_metrics::ClassMetrics;
use super::files::{self, Provenance, RunMode};
use super::metrics::MetricsCsv;
use super::tensorboard::EventWriter;
use super::trainer::{Trainer, UpdateReport};
use crate::config::Config;
use crate::error::UserError;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Where a run folder keeps its checkpoint (the file that commits it).
pub fn checkpoint_path(run: &Path) -> PathBuf {
    checkpoint::meta_path(run)
}

/// Columns whose values depend on wall-clock time (excluded from reproducibility checks).
pub const TIMING_COLUMNS: &[&str] = &["fps", "wall_s", "rollout_s", "learn_s"];

/// The metrics.csv columns for an env with `k` episodes per trial.
/// `learner` names the belief learner's statistics (see
/// [`crate::method::BeliefLearner::columns`]).
pub fn metric_columns(k: usize, has_success: bool, learner: &[&str]) -> Vec<String> {
    let mut c: Vec<String> = ["update", "frames", "fps", "wall_s"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for e in 1..=k {
        c.push(format!("return_ep{e}"));
    }
    c.push("return_trial".into());
    if has_success {
        for e in 1..=k {
            c.push(format!("success_ep{e}"));
        }
    }
    for s in [
        "trials",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_frac",
        "grad_norm",
        "lr",
        "rollout_s",
        "learn_s",
    ] {
        c.push(s.into());
    }
    c.extend(learner.iter().map(|s| s.to_string()));
    c
}

#[allow(clippy::too_many_arguments)]
fn metric_row(
    report: &UpdateReport,
    update: u64,
    frames: u64,
    fps: f64,
    wall_s: f64,
    k: usize,
    has_success: bool,
    learner_columns: usize,
) -> Vec<f64> {
    let n = report.finished.len();
    let mean = |f: &dyn Fn(&super::actor::TrialResult) -> f64| {
        if n == 0 {
            f64::NAN
        } else {
            report.finished.iter().map(f).sum::<f64>() / n as f64
        }
    };
    let mut row = vec![update as f64, frames as f64, fps, wall_s];
    for e in 0..k {
        row.push(mean(&|t| t.returns[e]));
    }
    row.push(mean(&|t| t.returns.iter().sum()));
    if has_success {
        for e in 0..k {
            row.push(mean(&|t| if t.success[e] { 1.0 } else { 0.0 }));
        }
    }
    let s = &report.stats;
    row.extend([
        n as f64,
        s.policy_loss,
        s.value_loss,
        s.entropy,
        s.approx_kl,
        s.clip_frac,
        s.grad_norm,
        report.lr,
        report.rollout_s,
        report.learn_s,
    ]);
    match &report.learner {
        Some(stats) => row.extend_from_slice(stats),
        None => row.extend(std::iter::repeat_n(f64::NAN, learner_columns)),
    }
    row
}

/// The Ctrl-C flag the training loop polls; installs the handler on the first call.
pub fn install_ctrlc() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let f = Arc::new(AtomicBool::new(false));
        let g = f.clone();
        // If another handler is installed (embedding program), we simply never stop early.
        let _ = ctrlc::set_handler(move || g.store(true, Ordering::SeqCst));
        f
    })
    .clone()
}

/// Writes the trainer's checkpoint atomically (see [`checkpoint`]).
pub fn save_checkpoint(run: &Path, trainer: &Trainer, wall_s: f64) -> Result<(), UserError> {
    let mut ck = trainer.checkpoint();
    ck.wall_s = wall_s;
    checkpoint::save(run, &ck, trainer)
}

/// Reads and verifies a run's checkpoint, with errors naming the file.
pub fn load_checkpoint(run: &Path) -> Result<checkpoint::Checkpoint, UserError> {
    Ok(checkpoint::load(run)?)
}

/// Reads a run folder's resolved config.
pub fn load_run_config(run: &Path) -> Result<Config, UserError> {
    let path = run.join(files::CONFIG);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| UserError::file(&path, format!("cannot read run config: {e}")))?;
    Config::from_toml_str(&text, &path.display().to_string())
}

/// Options of `bamdp train`.
pub struct TrainArgs {
    pub config: Option<PathBuf>,
    pub overrides: Vec<String>,
    pub out: Option<PathBuf>,
    pub resume: bool,
    pub force: bool,
    /// Print nothing but errors (tests).
    pub quiet: bool,
}

/// Runs `bamdp train`; returns the run folder.
pub fn train(args: &TrainArgs) -> Result<PathBuf, UserError> {
    train_with(args, None)
}

/// [`train`] with any [`crate::method::Method`] (one defined outside bamdp, too)
/// instead of the config's built-in method; the run folder is the same.
pub fn train_with(
    args: &TrainArgs,
    method: Option<&'static dyn crate::method::Method>,
) -> Result<PathBuf, UserError> {
    if args.resume && args.force {
        return Err(UserError::Other(
            "--resume and --force exclude each other: --force would delete the run to resume"
                .into(),
        ));
    }
    let (cfg, out) = if args.resume {
        let out = args.out.clone().ok_or_else(|| {
            UserError::Other("--resume needs --out DIR: the run folder to continue".into())
        })?;
        files::prepare_run_dir(&out, RunMode::Resume)?;
        let mut cfg = load_run_config(&out)?;
        if !args.overrides.is_empty() {
            cfg = cfg.with_overrides(&args.overrides)?;
        }
        (cfg, out)
    } else {
        let path = args.config.clone().ok_or_else(|| {
            UserError::Other("train needs --config FILE (or --resume --out DIR)".into())
        })?;
        let cfg = Config::load(&path, &args.overrides)?;
        let out = args.out.clone().unwrap_or_else(|| {
            PathBuf::from("runs").join(format!("{}-{}-s{}", cfg.env, cfg.method, cfg.seed))
        });
        files::prepare_run_dir(
            &out,
            if args.force {
                RunMode::Force
            } else {
                RunMode::Fresh
            },
        )?;
        (cfg, out)
    };
    if cfg.improver == "maml" {
        return crate::improve::maml::train::run(&cfg, &out, args.resume, args.quiet);
    }

    let method = method.unwrap_or_else(|| crate::method::lookup(cfg.method));
    let mut trainer = Trainer::with_method(&cfg, method)?;
    let spec = trainer.actor.spec.clone();
    let (k, has_success) = (spec.episodes_per_trial, spec.has_success);
    let learner_columns = trainer.learner_columns();
    let mut columns = metric_columns(k, has_success, learner_columns);
    // Only a run whose updates can end early logs how many minibatch steps each took:
    // every other run keeps its columns (and resumes into files written before).
    let minibatch_column = cfg.ppo.target_kl.is_some();
    if minibatch_column {
        columns.push("minibatches".into());
    }
    // pybridge hook: envs simulated by worker processes report their simulator versions
    // and count worker restarts (a metrics column, only for those envs).
    let simulators = trainer.env.versions();
    if !simulators.is_empty() {
        columns.push("env_restarts".into());
    }
    let mut wall_offset = 0.0;
    let mut metrics = if args.resume {
        let ck = load_checkpoint(&out)?;
        wall_offset = ck.wall_s;
        trainer
            .restore(ck)
            .map_err(|e| UserError::file(checkpoint_path(&out), e.to_string()))?;
        MetricsCsv::resume(&out.join(files::METRICS_CSV), &columns, trainer.update)?
    } else {
        MetricsCsv::create(&out.join(files::METRICS_CSV), &columns)?
    };
    let mut class_metrics = ClassMetrics::open(
        &out,
        trainer.env.as_ref(),
        args.resume.then_some(trainer.update),
    )?;
    files::atomic_write(&out.join(files::CONFIG), cfg.to_toml_string().as_bytes())?;
    files::write_run_json(&out, &Provenance::collect(cfg.seed, cfg.run.threads))?;
    if !simulators.is_empty() {
        // pybridge hook: the simulator versions behind this run (metaworld, mujoco, ...).
        let map: std::collections::BTreeMap<_, _> = simulators.iter().cloned().collect();
        let bytes = serde_json::to_vec_pretty(&map).expect("versions serialise");
        files::atomic_write(&out.join(files::SIMULATORS_JSON), &bytes)?;
    }
    let tb_dir = out.join(files::TB);
    std::fs::create_dir_all(&tb_dir)
        .map_err(|e| UserError::file(&tb_dir, format!("cannot create folder: {e}")))?;
    let mut tb = EventWriter::create(&tb_dir)?;

    let mut eval_every = super::eval_every::EvalEvery::open(&out, &cfg, &trainer, args.resume)?;
    let total = trainer.total_updates();
    let stop = install_ctrlc();
    let interactive = !args.quiet && std::io::stderr().is_terminal();
    let bar = if interactive {
        let b = ProgressBar::new(cfg.run.total_frames);
        b.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {human_pos}/{human_len} frames  {msg}  ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_position(trainer.frames);
        Some(b)
    } else {
        None
    };
    if !args.quiet {
        eprintln!(
            "training {} x {} on {} (seed {}): {} updates x {} frames -> {}",
            trainer.method.name(),
            cfg.improver,
            cfg.env,
            cfg.seed,
            total,
            trainer.frames_per_update(),
            out.display()
        );
    }
    let trial_return_column = columns
        .iter()
        .position(|c| c == "return_trial")
        .expect("metrics have a return_trial column");
    let start = Instant::now();
    let mut last_trial_return = f64::NAN;
    let mut smoothed_fps = 0.0;
    while trainer.update < total {
        let t = Instant::now();
        let report = trainer.train_update();
        if let Some(what) = super::guard::non_finite(&trainer, &report) {
            // This update diverged: keep the last checkpoint as it is.
            return Err(UserError::NonFinite(format!(
                "training diverged at update {} of {total}: {what}; stopped without saving this update (the last checkpoint, written every {} updates, is intact: lower the learning rates, or check the env's rewards)",
                trainer.update,
                cfg.run.checkpoint_every
            )));
        }
        if let Some(why) = trainer.env.fatal() {
            // This update's data is broken: keep the last checkpoint as it is.
            return Err(UserError::Other(format!(
                "{why}; training stopped at update {} of {total} (the last checkpoint is intact: continue with `bamdp train --resume --out {}` once the simulator works)",
                trainer.update,
                out.display()
            )));
        }
        let dt = t.elapsed().as_secs_f64();
        let fps = trainer.frames_per_update() as f64 / dt;
        smoothed_fps = if smoothed_fps == 0.0 {
            fps
        } else {
            0.9 * smoothed_fps + 0.1 * fps
        };
        let wall = wall_offset + start.elapsed().as_secs_f64();
        let mut row = metric_row(
            &report,
            trainer.update,
            trainer.frames,
            fps,
            wall,
            k,
            has_success,
            learner_columns.len(),
        );
        if minibatch_column {
            row.push(report.stats.minibatches as f64);
        }
        if !simulators.is_empty() {
            row.push(trainer.env.events().restarts as f64); // pybridge hook
        }
        metrics.append(&row)?;
        if let Some(c) = class_metrics.as_mut() {
            c.append(
                trainer.update,
                trainer.frames,
                report.finished.iter().map(|t| (t.task, &t.success[..])),
                trainer.env.as_ref(),
            )?;
        }
        eval_every.after_update(&cfg, &trainer, wall)?;
        for (name, v) in columns.iter().zip(&row).skip(2) {
            if v.is_finite() {
                tb.scalar(name, trainer.frames as i64, *v as f32)?;
            }
        }
        if !report.finished.is_empty() {
            last_trial_return = row[trial_return_column];
        }
        let msg = format!(
            "{:.0} fps  trial return {:.2}",
            smoothed_fps, last_trial_return
        );
        if let Some(b) = &bar {
            b.set_position(trainer.frames);
            b.set_message(msg);
        } else if !args.quiet
            && (trainer.update % cfg.run.log_every as u64 == 0 || trainer.update == total)
        {
            eprintln!(
                "update {}/{}  frames {}  {}  wall {:.0}s",
                trainer.update, total, trainer.frames, msg, wall
            );
        }
        let interrupted = stop.load(Ordering::SeqCst);
        if trainer.update % cfg.run.checkpoint_every as u64 == 0
            || trainer.update == total
            || interrupted
        {
            tb.flush()?;
            save_checkpoint(&out, &trainer, wall)?;
        }
        if interrupted {
            if let Some(b) = &bar {
                b.abandon();
            }
            eprintln!(
                "interrupted: checkpoint saved at update {}; continue with `bamdp train --resume --out {}`",
                trainer.update,
                out.display()
            );
            return Ok(out);
        }
    }
    tb.flush()?;
    if let Some(b) = &bar {
        b.finish();
    }
    if !args.quiet {
        eprintln!(
            "done: {} frames in {:.1}s; evaluate with `bamdp eval --run {}`",
            trainer.frames,
            start.elapsed().as_secs_f64(),
            out.display()
        );
    }
    Ok(out)
}
