//! `bamdp bench`: frames per second of the full training loop (rollouts and all
//! updates) after a short warm-up, without writing a run folder.

use super::trainer::Trainer;
use crate::config::Config;
use crate::error::UserError;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub method: String,
    pub env: String,
    pub num_envs: usize,
    pub steps_per_update: usize,
    pub threads: usize,
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
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(UserError::invalid(
            "--seconds",
            &seconds.to_string(),
            "a positive number of seconds",
        ));
    }
    if cfg.improver == "maml" {
        return Err(UserError::invalid(
            "improver",
            "maml",
            "a PPO or SMC config: `bamdp bench` does not time MAML yet (metrics.csv of a MAML run has fps, rollout_s and learn_s per update)",
        ));
    }
    let mut trainer = Trainer::new(cfg)?;
    let warmup = 3;
    for _ in 0..warmup {
        trainer.train_update();
    }
    let (mut rollout, mut learn) = (0.0, 0.0);
    let start = Instant::now();
    let mut updates = 0;
    while start.elapsed().as_secs_f64() < seconds || updates == 0 {
        let r = trainer.train_update();
        rollout += r.rollout_s;
        learn += r.learn_s;
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
        warmup_updates: warmup,
        updates,
        frames,
        seconds: elapsed,
        fps: frames as f64 / elapsed,
        rollout_fraction: rollout / elapsed,
        learn_fraction: learn / elapsed,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    })
}
