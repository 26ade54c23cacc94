//! One run of a sweep, start to finish: train (fresh, or resumed from its checkpoint),
//! then meta-test on held-out tasks into `eval.json` (with MetaWorld's protocol for
//! natively simulated MetaWorld envs: per-class and per-task success). This is the hidden
//! `bamdp sweep-run` command that local sweeps start as child processes and Ray tasks
//! run on their nodes, so both follow the same rules: a run with an `eval.json` is
//! finished and never redone; a run with a checkpoint continues from it.

use crate::config::Config;
use crate::env::Split;
use crate::error::UserError;
use crate::run::eval_metaworld::Protocol;
use crate::run::{eval, files, train};
use serde::Deserialize;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// Exit code of `sweep-run` when training was interrupted (checkpoint saved).
pub const EXIT_INTERRUPTED: i32 = 3;

/// Options of `bamdp sweep-run`.
#[derive(Clone, Debug)]
pub struct JobArgs {
    pub config: PathBuf,
    pub seed: u64,
    pub overrides: Vec<String>,
    pub out: PathBuf,
}

/// How far a run folder has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Nothing trained yet (no checkpoint).
    New,
    /// Trained up to `frames` of the config's `total` frames (checkpoint at `update`).
    Partial {
        update: u64,
        frames: u64,
        total: u64,
    },
    /// Trained, not yet evaluated.
    Trained,
    /// Evaluated (`eval.json`): nothing to do.
    Done,
}

/// What `run_job` ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    Interrupted,
}

/// The config of `args`: the file with `--set` overrides and `seed = S`.
pub fn resolve(config: &Path, overrides: &[String], seed: u64) -> Result<Config, UserError> {
    let mut all = overrides.to_vec();
    all.push(format!("seed={seed}"));
    Config::load(config, &all)
}

/// How far a run's checkpoint got: its update and the frames trained by then.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Progress {
    pub update: u64,
    pub frames: u64,
}

/// The progress of the run's checkpoint, if it has one.
pub fn checkpoint_progress(run: &Path) -> Result<Option<Progress>, UserError> {
    let path = train::checkpoint_path(run);
    if !path.is_file() {
        return Ok(None);
    }
    let file = std::fs::File::open(&path)
        .map_err(|e| UserError::file(&path, format!("cannot read checkpoint: {e}")))?;
    let p: Progress = serde_json::from_reader(BufReader::new(file))
        .map_err(|e| UserError::file(&path, format!("corrupt checkpoint: {e}")))?;
    Ok(Some(p))
}

/// Where the run folder of `cfg` stands.
pub fn state(run: &Path, cfg: &Config) -> Result<JobState, UserError> {
    if run.join(files::EVAL_JSON).is_file() {
        return Ok(JobState::Done);
    }
    // Frames, not updates: every improver trains until its frames reach
    // `run.total_frames`, and an update's frames depend on the improver (PPO's
    // num_envs x steps_per_update, MAML's meta-batch x episodes x episode length).
    let total = cfg.run.total_frames;
    Ok(match checkpoint_progress(run)? {
        None => JobState::New,
        Some(p) if p.frames >= total => JobState::Trained,
        Some(p) => JobState::Partial {
            update: p.update,
            frames: p.frames,
            total,
        },
    })
}

/// Trains (or continues) and evaluates one run.
pub fn run_job(args: &JobArgs) -> Result<Outcome, UserError> {
    let cfg = resolve(&args.config, &args.overrides, args.seed)?;
    let run = &args.out;
    match state(run, &cfg)? {
        JobState::Done => return Ok(Outcome::Finished),
        JobState::Trained => {}
        JobState::Partial {
            update,
            frames,
            total,
        } => {
            eprintln!(
                "resuming {} at update {update} ({frames} of {total} frames) on {} threads",
                run.display(),
                cfg.run.threads
            );
            // The sweep's thread count, which may differ from the one the run started
            // with (the only key a rerun may change: `same_config` in sweep/mod.rs).
            train::train(&train::TrainArgs {
                config: None,
                overrides: vec![format!("run.threads={}", cfg.run.threads)],
                out: Some(run.clone()),
                resume: true,
                force: false,
                quiet: false,
            })?;
        }
        JobState::New => {
            let mut overrides = args.overrides.clone();
            overrides.push(format!("seed={}", args.seed));
            // A folder without a checkpoint holds at most a run killed before its
            // first checkpoint (the sweep checked its config is this one): start over.
            train::train(&train::TrainArgs {
                config: Some(args.config.clone()),
                overrides,
                out: Some(run.clone()),
                resume: false,
                force: run.exists(),
                quiet: false,
            })?;
        }
    }
    if state(run, &cfg)? != JobState::Trained {
        return Ok(Outcome::Interrupted);
    }
    let protocol = Protocol::for_env(&cfg.env, &cfg.env_options());
    // MetaWorld reports success on the training classes beside the held-out ones: the
    // gap between them is what transfer costs. Written before eval.json, which marks
    // the run done, so a sweep stopped between the two redoes both.
    if protocol.is_metaworld() {
        meta_test(
            run,
            Split::Train,
            protocol,
            files::EVAL_TRAIN_JSON,
            "training",
        )?;
    }
    meta_test(run, Split::Test, protocol, files::EVAL_JSON, "held-out")?;
    Ok(Outcome::Finished)
}

/// Meta-tests `run` on `split` (the config's `eval.num_tasks` tasks: the held-out list
/// in turn, or draws from the training tasks) and writes the report to `file`.
fn meta_test(
    run: &Path,
    split: Split,
    protocol: Protocol,
    file: &str,
    which: &str,
) -> Result<(), UserError> {
    eprintln!("meta-testing {} on {which} tasks", run.display());
    let report = eval::meta_test(&eval::EvalArgs {
        run,
        split,
        episodes_per_task: None,
        num_tasks: None,
        // MetaWorld's agents explore while adapting and act by the mode in the
        // evaluation episodes (Meta-World+'s `eval_action`); the trial protocol samples.
        greedy: protocol.is_metaworld(),
        summary_episodes: None,
        protocol,
        overrides: &[],
    })?;
    let scores = report.scores();
    let mut json = serde_json::to_string_pretty(&report).expect("report serialises");
    json.push('\n');
    let path = run.join(file);
    files::atomic_write(&path, json.as_bytes())?;
    eprintln!(
        "meta-test ({which}): trial return {:.3} ± {:.3} over {} tasks; wrote {}",
        scores.trial_return,
        scores.trial_return_ci95,
        report.num_tasks(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with_checkpoint(update: u64, frames: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let meta = train::checkpoint_path(dir.path());
        std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
        let json =
            format!(r#"{{"format": "bamdp-checkpoint", "update": {update}, "frames": {frames}}}"#);
        std::fs::write(&meta, json).unwrap();
        dir
    }

    #[test]
    fn a_run_is_trained_when_its_checkpoint_reaches_the_frames_whatever_an_update_holds() {
        let mut cfg = Config::default();
        cfg.run.total_frames = 6_400_000;
        // MAML's 20 updates of 320,000 frames (PPO's formula would want thousands).
        let done = run_with_checkpoint(20, 6_400_000);
        assert_eq!(state(done.path(), &cfg).unwrap(), JobState::Trained);
        let half = run_with_checkpoint(10, 3_200_000);
        assert_eq!(
            state(half.path(), &cfg).unwrap(),
            JobState::Partial {
                update: 10,
                frames: 3_200_000,
                total: 6_400_000
            }
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(state(empty.path(), &cfg).unwrap(), JobState::New);
    }
}
