//! Runs that share a method and label but were trained or evaluated differently.
//!
//! The report groups runs by env, method and `run.label`. Two presets of one method
//! with the same label (an old and a fixed preset, say), or one preset meta-tested
//! with sampled actions in some runs and by the mode in others, would otherwise be
//! pooled as if they were seeds of one setting. Such a group is split, and each part
//! is named by the keys in which the settings differ:
//!
//! ```
//! use bamdp::report::mixed::settings_of;
//! let a = settings_of("env = \"ml10\"\nseed = 1\n[ppo]\nlr = 0.001\n", None);
//! let b = settings_of("env = \"ml10\"\nseed = 2\n[ppo]\nlr = 0.0003\n", None);
//! assert_eq!(a["ppo.lr"], "0.001");
//! // the seed is not a setting: runs differing only in it are one group
//! assert!(!a.contains_key("seed") && a.len() == b.len());
//! ```

use super::runs::{EvalFile, Run};
use crate::config::Config;
use std::collections::{BTreeMap, BTreeSet};

/// Keys that do not change what a run trains, so runs differing in them are pooled:
/// the seed (what a group is made of), the thread count (results do not depend on it,
/// ARCHITECTURE.md "Invariants"), the label (already part of the group's name), and
/// how often the run logs, checkpoints and meta-tests itself (in-run evaluations play
/// their own action stream).
const NOT_SETTINGS: &[&str] = &[
    "seed",
    "run.threads",
    "run.label",
    "run.log_every",
    "run.checkpoint_every",
    "eval.every_frames",
];

/// How many differing keys a group's name lists before it says how many more there are.
const NAMED_KEYS: usize = 3;

/// A run's settings as `key.path -> value`, from its `config.toml`: resolved by this
/// binary when it parses (so a key missing from an older run's file counts as its
/// default), else as written; with its evaluation (eval.json), how it was meta-tested
/// too (`evaluation.greedy`, `evaluation.set`), since a score depends on both.
pub fn settings_of(config_text: &str, eval: Option<&EvalFile>) -> BTreeMap<String, String> {
    let resolved = Config::from_recorded(config_text)
        .and_then(|c| c.to_toml_string().parse::<toml::Table>().ok());
    let table = resolved.or_else(|| config_text.parse::<toml::Table>().ok());
    let mut out = BTreeMap::new();
    if let Some(table) = table {
        flatten("", &table, &mut out);
    }
    if let Some(e) = eval {
        out.insert("evaluation.greedy".into(), e.greedy.to_string());
        out.insert(
            "evaluation.set".into(),
            format!("[{}]", e.overrides.join(" ")),
        );
    }
    out
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => flatten(&path, t, out),
            _ if NOT_SETTINGS.contains(&path.as_str()) => {}
            v => {
                out.insert(path, v.to_string());
            }
        }
    }
}

/// Splits every group of `runs` (same env and label) whose settings differ, appending
/// `{key=value, ...}` (the differing keys, those every run of the group has) to each
/// run's label. Returns `(env, sentence)` per split group for the report's notes.
pub fn split_mixed_groups(runs: &mut [Run]) -> Vec<(String, String)> {
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        groups
            .entry((r.env.clone(), r.label.clone()))
            .or_default()
            .push(i);
    }
    let mut notes = Vec::new();
    for ((env, label), members) in groups {
        let differing = differing_keys(members.iter().map(|&i| &runs[i].settings));
        if differing.is_empty() {
            continue;
        }
        for &i in &members {
            let named: Vec<String> = differing
                .iter()
                .take(NAMED_KEYS)
                .map(|k| format!("{k}={}", runs[i].settings[k.as_str()]))
                .collect();
            let more = differing.len().saturating_sub(NAMED_KEYS);
            let more = if more > 0 {
                format!(", +{more} more")
            } else {
                String::new()
            };
            runs[i].label = format!("{label} {{{}{more}}}", named.join(", "));
        }
        let keys = differing.into_iter().collect::<Vec<_>>().join(", ");
        notes.push((
            env,
            format!("The runs of {label} were trained or evaluated with different settings ({keys}): they are reported as separate rows."),
        ));
    }
    notes
}

/// The keys present in every map that do not have one value in all of them.
fn differing_keys<'a>(
    mut settings: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeSet<String> {
    let Some(first) = settings.next() else {
        return BTreeSet::new();
    };
    let mut common: BTreeMap<&str, BTreeSet<&str>> = first
        .iter()
        .map(|(k, v)| (k.as_str(), BTreeSet::from([v.as_str()])))
        .collect();
    for s in settings {
        common.retain(|k, _| s.contains_key(*k));
        for (k, values) in common.iter_mut() {
            values.insert(s[*k].as_str());
        }
    }
    common
        .into_iter()
        .filter(|(_, values)| values.len() > 1)
        .map(|(k, _)| k.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_keys_every_run_has_and_that_take_two_values_differ() {
        let a = map(&[("ppo.lr", "1"), ("ppo.gamma", "0.9"), ("new.key", "x")]);
        let b = map(&[("ppo.lr", "1"), ("ppo.gamma", "0.99")]);
        let keys = differing_keys([&a, &b].into_iter());
        assert_eq!(keys, BTreeSet::from(["ppo.gamma".to_string()]));
        assert!(differing_keys([&a, &a].into_iter()).is_empty());
    }

    fn run(env: &str, label: &str, seed: u64, lr: &str) -> Run {
        Run {
            dir: format!("{env}/{label}/{seed}").into(),
            env: env.into(),
            seed,
            settings: map(&[("ppo.lr", lr), ("ppo.gamma", "0.99")]),
            ..Run::of_metrics(label, &[], Vec::new())
        }
    }

    #[test]
    fn a_group_of_two_configs_is_split_and_named_by_what_differs() {
        let mut runs = vec![
            run("ml10", "rl2", 1, "1"),
            run("ml10", "rl2", 1, "2"),
            run("ml10", "rl2", 2, "2"),
            run("ml10", "varibad", 1, "1"),
            run("gridnavi", "rl2", 1, "3"),
        ];
        let notes = split_mixed_groups(&mut runs);
        let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "rl2 {ppo.lr=1}",
                "rl2 {ppo.lr=2}",
                "rl2 {ppo.lr=2}",
                "varibad",
                "rl2"
            ]
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].0, "ml10");
        assert!(notes[0].1.contains("rl2") && notes[0].1.contains("ppo.lr"));
    }

    #[test]
    fn thread_count_and_logging_cadence_are_not_settings() {
        let one = settings_of(
            "seed = 1\n[run]\nthreads = 1\nlog_every = 5\ntotal_frames = 10\n",
            None,
        );
        let two = settings_of(
            "seed = 2\n[run]\nthreads = 2\nlog_every = 50\ntotal_frames = 10\n",
            None,
        );
        assert_eq!(one, two);
        let longer = settings_of("seed = 1\n[run]\nthreads = 1\ntotal_frames = 20\n", None);
        assert_ne!(one, longer);
    }

    #[test]
    fn how_a_run_was_meta_tested_is_a_setting() {
        let eval = |greedy: bool, overrides: &[&str]| -> EvalFile {
            let json = format!(
                r#"{{"split": "test", "num_tasks": 1, "frames_trained": 1,
                    "episode_returns": [1.0], "success_rate": null, "trial_return": 1.0,
                    "greedy": {greedy}, "overrides": {overrides:?}}}"#
            );
            serde_json::from_str(&json).unwrap()
        };
        let config = "seed = 1\n[ppo]\nlr = 0.001\n";
        let sampled = settings_of(config, Some(&eval(false, &[])));
        assert_eq!(sampled["evaluation.greedy"], "false");
        assert_eq!(sampled["evaluation.set"], "[]");
        let mode = settings_of(config, Some(&eval(true, &[])));
        let changed = settings_of(
            config,
            Some(&eval(false, &["glibrl.posterior_span=episode"])),
        );
        let keys = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
            differing_keys([a, b].into_iter())
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&sampled, &mode), ["evaluation.greedy"]);
        assert_eq!(keys(&sampled, &changed), ["evaluation.set"]);
        assert_eq!(changed["evaluation.set"], "[glibrl.posterior_span=episode]");
        // An older eval.json without the keys reads as sampled, unchanged.
        let old: EvalFile = serde_json::from_str(
            r#"{"split": "test", "num_tasks": 1, "frames_trained": 1,
                "episode_returns": [1.0], "success_rate": null, "trial_return": 1.0}"#,
        )
        .unwrap();
        assert_eq!(settings_of(config, Some(&old)), sampled);
    }
}
