//! Finding run folders (any layout) and reading what a report needs from them:
//! the resolved config (env, method, improver, seed), metrics.csv, eval.json, the
//! optional eval.csv of evaluations during training and classes.csv of training
//! success per task class.

use crate::error::UserError;
use crate::run::files;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A numeric CSV: header and rows (metrics.csv, eval.csv).
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

impl Table {
    /// Parses a CSV of numbers with a header line; a torn last line is skipped.
    pub fn read(path: &Path) -> Result<Table, UserError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UserError::file(path, format!("cannot read: {e}")))?;
        let mut lines = text.lines();
        let columns: Vec<String> = lines
            .next()
            .ok_or_else(|| UserError::file(path, "empty file: expected a header line"))?
            .split(',')
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for line in lines {
            let row: Vec<f64> = line
                .split(',')
                .map(|v| v.trim().parse::<f64>().unwrap_or(f64::NAN))
                .collect();
            if row.len() == columns.len() {
                rows.push(row);
            }
        }
        Ok(Table { columns, rows })
    }

    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(|r| r[i]).collect())
    }

    pub fn last(&self, name: &str) -> Option<f64> {
        self.column(name).and_then(|c| c.last().copied())
    }
}

/// The parts of `bamdp eval --json` (eval.json) a report reads.
#[derive(Clone, Debug, Deserialize)]
pub struct EvalFile {
    pub split: String,
    pub num_tasks: usize,
    pub frames_trained: u64,
    pub episode_returns: Vec<f64>,
    pub success_rate: Option<Vec<f64>>,
    pub trial_return: f64,
    /// Actions by the mode (`bamdp eval --greedy`; under MetaWorld's protocol in the
    /// evaluation episodes only).
    #[serde(default)]
    pub greedy: bool,
    /// Config keys changed for the evaluation only (`bamdp eval --set`).
    #[serde(default)]
    pub overrides: Vec<String>,
    #[serde(default)]
    pub summary: Option<EvalSummary>,
    /// MetaWorld's protocol's scores (`bamdp eval --protocol metaworld`).
    #[serde(default)]
    pub metaworld: Option<MetaWorldFile>,
}

/// The parts of eval.json's `metaworld` object a report reads.
#[derive(Clone, Debug, Deserialize)]
pub struct MetaWorldFile {
    pub success_rate: f64,
    #[serde(default)]
    pub class_success_rate: Option<f64>,
    #[serde(default)]
    pub per_class: Vec<ClassFile>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ClassFile {
    pub class: String,
    pub success_rate: f64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EvalSummary {
    pub first: usize,
    pub last: usize,
    pub return_mean: f64,
    pub success_rate: Option<f64>,
}

impl EvalFile {
    /// The headline success: MetaWorld's protocol's (per class, then over classes)
    /// when evaluated with it, else the summary range's when evaluated with one, else
    /// the last episode's.
    pub fn final_success(&self) -> Option<f64> {
        if let Some(m) = &self.metaworld {
            return Some(m.class_success_rate.unwrap_or(m.success_rate));
        }
        self.summary
            .as_ref()
            .and_then(|s| s.success_rate)
            .or_else(|| self.success_rate.as_ref().and_then(|s| s.last().copied()))
    }

    /// Success per task class (MetaWorld's protocol on a family of classes).
    pub fn class_success(&self) -> Option<BTreeMap<String, f64>> {
        let m = self.metaworld.as_ref()?;
        (!m.per_class.is_empty()).then(|| {
            m.per_class
                .iter()
                .map(|c| (c.class.clone(), c.success_rate))
                .collect()
        })
    }
}

/// One run folder.
#[derive(Clone, Debug)]
pub struct Run {
    pub dir: PathBuf,
    pub env: String,
    /// `method`, or `method x improver` when the improver is not PPO, followed by
    /// `[run.label]` when the run has one.
    pub label: String,
    /// `run.label` as the run folder has it (before any `--relabel`).
    pub original_label: String,
    pub seed: u64,
    pub metrics: Table,
    pub eval: Option<EvalFile>,
    /// `eval-train.json`: the same protocol on the training tasks
    /// (`bamdp eval --split train ... --json > RUN/eval-train.json`), when written.
    pub eval_train: Option<EvalFile>,
    /// Meta-tests during training (`eval.every_frames`).
    pub eval_curve: Option<Table>,
    /// Training success per task class and update (`classes.csv`), for envs with classes.
    pub classes: Option<Table>,
    /// The config's settings, `key.path -> value` ([`super::mixed::settings_of`]).
    pub settings: BTreeMap<String, String>,
}

impl Run {
    /// A run of method `label` on env `e`, seed 1, with only `metrics` (for tests).
    #[cfg(test)]
    pub(crate) fn of_metrics(label: &str, columns: &[&str], rows: Vec<Vec<f64>>) -> Run {
        Run {
            dir: label.into(),
            env: "e".into(),
            label: label.into(),
            original_label: String::new(),
            seed: 1,
            metrics: Table {
                columns: columns.iter().map(|c| c.to_string()).collect(),
                rows,
            },
            eval: None,
            eval_train: None,
            eval_curve: None,
            classes: None,
            settings: Default::default(),
        }
    }

    /// Frames trained (last metrics row).
    pub fn frames(&self) -> Option<f64> {
        self.metrics.last("frames")
    }

    /// Wall-clock seconds of training (last metrics row).
    pub fn wall_s(&self) -> Option<f64> {
        self.metrics.last("wall_s")
    }
}

/// Every folder under `roots` (recursively, roots included) holding config.toml and
/// metrics.csv, sorted by path.
pub fn find_run_dirs(roots: &[PathBuf]) -> Result<Vec<PathBuf>, UserError> {
    let mut found = Vec::new();
    for root in roots {
        if !root.is_dir() {
            return Err(UserError::file(root, "no such folder"));
        }
        walk(root, &mut found)?;
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), UserError> {
    if dir.join(files::CONFIG).is_file() && dir.join(files::METRICS_CSV).is_file() {
        found.push(dir.to_path_buf());
        return Ok(());
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| UserError::file(dir, format!("cannot list: {e}")))?;
    let mut subdirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.is_symlink())
        .collect();
    subdirs.sort();
    for d in subdirs {
        walk(&d, found)?;
    }
    Ok(())
}

/// Reads one run folder. The config is read as plain TOML (only `env`, `method`,
/// `improver`, `seed`, `run.label`), so runs written by older versions still report.
/// A run whose `run.label` is the first of a pair in `relabel` is reported under the
/// second (empty: no label), e.g. one setting run under two sweep variants' names.
pub fn read_run(dir: &Path, relabel: &[(String, String)]) -> Result<Run, UserError> {
    let cfg_path = dir.join(files::CONFIG);
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| UserError::file(&cfg_path, format!("cannot read: {e}")))?;
    let value: toml::Table = text
        .parse()
        .map_err(|e| UserError::file(&cfg_path, format!("not valid TOML: {e}")))?;
    let string = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let env = string("env").ok_or_else(|| UserError::file(&cfg_path, "no `env` key"))?;
    let method = string("method").ok_or_else(|| UserError::file(&cfg_path, "no `method` key"))?;
    let improver = string("improver").unwrap_or_else(|| "ppo".into());
    let seed = value
        .get("seed")
        .and_then(|v| v.as_integer())
        .unwrap_or(0)
        .max(0) as u64;
    let original_label = value
        .get("run")
        .and_then(|r| r.get("label"))
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let variant = relabel
        .iter()
        .find(|(from, _)| *from == original_label)
        .map_or(original_label.as_str(), |(_, to)| to.as_str());
    let variant = Some(variant).filter(|l| !l.is_empty());
    // MAML is its own improver (`method = improver = "maml"`): one name says it.
    let mut label = if improver == "ppo" || improver == method {
        method
    } else {
        format!("{method} x {improver}")
    };
    if let Some(variant) = variant {
        label = format!("{label} [{variant}]");
    }
    let metrics = Table::read(&dir.join(files::METRICS_CSV))?;
    let eval = read_eval(&dir.join(files::EVAL_JSON))?;
    let eval_train = read_eval(&dir.join(files::EVAL_TRAIN_JSON))?;
    let curve_path = dir.join(files::EVAL_CSV);
    let eval_curve = if curve_path.is_file() {
        Some(Table::read(&curve_path)?)
    } else {
        None
    };
    let classes_path = dir.join(crate::run::class_metrics::CLASSES_CSV);
    let classes = if classes_path.is_file() {
        Some(Table::read(&classes_path)?)
    } else {
        None
    };
    let settings = super::mixed::settings_of(&text, eval.as_ref());
    Ok(Run {
        dir: dir.to_path_buf(),
        env,
        label,
        original_label,
        seed,
        metrics,
        eval,
        eval_train,
        eval_curve,
        classes,
        settings,
    })
}

/// An evaluation file (`bamdp eval --json`), when it exists.
fn read_eval(path: &Path) -> Result<Option<EvalFile>, UserError> {
    if !path.is_file() {
        return Ok(None);
    }
    let bytes =
        std::fs::read(path).map_err(|e| UserError::file(path, format!("cannot read: {e}")))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| UserError::file(path, format!("not an evaluation (bamdp eval --json): {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metaworld_protocol_gives_the_class_headline_and_class_bars() {
        let json = r#"{"split": "test", "num_tasks": 3, "frames_trained": 10,
            "episode_returns": [1.0], "success_rate": [0.0], "trial_return": 1.0,
            "summary": {"first": 2, "last": 2, "return_mean": 1.0, "success_rate": 0.1},
            "metaworld": {"success_rate": 0.6, "class_success_rate": 0.75,
                "per_class": [{"class": "a", "tasks": 2, "success_rate": 0.5},
                              {"class": "b", "tasks": 1, "success_rate": 1.0}]}}"#;
        let e: EvalFile = serde_json::from_str(json).unwrap();
        assert_eq!(e.final_success(), Some(0.75));
        let classes = e.class_success().unwrap();
        assert_eq!(classes.len(), 2);
        assert_eq!(classes["a"], 0.5);
        let trial_only: EvalFile = serde_json::from_str(
            r#"{"split": "test", "num_tasks": 3, "frames_trained": 10,
            "episode_returns": [1.0], "success_rate": [0.0, 0.25], "trial_return": 1.0}"#,
        )
        .unwrap();
        assert_eq!(trial_only.final_success(), Some(0.25));
        assert!(trial_only.class_success().is_none());
    }
}
