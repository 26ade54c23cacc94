//! `eval.every_frames`: meta-tests on held-out tasks during training, one row of
//! `eval.csv` per evaluation, so learning curves can show test performance and not
//! only the training trials' returns. Each evaluation plays `eval.num_tasks` trials
//! of the test split with a copy of the current agent (its own action stream, so the
//! training run itself is unchanged); on resume, rows past the checkpoint are dropped.

use super::eval::{evaluate_checkpoint, EvalArgs};
use super::metrics::MetricsCsv;
use super::trainer::Trainer;
use crate::config::Config;
use crate::env::Split;
use crate::error::UserError;
use std::path::{Path, PathBuf};

/// Periodic meta-tests of one training run (does nothing when `eval.every_frames` is 0).
pub struct EvalEvery {
    csv: Option<MetricsCsv>,
    run: PathBuf,
    every: u64,
    /// Frames at the last evaluation (or at the start).
    last: u64,
    k: usize,
    has_success: bool,
}

fn columns(k: usize, has_success: bool) -> Vec<String> {
    let mut c: Vec<String> = ["update", "frames", "wall_s"].map(String::from).to_vec();
    c.extend((1..=k).map(|e| format!("return_ep{e}")));
    c.push("return_trial".into());
    if has_success {
        c.extend((1..=k).map(|e| format!("success_ep{e}")));
        c.push("success".into());
    }
    c
}

impl EvalEvery {
    /// Opens (or, resuming, continues) `run/eval.csv` for a trainer at `trainer.update`.
    pub fn open(
        run: &Path,
        cfg: &Config,
        trainer: &Trainer,
        resume: bool,
    ) -> Result<Self, UserError> {
        let spec = &trainer.actor.spec;
        let (k, has_success) = (spec.episodes_per_trial, spec.has_success);
        let every = cfg.eval.every_frames;
        let csv = if every == 0 {
            None
        } else {
            let path = run.join(crate::run::files::EVAL_CSV);
            let cols = columns(k, has_success);
            Some(if resume {
                MetricsCsv::resume(&path, &cols, trainer.update)?
            } else {
                MetricsCsv::create(&path, &cols)?
            })
        };
        Ok(EvalEvery {
            csv,
            run: run.to_path_buf(),
            every,
            last: trainer.frames,
            k,
            has_success,
        })
    }

    /// After an update: meta-test when the frames crossed a multiple of `every`.
    pub fn after_update(
        &mut self,
        cfg: &Config,
        trainer: &Trainer,
        wall_s: f64,
    ) -> Result<(), UserError> {
        let Some(csv) = self.csv.as_mut() else {
            return Ok(());
        };
        if trainer.frames / self.every == self.last / self.every {
            return Ok(());
        }
        self.last = trainer.frames;
        let report = evaluate_checkpoint(
            trainer.method,
            cfg,
            trainer.checkpoint(),
            &EvalArgs {
                run: &self.run,
                split: Split::Test,
                episodes_per_task: None,
                num_tasks: None,
                greedy: false,
                summary_episodes: None,
                protocol: Default::default(),
                overrides: &[],
            },
        )?;
        let mut row = vec![trainer.update as f64, trainer.frames as f64, wall_s];
        row.extend(&report.scores.episode_returns[..self.k]);
        row.push(report.scores.trial_return);
        if self.has_success {
            let s = report
                .scores
                .success_rate
                .clone()
                .unwrap_or_else(|| vec![f64::NAN; self.k]);
            row.extend(&s[..self.k]);
            row.push(s[self.k - 1]);
        }
        csv.append(&row)
    }
}
