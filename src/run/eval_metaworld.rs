//! `bamdp eval --protocol metaworld`: MetaWorld's meta-learning evaluation
//! (`metaworld.evaluation.metalearning_evaluation`, metaworld 3.1.1) on bamdp's envs.
//!
//! Each test task gets one trial of `adaptation + evaluation` episodes (10 + 3 by
//! default). Adaptation episodes run their full horizon; evaluation episodes end at
//! their first successful step (MetaWorld's `terminate_on_success`), so an evaluation
//! episode succeeds when any of its steps does. A task's success rate is the share of
//! its evaluation episodes that succeeded; the score is the mean over tasks, the return
//! the mean evaluation-episode return. The memory or belief carries from adaptation into
//! evaluation within the trial (bamdp's agents adapt by acting).
//!
//! Which trials count is fixed before acting: row `r`'s first trials up to the task
//! count, whatever order they finish in (trials that succeed early end early, and
//! counting the first trials to finish would favour them).
//!
//! The held-out split is played in list order, each task once when the task count is
//! the list's length. On the training split (`--split train`: what transfer costs is
//! the gap between the two) rows take the tasks in turn too, the classes round-robin
//! (`BatchEnv::visit_tasks_in_turn`), so any task count covers the training classes
//! evenly: ML10's 250 cover each of its 10 classes 25 times, where uniform draws
//! covered them 18 to 39 times.
//!
//! MetaWorld's own function counts, per task class and round, the first
//! `evaluation_episodes` evaluation episodes to end over all the class's envs; with one
//! env per class (`meta_batch_size` = the number of classes, 1 for ML1) that is exactly
//! the per-task rate above, which is how python/tests/test_metaworld.py compares them.
//!
//! ```
//! use bamdp::run::eval_metaworld::Protocol;
//! let p = Protocol::parse("metaworld", None, Some(2)).unwrap();
//! assert_eq!(p, Protocol::MetaWorld { adaptation: 10, evaluation: 2 });
//! assert!(Protocol::parse("meta-world", None, None).is_err());
//! ```

use super::actor::TrialResult;
use super::eval::mean_ci95;
use crate::env::{BatchEnv, EnvOptions, Split};
use crate::error::UserError;
use serde::Serialize;

/// MetaWorld's defaults: adaptation and evaluation episodes per task.
pub const ADAPTATION_EPISODES: usize = 10;
pub const EVALUATION_EPISODES: usize = 3;

/// How `bamdp eval` meta-tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    /// One trial of k episodes per task, every episode its full horizon (the default).
    #[default]
    Trial,
    /// MetaWorld's meta-learning evaluation (see the module doc).
    MetaWorld {
        adaptation: usize,
        evaluation: usize,
    },
}

impl Protocol {
    pub const NAMES: &'static str = "trial, metaworld";

    /// `--protocol NAME` with `--adaptation-episodes` / `--evaluation-episodes`.
    pub fn parse(
        name: &str,
        adaptation: Option<usize>,
        evaluation: Option<usize>,
    ) -> Result<Protocol, UserError> {
        match name {
            "trial" => {
                if adaptation.is_some() || evaluation.is_some() {
                    return Err(UserError::invalid(
                        "--protocol",
                        name,
                        "metaworld with --adaptation-episodes / --evaluation-episodes (the trial protocol takes --episodes-per-task)",
                    ));
                }
                Ok(Protocol::Trial)
            }
            "metaworld" => {
                let evaluation = evaluation.unwrap_or(EVALUATION_EPISODES);
                if evaluation == 0 {
                    return Err(UserError::invalid(
                        "--evaluation-episodes",
                        "0",
                        "a positive number of episodes",
                    ));
                }
                Ok(Protocol::MetaWorld {
                    adaptation: adaptation.unwrap_or(ADAPTATION_EPISODES),
                    evaluation,
                })
            }
            other => Err(UserError::invalid("--protocol", other, Protocol::NAMES)),
        }
    }

    /// Whether this is MetaWorld's protocol (adaptation, then evaluation episodes).
    pub fn is_metaworld(self) -> bool {
        matches!(self, Protocol::MetaWorld { .. })
    }

    /// The first episode (0-based) the protocol evaluates: 0 for a whole trial, the
    /// first after the adaptation episodes for MetaWorld's.
    pub fn first_evaluation_episode(self) -> usize {
        match self {
            Protocol::Trial => 0,
            Protocol::MetaWorld { adaptation, .. } => adaptation,
        }
    }

    /// Refuses `--episodes-per-task` under MetaWorld's protocol, whose episode counts are
    /// `--adaptation-episodes` and `--evaluation-episodes`.
    pub fn check_episodes_per_task(
        self,
        episodes_per_task: Option<usize>,
    ) -> Result<(), UserError> {
        match (self, episodes_per_task) {
            (Protocol::MetaWorld { .. }, Some(n)) => Err(UserError::invalid(
                "--episodes-per-task",
                &n.to_string(),
                "no value with --protocol metaworld (it takes --adaptation-episodes and --evaluation-episodes)",
            )),
            _ => Ok(()),
        }
    }

    /// The protocol `bamdp sweep` meta-tests env `name` with: MetaWorld's (10 + 3
    /// episodes) for MetaWorld envs simulated natively (only they can end episodes at
    /// success), the trial protocol otherwise.
    pub fn for_env(name: &str, options: &EnvOptions) -> Protocol {
        let metaworld = matches!(
            crate::env::python::Family::parse(name),
            Some(crate::env::python::Family::MetaWorld { .. })
        );
        if metaworld && options.backend.runs_native(name).unwrap_or(false) {
            Protocol::MetaWorld {
                adaptation: ADAPTATION_EPISODES,
                evaluation: EVALUATION_EPISODES,
            }
        } else {
            Protocol::Trial
        }
    }
}

/// Sets up `env` for the protocol: its episodes from number `adaptation` (0-based) on
/// end at their first success, and on the training split its rows take the tasks in
/// turn, classes round-robin (the module doc says why); returns whether they do (the
/// reports' `tasks_in_turn`). Envs without a success signal are refused (the protocol
/// scores success), as are envs that cannot end episodes early.
pub fn set_up_env(
    env: &mut dyn BatchEnv,
    env_name: &str,
    split: Split,
    adaptation: usize,
) -> Result<bool, UserError> {
    if !env.spec().has_success {
        return Err(UserError::invalid(
            "--protocol",
            "metaworld",
            &format!(
                "trial for env `{env_name}`: it has no success signal (MetaWorld's protocol scores success)"
            ),
        ));
    }
    env.terminate_on_success_from(adaptation)?;
    let in_turn = split == Split::Train;
    if in_turn {
        env.visit_tasks_in_turn()?;
    }
    Ok(in_turn)
}

/// One test task's evaluation episodes.
#[derive(Debug, Serialize)]
pub struct TaskScore {
    /// Index in the split's task list (absent for envs without one).
    pub task: Option<u32>,
    /// The task's class (MetaWorld's env name), for families of classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'static str>,
    /// Share of the evaluation episodes that succeeded.
    pub success_rate: f64,
    /// Mean return of the evaluation episodes.
    pub mean_return: f64,
}

/// The protocol's scores (the `metaworld` object of `bamdp eval --json`).
#[derive(Debug, Serialize)]
pub struct MetaWorldScores {
    pub adaptation_episodes: usize,
    pub evaluation_episodes: usize,
    /// Mean over tasks of each task's success rate, with its 95% CI over tasks.
    pub success_rate: f64,
    pub success_rate_ci95: f64,
    /// Mean over tasks of each task's mean evaluation return.
    pub mean_return: f64,
    pub mean_return_ci95: f64,
    /// Mean over classes of each class's success rate (the mean over its tasks):
    /// MetaWorld's headline for families of classes (ML10, ML45; for ML1 it equals
    /// `success_rate`). Absent when the env has no classes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_success_rate: Option<f64>,
    /// Per class, in name order (empty when the env has no classes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<ClassScore>,
    /// Per task, in task order.
    pub per_task: Vec<TaskScore>,
}

/// One class's tasks, averaged.
#[derive(Debug, Serialize)]
pub struct ClassScore {
    pub class: &'static str,
    pub tasks: usize,
    /// Mean over the class's tasks of their success rates.
    pub success_rate: f64,
    pub mean_return: f64,
}

/// How many trials row `r` of `rows` must finish so that `num_tasks` count: rows
/// take tasks in turn (row `r`'s `j`-th trial is number `r + j rows`).
pub fn trials_of_row(r: usize, rows: usize, num_tasks: usize) -> usize {
    num_tasks.saturating_sub(r).div_ceil(rows)
}

/// Keeps, of trials in finishing order, each row's first [`trials_of_row`] ones;
/// `done[r]` counts the kept trials of row `r`. Returns whether all are in.
pub fn keep_planned(
    new: &mut Vec<TrialResult>,
    kept: &mut Vec<TrialResult>,
    done: &mut [usize],
    num_tasks: usize,
) -> bool {
    let rows = done.len();
    for t in new.drain(..) {
        if done[t.row] < trials_of_row(t.row, rows, num_tasks) {
            done[t.row] += 1;
            kept.push(t);
        }
    }
    kept.len() >= num_tasks
}

/// Scores the trials (each `adaptation + evaluation` episodes long); `class_of` names
/// a task index's class (`BatchEnv::task_class`).
pub fn score(
    trials: &[TrialResult],
    adaptation: usize,
    evaluation: usize,
    class_of: impl Fn(u32) -> Option<&'static str>,
) -> MetaWorldScores {
    let eval = adaptation..adaptation + evaluation;
    let mut per_task: Vec<TaskScore> = trials
        .iter()
        .map(|t| TaskScore {
            task: t.task,
            class: t.task.and_then(&class_of),
            success_rate: t.success[eval.clone()].iter().filter(|&&s| s).count() as f64
                / evaluation as f64,
            mean_return: t.returns[eval.clone()].iter().sum::<f64>() / evaluation as f64,
        })
        .collect();
    per_task.sort_by_key(|s| s.task);
    let success: Vec<f64> = per_task.iter().map(|s| s.success_rate).collect();
    let returns: Vec<f64> = per_task.iter().map(|s| s.mean_return).collect();
    let (success_rate, success_rate_ci95) = mean_ci95(&success);
    let (mean_return, mean_return_ci95) = mean_ci95(&returns);
    let per_class = per_class(&per_task);
    let class_success_rate = (!per_class.is_empty())
        .then(|| per_class.iter().map(|c| c.success_rate).sum::<f64>() / per_class.len() as f64);
    MetaWorldScores {
        adaptation_episodes: adaptation,
        evaluation_episodes: evaluation,
        success_rate,
        success_rate_ci95,
        mean_return,
        mean_return_ci95,
        class_success_rate,
        per_class,
        per_task,
    }
}

/// The tasks grouped by class (tasks without a class are left out).
fn per_class(per_task: &[TaskScore]) -> Vec<ClassScore> {
    let mut groups: std::collections::BTreeMap<&'static str, Vec<&TaskScore>> = Default::default();
    for t in per_task {
        if let Some(c) = t.class {
            groups.entry(c).or_default().push(t);
        }
    }
    groups
        .into_iter()
        .map(|(class, ts)| {
            let n = ts.len() as f64;
            ClassScore {
                class,
                tasks: ts.len(),
                success_rate: ts.iter().map(|t| t.success_rate).sum::<f64>() / n,
                mean_return: ts.iter().map(|t| t.mean_return).sum::<f64>() / n,
            }
        })
        .collect()
}

impl MetaWorldScores {
    /// Per-task rows and the overall line.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "MetaWorld protocol: {} adaptation episodes, then {} evaluation episodes ending at success\n",
            self.adaptation_episodes, self.evaluation_episodes
        );
        s.push_str("   task  success  eval return\n");
        for t in &self.per_task {
            let task = t.task.map_or("-".to_string(), |i| i.to_string());
            s.push_str(&format!(
                "{:>7}  {:>6.1}%  {:>11.3}\n",
                task,
                100.0 * t.success_rate,
                t.mean_return
            ));
        }
        s.push_str(&format!(
            "success {:.1}% ± {:.1} pp, evaluation return {:.3} ± {:.3} over {} tasks (each task's evaluation episodes, then the mean over tasks; ± 95% CI over tasks)\n",
            100.0 * self.success_rate,
            100.0 * self.success_rate_ci95,
            self.mean_return,
            self.mean_return_ci95,
            self.per_task.len()
        ));
        if let Some(rate) = self.class_success_rate {
            for c in &self.per_class {
                s.push_str(&format!(
                    "{:>24}  {:>6.1}%  over {} tasks\n",
                    c.class,
                    100.0 * c.success_rate,
                    c.tasks
                ));
            }
            s.push_str(&format!(
                "success per class, then the mean over {} classes (MetaWorld's headline): {:.1}%\n",
                self.per_class.len(),
                100.0 * rate
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(row: usize, task: u32, success: &[bool], returns: &[f64]) -> TrialResult {
        TrialResult {
            returns: returns.to_vec(),
            success: success.to_vec(),
            row,
            task: Some(task),
        }
    }

    #[test]
    fn rows_take_tasks_in_turn() {
        // 5 tasks on 2 rows: row 0 plays tasks 0, 2, 4; row 1 plays 1, 3.
        assert_eq!(trials_of_row(0, 2, 5), 3);
        assert_eq!(trials_of_row(1, 2, 5), 2);
        assert_eq!(trials_of_row(3, 4, 2), 0);
        assert_eq!(
            (0..256).map(|r| trials_of_row(r, 256, 1000)).sum::<usize>(),
            1000
        );
    }

    #[test]
    fn late_trials_are_not_replaced_by_early_extra_ones() {
        let (mut kept, mut done) = (Vec::new(), vec![0; 2]);
        // Row 0 finishes twice before row 1 finishes once: its second trial is extra.
        let mut new = vec![trial(0, 0, &[true], &[1.0]), trial(0, 2, &[true], &[1.0])];
        assert!(!keep_planned(&mut new, &mut kept, &mut done, 2));
        let mut new = vec![trial(1, 1, &[false], &[0.0])];
        assert!(keep_planned(&mut new, &mut kept, &mut done, 2));
        assert_eq!(
            kept.iter().map(|t| t.task).collect::<Vec<_>>(),
            [Some(0), Some(1)]
        );
    }

    #[test]
    fn scores_average_each_task_then_over_tasks() {
        let trials = [
            trial(1, 1, &[true, false, true, true], &[5.0, 1.0, 2.0, 4.0]),
            trial(0, 0, &[false, true, false, false], &[9.0, 3.0, 0.0, 1.0]),
        ];
        let s = score(&trials, 1, 3, |_| None);
        assert!(s.per_class.is_empty() && s.class_success_rate.is_none());
        assert_eq!(s.per_task[0].task, Some(0));
        assert!((s.per_task[0].success_rate - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.per_task[1].success_rate - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.success_rate - 0.5).abs() < 1e-12);
        assert!((s.per_task[1].mean_return - 7.0 / 3.0).abs() < 1e-12);
        assert!((s.mean_return - (4.0 / 3.0 + 7.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn classes_average_their_tasks_then_over_classes() {
        // Class a: tasks 0 (1/1) and 1 (0/1); class b: task 2 (1/1). Over tasks 2/3,
        // over classes (1/2 + 1) / 2 = 3/4.
        let trials = [
            trial(0, 0, &[true], &[1.0]),
            trial(1, 1, &[false], &[0.0]),
            trial(2, 2, &[true], &[2.0]),
        ];
        let s = score(&trials, 0, 1, |i| Some(if i < 2 { "a" } else { "b" }));
        assert!((s.success_rate - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.class_success_rate, Some(0.75));
        assert_eq!(s.per_class.len(), 2);
        assert_eq!((s.per_class[0].class, s.per_class[0].tasks), ("a", 2));
        assert_eq!(s.per_class[0].success_rate, 0.5);
        assert_eq!(s.per_class[1].mean_return, 2.0);
        assert_eq!(s.per_task[2].class, Some("b"));
    }
}
