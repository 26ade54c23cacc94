//! `bamdp eval`: meta-test a trained run. Each of `num_tasks` held-out tasks gets one
//! trial of k episodes, the agent's memory/belief persisting across them; we report the
//! mean return of episode 1..k (the adaptation curve) with 95% confidence intervals and,
//! where the env has one, the success rate per episode.

use super::train::{load_checkpoint, load_run_config};
use super::trainer::{
    build_agent, install_belief_params, make_belief, make_plan_hook, Actor, TrialResult,
};
use crate::env::{self, Split};
use crate::error::UserError;
use crate::rng::streams;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub method: String,
    pub env: String,
    pub split: String,
    pub num_tasks: usize,
    pub episodes_per_task: usize,
    pub greedy: bool,
    pub frames_trained: u64,
    pub episode_returns: Vec<f64>,
    pub episode_returns_ci95: Vec<f64>,
    pub success_rate: Option<Vec<f64>>,
    pub trial_return: f64,
    pub trial_return_ci95: f64,
}

/// Mean and 95% normal-approximation half-width of the mean.
pub fn mean_ci95(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (m, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, 1.96 * (var / n).sqrt())
}

pub struct EvalArgs<'a> {
    pub run: &'a Path,
    pub split: Split,
    pub episodes_per_task: Option<usize>,
    pub num_tasks: Option<usize>,
    pub greedy: bool,
}

/// Meta-tests the run's latest checkpoint.
pub fn evaluate(args: &EvalArgs<'_>) -> Result<EvalReport, UserError> {
    if !args.run.is_dir() {
        return Err(UserError::file(args.run, "no such run folder"));
    }
    let cfg = load_run_config(args.run)?;
    let ck = load_checkpoint(args.run)?;
    let num_tasks = args.num_tasks.unwrap_or(cfg.eval.num_tasks);
    if num_tasks == 0 {
        return Err(UserError::invalid(
            "--num-tasks",
            "0",
            "a positive number of tasks",
        ));
    }
    let rows = num_tasks.min(256);
    let mut env = env::make_with(
        &cfg.env,
        rows,
        args.split,
        cfg.seed,
        args.episodes_per_task,
        &cfg.env_options(),
    )?;
    let spec = env.spec().clone();
    let belief = make_belief(&cfg, &spec, rows)?;
    let bdim = belief.as_ref().map_or(0, |b| b.feature_dim());
    let (net, mut params) = build_agent(&cfg, &spec, bdim)?;
    if ck.params.slots != params.slots {
        return Err(UserError::file(
            super::train::checkpoint_path(args.run),
            "checkpoint parameters do not match the run's config.toml",
        ));
    }
    params = ck.params;
    let obs_rms = ck.obs_rms;
    let mut actor = Actor::new(&net, env.as_mut(), belief, cfg.seed, streams::EVAL_ACTIONS);
    // The planner only matters at test time if it acts (its targets train nothing here).
    actor.plan = make_plan_hook(&cfg, &spec, rows)?.filter(|h| h.act_by_planner);
    match (&ck.vae, &ck.glm, cfg.method.as_str()) {
        (Some(v), _, _) => install_belief_params(&mut actor, &v.model.params),
        (_, Some(g), _) => install_belief_params(&mut actor, &g.model.params),
        (None, _, "varibad") => {
            return Err(UserError::file(
                super::train::checkpoint_path(args.run),
                "a varibad checkpoint without its VAE weights",
            ))
        }
        (_, None, "glibrl") => {
            return Err(UserError::file(
                super::train::checkpoint_path(args.run),
                "a glibrl checkpoint without its belief weights",
            ))
        }
        _ => {}
    }
    actor.greedy = args.greedy;
    let mut finished: Vec<TrialResult> = Vec::with_capacity(num_tasks + rows);
    let (mut x, mut reset, mut logp, mut values) = (
        vec![0.0; rows * net.input_dim],
        vec![0.0; rows],
        vec![0.0; rows],
        vec![0.0; rows],
    );
    while finished.len() < num_tasks {
        actor.step(
            &net,
            &params,
            env.as_mut(),
            obs_rms.as_ref(),
            &mut x,
            &mut reset,
            &mut logp,
            &mut values,
            &mut finished,
        );
    }
    finished.truncate(num_tasks);
    let k = spec.episodes_per_trial;
    let mut episode_returns = Vec::with_capacity(k);
    let mut episode_returns_ci95 = Vec::with_capacity(k);
    for e in 0..k {
        let xs: Vec<f64> = finished.iter().map(|t| t.returns[e]).collect();
        let (m, ci) = mean_ci95(&xs);
        episode_returns.push(m);
        episode_returns_ci95.push(ci);
    }
    let success_rate = spec.has_success.then(|| {
        (0..k)
            .map(|e| {
                finished.iter().filter(|t| t.success[e]).count() as f64 / finished.len() as f64
            })
            .collect()
    });
    let trial: Vec<f64> = finished.iter().map(|t| t.returns.iter().sum()).collect();
    let (trial_return, trial_return_ci95) = mean_ci95(&trial);
    Ok(EvalReport {
        method: cfg.method,
        env: cfg.env,
        split: args.split.as_str().into(),
        num_tasks,
        episodes_per_task: k,
        greedy: args.greedy,
        frames_trained: ck.frames,
        episode_returns,
        episode_returns_ci95,
        success_rate,
        trial_return,
        trial_return_ci95,
    })
}

impl EvalReport {
    /// Human-readable table.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{} on {} ({} split, {} tasks, {} frames trained{})\n",
            self.method,
            self.env,
            self.split,
            self.num_tasks,
            self.frames_trained,
            if self.greedy { ", greedy" } else { "" }
        );
        s.push_str("episode  return (95% CI)");
        if self.success_rate.is_some() {
            s.push_str("   success");
        }
        s.push('\n');
        for e in 0..self.episodes_per_task {
            s.push_str(&format!(
                "{:>7}  {:>7.3} ± {:.3}",
                e + 1,
                self.episode_returns[e],
                self.episode_returns_ci95[e]
            ));
            if let Some(sr) = &self.success_rate {
                s.push_str(&format!("   {:>6.1}%", 100.0 * sr[e]));
            }
            s.push('\n');
        }
        s.push_str(&format!(
            "  trial  {:>7.3} ± {:.3}\n",
            self.trial_return, self.trial_return_ci95
        ));
        s
    }
}
