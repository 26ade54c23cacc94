//! `bamdp report DIR [DIR ...] --out REPORT`: reads run folders in any layout, groups
//! them by env and method, and writes per-env tables (final meta-test score: mean and
//! IQM with 95% stratified-bootstrap intervals over seeds, probability of improvement,
//! frames, wall-clock; the return of each episode of the trial; training return and
//! seconds at fractions of the frame budget), figures as SVG and PNG (learning curves
//! against frames and wall-clock, held-out curves from `eval.csv`, adaptation curves,
//! performance profiles, per-task success when the evaluation has it, as a table and
//! bars, with the training classes' when run folders hold `eval-train.json`; heat maps
//! of training success per class over frames from `classes.csv`), `index.html`
//! (no network: the figures sit beside it) and `summary.md` with the same tables.
//!
//! ```no_run
//! let summary = bamdp::report::report(&bamdp::report::ReportArgs {
//!     dirs: vec!["sweeps/gridnavi".into()],
//!     out: "reports/gridnavi".into(),
//!     reps: 2000,
//!     relabel: vec![],
//! })
//! .unwrap();
//! println!("{} runs, {} figures", summary.runs, summary.figures);
//! ```

mod adaptation;
mod classes;
mod curves;
pub mod mixed;
mod page;
mod per_task;
pub mod plots;
mod progress;
pub mod runs;

use crate::error::UserError;
use crate::stats::{self, Bootstrap, Interval, Scores};
use runs::Run;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Options of `bamdp report`.
pub struct ReportArgs {
    /// Folders searched (recursively) for run folders.
    pub dirs: Vec<PathBuf>,
    /// Report folder (created; its files are replaced).
    pub out: PathBuf,
    /// Bootstrap resamples for the tables' intervals.
    pub reps: usize,
    /// `(from, to)`: runs whose `run.label` is `from` are reported as `to` (`--relabel`).
    pub relabel: Vec<(String, String)>,
}

/// What was written.
#[derive(Debug)]
pub struct ReportSummary {
    pub runs: usize,
    pub evaluated: usize,
    pub envs: usize,
    pub figures: usize,
    pub index: PathBuf,
}

/// A score with its interval over runs.
#[derive(Clone, Copy, Debug)]
pub struct Estimate {
    pub value: f64,
    /// `None` when the statistic rests on one run: every resample is that run, and a
    /// zero-width interval would read as certainty. Tables print "(1 run: no
    /// interval)", figures draw no band.
    pub ci: Option<Interval>,
}

impl Estimate {
    /// `stat` of `scores` with its stratified-bootstrap interval over runs.
    pub fn bootstrap(scores: &Scores, boot: &Bootstrap, stat: impl Fn(&Scores) -> f64) -> Self {
        Estimate {
            value: stat(scores),
            ci: (scores.runs() > 1).then(|| boot.interval(scores, stat)),
        }
    }

    /// A two-sample statistic (P(X > Y)); an interval as soon as either side has more
    /// than one run to resample.
    pub fn bootstrap_pair(
        x: &Scores,
        y: &Scores,
        boot: &Bootstrap,
        stat: impl Fn(&Scores, &Scores) -> f64,
    ) -> Self {
        Estimate {
            value: stat(x, y),
            ci: (x.runs() > 1 || y.runs() > 1).then(|| boot.interval_pair(x, y, stat)),
        }
    }

    /// (value, low, high) for a figure: without an interval the band collapses to the
    /// value, so nothing is shaded.
    pub fn band(&self) -> (f64, f64, f64) {
        let ci = self.ci.unwrap_or(Interval {
            lo: self.value,
            hi: self.value,
        });
        (self.value, ci.lo, ci.hi)
    }
}

/// One method's row of an env table.
#[derive(Clone, Debug)]
pub struct MethodRow {
    pub method: String,
    pub seeds: usize,
    pub evaluated: usize,
    pub mean: Option<Estimate>,
    pub iqm: Option<Estimate>,
    /// (seed, score) of every evaluated run, by seed; a run's score is the mean over
    /// its tasks where the evaluation lists tasks. With a handful of seeds, which run
    /// made the mean tells more than its interval.
    pub per_seed: Vec<(u64, f64)>,
    pub frames: f64,
    pub wall_s: f64,
}

/// A final-score table (one metric) of one env.
#[derive(Clone, Debug)]
pub struct ScoreTable {
    /// "meta-test return (trial)" or "meta-test success".
    pub metric: String,
    pub rows: Vec<MethodRow>,
    /// `poi[i][j]`: P(method i > method j) with its interval, for evaluated methods.
    pub poi: Vec<Vec<Option<Estimate>>>,
}

/// Everything reported for one env.
#[derive(Clone, Debug)]
pub struct EnvSection {
    pub env: String,
    pub tables: Vec<ScoreTable>,
    /// Meta-test return per episode of the trial (evaluated methods).
    pub adaptation: Option<adaptation::AdaptationTable>,
    /// Success per task class (MetaWorld's protocol): held-out, then training classes.
    pub per_task: Vec<per_task::PerTaskTable>,
    /// Training return and seconds at fractions of the frame budget.
    pub progress: Vec<progress::ProgressRow>,
    /// (file stem, caption).
    pub figures: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// A final score of one run: the trial's mean return or the headline success rate;
/// per task when the evaluation lists tasks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Metric {
    Return,
    Success,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Return => "meta-test return (whole trial)",
            Metric::Success => "meta-test success",
        }
    }

    fn scores(self, runs: &[&Run]) -> Option<Scores> {
        let evals: Vec<_> = runs.iter().filter_map(|r| r.eval.as_ref()).collect();
        if evals.is_empty() {
            return None;
        }
        match self {
            Metric::Return => {
                Scores::single_task(evals.iter().map(|e| e.trial_return).collect()).ok()
            }
            Metric::Success => {
                // Per task when every run lists the same tasks (stratified by task).
                let tasks: Option<Vec<BTreeMap<String, f64>>> =
                    evals.iter().map(|e| e.class_success()).collect();
                if let Some(tasks) = tasks {
                    let names: Vec<&String> = tasks[0].keys().collect();
                    if !names.is_empty() && tasks.iter().all(|t| t.keys().eq(names.iter().copied()))
                    {
                        let values = tasks.iter().flat_map(|t| t.values().copied()).collect();
                        return Scores::new(tasks.len(), names.len(), values).ok();
                    }
                }
                let s: Option<Vec<f64>> = evals.iter().map(|e| e.final_success()).collect();
                Scores::single_task(s?).ok()
            }
        }
    }
}

fn estimate(scores: &Scores, boot: &Bootstrap, stat: fn(&[f64]) -> f64) -> Estimate {
    Estimate::bootstrap(scores, boot, |s| stat(s.values()))
}

/// Each evaluated run's seed and mean score over tasks, sorted by seed. `scores` has
/// one row per run with an evaluation, in the order of `runs` ([`Metric::scores`]).
fn per_seed(runs: &[&Run], scores: &Scores) -> Vec<(u64, f64)> {
    let mut out: Vec<(u64, f64)> = runs
        .iter()
        .filter(|r| r.eval.is_some())
        .enumerate()
        .map(|(i, r)| {
            let tasks: Vec<f64> = (0..scores.tasks()).map(|t| scores.get(i, t)).collect();
            (r.seed, stats::mean(&tasks))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    out
}

fn mean_of(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    stats::mean(&v)
}

fn score_table(
    metric: Metric,
    methods: &BTreeMap<String, Vec<&Run>>,
    boot: &Bootstrap,
) -> ScoreTable {
    let scores: Vec<Option<Scores>> = methods.values().map(|runs| metric.scores(runs)).collect();
    let rows = methods
        .iter()
        .zip(&scores)
        .map(|((method, runs), s)| MethodRow {
            method: method.clone(),
            seeds: runs.len(),
            evaluated: s.as_ref().map_or(0, Scores::runs),
            mean: s.as_ref().map(|s| estimate(s, boot, stats::mean)),
            iqm: s.as_ref().map(|s| estimate(s, boot, stats::iqm)),
            per_seed: s.as_ref().map_or_else(Vec::new, |s| per_seed(runs, s)),
            frames: mean_of(runs.iter().filter_map(|r| r.frames())),
            wall_s: mean_of(runs.iter().filter_map(|r| r.wall_s())),
        })
        .collect();
    let poi =
        scores
            .iter()
            .map(|x| {
                scores
                    .iter()
                    .map(|y| match (x, y) {
                        (Some(x), Some(y)) if x.tasks() == y.tasks() => Some(
                            Estimate::bootstrap_pair(x, y, boot, stats::probability_of_improvement),
                        ),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
    ScoreTable {
        metric: metric.name().into(),
        rows,
        poi,
    }
}

/// Builds the report.
pub fn report(args: &ReportArgs) -> Result<ReportSummary, UserError> {
    if args.dirs.is_empty() {
        return Err(UserError::Other(
            "report needs at least one folder of runs: bamdp report DIR [DIR ...] --out REPORT"
                .into(),
        ));
    }
    if args.reps == 0 {
        return Err(UserError::invalid(
            "--reps",
            "0",
            "a positive number of resamples",
        ));
    }
    let dirs = runs::find_run_dirs(&args.dirs)?;
    let where_ = args
        .dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if dirs.is_empty() {
        return Err(UserError::Other(format!(
            "no run folders (config.toml + metrics.csv) under {where_}"
        )));
    }
    let mut all: Vec<Run> = dirs
        .iter()
        .map(|d| runs::read_run(d, &args.relabel))
        .collect::<Result<_, _>>()?;
    for (from, to) in &args.relabel {
        if !all.iter().any(|r| r.original_label == *from) {
            let found: std::collections::BTreeSet<&str> =
                all.iter().map(|r| r.original_label.as_str()).collect();
            return Err(UserError::invalid(
                "--relabel",
                &format!("{from}={to}"),
                &format!(
                    "FROM=TO with FROM the run.label of some run folder under {where_} (found: {})",
                    found
                        .into_iter()
                        .map(|l| format!("{l:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    // After --relabel: runs relabelled into one name are split again if their configs
    // differ, so a relabel cannot pool two settings silently either.
    let mixed_notes = mixed::split_mixed_groups(&mut all);
    let evaluated = all.iter().filter(|r| r.eval.is_some()).count();
    if evaluated == 0 {
        return Err(UserError::Other(format!(
            "no evaluations: none of the {} run folders under {where_} has an eval.json (write one with `bamdp eval --run RUN --json > RUN/eval.json`, or run the grid with `bamdp sweep`)",
            all.len()
        )));
    }
    let figures_dir = args.out.join("figures");
    std::fs::create_dir_all(&figures_dir)
        .map_err(|e| UserError::file(&figures_dir, format!("cannot create folder: {e}")))?;
    let mut by_env: BTreeMap<String, BTreeMap<String, Vec<&Run>>> = BTreeMap::new();
    for r in &all {
        by_env
            .entry(r.env.clone())
            .or_default()
            .entry(r.label.clone())
            .or_default()
            .push(r);
    }
    let boot = Bootstrap {
        reps: args.reps,
        level: 0.95,
        seed: 0,
    };
    let mut sections = Vec::new();
    let mut figure_count = 0;
    for (env, methods) in &by_env {
        let has_success = methods
            .values()
            .flatten()
            .any(|r| r.eval.as_ref().is_some_and(|e| e.final_success().is_some()));
        let mut tables = vec![score_table(Metric::Return, methods, &boot)];
        if has_success {
            tables.push(score_table(Metric::Success, methods, &boot));
        }
        let per_task: Vec<_> = [per_task::Split::Test, per_task::Split::Train]
            .into_iter()
            .filter_map(|split| per_task::table(methods, split, &boot))
            .collect();
        let (figures, mut notes) =
            curves::env_figures(env, methods, &figures_dir, has_success, &per_task)?;
        notes.extend(
            mixed_notes
                .iter()
                .filter(|(e, _)| e == env)
                .map(|(_, note)| note.clone()),
        );
        figure_count += figures.len();
        sections.push(EnvSection {
            env: env.clone(),
            tables,
            adaptation: adaptation::table(methods, &boot),
            per_task,
            progress: progress::table(methods),
            figures,
            notes,
        });
    }
    let sources = page::Sources {
        dirs: args.dirs.iter().map(|d| d.display().to_string()).collect(),
        relabel: &args.relabel,
    };
    page::write_summary_md(&args.out, &sections, &sources, all.len(), evaluated)?;
    let index = page::write_index_html(&args.out, &sections, &sources, all.len(), evaluated)?;
    Ok(ReportSummary {
        runs: all.len(),
        evaluated,
        envs: sections.len(),
        figures: figure_count,
        index,
    })
}
