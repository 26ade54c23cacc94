//! The adaptation table of one env: each method's meta-test return per episode of the
//! trial (the belief persists across episodes, so later episodes show what was learned
//! about the task), mean over seeds with a 95% bootstrap interval, and the success
//! rate of the first and the last episode.

use super::runs::Run;
use super::Estimate;
use crate::stats::{self, Bootstrap, Scores};
use std::collections::BTreeMap;

/// One method's row.
#[derive(Clone, Debug)]
pub struct AdaptationRow {
    pub method: String,
    /// Evaluated runs.
    pub runs: usize,
    /// Per episode; `None` where no run has that episode.
    pub returns: Vec<Option<Estimate>>,
    /// Success of the first and the last episode, when the evaluation reports success.
    pub success: Option<(Estimate, Estimate)>,
}

/// Rows of the evaluated methods and the longest trial among them.
#[derive(Clone, Debug)]
pub struct AdaptationTable {
    pub episodes: usize,
    pub rows: Vec<AdaptationRow>,
}

/// Mean over runs with its bootstrap interval; `None` without values.
pub(super) fn mean_estimate(values: Vec<f64>, boot: &Bootstrap) -> Option<Estimate> {
    let s = Scores::single_task(values).ok()?;
    Some(Estimate::bootstrap(&s, boot, |s| stats::mean(s.values())))
}

/// Column `e` of per-run vectors, skipping runs whose vector is shorter.
fn column(per_run: &[&Vec<f64>], e: usize) -> Vec<f64> {
    per_run.iter().filter_map(|v| v.get(e).copied()).collect()
}

/// The table of an env's methods; `None` when no run is evaluated.
pub fn table(methods: &BTreeMap<String, Vec<&Run>>, boot: &Bootstrap) -> Option<AdaptationTable> {
    let mut rows = Vec::new();
    let mut episodes = 0;
    for (method, runs) in methods {
        let evals: Vec<_> = runs.iter().filter_map(|r| r.eval.as_ref()).collect();
        if evals.is_empty() {
            continue;
        }
        let returns: Vec<&Vec<f64>> = evals.iter().map(|e| &e.episode_returns).collect();
        let k = returns.iter().map(|v| v.len()).max().unwrap_or(0);
        episodes = episodes.max(k);
        let success: Option<Vec<&Vec<f64>>> =
            evals.iter().map(|e| e.success_rate.as_ref()).collect();
        let success = success.and_then(|s| {
            let last: Vec<f64> = s.iter().filter_map(|v| v.last().copied()).collect();
            Some((
                mean_estimate(column(&s, 0), boot)?,
                mean_estimate(last, boot)?,
            ))
        });
        rows.push(AdaptationRow {
            method: method.clone(),
            runs: evals.len(),
            returns: (0..k)
                .map(|e| mean_estimate(column(&returns, e), boot))
                .collect(),
            success,
        });
    }
    (!rows.is_empty()).then_some(AdaptationTable { episodes, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::runs::EvalFile;

    fn run(returns: Vec<f64>, success: Option<Vec<f64>>) -> Run {
        Run {
            eval: Some(EvalFile {
                split: "test".into(),
                num_tasks: 10,
                frames_trained: 1,
                trial_return: returns.iter().sum(),
                greedy: false,
                overrides: Vec::new(),
                episode_returns: returns,
                success_rate: success,
                summary: None,
                metaworld: None,
            }),
            ..Run::of_metrics("m", &[], Vec::new())
        }
    }

    #[test]
    fn per_episode_means_and_first_last_success() {
        let a = run(vec![1.0, 3.0], Some(vec![0.5, 1.0]));
        let b = run(vec![2.0, 5.0], Some(vec![0.0, 0.5]));
        let boot = Bootstrap {
            reps: 200,
            level: 0.95,
            seed: 0,
        };
        let methods = BTreeMap::from([("m".to_string(), vec![&a, &b])]);
        let t = table(&methods, &boot).unwrap();
        assert_eq!(t.episodes, 2);
        let row = &t.rows[0];
        assert_eq!(row.runs, 2);
        assert_eq!(row.returns[0].unwrap().value, 1.5);
        assert_eq!(row.returns[1].unwrap().value, 4.0);
        let ci = row.returns[1].unwrap().ci.unwrap();
        assert!(ci.lo >= 3.0 && ci.hi <= 5.0 && ci.lo <= ci.hi);
        let (first, last) = row.success.unwrap();
        assert_eq!((first.value, last.value), (0.25, 0.75));
    }

    #[test]
    fn success_is_left_out_when_a_run_lacks_it_and_unevaluated_methods_are_skipped() {
        let a = run(vec![1.0], Some(vec![1.0]));
        let b = run(vec![2.0], None);
        let mut c = run(vec![0.0], None);
        c.eval = None;
        let boot = Bootstrap {
            reps: 50,
            level: 0.95,
            seed: 0,
        };
        let methods =
            BTreeMap::from([("m".to_string(), vec![&a, &b]), ("n".to_string(), vec![&c])]);
        let t = table(&methods, &boot).unwrap();
        assert_eq!(t.rows.len(), 1);
        assert!(t.rows[0].success.is_none());
        let only_unevaluated = BTreeMap::from([("n".to_string(), vec![&c])]);
        assert!(table(&only_unevaluated, &boot).is_none());
    }
}
