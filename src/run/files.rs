//! Run folders on disk: creating, overwriting or resuming them, atomic file writes,
//! and the provenance record (`run.json`) saying what produced a run.

use crate::error::UserError;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

// The names of what a run folder holds, in the order a run writes them.

/// The resolved config the run trains (what `--resume` reads back).
pub const CONFIG: &str = "config.toml";
/// One row of training metrics per update.
pub const METRICS_CSV: &str = "metrics.csv";
/// The provenance record: seed, version, git revision, threads.
pub const RUN_JSON: &str = "run.json";
/// The versions of the simulators behind the run (only for envs that have them).
pub const SIMULATORS_JSON: &str = "simulators.json";
/// TensorBoard event files.
pub const TB: &str = "tb";
/// The checkpoint directory; its presence makes a run resumable.
pub const CHECKPOINT: &str = "checkpoint";
/// The run's log (training progress and evaluation), written by the sweep.
pub const LOG: &str = "train.log";
/// Held-out meta-tests during training (`eval.every_frames`), one row each.
pub const EVAL_CSV: &str = "eval.csv";
/// The evaluation of a finished run, written by the sweep.
pub const EVAL_JSON: &str = "eval.json";
/// The same protocol on the training tasks, written by the user
/// (`bamdp eval --split train ... --json > RUN/eval-train.json`); the report reads it.
pub const EVAL_TRAIN_JSON: &str = "eval-train.json";

/// Whether `name` is a temporary file of [`atomic_write`] writing `of`
/// ([`atomic_temp_name`]), left behind by a process killed before its rename.
pub fn is_atomic_write_temp(name: &str, of: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(of))
        .and_then(|rest| rest.strip_prefix(".tmp."))
        .is_some_and(|tail| {
            let mut parts = tail.split('.');
            let mut number = || {
                parts
                    .next()
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            };
            number() && number() && parts.next().is_none()
        })
}

/// The temporary file [`atomic_write`] writes `of` through: `.{of}.tmp.{pid}.{n}`.
pub(crate) fn atomic_temp_name(of: &str, pid: u32, n: u64) -> String {
    format!(".{of}.tmp.{pid}.{n}")
}

/// Write `bytes` to `path` atomically: readers see either the old file or the whole
/// new one, never a partial write. Writes a uniquely named temporary file in the same
/// directory, syncs it to disk and renames it over `path`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), UserError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let fail = |what: &str, e: std::io::Error| UserError::file(path, format!("{what}: {e}"));
    let name = path
        .file_name()
        .ok_or_else(|| UserError::file(path, "cannot write: not a file path"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = dir.join(atomic_temp_name(
        &name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| fail("cannot write", e))?;
        file.write_all(bytes).map_err(|e| fail("cannot write", e))?;
        file.sync_all()
            .map_err(|e| fail("cannot sync to disk", e))?;
        drop(file);
        fs::rename(&temp, path).map_err(|e| fail("cannot replace", e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
        return result;
    }
    // Make the rename itself durable (best effort: not every platform can open a directory).
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// How to treat an existing run folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Start a new run; the folder must not exist or be empty.
    Fresh,
    /// Start a new run, deleting whatever the folder holds.
    Force,
    /// Continue the run in the folder from its checkpoint.
    Resume,
}

/// Get `dir` ready for a run in `mode` (see [`RunMode`]); creates it with its parents
/// when needed.
pub fn prepare_run_dir(dir: &Path, mode: RunMode) -> Result<(), UserError> {
    match mode {
        RunMode::Fresh => {
            if dir.exists() {
                if !dir.is_dir() {
                    return Err(UserError::file(dir, "exists and is not a directory"));
                }
                let mut entries = fs::read_dir(dir)
                    .map_err(|e| UserError::file(dir, format!("cannot read directory: {e}")))?;
                if entries.next().is_some() {
                    return Err(UserError::file(
                        dir,
                        "already exists; use --resume to continue it or --force to overwrite",
                    ));
                }
            }
            create_dir(dir)
        }
        RunMode::Force => {
            if dir.is_dir() {
                fs::remove_dir_all(dir).map_err(|e| {
                    UserError::file(dir, format!("cannot remove the old run (--force): {e}"))
                })?;
            } else if dir.exists() {
                return Err(UserError::file(dir, "exists and is not a directory"));
            }
            create_dir(dir)
        }
        RunMode::Resume => {
            let checkpoint = dir.join(CHECKPOINT);
            if !checkpoint.exists() {
                return Err(UserError::file(
                    checkpoint,
                    "no checkpoint to resume from (start the run without --resume)",
                ));
            }
            Ok(())
        }
    }
}

fn create_dir(dir: &Path) -> Result<(), UserError> {
    fs::create_dir_all(dir)
        .map_err(|e| UserError::file(dir, format!("cannot create run directory: {e}")))
}

/// What produced a run, written to `run.json` in its folder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// bamdp version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The commit this binary was built from (`git rev-parse HEAD` at build time, see
    /// build.rs); `None` when it was not built from a git checkout.
    pub git_revision: Option<String>,
    /// Whether tracked files differed from that commit when the binary was built.
    pub git_dirty: Option<bool>,
    pub seed: u64,
    /// The command line, arguments lossily converted to UTF-8.
    pub command: Vec<String>,
    /// Start time, seconds since the Unix epoch.
    pub started_unix: u64,
    pub hostname: Option<String>,
    /// Worker threads used for gradient computation.
    pub threads: usize,
}

impl Provenance {
    /// Gather provenance for a run now. Never fails: what cannot be found is `None`.
    pub fn collect(seed: u64, threads: usize) -> Provenance {
        let built = |value: &'static str| Some(value).filter(|v| !v.is_empty());
        let git_revision = built(env!("BAMDP_GIT_REVISION")).map(str::to_string);
        let git_dirty = built(env!("BAMDP_GIT_DIRTY")).map(|v| v == "true");
        Provenance {
            version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision,
            git_dirty,
            seed,
            command: std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            started_unix: unix_now(),
            hostname: hostname(),
            threads,
        }
    }
}

/// Write `provenance` as pretty JSON to `dir/run.json`, atomically.
pub fn write_run_json(dir: &Path, provenance: &Provenance) -> Result<(), UserError> {
    let path = dir.join(RUN_JSON);
    let mut json = serde_json::to_string_pretty(provenance)
        .map_err(|e| UserError::file(&path, format!("cannot serialise: {e}")))?;
    json.push('\n');
    atomic_write(&path, json.as_bytes())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// This machine's host name, if it can be found.
pub fn hostname() -> Option<String> {
    let from_file = |p: &str| fs::read_to_string(p).ok();
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
