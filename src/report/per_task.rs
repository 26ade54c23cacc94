//! The per-task success table of one env: for evaluations by MetaWorld's protocol
//! (`bamdp eval --protocol metaworld`), each method's success rate per task class,
//! mean over seeds with a 95% bootstrap interval, and the mean over classes (the
//! protocol's headline). One table for the held-out classes (`eval.json`) and, where
//! run folders hold it, one for the training classes (`eval-train.json`, written by
//! `bamdp eval --split train --protocol metaworld --json`), so the two can be read
//! side by side.

use super::adaptation::mean_estimate;
use super::runs::{EvalFile, Run};
use super::Estimate;
use crate::stats::{self, Bootstrap};
use std::collections::BTreeMap;

/// Which evaluation of a run folder a table reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `eval.json`: the held-out classes.
    Test,
    /// `eval-train.json`: the training classes.
    Train,
}

impl Split {
    fn eval(self, run: &Run) -> Option<&EvalFile> {
        match self {
            Split::Test => run.eval.as_ref(),
            Split::Train => run.eval_train.as_ref(),
        }
    }

    /// The bar chart's file-stem suffix, title and caption.
    pub fn figure(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Split::Test => (
                "",
                "meta-test success per task",
                "Meta-test success per held-out task, mean over seeds; whiskers: 95% bootstrap interval.",
            ),
            Split::Train => (
                "-train",
                "success per training task",
                "Success per training task (eval-train.json), mean over seeds; whiskers: 95% bootstrap interval.",
            ),
        }
    }

    /// The table's heading.
    pub fn heading(self) -> &'static str {
        match self {
            Split::Test => "meta-test success per task (held-out classes)",
            Split::Train => "success per task on the training classes (eval-train.json)",
        }
    }
}

/// One method's row: per class (in the table's class order) and over classes.
#[derive(Clone, Debug)]
pub struct PerTaskRow {
    pub method: String,
    /// Runs with a per-class evaluation of this split.
    pub runs: usize,
    /// `None` where no run of the method evaluated that class.
    pub classes: Vec<Option<Estimate>>,
    /// Each run's mean over its classes, then mean over runs.
    pub overall: Option<Estimate>,
}

/// Per-class success of an env's methods for one split.
#[derive(Clone, Debug)]
pub struct PerTaskTable {
    pub split: Split,
    /// Class names, sorted.
    pub classes: Vec<String>,
    pub rows: Vec<PerTaskRow>,
}

/// The table of `split`; `None` when no run has a per-class evaluation of it.
pub fn table(
    methods: &BTreeMap<String, Vec<&Run>>,
    split: Split,
    boot: &Bootstrap,
) -> Option<PerTaskTable> {
    let per_method: Vec<(&String, Vec<BTreeMap<String, f64>>)> = methods
        .iter()
        .map(|(m, runs)| {
            let evals = runs
                .iter()
                .filter_map(|r| split.eval(r)?.class_success())
                .collect();
            (m, evals)
        })
        .filter(|(_, evals): &(_, Vec<_>)| !evals.is_empty())
        .collect();
    if per_method.is_empty() {
        return None;
    }
    let mut classes: Vec<String> = per_method
        .iter()
        .flat_map(|(_, evals)| evals.iter().flat_map(|e| e.keys().cloned()))
        .collect();
    classes.sort();
    classes.dedup();
    let rows = per_method
        .into_iter()
        .map(|(method, evals)| PerTaskRow {
            method: method.clone(),
            runs: evals.len(),
            classes: classes
                .iter()
                .map(|c| {
                    mean_estimate(
                        evals.iter().filter_map(|e| e.get(c).copied()).collect(),
                        boot,
                    )
                })
                .collect(),
            overall: mean_estimate(
                evals
                    .iter()
                    .map(|e| stats::mean(&e.values().copied().collect::<Vec<_>>()))
                    .collect(),
                boot,
            ),
        })
        .collect();
    Some(PerTaskTable {
        split,
        classes,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::runs::{ClassFile, MetaWorldFile};

    fn eval(classes: &[(&str, f64)]) -> EvalFile {
        EvalFile {
            split: "test".into(),
            num_tasks: 10,
            frames_trained: 1,
            episode_returns: vec![0.0],
            success_rate: None,
            trial_return: 0.0,
            greedy: false,
            overrides: Vec::new(),
            summary: None,
            metaworld: Some(MetaWorldFile {
                success_rate: 0.0,
                class_success_rate: None,
                per_class: classes
                    .iter()
                    .map(|(c, s)| ClassFile {
                        class: c.to_string(),
                        success_rate: *s,
                    })
                    .collect(),
            }),
        }
    }

    fn run(test: &[(&str, f64)], train: Option<&[(&str, f64)]>) -> Run {
        Run {
            env: "ml10".into(),
            eval: Some(eval(test)),
            eval_train: train.map(eval),
            ..Run::of_metrics("m", &[], Vec::new())
        }
    }

    const BOOT: Bootstrap = Bootstrap {
        reps: 200,
        level: 0.95,
        seed: 0,
    };

    #[test]
    fn class_means_over_seeds_and_the_mean_over_classes() {
        let a = run(&[("b", 0.5), ("a", 0.0)], Some(&[("x", 1.0)]));
        let b = run(&[("b", 1.0), ("a", 0.2)], None);
        let methods = BTreeMap::from([("m".to_string(), vec![&a, &b])]);
        let t = table(&methods, Split::Test, &BOOT).unwrap();
        assert_eq!(t.classes, ["a", "b"]);
        let row = &t.rows[0];
        assert_eq!(row.runs, 2);
        assert!((row.classes[0].unwrap().value - 0.1).abs() < 1e-12);
        assert_eq!(row.classes[1].unwrap().value, 0.75);
        // Run a: 0.25 over its classes, run b: 0.6.
        assert!((row.overall.unwrap().value - 0.425).abs() < 1e-12);
        let ci = row.overall.unwrap().ci.unwrap();
        assert!(ci.lo >= 0.25 - 1e-12 && ci.hi <= 0.6 + 1e-12 && ci.lo <= ci.hi);
        let train = table(&methods, Split::Train, &BOOT).unwrap();
        assert_eq!(train.rows[0].runs, 1);
        assert_eq!(train.rows[0].classes[0].unwrap().value, 1.0);
        // One run behind a cell: no interval rather than a zero-width one.
        assert!(train.rows[0].classes[0].unwrap().ci.is_none());
        assert!(row.classes[0].unwrap().ci.is_some());
    }

    #[test]
    fn methods_without_the_split_are_left_out_and_missing_classes_are_empty() {
        let a = run(&[("a", 1.0)], None);
        let b = run(&[("b", 0.0)], None);
        let methods = BTreeMap::from([("m".to_string(), vec![&a]), ("n".to_string(), vec![&b])]);
        let t = table(&methods, Split::Test, &BOOT).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert!(t.rows[0].classes[1].is_none() && t.rows[1].classes[0].is_none());
        assert!(table(&methods, Split::Train, &BOOT).is_none());
    }
}
