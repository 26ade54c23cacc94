//! The training-progress table of one env: each method's training trial return at
//! fixed fractions of the frame budget, with the wall-clock seconds at that point, so
//! sample efficiency (read across a row) and runtime efficiency (read the seconds) sit
//! side by side as numbers, next to the report's learning-curve figures.
//!
//! At a fraction `f`, a run's value is the mean of `return_trial` over its metrics rows
//! within 5% of the budget of `f x budget` frames, and its seconds are `wall_s` at the
//! row nearest that point; the cell is the mean over the method's runs. The budget is
//! the smallest final frame count among the method's runs, so every run covers it.

use super::runs::Run;
use crate::stats;
use std::collections::BTreeMap;

/// Fractions of the frame budget reported.
pub const FRACTIONS: [f64; 4] = [0.1, 0.25, 0.5, 1.0];
/// Half-width of the averaging window, as a fraction of the budget.
const WINDOW: f64 = 0.05;

/// One method's row: per fraction, (mean training trial return, mean seconds).
#[derive(Clone, Debug)]
pub struct ProgressRow {
    pub method: String,
    pub runs: usize,
    pub cells: Vec<Option<(f64, f64)>>,
}

/// (frames, wall_s, return_trial) rows of a run's metrics, when it has those columns.
fn points(r: &Run) -> Option<Vec<(f64, f64, f64)>> {
    let f = r.metrics.column("frames")?;
    let w = r.metrics.column("wall_s")?;
    let y = r.metrics.column("return_trial")?;
    let p: Vec<_> = f
        .into_iter()
        .zip(w)
        .zip(y)
        .map(|((f, w), y)| (f, w, y))
        .filter(|(f, w, y)| f.is_finite() && w.is_finite() && y.is_finite())
        .collect();
    (!p.is_empty()).then_some(p)
}

/// A run's (return, seconds) around `target` frames.
fn at(p: &[(f64, f64, f64)], target: f64, half_width: f64) -> Option<(f64, f64)> {
    let window: Vec<f64> = p
        .iter()
        .filter(|(f, _, _)| (f - target).abs() <= half_width)
        .map(|&(_, _, y)| y)
        .collect();
    if window.is_empty() {
        return None;
    }
    let nearest = p
        .iter()
        .min_by(|a, b| (a.0 - target).abs().total_cmp(&(b.0 - target).abs()))?;
    Some((stats::mean(&window), nearest.1))
}

/// The rows of an env's methods that have training metrics.
pub fn table(methods: &BTreeMap<String, Vec<&Run>>) -> Vec<ProgressRow> {
    let mut rows = Vec::new();
    for (method, runs) in methods {
        let all: Vec<_> = runs.iter().filter_map(|r| points(r)).collect();
        let Some(budget) = all
            .iter()
            .map(|p| p[p.len() - 1].0)
            .min_by(|a, b| a.total_cmp(b))
        else {
            continue;
        };
        let cells = FRACTIONS
            .iter()
            .map(|f| {
                let per_run: Vec<(f64, f64)> = all
                    .iter()
                    .filter_map(|p| at(p, f * budget, WINDOW * budget))
                    .collect();
                (!per_run.is_empty()).then(|| {
                    let (y, w): (Vec<f64>, Vec<f64>) = per_run.into_iter().unzip();
                    (stats::mean(&y), stats::mean(&w))
                })
            })
            .collect();
        rows.push(ProgressRow {
            method: method.clone(),
            runs: all.len(),
            cells,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose return equals frames / 100 and whose clock runs at 10 frames/s.
    fn run(last_frame: usize) -> Run {
        let rows = (1..=last_frame / 100)
            .map(|i| {
                let f = (i * 100) as f64;
                vec![f, f / 10.0, f / 100.0]
            })
            .collect();
        Run::of_metrics("m", &["frames", "wall_s", "return_trial"], rows)
    }

    #[test]
    fn window_means_at_fractions_of_the_shortest_budget() {
        // Budget 10,000 frames (the shorter run): at 50% the window is 4,500..=5,500,
        // whose returns 45..=55 average to 50, the seconds of the nearest row are 500.
        let (a, b) = (run(10_000), run(20_000));
        let methods = BTreeMap::from([("m".to_string(), vec![&a, &b])]);
        let rows = table(&methods);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].runs, 2);
        let (y, w) = rows[0].cells[2].unwrap();
        assert!((y - 50.0).abs() < 1e-12 && (w - 500.0).abs() < 1e-12);
        // At 100% the window of the shorter run is one-sided: 9,500..=10,000 -> 97.5;
        // the longer run's is 9,500..=10,500 -> 100.
        let (y, w) = rows[0].cells[3].unwrap();
        assert!((y - (97.5 + 100.0) / 2.0).abs() < 1e-12 && (w - 1000.0).abs() < 1e-12);
    }

    #[test]
    fn runs_without_the_columns_are_skipped() {
        let mut a = run(1_000);
        a.metrics.columns[2] = "other".into();
        let methods = BTreeMap::from([("m".to_string(), vec![&a])]);
        assert!(table(&methods).is_empty());
    }
}
