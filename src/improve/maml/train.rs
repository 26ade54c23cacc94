//! The MAML training loop and its run folder (the same files as every method:
//! config.toml, run.json, metrics.csv, tb/, checkpoint/ in the format of
//! [`crate::run::checkpoint::store`]: theta as an `F64` tensor, the rest in the codec's
//! encoding, `meta.json` with sizes and CRC-32s written last).
//!
//! One update = one meta-batch: `maml.meta_batch` tasks (one per env row) each play
//! their adaptation episodes with theta, take the inner step(s), play their
//! post-adaptation episodes with the adapted weights; then one TRPO outer step.
//! A checkpoint holds theta, the env state, the per-row action streams and the
//! counters, all at an update boundary, so a resumed run repeats an uninterrupted one.

use super::memory::Phase;
use super::meta::{Maml, OuterStats, TrpoSettings};
use super::policy::{Head, Policy};
use super::rollout::{AdvantageSettings, Collector, RowResult};
use crate::codec;
use crate::config::Config;
use crate::env::{self, ActionSpace, BatchEnv, Split};
use crate::error::UserError;
use crate::rng::{streams, Rng};
use crate::run::checkpoint::store;
use crate::run::class_metrics::ClassMetrics;
use crate::run::files::{self, Provenance};
use crate::run::guard::check_maml_memory;
use crate::run::metrics::MetricsCsv;
use crate::run::tensorboard::EventWriter;
use crate::run::train::{checkpoint_path, install_ctrlc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Everything a resumed run needs (the linear baseline is refitted to every batch, so
/// it has no state to keep).
#[derive(Clone, Debug, PartialEq)]
pub struct MamlCheckpoint {
    pub theta: Vec<f64>,
    pub update: u64,
    pub frames: u64,
    pub env: serde_json::Value,
    pub action_rngs: Vec<Rng>,
    pub needs_reset: bool,
    pub wall_s: f64,
}

/// `meta.json`'s method of a MAML checkpoint.
const METHOD: &str = "maml";
/// The tensor that holds theta.
const THETA: &str = "policy.theta";

/// Everything but theta, as stored in the checkpoint's state file.
#[derive(Serialize, Deserialize)]
struct State {
    update: u64,
    frames: u64,
    wall_s: f64,
    theta_len: u64,
    /// The env's own (JSON) state, as text.
    env: String,
    action_rngs: Vec<Rng>,
    needs_reset: bool,
}

/// The policy a config builds for an env's action space.
pub fn build_policy(cfg: &Config, spec: &env::EnvSpec) -> Policy {
    let head = match spec.action {
        ActionSpace::Continuous { dim, .. } => Head::Gaussian { dim },
        ActionSpace::Discrete(n) => Head::Categorical { n },
    };
    Policy::new(spec.obs_dim, &cfg.maml.hidden, cfg.maml.activation, head)
        .with_precision(cfg.maml.matmul)
}

/// The meta-learner's state between updates.
pub struct MamlTrainer {
    pub cfg: Config,
    pub theta: Vec<f64>,
    pub env: Box<dyn BatchEnv>,
    pub collector: Collector,
    pub update: u64,
    pub frames: u64,
}

/// One update's results.
#[derive(Clone, Debug, Default)]
pub struct MamlUpdate {
    pub rows: Vec<RowResult>,
    pub outer: OuterStats,
    pub rollout_s: f64,
    pub learn_s: f64,
}

impl MamlTrainer {
    pub fn new(cfg: &Config) -> Result<MamlTrainer, UserError> {
        let m = &cfg.maml;
        let blocks = m.train_blocks();
        let episodes = Some(m.train_episodes_per_trial());
        let options = cfg.env_options();
        // Before the env, theta or any sample buffer exists: a one-row batch sizes a row.
        let probe = env::probe(&cfg.env, Split::Train, cfg.seed, episodes, &options)?;
        let row_bytes = probe.as_ref().map_or(0, |p| p.row_bytes);
        if let Some(p) = &probe {
            check_maml_memory(
                cfg,
                &p.spec,
                Phase::Training,
                m.meta_batch,
                &blocks,
                row_bytes,
            )?;
        }
        let env = env::make_with(
            &cfg.env,
            m.meta_batch,
            Split::Train,
            cfg.seed,
            episodes,
            &options,
        )?;
        drop(probe);
        check_maml_memory(
            cfg,
            env.spec(),
            Phase::Training,
            m.meta_batch,
            &blocks,
            row_bytes,
        )?;
        let policy = build_policy(cfg, env.spec());
        let theta = policy.init(&mut Rng::stream(cfg.seed, streams::INIT, 0));
        let rngs = (0..m.meta_batch)
            .map(|r| Rng::stream(cfg.seed, streams::ACTIONS, r as u64))
            .collect();
        let collector = Collector::new(
            policy,
            env.as_ref(),
            blocks,
            vec![false; m.inner_steps + 1],
            AdvantageSettings {
                gamma: m.gamma,
                gae_lambda: m.gae_lambda,
                normalize: m.normalize_advantages,
            },
            rngs,
        );
        Ok(MamlTrainer {
            cfg: cfg.clone(),
            theta,
            env,
            collector,
            update: 0,
            frames: 0,
        })
    }

    pub fn maml(&self) -> Maml<'_> {
        Maml {
            policy: &self.collector.policy,
            inner_lr: self.cfg.maml.inner_lr,
            first_order: self.cfg.maml.first_order,
            threads: self.cfg.run.threads.max(1),
        }
    }

    /// Env steps of one update (every row plays one whole trial).
    pub fn frames_per_update(&self) -> u64 {
        (self.cfg.maml.meta_batch
            * self.cfg.maml.train_episodes_per_trial()
            * self.env.spec().episode_len) as u64
    }

    /// Updates needed to reach `run.total_frames`.
    pub fn total_updates(&self) -> u64 {
        self.cfg
            .run
            .total_frames
            .div_ceil(self.frames_per_update())
            .max(1)
    }

    /// Collects one meta-batch and takes one outer step.
    pub fn train_update(&mut self) -> MamlUpdate {
        let t0 = Instant::now();
        let policy = self.collector.policy.clone();
        let maml = Maml {
            policy: &policy,
            inner_lr: self.cfg.maml.inner_lr,
            first_order: self.cfg.maml.first_order,
            threads: self.cfg.run.threads.max(1),
        };
        let (frames, rows) = self
            .collector
            .collect(self.env.as_mut(), &self.theta, &maml);
        let rollout_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let settings = TrpoSettings {
            max_kl: self.cfg.maml.max_kl,
            cg_iters: self.cfg.maml.cg_iters,
            cg_damping: self.cfg.maml.cg_damping,
            line_search_steps: self.cfg.maml.line_search_steps,
            backtrack_ratio: self.cfg.maml.backtrack_ratio,
        };
        let outer = maml.outer_step(&mut self.theta, &self.collector.tasks, &settings);
        self.frames += frames;
        self.update += 1;
        MamlUpdate {
            rows,
            outer,
            rollout_s,
            learn_s: t1.elapsed().as_secs_f64(),
        }
    }

    pub fn checkpoint(&self, wall_s: f64) -> MamlCheckpoint {
        MamlCheckpoint {
            theta: self.theta.clone(),
            update: self.update,
            frames: self.frames,
            env: self.env.save_state(),
            action_rngs: self.collector.rngs.clone(),
            needs_reset: self.collector.needs_reset,
            wall_s,
        }
    }

    pub fn restore(&mut self, ck: MamlCheckpoint) -> Result<(), String> {
        if ck.theta.len() != self.theta.len() {
            return Err(format!(
                "parameters: {} saved, this config's policy has {}",
                ck.theta.len(),
                self.theta.len()
            ));
        }
        if ck.action_rngs.len() != self.collector.rngs.len() {
            return Err(format!(
                "action streams: {} saved, maml.meta_batch is {}",
                ck.action_rngs.len(),
                self.collector.rngs.len()
            ));
        }
        self.env.load_state(&ck.env).map_err(|e| e.to_string())?;
        self.theta = ck.theta;
        self.update = ck.update;
        self.frames = ck.frames;
        self.collector.rngs = ck.action_rngs;
        self.collector.needs_reset = ck.needs_reset;
        Ok(())
    }
}

/// Reads and verifies a MAML run's checkpoint.
pub fn load_checkpoint(run: &Path) -> Result<MamlCheckpoint, UserError> {
    let files = store::read(run)?;
    if files.meta.method != METHOD {
        return Err(store::CheckpointError::OtherMethod {
            path: store::meta_path(run),
            method: files.meta.method,
        }
        .into());
    }
    let state: State = files.decode_state()?;
    let st = files.tensors()?;
    let theta =
        store::read_f64(&st, THETA, state.theta_len as usize).map_err(|m| files.tensor_error(m))?;
    let env = serde_json::from_str(&state.env)
        .map_err(|e| files.state_error(format!("env state: {e}")))?;
    Ok(MamlCheckpoint {
        theta,
        update: state.update,
        frames: state.frames,
        env,
        action_rngs: state.action_rngs,
        needs_reset: state.needs_reset,
        wall_s: state.wall_s,
    })
}

/// Writes `ck` as the checkpoint of the run folder `run`.
pub fn save_checkpoint(run: &Path, cfg: &Config, ck: &MamlCheckpoint) -> Result<(), UserError> {
    let state = State {
        update: ck.update,
        frames: ck.frames,
        wall_s: ck.wall_s,
        theta_len: ck.theta.len() as u64,
        env: ck.env.to_string(),
        action_rngs: ck.action_rngs.clone(),
        needs_reset: ck.needs_reset,
    };
    let header = store::Header {
        update: ck.update,
        frames: ck.frames,
        method: METHOD.into(),
        improver: cfg.improver.to_string(),
        env: cfg.env.clone(),
        seed: cfg.seed,
    };
    let theta = store::Column::f64(&ck.theta, vec![ck.theta.len()]);
    store::write(run, header, &[(THETA, theta)], &codec::encode(&state))
}

/// metrics.csv columns of a MAML run.
pub fn metric_columns(has_success: bool) -> Vec<String> {
    let mut c = vec![
        "update",
        "frames",
        "fps",
        "wall_s",
        "return_pre",
        "return_post",
    ];
    if has_success {
        c.extend(["success_pre", "success_post"]);
    }
    c.extend([
        "tasks",
        "objective_before",
        "objective_after",
        "kl",
        "accepted",
        "line_search_tries",
        "grad_norm",
        "rollout_s",
        "learn_s",
    ]);
    c.into_iter().map(String::from).collect()
}

fn mean_over_rows(rows: &[RowResult], f: impl Fn(&RowResult) -> f64) -> f64 {
    let xs: Vec<f64> = rows.iter().map(f).filter(|x| x.is_finite()).collect();
    if xs.is_empty() {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Trains a MAML run in `out` (already prepared: fresh, forced or resumed), the way
/// `bamdp train` does for every method.
pub fn run(cfg: &Config, out: &Path, resume: bool, quiet: bool) -> Result<PathBuf, UserError> {
    let mut trainer = MamlTrainer::new(cfg)?;
    let has_success = trainer.env.spec().has_success;
    let mut columns = metric_columns(has_success);
    let simulators = trainer.env.versions();
    if !simulators.is_empty() {
        columns.push("env_restarts".into());
    }
    let mut wall_offset = 0.0;
    let mut metrics = if resume {
        let ck = load_checkpoint(out)?;
        wall_offset = ck.wall_s;
        trainer
            .restore(ck)
            .map_err(|e| UserError::file(checkpoint_path(out), e))?;
        MetricsCsv::resume(&out.join(files::METRICS_CSV), &columns, trainer.update)?
    } else {
        MetricsCsv::create(&out.join(files::METRICS_CSV), &columns)?
    };
    let mut class_metrics =
        ClassMetrics::open(out, trainer.env.as_ref(), resume.then_some(trainer.update))?;
    files::atomic_write(&out.join(files::CONFIG), cfg.to_toml_string().as_bytes())?;
    files::write_run_json(out, &Provenance::collect(cfg.seed, cfg.run.threads))?;
    if !simulators.is_empty() {
        let map: std::collections::BTreeMap<_, _> = simulators.iter().cloned().collect();
        let bytes = serde_json::to_vec_pretty(&map).expect("versions serialise");
        files::atomic_write(&out.join(files::SIMULATORS_JSON), &bytes)?;
    }
    let tb_dir = out.join(files::TB);
    std::fs::create_dir_all(&tb_dir)
        .map_err(|e| UserError::file(&tb_dir, format!("cannot create folder: {e}")))?;
    let mut tb = EventWriter::create(&tb_dir)?;
    let total = trainer.total_updates();
    let stop = install_ctrlc();
    if !quiet {
        eprintln!(
            "training maml on {} (seed {}): {} updates x {} frames ({} tasks x {} episodes) -> {}",
            cfg.env,
            cfg.seed,
            total,
            trainer.frames_per_update(),
            cfg.maml.meta_batch,
            cfg.maml.train_episodes_per_trial(),
            out.display()
        );
    }
    let start = Instant::now();
    while trainer.update < total {
        let t = Instant::now();
        let report = trainer.train_update();
        if let Some(why) = trainer.env.fatal() {
            return Err(UserError::Other(format!(
                "{why}; training stopped at update {} of {total} (the last checkpoint is intact: continue with `bamdp train --resume --out {}` once the simulator works)",
                trainer.update,
                out.display()
            )));
        }
        let fps = trainer.frames_per_update() as f64 / t.elapsed().as_secs_f64();
        let wall = wall_offset + start.elapsed().as_secs_f64();
        let rows = &report.rows;
        let pre = mean_over_rows(rows, |r| r.block_returns[0]);
        let post = mean_over_rows(rows, |r| *r.block_returns.last().expect("post block"));
        let mut row = vec![
            trainer.update as f64,
            trainer.frames as f64,
            fps,
            wall,
            pre,
            post,
        ];
        if has_success {
            row.push(mean_over_rows(rows, |r| r.block_success[0]));
            row.push(mean_over_rows(rows, |r| {
                *r.block_success.last().expect("post block")
            }));
        }
        let o = report.outer;
        row.extend([
            rows.len() as f64,
            o.objective_before,
            o.objective_after,
            o.kl,
            o.accepted as u8 as f64,
            o.line_search_tries as f64,
            o.grad_norm,
            report.rollout_s,
            report.learn_s,
        ]);
        if !simulators.is_empty() {
            row.push(trainer.env.events().restarts as f64);
        }
        metrics.append(&row)?;
        if let Some(c) = class_metrics.as_mut() {
            c.append(
                trainer.update,
                trainer.frames,
                rows.iter().map(|r| (r.task, &r.episode_success[..])),
                trainer.env.as_ref(),
            )?;
        }
        for (name, v) in columns.iter().zip(&row).skip(2) {
            if v.is_finite() {
                tb.scalar(name, trainer.frames as i64, *v as f32)?;
            }
        }
        if !quiet && (trainer.update % cfg.run.log_every as u64 == 0 || trainer.update == total) {
            eprintln!(
                "update {}/{}  frames {}  return pre {:.2} post {:.2}  kl {:.4}  {:.0} fps  wall {:.0}s",
                trainer.update, total, trainer.frames, pre, post, o.kl, fps, wall
            );
        }
        let interrupted = stop.load(Ordering::SeqCst);
        if trainer.update % cfg.run.checkpoint_every as u64 == 0
            || trainer.update == total
            || interrupted
        {
            tb.flush()?;
            save_checkpoint(out, cfg, &trainer.checkpoint(wall))?;
        }
        if interrupted {
            eprintln!(
                "interrupted: checkpoint saved at update {}; continue with `bamdp train --resume --out {}`",
                trainer.update,
                out.display()
            );
            return Ok(out.to_path_buf());
        }
    }
    tb.flush()?;
    if !quiet {
        eprintln!(
            "done: {} frames in {:.1}s; evaluate with `bamdp eval --run {}`",
            trainer.frames,
            start.elapsed().as_secs_f64(),
            out.display()
        );
    }
    Ok(out.to_path_buf())
}
