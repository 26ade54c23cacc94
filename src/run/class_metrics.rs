//! `classes.csv`: the training trials' success per task class, one row per update, for
//! envs whose tasks come in classes (MetaWorld's ML10 and ML45).
//!
//! metrics.csv averages an update's trials over all its classes; this file keeps the
//! classes apart, so that a change in training success can be traced to the classes
//! that made it (on ML45 a row plays about one trial of each class per update, so read
//! it averaged over several updates). Columns: `update`, `frames`, then for each class,
//! in the order of the task list, `trials/<class>` (the class's trials that ended in
//! the update) and `success/<class>` (the share of their episodes that succeeded; NaN
//! when none ended; for MAML, adaptation and adapted episodes alike). Like metrics.csv
//! it resumes without duplicates.
//!
//! ```
//! use bamdp::run::class_metrics::row;
//!
//! // Tasks 0-1 are class "a", task 2 class "b"; no trial of "c" ended.
//! let class_of = |i: u32| Some(if i < 2 { "a" } else { "b" });
//! let trials: [(Option<u32>, &[bool]); 3] =
//!     [(Some(0), &[false, true]), (Some(1), &[true, true]), (Some(2), &[false, false])];
//! let r = row(&["a", "b", "c"], 7, 700, trials, class_of);
//! assert_eq!(&r[..6], &[7.0, 700.0, 2.0, 0.75, 1.0, 0.0]);
//! assert_eq!(r[6], 0.0);
//! assert!(r[7].is_nan());
//! ```

use super::metrics::MetricsCsv;
use crate::env::BatchEnv;
use crate::error::UserError;
use std::path::Path;

/// The file's name in a run folder.
pub const CLASSES_CSV: &str = "classes.csv";

/// The columns for `classes`: `update`, `frames`, then `trials/` and `success/` of each.
pub fn columns(classes: &[&str]) -> Vec<String> {
    let mut c = vec!["update".to_string(), "frames".to_string()];
    for class in classes {
        c.push(format!("trials/{class}"));
        c.push(format!("success/{class}"));
    }
    c
}

/// One update's row from its finished trials, each given as its task (an index into
/// the split's task list) and its episodes' success: per class, its trials and the
/// share of their episodes that succeeded. Trials of a class not in `classes` (or
/// without a task) are left out.
pub fn row<'a>(
    classes: &[&str],
    update: u64,
    frames: u64,
    trials: impl IntoIterator<Item = (Option<u32>, &'a [bool])>,
    class_of: impl Fn(u32) -> Option<&'static str>,
) -> Vec<f64> {
    let mut count = vec![0usize; classes.len()];
    let (mut episodes, mut successes) = (vec![0usize; classes.len()], vec![0usize; classes.len()]);
    for (task, success) in trials {
        let Some(c) = task.and_then(&class_of) else {
            continue;
        };
        let Some(i) = classes.iter().position(|&name| name == c) else {
            continue;
        };
        count[i] += 1;
        episodes[i] += success.len();
        successes[i] += success.iter().filter(|&&s| s).count();
    }
    let mut r = vec![update as f64, frames as f64];
    for i in 0..classes.len() {
        r.push(count[i] as f64);
        r.push(if episodes[i] == 0 {
            f64::NAN
        } else {
            successes[i] as f64 / episodes[i] as f64
        });
    }
    r
}

/// A run's open `classes.csv`.
pub struct ClassMetrics {
    csv: MetricsCsv,
    classes: Vec<&'static str>,
}

impl ClassMetrics {
    /// Opens `run/classes.csv` for the training env `env` (`None` when its tasks have no
    /// classes or no success); `resume_at` continues the file after that update's
    /// checkpoint.
    pub fn open(
        run: &Path,
        env: &dyn BatchEnv,
        resume_at: Option<u64>,
    ) -> Result<Option<Self>, UserError> {
        let classes = env.task_classes();
        if classes.is_empty() || !env.spec().has_success {
            return Ok(None);
        }
        let path = run.join(CLASSES_CSV);
        let cols = columns(&classes);
        let csv = match resume_at {
            Some(update) => MetricsCsv::resume(&path, &cols, update)?,
            None => MetricsCsv::create(&path, &cols)?,
        };
        Ok(Some(ClassMetrics { csv, classes }))
    }

    /// Appends an update's row (see [`row`]).
    pub fn append<'a>(
        &mut self,
        update: u64,
        frames: u64,
        trials: impl IntoIterator<Item = (Option<u32>, &'a [bool])>,
        env: &dyn BatchEnv,
    ) -> Result<(), UserError> {
        let r = row(&self.classes, update, frames, trials, |i| env.task_class(i));
        self.csv.append(&r)
    }
}
