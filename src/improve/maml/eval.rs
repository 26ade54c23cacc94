//! Meta-test of a MAML run the way MAML works and Meta-World evaluates: on each held-out
//! task, `maml.eval_adapt_episodes` (Meta-World: 10) adaptation episodes per inner
//! step with the meta-parameters, the inner step(s), then `maml.eval_episodes`
//! (Meta-World: 3) episodes with the adapted weights. Reports pre-adaptation (the
//! first adaptation block) and post-adaptation returns and success, with 95% CIs over
//! tasks. Post-adaptation episodes act by the policy's mode with `--greedy` (Meta-World
//! evaluates the mode); without it both phases sample, so pre and post compare like
//! for like.
//!
//! With MetaWorld's protocol (`--protocol metaworld`; what `bamdp sweep` uses on
//! natively simulated MetaWorld envs) the adapted episodes end at their first success,
//! as MetaWorld's `metalearning_evaluation` has them, and the JSON carries the same
//! per-episode, trial and `metaworld` scores as every other method's evaluation, so
//! `bamdp report` puts MAML beside them.

use super::memory::Phase;
use super::meta::Maml;
use super::rollout::{AdvantageSettings, Collector};
use super::train::{build_policy, load_checkpoint};
use crate::env;
use crate::error::UserError;
use crate::rng::{streams, Rng};
use crate::run::actor::TrialResult;
use crate::run::eval::{mean_ci95, EvalArgs, TrialScores};
use crate::run::eval_metaworld::{set_up_env, Protocol};
use crate::run::guard::check_maml_memory;
use crate::run::train::checkpoint_path;
use serde::Serialize;

/// What `bamdp eval` prints for a MAML run.
#[derive(Debug, Serialize)]
pub struct MamlEvalReport {
    pub method: String,
    pub env: String,
    pub split: String,
    pub num_tasks: usize,
    pub inner_steps: usize,
    pub adaptation_episodes: usize,
    pub evaluation_episodes: usize,
    pub greedy: bool,
    /// The first episode (0-based) acting by the mode when `greedy`: the first with
    /// the adapted weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greedy_from_episode: Option<usize>,
    /// The training tasks were taken in turn, classes round-robin, not drawn
    /// (MetaWorld's protocol on the training split; omitted when false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tasks_in_turn: bool,
    pub frames_trained: u64,
    /// The evaluation's `--set` overrides of the run's config (none: omitted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// Every trial: adaptation then evaluation episodes (`--trials-csv`).
    #[serde(skip)]
    pub trials: Vec<TrialResult>,
    /// Mean episode return before adaptation (the first adaptation block).
    pub return_pre: f64,
    pub return_pre_ci95: f64,
    /// Mean episode return with the adapted weights.
    pub return_post: f64,
    pub return_post_ci95: f64,
    pub success_pre: Option<f64>,
    pub success_pre_ci95: Option<f64>,
    pub success_post: Option<f64>,
    pub success_post_ci95: Option<f64>,
    /// Per-episode scores of the trials (adaptation episodes, then the adapted ones),
    /// under the keys every method's evaluation uses.
    #[serde(flatten)]
    pub scores: TrialScores,
}

/// Meta-tests the run's latest checkpoint; [`crate::run::eval::meta_test`] calls this
/// for MAML runs. The options are every method's: `episodes_per_task` (the trial
/// protocol) or the protocol's adaptation episodes are the adaptation episodes *per
/// inner step* (default `maml.eval_adapt_episodes`; MetaWorld's `metalearning_evaluation`
/// counts them per step too), and the protocol's evaluation episodes are the episodes
/// with the adapted weights (default `maml.eval_episodes`). The summary is always the
/// adapted episodes, so `summary_episodes` is refused.
pub fn evaluate(args: &EvalArgs<'_>) -> Result<MamlEvalReport, UserError> {
    if !args.run.is_dir() {
        return Err(UserError::file(args.run, "no such run folder"));
    }
    let cfg = args.config()?;
    let ck = load_checkpoint(args.run)?;
    let m = &cfg.maml;
    let num_tasks = args.num_tasks.unwrap_or(cfg.eval.num_tasks);
    if num_tasks == 0 {
        return Err(UserError::invalid(
            "--num-tasks",
            "0",
            "a positive number of tasks",
        ));
    }
    if let Some((first, last)) = args.summary_episodes {
        return Err(UserError::invalid(
            "--summary-episodes",
            &format!("{first}-{last}"),
            "no value for a MAML run (its summary is the episodes with the adapted weights)",
        ));
    }
    args.protocol
        .check_episodes_per_task(args.episodes_per_task)?;
    let (adapt, adapt_flag, eval_episodes) = match args.protocol {
        Protocol::Trial => (
            args.episodes_per_task.unwrap_or(m.eval_adapt_episodes),
            "--episodes-per-task",
            m.eval_episodes,
        ),
        Protocol::MetaWorld {
            adaptation,
            evaluation,
        } => (adaptation, "--adaptation-episodes", evaluation),
    };
    if adapt == 0 {
        return Err(UserError::invalid(
            adapt_flag,
            "0",
            "a positive number of adaptation episodes (MAML's inner step needs samples)",
        ));
    }
    if eval_episodes == 0 {
        return Err(UserError::invalid(
            "--evaluation-episodes",
            "0",
            "a positive number of episodes with the adapted weights",
        ));
    }
    let rows = num_tasks.min(256);
    let mut blocks = vec![adapt; m.inner_steps];
    blocks.push(eval_episodes);
    let adaptation = m.inner_steps * adapt;
    // The protocol over the whole trial: all inner steps' adaptation episodes first.
    let protocol = match args.protocol {
        Protocol::Trial => Protocol::Trial,
        Protocol::MetaWorld { .. } => Protocol::MetaWorld {
            adaptation,
            evaluation: eval_episodes,
        },
    };
    let episodes = Some(adaptation + eval_episodes);
    let options = cfg.env_options();
    // Before the env, the policy or any sample buffer exists: a one-row batch sizes a row.
    let probe = env::probe(&cfg.env, args.split, cfg.seed, episodes, &options)?;
    let row_bytes = probe.as_ref().map_or(0, |p| p.row_bytes);
    if let Some(p) = &probe {
        check_maml_memory(&cfg, &p.spec, Phase::Evaluation, rows, &blocks, row_bytes)?;
    }
    let mut env = env::make_with(&cfg.env, rows, args.split, cfg.seed, episodes, &options)?;
    drop(probe);
    let spec = env.spec().clone();
    let tasks_in_turn =
        protocol != Protocol::Trial && set_up_env(env.as_mut(), &cfg.env, args.split, adaptation)?;
    check_maml_memory(&cfg, &spec, Phase::Evaluation, rows, &blocks, row_bytes)?;
    let policy = build_policy(&cfg, &spec);
    if ck.theta.len() != policy.len() {
        return Err(UserError::file(
            checkpoint_path(args.run),
            "checkpoint parameters do not match the run's config (its config.toml, with any --set of this command)",
        ));
    }
    let mut greedy = vec![false; m.inner_steps];
    greedy.push(args.greedy);
    let rngs = (0..rows)
        .map(|r| Rng::stream(cfg.seed, streams::EVAL_ACTIONS, r as u64))
        .collect();
    let mut collector = Collector::new(
        policy.clone(),
        env.as_ref(),
        blocks,
        greedy,
        AdvantageSettings {
            gamma: m.gamma,
            gae_lambda: m.gae_lambda,
            normalize: m.normalize_advantages,
        },
        rngs,
    );
    let maml = Maml {
        policy: &policy,
        inner_lr: m.inner_lr,
        first_order: m.first_order,
        threads: cfg.run.threads.max(1),
    };
    let mut results = Vec::with_capacity(num_tasks + rows);
    while results.len() < num_tasks {
        let (_, batch) = collector.collect(env.as_mut(), &ck.theta, &maml);
        if let Some(why) = env.fatal() {
            return Err(UserError::Other(why));
        }
        results.extend(batch);
    }
    results.truncate(num_tasks);
    let pre: Vec<f64> = results.iter().map(|r| r.block_returns[0]).collect();
    let post: Vec<f64> = results
        .iter()
        .map(|r| *r.block_returns.last().expect("post"))
        .collect();
    let (return_pre, return_pre_ci95) = mean_ci95(&pre);
    let (return_post, return_post_ci95) = mean_ci95(&post);
    let success = |last: bool| {
        spec.has_success.then(|| {
            let xs: Vec<f64> = results
                .iter()
                .map(|r| {
                    if last {
                        *r.block_success.last().expect("post")
                    } else {
                        r.block_success[0]
                    }
                })
                .collect();
            mean_ci95(&xs)
        })
    };
    let (sp, sq) = (success(false), success(true));
    let trials: Vec<TrialResult> = results
        .iter()
        .enumerate()
        .map(|(i, r)| TrialResult {
            returns: r.episode_returns.clone(),
            success: r.episode_success.clone(),
            row: i % rows,
            task: r.task,
        })
        .collect();
    // Without MetaWorld's protocol the summary is the adapted episodes all the same.
    let summary = Some((adaptation + 1, adaptation + eval_episodes));
    let scores = TrialScores::of(
        &trials,
        adaptation + eval_episodes,
        spec.has_success,
        protocol,
        summary,
        |i| env.task_class(i),
    );
    Ok(MamlEvalReport {
        method: cfg.method.to_string(),
        env: cfg.env.clone(),
        split: args.split.as_str().into(),
        num_tasks,
        inner_steps: m.inner_steps,
        adaptation_episodes: adapt,
        evaluation_episodes: eval_episodes,
        greedy: args.greedy,
        greedy_from_episode: args.greedy.then_some(adaptation),
        tasks_in_turn,
        frames_trained: ck.frames,
        overrides: args.overrides.to_vec(),
        return_pre,
        return_pre_ci95,
        return_post,
        return_post_ci95,
        success_pre: sp.map(|s| s.0),
        success_pre_ci95: sp.map(|s| s.1),
        success_post: sq.map(|s| s.0),
        success_post_ci95: sq.map(|s| s.1),
        scores,
        trials,
    })
}

impl MamlEvalReport {
    /// Human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "maml on {} ({} split, {} tasks, {} frames trained): {} adaptation episode(s) x {} inner step(s), then {} episode(s) adapted{}\n",
            self.env,
            self.split,
            self.num_tasks,
            self.frames_trained,
            self.adaptation_episodes,
            self.inner_steps,
            self.evaluation_episodes,
            if self.greedy { " (greedy)" } else { "" }
        );
        if !self.overrides.is_empty() {
            s.push_str(&format!(
                "config changed for this evaluation: {}\n",
                self.overrides.join(" ")
            ));
        }
        let line = |name: &str, r: f64, rc: f64, sr: Option<f64>, sc: Option<f64>| {
            let mut l = format!("{name:<6} return {r:>9.3} ± {rc:.3}");
            if let (Some(sr), Some(sc)) = (sr, sc) {
                l.push_str(&format!(
                    "   success {:>5.1}% ± {:.1}",
                    100.0 * sr,
                    100.0 * sc
                ));
            }
            l.push('\n');
            l
        };
        s.push_str(&line(
            "pre",
            self.return_pre,
            self.return_pre_ci95,
            self.success_pre,
            self.success_pre_ci95,
        ));
        s.push_str(&line(
            "post",
            self.return_post,
            self.return_post_ci95,
            self.success_post,
            self.success_post_ci95,
        ));
        if let Some(m) = &self.scores.metaworld {
            s.push_str(&m.to_text());
        }
        s
    }
}
