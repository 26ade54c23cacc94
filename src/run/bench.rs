//! `bamdp bench`: frames per second of the full training loop (rollouts and all
//! updates) after a short warm-up, without writing a run folder, for the PPO and SMC
//! improvers and MAML's meta-updates alike; with `--learn-only`, of the learning half
//! alone ([`bench_learn_only`], PPO).

use super::trainer::Trainer;
use crate::belief::trials::TrialRecord;
use crate::config::Config;
use crate::env::{self, ActionSpace};
use crate::error::UserError;
use crate::improve::maml::train::MamlTrainer;
use crate::improve::ppo;
use crate::nn::head::Head;
use crate::rng::Rng;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub method: String,
    pub env: String,
    pub num_envs: usize,
    pub steps_per_update: usize,
    pub threads: usize,
    /// Only the learning half was timed (`--learn-only`); `fps` counts the frames the
    /// updates learned from.
    pub learn_only: bool,
    pub warmup_updates: u64,
    pub updates: u64,
    pub frames: u64,
    pub seconds: f64,
    pub fps: f64,
    /// Share of the time spent collecting rollouts (env steps, belief updates, inference).
    pub rollout_fraction: f64,
    /// Share of the time spent in gradient updates.
    pub learn_fraction: f64,
    pub cores: usize,
}

pub fn bench(cfg: &Config, seconds: f64) -> Result<BenchReport, UserError> {
    check_seconds(seconds)?;
    if cfg.improver == "maml" {
        return bench_maml(cfg, seconds);
    }
    let mut trainer = Trainer::new(cfg)?;
    let warmup = 3;
    for _ in 0..warmup {
        trainer.train_update();
    }
    let Timed {
        updates,
        elapsed,
        rollout,
        learn,
    } = time_updates(seconds, || {
        let r = trainer.train_update();
        (r.rollout_s, r.learn_s)
    });
    let frames = updates * trainer.frames_per_update();
    Ok(BenchReport {
        method: cfg.method.to_string(),
        env: cfg.env.clone(),
        num_envs: cfg.run.num_envs,
        steps_per_update: cfg.run.steps_per_update,
        threads: cfg.run.threads,
        learn_only: false,
        warmup_updates: warmup,
        updates,
        frames,
        seconds: elapsed,
        fps: frames as f64 / elapsed,
        rollout_fraction: rollout / elapsed,
        learn_fraction: learn / elapsed,
        cores: cores(),
    })
}

/// Whole updates timed for at least `seconds` (and at least one), with the rollout and
/// learning seconds each reports.
struct Timed {
    updates: u64,
    elapsed: f64,
    rollout: f64,
    learn: f64,
}

fn time_updates(seconds: f64, mut update: impl FnMut() -> (f64, f64)) -> Timed {
    let (mut rollout, mut learn) = (0.0, 0.0);
    let start = Instant::now();
    let mut updates = 0;
    while start.elapsed().as_secs_f64() < seconds || updates == 0 {
        let (r, l) = update();
        rollout += r;
        learn += l;
        updates += 1;
    }
    Timed {
        updates,
        elapsed: start.elapsed().as_secs_f64(),
        rollout,
        learn,
    }
}

/// [`bench`] of a MAML config: whole meta-updates (every task's adaptation and
/// post-adaptation rollouts with the inner steps, then the TRPO outer step) after one
/// warm-up update; `num_envs` is `maml.meta_batch` (one task per row) and
/// `steps_per_update` each row's steps per update.
fn bench_maml(cfg: &Config, seconds: f64) -> Result<BenchReport, UserError> {
    let mut trainer = MamlTrainer::new(cfg)?;
    let warmup = 1;
    for _ in 0..warmup {
        trainer.train_update();
    }
    let Timed {
        updates,
        elapsed,
        rollout,
        learn,
    } = time_updates(seconds, || {
        let r = trainer.train_update();
        (r.rollout_s, r.learn_s)
    });
    let frames = updates * trainer.frames_per_update();
    let rows = cfg.maml.meta_batch;
    Ok(BenchReport {
        method: cfg.method.to_string(),
        env: cfg.env.clone(),
        num_envs: rows,
        steps_per_update: trainer.frames_per_update() as usize / rows,
        threads: cfg.run.threads,
        learn_only: false,
        warmup_updates: warmup,
        updates,
        frames,
        seconds: elapsed,
        fps: frames as f64 / elapsed,
        rollout_fraction: rollout / elapsed,
        learn_fraction: learn / elapsed,
        cores: cores(),
    })
}

/// `bamdp bench --learn-only`: learning frames per second (belief and policy updates,
/// no rollouts) replaying one stored rollout and a buffer of trials. Native envs
/// collect real rollouts during the warm-up; envs simulated in Python are never
/// stepped: their rollout and trials are synthesised with the env's shapes (actions
/// drawn from the policy, so PPO's ratios stay near one), because for learning
/// throughput only the shapes matter.
pub fn bench_learn_only(cfg: &Config, seconds: f64) -> Result<BenchReport, UserError> {
    check_seconds(seconds)?;
    if cfg.improver != "ppo" {
        return Err(UserError::invalid(
            "improver",
            cfg.improver.as_str(),
            "\"ppo\" for --learn-only (the SMC improver's targets need the planner)",
        ));
    }
    let mut trainer = Trainer::new(cfg)?;
    let native = env::known_dynamics(trainer.env.spec()).is_ok();
    if native {
        // Real rollouts until the learned beliefs hold a batch of trials.
        let mut warm = 0;
        while warm < 3 || !learners_ready(&trainer) {
            trainer.train_update();
            warm += 1;
        }
    } else {
        synthesise(&mut trainer)?;
    }
    let warmup = 2;
    for _ in 0..warmup {
        learn(&mut trainer);
    }
    let start = Instant::now();
    let mut updates = 0;
    while start.elapsed().as_secs_f64() < seconds || updates == 0 {
        learn(&mut trainer);
        updates += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let frames = updates * trainer.frames_per_update();
    Ok(BenchReport {
        method: cfg.method.to_string(),
        env: cfg.env.clone(),
        num_envs: cfg.run.num_envs,
        steps_per_update: cfg.run.steps_per_update,
        threads: cfg.run.threads,
        learn_only: true,
        warmup_updates: warmup,
        updates,
        frames,
        seconds: elapsed,
        fps: frames as f64 / elapsed,
        rollout_fraction: 0.0,
        learn_fraction: 1.0,
        cores: cores(),
    })
}

fn learners_ready(t: &Trainer) -> bool {
    t.learner.as_ref().is_none_or(|l| l.has_batch())
}

/// One update's learning half, as `Trainer::train_update` runs it after a rollout.
fn learn(t: &mut Trainer) {
    let cfg = &t.cfg;
    if let Some(l) = t.learner.as_mut() {
        l.update(cfg.run.threads);
    }
    ppo::update(
        &t.net,
        &mut t.params,
        &mut t.adam,
        &t.buf,
        &cfg.ppo,
        cfg.ppo.lr,
        &mut t.minibatch_rng,
        cfg.run.threads,
    );
}

/// Fills the rollout buffer and the learners' trial buffers with data of the env's
/// shapes: standard-normal observations, network inputs and rewards; Gaussian actions
/// from the initial policy with their log-densities and values from a host forward.
fn synthesise(t: &mut Trainer) -> Result<(), UserError> {
    let spec = t.env.spec().clone();
    let ActionSpace::Continuous { dim, low, high } = spec.action else {
        return Err(UserError::invalid(
            "env",
            &t.cfg.env,
            "a native env or a continuous-action Python env for --learn-only",
        ));
    };
    let mut rng = Rng::stream(t.cfg.seed, 0xbe4c, 0);
    let (steps, rows) = (t.buf.steps, t.buf.rows);
    let (id, sd) = (t.buf.input_dim, t.buf.state_dim);
    let trial_len = spec.trial_len();
    let net = &t.net;
    let head = Head::of(net);
    let ow = net.out_width();
    let mut scratch = net.scratch(rows);
    let mut state = vec![0.0f32; rows * sd];
    let mut out = vec![0.0f32; rows * ow];
    let mut row = vec![0.0f32; ow];
    let mut values = vec![0.0f32; rows];
    let buf = &mut t.buf;
    buf.x.iter_mut().for_each(|v| *v = rng.normal() as f32);
    for s in 0..steps {
        let start = s % trial_len == 0;
        if start {
            state.iter_mut().for_each(|v| *v = 0.0);
        }
        let span = s * rows..(s + 1) * rows;
        buf.reset[span.clone()].fill(if start { 1.0 } else { 0.0 });
        buf.terminal[span.clone()].fill((s + 1) % trial_len == 0);
        let x = &buf.x[s * rows * id..(s + 1) * rows * id];
        net.step(
            &t.params,
            x,
            rows,
            &mut state,
            &mut scratch,
            &mut out,
            &mut values,
        );
        for r in 0..rows {
            let i = s * rows + r;
            let (mean, log_std) =
                head.gaussian_row(&t.params, &out[r * ow..(r + 1) * ow], &mut row);
            let action = &mut buf.actions[i * dim..(i + 1) * dim];
            buf.logp[i] = Head::sample_gaussian(mean, log_std, &mut rng, false, action);
            buf.values[i] = values[r];
            buf.rewards[i] = rng.normal() as f32;
        }
    }
    buf.last_value.iter_mut().for_each(|v| *v = 0.0);
    buf.compute_gae(t.cfg.ppo.gamma as f32, t.cfg.ppo.gae_lambda as f32);
    let od = spec.obs_dim;
    let trial = |rng: &mut Rng| {
        let mut tr = TrialRecord::default();
        let mut obs = vec![0.0f32; od];
        let mut next = vec![0.0f32; od];
        let mut action = vec![0.0f32; dim];
        for _ in 0..trial_len {
            obs.iter_mut().for_each(|v| *v = rng.normal() as f32);
            next.iter_mut().for_each(|v| *v = rng.normal() as f32);
            action
                .iter_mut()
                .for_each(|v| *v = low + (high - low) * rng.uniform_f32());
            tr.push_step(&obs, &action, rng.normal() as f32, &next);
        }
        tr
    };
    if let Some(l) = t.learner.as_mut() {
        for _ in 0..l.batch_trials() {
            let tr = trial(&mut rng);
            l.trials_mut().buffer.push(tr);
        }
    }
    Ok(())
}

fn check_seconds(seconds: f64) -> Result<(), UserError> {
    if seconds > 0.0 && seconds.is_finite() {
        Ok(())
    } else {
        Err(UserError::invalid(
            "--seconds",
            &seconds.to_string(),
            "a positive number of seconds",
        ))
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
