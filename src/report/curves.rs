//! The report's figures for one env: curves averaged over seeds with a 95% bootstrap
//! band of the mean (so one seed draws a line without a band).

use super::per_task::{PerTaskTable, Split};
use super::plots::{self, BarChart, HeatMap, LineChart, Series};
use super::runs::{Run, Table};
use super::Metric;
use crate::error::UserError;
use crate::stats::{self, Bootstrap, Scores};
use std::collections::BTreeMap;
use std::path::Path;

/// Points per learning curve: metrics rows are averaged in windows down to this many.
const CURVE_POINTS: usize = 150;
/// Resamples per band point (bands are drawn, not tabulated).
const BAND_REPS: usize = 400;

/// Mean over seeds with its bootstrap interval; `None` without values.
fn mean_band(values: &[f64]) -> Option<(f64, f64, f64)> {
    let boot = Bootstrap {
        reps: BAND_REPS,
        level: 0.95,
        seed: 0,
    };
    let e = super::adaptation::mean_estimate(values.to_vec(), &boot)?;
    Some(e.band())
}

fn finite_mean(xs: &[f64]) -> f64 {
    let v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    stats::mean(&v)
}

/// `y_col` against `x_col` of each run's table, windowed and averaged over runs.
fn curve(
    name: &str,
    runs: &[&Run],
    table: fn(&Run) -> Option<&Table>,
    x_col: &str,
    y_col: &str,
) -> Option<Series> {
    let cols: Vec<(Vec<f64>, Vec<f64>)> = runs
        .iter()
        .filter_map(|r| {
            let t = table(r)?;
            Some((t.column(x_col)?, t.column(y_col)?))
        })
        .filter(|(x, _)| !x.is_empty())
        .collect();
    let longest = cols.iter().map(|(x, _)| x.len()).max()?;
    let window = longest.div_ceil(CURVE_POINTS).max(1);
    let mut series = Series {
        name: name.to_string(),
        x: vec![],
        y: vec![],
        band: Some((vec![], vec![])),
    };
    for start in (0..longest).step_by(window) {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for (x, y) in &cols {
            if start >= x.len() {
                continue;
            }
            let end = (start + window).min(x.len());
            let (mx, my) = (finite_mean(&x[start..end]), finite_mean(&y[start..end]));
            if mx.is_finite() && my.is_finite() {
                xs.push(mx);
                ys.push(my);
            }
        }
        if let Some((m, lo, hi)) = mean_band(&ys) {
            series.x.push(stats::mean(&xs));
            series.y.push(m);
            let band = series.band.as_mut().expect("band");
            band.0.push(lo);
            band.1.push(hi);
        }
    }
    (!series.x.is_empty()).then_some(series)
}

/// Per-episode values of each run's evaluation, averaged over runs.
fn adaptation(
    name: &str,
    runs: &[&Run],
    per_episode: fn(&Run) -> Option<Vec<f64>>,
) -> Option<Series> {
    let all: Vec<Vec<f64>> = runs.iter().filter_map(|r| per_episode(r)).collect();
    let k = all.iter().map(Vec::len).max()?;
    let mut s = Series {
        name: name.into(),
        x: vec![],
        y: vec![],
        band: Some((vec![], vec![])),
    };
    for e in 0..k {
        let ys: Vec<f64> = all.iter().filter_map(|v| v.get(e).copied()).collect();
        if let Some((m, lo, hi)) = mean_band(&ys) {
            s.x.push((e + 1) as f64);
            s.y.push(m);
            let band = s.band.as_mut().expect("band");
            band.0.push(lo);
            band.1.push(hi);
        }
    }
    (!s.x.is_empty()).then_some(s)
}

fn metrics(r: &Run) -> Option<&Table> {
    Some(&r.metrics)
}

fn eval_curve(r: &Run) -> Option<&Table> {
    r.eval_curve.as_ref()
}

/// File-name-safe version of an env name.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// (file stem, caption) of each figure drawn.
pub type Captioned = Vec<(String, String)>;

/// Where one env's figures go, and the (stem, caption) of each drawn so far.
struct Figures<'a> {
    env: &'a str,
    env_slug: String,
    dir: &'a Path,
    drawn: Captioned,
}

impl Figures<'_> {
    /// Draws a line chart `<env>-<stem>`, unless it has no series.
    fn line(
        &mut self,
        stem: &str,
        [title, x_label, y_label]: [&str; 3],
        series: Vec<Series>,
        caption: String,
    ) -> Result<(), UserError> {
        if series.is_empty() {
            return Ok(());
        }
        let chart = LineChart {
            title: format!("{}: {title}", self.env),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series,
        };
        let stem = format!("{}-{stem}", self.env_slug);
        plots::save_line_chart(self.dir, &stem, &chart)?;
        self.drawn.push((stem, caption));
        Ok(())
    }
}

/// One series per method that `f` draws.
fn per_method(
    methods: &BTreeMap<String, Vec<&Run>>,
    f: impl Fn(&str, &[&Run]) -> Option<Series>,
) -> Vec<Series> {
    methods
        .iter()
        .filter_map(|(m, runs)| f(m.as_str(), runs.as_slice()))
        .collect()
}

/// Draws every figure the env's runs support; returns (stem, caption) pairs and notes
/// on what could not be drawn.
pub fn env_figures(
    env: &str,
    methods: &BTreeMap<String, Vec<&Run>>,
    dir: &Path,
    has_success: bool,
    per_task: &[PerTaskTable],
) -> Result<(Captioned, Vec<String>), UserError> {
    let mut figures = Figures {
        env,
        env_slug: slug(env),
        dir,
        drawn: Vec::new(),
    };
    let mut notes = Vec::new();
    training_curves(&mut figures, methods, has_success)?;
    if methods.values().flatten().any(|r| r.eval_curve.is_some()) {
        held_out_curves(&mut figures, methods, has_success)?;
    } else {
        notes.push("No eval.csv in these runs (set eval.every_frames to meta-test during training): learning curves show training trials.".into());
    }
    adaptation_curves(&mut figures, methods, has_success)?;
    performance_profiles(&mut figures, methods, has_success)?;
    class_bars(&mut figures, per_task)?;
    if has_success {
        class_heat_maps(&mut figures, methods)?;
    }
    if !per_task.iter().any(|t| t.split == Split::Test)
        && has_success
        && matches!(
            crate::env::python::Family::parse(env),
            Some(crate::env::python::Family::MetaWorld { .. })
        )
    {
        notes.push("The evaluations have no per-class success (`bamdp eval --protocol metaworld` on a MetaWorld env writes it): no per-task bars.".into());
    }
    Ok((figures.drawn, notes))
}

/// metrics.csv against frames and wall-clock: return, MAML's return before and after
/// adaptation, success of the trial's last episode, entropy.
fn training_curves(
    f: &mut Figures,
    methods: &BTreeMap<String, Vec<&Run>>,
    has_success: bool,
) -> Result<(), UserError> {
    f.line(
        "train-return-frames",
        ["training trial return", "environment frames", "return per trial"],
        per_method(methods, |m, r| curve(m, r, metrics, "frames", "return_trial")),
        "Training: mean return per trial (all episodes of a trial) against environment frames; band: 95% bootstrap interval of the mean over seeds.".into(),
    )?;
    f.line(
        "train-return-wall",
        [
            "training trial return",
            "wall-clock seconds",
            "return per trial",
        ],
        per_method(methods, |m, r| {
            curve(m, r, metrics, "wall_s", "return_trial")
        }),
        "Training: the same return against wall-clock seconds.".into(),
    )?;
    // MAML logs no trial return (its rollouts are pre- and post-adaptation blocks, not
    // one trial), so its learning curve is drawn here, on a chart of its own units.
    let adaptation_series: Vec<Series> = methods
        .iter()
        .flat_map(|(m, runs)| {
            [
                ("return_pre", "before adaptation"),
                ("return_post", "after adaptation"),
            ]
            .into_iter()
            .filter_map(move |(column, when)| {
                curve(&format!("{m}, {when}"), runs, metrics, "frames", column)
            })
        })
        .collect();
    f.line(
        "train-adaptation-return-frames",
        [
            "training return before and after adaptation",
            "environment frames",
            "return per episode",
        ],
        adaptation_series,
        "Training (MAML): mean episode return of the rollouts before adaptation (the first block) and with the adapted weights (the last block) against environment frames; band: 95% bootstrap interval of the mean over seeds.".into(),
    )?;
    let k = methods
        .values()
        .flatten()
        .map(|r| {
            r.metrics
                .columns
                .iter()
                .filter(|c| c.starts_with("return_ep"))
                .count()
        })
        .max()
        .unwrap_or(0);
    if k > 0 && has_success {
        let last_success = format!("success_ep{k}");
        f.line(
            "train-success-frames",
            [
                &format!("training success (episode {k})"),
                "environment frames",
                "success rate",
            ],
            // MAML has no trial: its counterpart of a trial's last episode is the
            // block of episodes played with the adapted weights.
            per_method(methods, |m, r| {
                curve(m, r, metrics, "frames", &last_success).or_else(|| {
                    let name = format!("{m} (after adaptation)");
                    curve(&name, r, metrics, "frames", "success_post")
                })
            }),
            format!("Training: success rate of the trial's last episode ({k}) against frames; for MAML (no trial), of the episodes played with the adapted weights."),
        )?;
    }
    // A policy that stops adapting is often one whose entropy ran away (RL2's first
    // ML10 preset: docs/results.md, "MetaWorld ML10 at a glance"), so it is drawn too.
    f.line(
        "entropy-frames",
        ["policy entropy", "environment frames", "entropy (nats)"],
        per_method(methods, |m, r| curve(m, r, metrics, "frames", "entropy")),
        "Training: the policy's mean entropy per action (the sum over action dimensions, before clipping, for Gaussian policies) against frames.".into(),
    )
}

/// eval.csv (meta-tests on held-out tasks during training) against frames and wall-clock.
fn held_out_curves(
    f: &mut Figures,
    methods: &BTreeMap<String, Vec<&Run>>,
    has_success: bool,
) -> Result<(), UserError> {
    let title = "held-out trial return during training";
    f.line(
        "test-return-frames",
        [title, "environment frames", "return per trial"],
        per_method(methods, |m, r| curve(m, r, eval_curve, "frames", "return_trial")),
        "Meta-test on held-out tasks during training (eval.every_frames): mean return per trial against frames.".into(),
    )?;
    f.line(
        "test-return-wall",
        [title, "wall-clock seconds", "return per trial"],
        per_method(methods, |m, r| {
            curve(m, r, eval_curve, "wall_s", "return_trial")
        }),
        "Meta-test on held-out tasks during training against wall-clock seconds.".into(),
    )?;
    if has_success {
        f.line(
            "test-success-frames",
            [
                "held-out success during training",
                "environment frames",
                "success rate",
            ],
            per_method(methods, |m, r| curve(m, r, eval_curve, "frames", "success")),
            "Meta-test success during training against frames.".into(),
        )?;
    }
    Ok(())
}

/// eval.json: the meta-test's return and success per episode of the trial.
fn adaptation_curves(
    f: &mut Figures,
    methods: &BTreeMap<String, Vec<&Run>>,
    has_success: bool,
) -> Result<(), UserError> {
    f.line(
        "adaptation-return",
        ["adaptation (meta-test)", "episode of the trial", "return"],
        per_method(methods, |m, r| {
            adaptation(m, r, |run| run.eval.as_ref().map(|e| e.episode_returns.clone()))
        }),
        "Adaptation: meta-test return of each episode of the trial on held-out tasks (the belief persists across episodes).".into(),
    )?;
    if has_success {
        f.line(
            "adaptation-success",
            [
                "adaptation (meta-test)",
                "episode of the trial",
                "success rate",
            ],
            per_method(methods, |m, r| {
                adaptation(m, r, |run| {
                    run.eval.as_ref().and_then(|e| e.success_rate.clone())
                })
            }),
            "Adaptation: meta-test success rate of each episode of the trial.".into(),
        )?;
    }
    Ok(())
}

/// Performance profiles of the final meta-test's return (and success).
fn performance_profiles(
    f: &mut Figures,
    methods: &BTreeMap<String, Vec<&Run>>,
    has_success: bool,
) -> Result<(), UserError> {
    for metric in [Metric::Return, Metric::Success] {
        if metric == Metric::Success && !has_success {
            continue;
        }
        let scores: Vec<(String, Scores)> = methods
            .iter()
            .filter_map(|(m, runs)| Some((m.clone(), metric.scores(runs)?)))
            .collect();
        let (lo, hi) = scores
            .iter()
            .flat_map(|(_, s)| s.values().iter().copied())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            continue;
        }
        let (lo, hi) = if hi - lo < 1e-12 {
            (lo - 0.5, hi + 0.5)
        } else {
            (lo, hi)
        };
        let taus: Vec<f64> = (0..=60).map(|i| lo + (hi - lo) * i as f64 / 60.0).collect();
        let boot = Bootstrap {
            reps: BAND_REPS,
            level: 0.95,
            seed: 0,
        };
        let series = scores
            .iter()
            .map(|(m, s)| {
                let cis = boot.intervals(s, |r| stats::performance_profile(r, &taus));
                Series {
                    name: m.clone(),
                    x: taus.clone(),
                    y: stats::performance_profile(s, &taus),
                    band: Some((
                        cis.iter().map(|c| c.lo).collect(),
                        cis.iter().map(|c| c.hi).collect(),
                    )),
                }
            })
            .collect();
        let (stem, what) = match metric {
            Metric::Return => ("profile-return", "trial return"),
            Metric::Success => ("profile-success", "success rate"),
        };
        f.line(
            stem,
            [&format!("performance profile ({what})"), what, "fraction of runs > tau"],
            series,
            format!("Performance profile: fraction of runs (x tasks) whose final meta-test {what} exceeds tau; band: 95% stratified-bootstrap interval."),
        )?;
    }
    Ok(())
}

/// Success per task class (MetaWorld's protocol): the bars of the per-task tables.
fn class_bars(f: &mut Figures, per_task: &[PerTaskTable]) -> Result<(), UserError> {
    for t in per_task {
        let (suffix, what, caption) = t.split.figure();
        let groups = t
            .rows
            .iter()
            .map(|r| {
                let bars = r
                    .classes
                    .iter()
                    .map(|e| e.map_or((0.0, 0.0, 0.0), |e| e.band()))
                    .collect();
                (r.method.clone(), bars)
            })
            .collect();
        let stem = format!("{}-per-task-success{suffix}", f.env_slug);
        plots::save_bar_chart(
            f.dir,
            &stem,
            &BarChart {
                title: format!("{}: {what}", f.env),
                y_label: "success rate".into(),
                categories: t.classes.clone(),
                groups,
            },
        )?;
        f.drawn.push((stem, caption.into()));
    }
    Ok(())
}

/// classes.csv: training success per class over frames, one heat map per method.
fn class_heat_maps(
    f: &mut Figures,
    methods: &BTreeMap<String, Vec<&Run>>,
) -> Result<(), UserError> {
    for (m, runs) in methods {
        let Some(g) = super::classes::grid(runs, super::classes::BINS) else {
            continue;
        };
        let seeds = runs.iter().filter(|r| r.classes.is_some()).count();
        let stem = format!("{}-train-success-classes-{}", f.env_slug, slug(m));
        let map = HeatMap {
            title: format!("{}: {m}, training success per class", f.env),
            x_label: "environment frames".into(),
            value_label: "success".into(),
            rows: g.classes,
            x_edges: g.edges,
            cells: g.cells,
        };
        plots::save_heat_map(f.dir, &stem, &map)?;
        f.drawn.push((stem, format!("Training ({m}, {seeds} run(s) pooled): share of successful episodes of each training class's trials (all episodes of a trial) in {} frame bins, from classes.csv; grey: no trial of the class ended in the bin.", super::classes::BINS)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, columns: &[&str]) -> Run {
        let rows = (1..=4)
            .map(|i| (0..columns.len()).map(|c| (i * 100 + c) as f64).collect())
            .collect();
        Run::of_metrics(label, columns, rows)
    }

    /// MAML logs no trial: on the training-success chart its post-adaptation success
    /// stands beside the other methods' last episode, under a name that says so.
    #[test]
    fn training_success_draws_maml_after_adaptation_beside_trials() {
        let trial = [
            "frames",
            "wall_s",
            "return_ep1",
            "return_ep2",
            "success_ep2",
        ];
        let rl2 = run("rl2", &trial);
        let maml = run("maml", &["frames", "wall_s", "return_post", "success_post"]);
        let methods = BTreeMap::from([
            ("rl2".to_string(), vec![&rl2]),
            ("maml".to_string(), vec![&maml]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let (figures, _) = env_figures("e", &methods, dir.path(), true, &[]).unwrap();
        assert!(figures
            .iter()
            .any(|(stem, _)| stem == "e-train-success-frames"));
        let svg = std::fs::read_to_string(dir.path().join("e-train-success-frames.svg")).unwrap();
        assert!(
            svg.contains("maml (after adaptation)"),
            "MAML's series is missing"
        );
        assert!(svg.contains("rl2"), "RL2's series is missing");
    }

    /// Runs with a classes.csv get a heat map per method, rows named by class.
    #[test]
    fn classes_csv_draws_a_heat_map_per_method() {
        let mut rl2 = run("rl2", &["frames", "wall_s", "return_ep1", "success_ep1"]);
        rl2.classes = Some(Table {
            columns: ["update", "frames", "trials/reach-v3", "success/reach-v3"]
                .map(String::from)
                .to_vec(),
            rows: vec![vec![1.0, 100.0, 2.0, 0.5], vec![2.0, 200.0, 1.0, 1.0]],
        });
        let other = run(
            "varibad",
            &["frames", "wall_s", "return_ep1", "success_ep1"],
        );
        let methods = BTreeMap::from([
            ("rl2".to_string(), vec![&rl2]),
            ("varibad".to_string(), vec![&other]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let (figures, _) = env_figures("e", &methods, dir.path(), true, &[]).unwrap();
        let stems: Vec<&str> = figures.iter().map(|(s, _)| s.as_str()).collect();
        assert!(stems.contains(&"e-train-success-classes-rl2"), "{stems:?}");
        assert!(!stems.iter().any(|s| s.contains("classes-varibad")));
        let svg =
            std::fs::read_to_string(dir.path().join("e-train-success-classes-rl2.svg")).unwrap();
        assert!(svg.contains("reach-v3"));
    }
}
