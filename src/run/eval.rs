//! `bamdp eval`: meta-test a trained run. Each of `num_tasks` test tasks (drawn by a
//! random stream separate from training's: GridNavi's are the same 21 goals, MetaWorld's
//! are held out) gets one trial of k episodes, the agent's memory/belief persisting across them; we report the
//! mean return of episode 1..k (the adaptation curve) with 95% confidence intervals and,
//! where the env has one, the success rate per episode. `--summary-episodes 11-13`
//! adds one figure over a range of episodes: MetaWorld's meta-learning evaluation
//! (adapt for 10 episodes, evaluate 3) reads the mean success of episodes 11-13.

use super::actor::{
    self, install_belief_params, make_plan_hook, Actor, Greedy, PlanHook, TrialResult,
};
use super::checkpoint;
use super::eval_metaworld::{self, MetaWorldScores, Protocol};
use super::train::{load_checkpoint, load_run_config};
use crate::belief::BatchedBelief;
use crate::config::Config;
use crate::env::{self, BatchEnv, Split};
use crate::error::UserError;
use crate::improve::maml::eval::MamlEvalReport;
use crate::improve::normalize::{InputNorm, NormMode};
use crate::method::{self, Improver, Method};
use crate::nn::{AgentNet, Params};
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
    /// The first episode (0-based) acting by the mode when `greedy`: 0 under the trial
    /// protocol, the first evaluation episode under MetaWorld's.
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
    #[serde(flatten)]
    pub scores: TrialScores,
    /// Every trial, in the order the scores were computed from (`--trials-csv`).
    #[serde(skip)]
    pub trials: Vec<TrialResult>,
}

/// What a meta-test's trials score. Every method's evaluation (MAML's too) reports
/// these, under the same JSON keys, so `bamdp report` reads them alike.
#[derive(Debug, Serialize)]
pub struct TrialScores {
    /// Mean return of episode 1..k over tasks, and its 95% CI.
    pub episode_returns: Vec<f64>,
    pub episode_returns_ci95: Vec<f64>,
    pub success_rate: Option<Vec<f64>>,
    /// 95% CI half-width of each episode's success rate, over tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_rate_ci95: Option<Vec<f64>>,
    pub trial_return: f64,
    pub trial_return_ci95: f64,
    /// Mean over a range of episodes (`--summary-episodes`), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<EpisodeSummary>,
    /// MetaWorld's protocol's scores (`--protocol metaworld`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metaworld: Option<MetaWorldScores>,
}

/// Return and success over episodes `first..=last` (1-based) of every trial. The CI is
/// over trials: each trial contributes its mean over the range.
#[derive(Debug, Serialize)]
pub struct EpisodeSummary {
    pub first: usize,
    pub last: usize,
    pub return_mean: f64,
    pub return_ci95: f64,
    pub success_rate: Option<f64>,
    pub success_rate_ci95: Option<f64>,
}

/// Parses `--summary-episodes FIRST-LAST` (1-based, inclusive; a single `N` is `N-N`).
pub fn parse_episode_range(s: &str) -> Result<(usize, usize), UserError> {
    let bad = || UserError::invalid("--summary-episodes", s, "FIRST-LAST, 1-based, e.g. 11-13");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let first: usize = a.trim().parse().map_err(|_| bad())?;
    let last: usize = b.trim().parse().map_err(|_| bad())?;
    if first == 0 || last < first {
        return Err(bad());
    }
    Ok((first, last))
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
    /// Act by the mode: in every episode under the trial protocol, in the evaluation
    /// episodes under MetaWorld's (whose agents sample while adapting and act by
    /// `eval_action`, the mode, in the evaluation episodes).
    pub greedy: bool,
    /// Episodes to summarise (1-based, inclusive), from [`parse_episode_range`].
    pub summary_episodes: Option<(usize, usize)>,
    /// How to meta-test ([`Protocol::Trial`] unless asked).
    pub protocol: Protocol,
    /// Config keys changed for this evaluation only (`--set KEY=VALUE`): how the
    /// trained agent acts (e.g. `glibrl.posterior_span`), never its shapes, which the
    /// checkpoint fixes. Recorded in the report.
    pub overrides: &'a [String],
}

impl EvalArgs<'_> {
    /// The run's config.toml with [`EvalArgs::overrides`] applied: the config every
    /// evaluation of these arguments acts by.
    pub fn config(&self) -> Result<Config, UserError> {
        let cfg = load_run_config(self.run)?;
        if self.overrides.is_empty() {
            return Ok(cfg);
        }
        cfg.with_overrides(self.overrides)
    }

    /// The episodes that act greedily ([`EvalArgs::greedy`]).
    pub fn greedy_episodes(&self) -> Greedy {
        Greedy::when(self.greedy, self.protocol.first_evaluation_episode())
    }
}

/// What [`meta_test`] reports: the trial evaluation of the methods that adapt by
/// acting, or MAML's adapt-then-evaluate. Both carry [`TrialScores`] under the same JSON
/// keys.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum MetaTestReport {
    Trial(EvalReport),
    Maml(MamlEvalReport),
}

impl MetaTestReport {
    pub fn scores(&self) -> &TrialScores {
        match self {
            MetaTestReport::Trial(r) => &r.scores,
            MetaTestReport::Maml(r) => &r.scores,
        }
    }
    pub fn num_tasks(&self) -> usize {
        match self {
            MetaTestReport::Trial(r) => r.num_tasks,
            MetaTestReport::Maml(r) => r.num_tasks,
        }
    }
    /// The trials the scores summarise (MAML's: its adaptation then evaluation
    /// episodes).
    pub fn trials(&self) -> &[TrialResult] {
        match self {
            MetaTestReport::Trial(r) => &r.trials,
            MetaTestReport::Maml(r) => &r.trials,
        }
    }
    /// Human-readable summary.
    pub fn to_text(&self) -> String {
        match self {
            MetaTestReport::Trial(r) => r.to_text(),
            MetaTestReport::Maml(r) => r.to_text(),
        }
    }
}

/// Meta-tests any run's latest checkpoint, by the evaluation its improver needs: the
/// one entry point of `bamdp eval`, `bamdp sweep` and embedders.
pub fn meta_test(args: &EvalArgs<'_>) -> Result<MetaTestReport, UserError> {
    if !args.run.is_dir() {
        return Err(UserError::file(args.run, "no such run folder"));
    }
    let cfg = args.config()?;
    Ok(match cfg.improver {
        Improver::Maml => MetaTestReport::Maml(crate::improve::maml::eval::evaluate(args)?),
        Improver::Ppo | Improver::Smc => MetaTestReport::Trial(evaluate(args)?),
    })
}

/// Meta-tests the run's latest checkpoint (of a method that adapts by acting; MAML runs
/// go through [`meta_test`]).
pub fn evaluate(args: &EvalArgs<'_>) -> Result<EvalReport, UserError> {
    if !args.run.is_dir() {
        return Err(UserError::file(args.run, "no such run folder"));
    }
    let cfg = args.config()?;
    evaluate_with(method::lookup(cfg.method), args)
}

/// [`evaluate`] with any [`Method`] (one defined outside bamdp, too).
pub fn evaluate_with(method: &dyn Method, args: &EvalArgs<'_>) -> Result<EvalReport, UserError> {
    let cfg = args.config()?;
    let ck = load_checkpoint(args.run)?;
    evaluate_checkpoint(method, &cfg, ck, args)
}

/// A checkpoint's agent checked against the run's config, with everything acting needs
/// besides the environment: shared by `bamdp eval` and the embedding API
/// ([`crate::api`]), so both act alike.
pub struct TrainedAgent {
    policy: Policy,
    belief: Option<Box<dyn BatchedBelief>>,
    learner_params: Option<Params>,
    plan: Option<PlanHook>,
}

/// The trained network, its weights and the input normalisation it was trained with.
pub struct Policy {
    pub net: AgentNet,
    pub params: Params,
    pub norm: Option<InputNorm>,
}

impl TrainedAgent {
    /// Checks `ck` (the checkpoint of the run folder `run`, named in errors) against
    /// `cfg` and builds the belief (with the learner's trained weights) and the planner
    /// for acting in `env`'s rows.
    pub fn load(
        method: &dyn Method,
        cfg: &Config,
        ck: checkpoint::Checkpoint,
        env: &dyn BatchEnv,
        run: &Path,
    ) -> Result<TrainedAgent, UserError> {
        let spec = env.spec();
        let rows = env.num_envs();
        let belief = method.belief(cfg, spec, rows)?;
        let bdim = belief.as_ref().map_or(0, |b| b.feature_dim());
        let (net, fresh) = method::build_agent(method, cfg, spec, bdim);
        if ck.params.slots != fresh.slots {
            return Err(UserError::file(
                checkpoint::meta_path(run),
                "checkpoint parameters do not match the run's config (its config.toml, with any --set of this command)",
            ));
        }
        let mut norm = actor::input_norm(cfg, method.name(), spec.obs_dim, bdim)?;
        InputNorm::install_saved(norm.as_mut(), ck.obs_rms).map_err(|e| {
            UserError::file(
                checkpoint::meta_path(run),
                format!("{e} of the run's config.toml"),
            )
        })?;
        // The planner only matters at test time if it acts (its targets train nothing here).
        let plan = make_plan_hook(method, cfg, env)?.filter(|h| h.act_by_planner);
        // A learned belief acts with the learner's trained weights.
        let learner_params = match (method.learner(cfg, spec, rows)?, ck.learner) {
            (Some(l), Some(saved)) => {
                crate::belief::learner::check_layout(&saved.params, l.params(), method.name())
                    .map_err(|e| UserError::file(checkpoint::meta_path(run), e.to_string()))?;
                Some(saved.params)
            }
            (None, None) => None,
            _ => {
                return Err(UserError::file(
                    checkpoint::meta_path(run),
                    format!("a {} checkpoint without its belief weights", method.name()),
                ))
            }
        };
        Ok(TrainedAgent {
            policy: Policy {
                net,
                params: ck.params,
                norm,
            },
            belief,
            learner_params,
            plan,
        })
    }

    /// The actor for `env` (the rows [`load`](TrainedAgent::load) was given), drawing
    /// actions from the evaluation streams of `seed`.
    pub fn start(self, env: &mut dyn BatchEnv, seed: u64, greedy: Greedy) -> (Policy, Actor) {
        let mut actor = Actor::new(
            &self.policy.net,
            env,
            self.belief,
            seed,
            streams::EVAL_ACTIONS,
        );
        actor.plan = self.plan;
        if let Some(p) = &self.learner_params {
            install_belief_params(&mut actor, p);
        }
        actor.greedy = greedy;
        (self.policy, actor)
    }
}

/// Meta-tests the agent in `ck` (a run's checkpoint, or a trainer's current state)
/// under the run's `cfg` (with `args.overrides` already applied: [`EvalArgs::config`]).
pub fn evaluate_checkpoint(
    method: &dyn Method,
    cfg: &Config,
    ck: checkpoint::Checkpoint,
    args: &EvalArgs<'_>,
) -> Result<EvalReport, UserError> {
    let num_tasks = args.num_tasks.unwrap_or(cfg.eval.num_tasks);
    if num_tasks == 0 {
        return Err(UserError::invalid(
            "--num-tasks",
            "0",
            "a positive number of tasks",
        ));
    }
    args.protocol
        .check_episodes_per_task(args.episodes_per_task)?;
    let episodes_per_task = match args.protocol {
        Protocol::Trial => args.episodes_per_task,
        Protocol::MetaWorld {
            adaptation,
            evaluation,
        } => Some(adaptation + evaluation),
    };
    let rows = num_tasks.min(256);
    super::guard::check_eval_memory(num_tasks, episodes_per_task, &cfg.env, rows, 0)?;
    // Before the env exists: a one-row batch sizes a row.
    let options = cfg.env_options();
    let probe = env::probe(&cfg.env, args.split, cfg.seed, episodes_per_task, &options)?;
    if let Some(p) = &probe {
        super::guard::check_eval_memory(num_tasks, episodes_per_task, &cfg.env, rows, p.row_bytes)?;
    }
    let mut env = env::make_with(
        &cfg.env,
        rows,
        args.split,
        cfg.seed,
        episodes_per_task,
        &options,
    )?;
    drop(probe);
    let spec = env.spec().clone();
    let tasks_in_turn = match args.protocol {
        Protocol::MetaWorld { adaptation, .. } => {
            eval_metaworld::set_up_env(env.as_mut(), &cfg.env, args.split, adaptation)?
        }
        Protocol::Trial => false,
    };
    if let Some((first, last)) = args.summary_episodes {
        if last > spec.episodes_per_trial {
            return Err(UserError::invalid(
                "--summary-episodes",
                &format!("{first}-{last}"),
                &format!(
                    "a range within the trial's {} episodes (raise --episodes-per-task)",
                    spec.episodes_per_trial
                ),
            ));
        }
    }
    let frames_trained = ck.frames;
    let agent = TrainedAgent::load(method, cfg, ck, env.as_ref(), args.run)?;
    let (policy, mut actor) = agent.start(env.as_mut(), cfg.seed, args.greedy_episodes());
    let (net, params, norm) = (policy.net, policy.params, policy.norm);
    let mut finished: Vec<TrialResult> = Vec::with_capacity(num_tasks + rows);
    let (mut x, mut reset, mut logp, mut values) = (
        vec![0.0; rows * net.input_dim],
        vec![0.0; rows],
        vec![0.0; rows],
        vec![0.0; rows],
    );
    // MetaWorld's protocol counts the trials planned per row (trials ending early at
    // success must not crowd out slower ones); the trial protocol the first to finish.
    let (mut new, mut done) = (Vec::with_capacity(rows), vec![0; rows]);
    loop {
        actor.step(
            &net,
            &params,
            env.as_mut(),
            NormMode::Frozen(norm.as_ref()),
            &mut x,
            &mut reset,
            &mut logp,
            &mut values,
            &mut new,
        );
        let all_in = match args.protocol {
            Protocol::Trial => {
                finished.append(&mut new);
                finished.len() >= num_tasks
            }
            Protocol::MetaWorld { .. } => {
                eval_metaworld::keep_planned(&mut new, &mut finished, &mut done, num_tasks)
            }
        };
        if all_in {
            break;
        }
    }
    finished.truncate(num_tasks);
    let scores = TrialScores::of(
        &finished,
        spec.episodes_per_trial,
        spec.has_success,
        args.protocol,
        args.summary_episodes,
        |i| env.task_class(i),
    );
    Ok(EvalReport {
        method: method.name().to_string(),
        env: cfg.env.clone(),
        split: args.split.as_str().into(),
        num_tasks,
        episodes_per_task: spec.episodes_per_trial,
        greedy: args.greedy,
        greedy_from_episode: args.greedy_episodes().first(),
        tasks_in_turn,
        frames_trained,
        overrides: args.overrides.to_vec(),
        scores,
        trials: finished,
    })
}

/// Writes one line per trial to `path` (atomically): `trial, task, row` (`task`: its
/// index in the split's task list, empty where the env has none), then the return of
/// each episode and, where the env has success, each episode's success (0 / 1). With
/// them, per-task questions (does an agent that found the goal in episode 1 return to
/// it?) need no new evaluation.
pub fn write_trials_csv(
    path: &Path,
    trials: &[TrialResult],
    has_success: bool,
) -> Result<(), UserError> {
    use std::fmt::Write;
    let k = trials.first().map_or(0, |t| t.returns.len());
    let mut csv = String::from("trial,task,row");
    let success_cols = if has_success { k } else { 0 };
    (1..=k).for_each(|e| _ = write!(csv, ",return_ep{e}"));
    (1..=success_cols).for_each(|e| _ = write!(csv, ",success_ep{e}"));
    csv.push('\n');
    for (i, t) in trials.iter().enumerate() {
        let task = t.task.map_or(String::new(), |x| x.to_string());
        _ = write!(csv, "{i},{task},{}", t.row);
        t.returns.iter().for_each(|r| _ = write!(csv, ",{r}"));
        for &s in &t.success[..success_cols.min(t.success.len())] {
            csv.push_str(if s { ",1" } else { ",0" });
        }
        csv.push('\n');
    }
    super::files::atomic_write(path, csv.as_bytes())
}

impl TrialScores {
    /// Scores trials of `k` episodes each: per-episode means, the trial return, the
    /// summary range (MetaWorld's protocol's evaluation episodes unless `summary_episodes`
    /// names one) and, under MetaWorld's protocol, its per-task and per-class scores.
    pub fn of(
        finished: &[TrialResult],
        k: usize,
        has_success: bool,
        protocol: Protocol,
        summary_episodes: Option<(usize, usize)>,
        class_of: impl Fn(u32) -> Option<&'static str>,
    ) -> TrialScores {
        let metaworld = match protocol {
            Protocol::Trial => None,
            Protocol::MetaWorld {
                adaptation,
                evaluation,
            } => Some(eval_metaworld::score(
                finished, adaptation, evaluation, class_of,
            )),
        };
        let summary_episodes = match protocol {
            Protocol::MetaWorld {
                adaptation,
                evaluation,
            } if summary_episodes.is_none() => Some((adaptation + 1, adaptation + evaluation)),
            _ => summary_episodes,
        };
        let summary = summary_episodes.map(|(first, last)| {
            let per_trial = |f: &dyn Fn(&TrialResult, usize) -> f64| -> Vec<f64> {
                finished
                    .iter()
                    .map(|t| {
                        (first - 1..last).map(|e| f(t, e)).sum::<f64>() / (last - first + 1) as f64
                    })
                    .collect()
            };
            let (return_mean, return_ci95) = mean_ci95(&per_trial(&|t, e| t.returns[e]));
            let success = has_success
                .then(|| mean_ci95(&per_trial(&|t, e| if t.success[e] { 1.0 } else { 0.0 })));
            EpisodeSummary {
                first,
                last,
                return_mean,
                return_ci95,
                success_rate: success.map(|s| s.0),
                success_rate_ci95: success.map(|s| s.1),
            }
        });
        let mut episode_returns = Vec::with_capacity(k);
        let mut episode_returns_ci95 = Vec::with_capacity(k);
        for e in 0..k {
            let xs: Vec<f64> = finished.iter().map(|t| t.returns[e]).collect();
            let (m, ci) = mean_ci95(&xs);
            episode_returns.push(m);
            episode_returns_ci95.push(ci);
        }
        let success_rate = has_success.then(|| {
            (0..k)
                .map(|e| {
                    finished.iter().filter(|t| t.success[e]).count() as f64 / finished.len() as f64
                })
                .collect()
        });
        let success_rate_ci95 = has_success.then(|| {
            (0..k)
                .map(|e| {
                    let xs: Vec<f64> = finished
                        .iter()
                        .map(|t| if t.success[e] { 1.0 } else { 0.0 })
                        .collect();
                    mean_ci95(&xs).1
                })
                .collect()
        });
        let trial: Vec<f64> = finished.iter().map(|t| t.returns.iter().sum()).collect();
        let (trial_return, trial_return_ci95) = mean_ci95(&trial);
        TrialScores {
            episode_returns,
            episode_returns_ci95,
            success_rate,
            success_rate_ci95,
            trial_return,
            trial_return_ci95,
            summary,
            metaworld,
        }
    }
}

impl EvalReport {
    /// Human-readable table.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{} on {} ({} split: {} tasks, one trial of {} episodes each; {} frames trained{})\n",
            self.method,
            self.env,
            self.split,
            self.num_tasks,
            self.episodes_per_task,
            self.frames_trained,
            match (self.greedy, &self.scores.metaworld) {
                (false, _) => "",
                (true, None) => "; greedy actions",
                (true, Some(_)) => "; greedy actions in the evaluation episodes",
            }
        );
        if !self.overrides.is_empty() {
            s.push_str(&format!(
                "config changed for this evaluation: {}\n",
                self.overrides.join(" ")
            ));
        }
        s.push_str(&self.scores.to_text());
        s
    }
}

impl TrialScores {
    /// The per-episode table, the trial return, the summary and MetaWorld's scores.
    pub fn to_text(&self) -> String {
        let mut s = String::from("episode  return ± 95% CI");
        if self.success_rate.is_some() {
            s.push_str("    success ± 95% CI");
        }
        s.push('\n');
        for e in 0..self.episode_returns.len() {
            s.push_str(&format!(
                "{:>7}  {:>7.3} ± {:<7.3}",
                e + 1,
                self.episode_returns[e],
                self.episode_returns_ci95[e]
            ));
            if let Some(sr) = &self.success_rate {
                let ci = self.success_rate_ci95.as_ref().map_or(f64::NAN, |c| c[e]);
                s.push_str(&format!(
                    "   {:>5.1}% ± {:.1} pp",
                    100.0 * sr[e],
                    100.0 * ci
                ));
            }
            s.push('\n');
        }
        s.push_str(&format!(
            "  trial  {:>7.3} ± {:.3}\n",
            self.trial_return, self.trial_return_ci95
        ));
        if let Some(m) = &self.summary {
            s.push_str(&format!(
                "episodes {}-{}: return {:.3} ± {:.3}",
                m.first, m.last, m.return_mean, m.return_ci95
            ));
            if let (Some(sr), Some(ci)) = (m.success_rate, m.success_rate_ci95) {
                s.push_str(&format!(
                    ", success {:.1}% ± {:.1} pp",
                    100.0 * sr,
                    100.0 * ci
                ));
            }
            s.push('\n');
        }
        if let Some(m) = &self.metaworld {
            s.push_str(&m.to_text());
        }
        s.push_str(
            "Means over tasks; ± is the 95% confidence interval of the mean over tasks (normal approximation)",
        );
        if self.success_rate.is_some() {
            s.push_str("; success = share of tasks whose episode met the env's success condition (pp: percentage points)");
        }
        s.push_str(".\n");
        s
    }
}
