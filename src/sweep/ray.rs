//! `bamdp sweep --ray [ADDRESS]`: every run a Ray task, through the driver script
//! python/bamdp_sweep_ray.py (Ray's API is Python). bamdp writes the job list (each
//! run's resolved config, folder and CPU reservation) next to the sweep, starts the
//! driver, and reads one `RESULT status folder` line per settled run; the driver
//! brings each run folder back into the sweep folder.
//!
//! A task reserves `run.threads` CPUs, plus `BAMDP_ENV_WORKERS` (default 1, passed on
//! to the run) for envs simulated by Python worker processes.

use super::{Job, SweepArgs, SweepSummary};
use crate::env::python::Family;
use crate::error::UserError;
use crate::run::files::atomic_write;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The driver script shipped in the repository's python/ folder.
const DRIVER: &str = include_str!("../../python/bamdp_sweep_ray.py");

fn python() -> String {
    std::env::var("BAMDP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails with a one-line message unless `import ray` works.
fn check_ray_installed() -> Result<(), UserError> {
    let py = python();
    let ok = Command::new(&py)
        .args(["-c", "import ray"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| UserError::Other(format!("--ray: cannot start {py}: {e}")))?
        .success();
    if !ok {
        return Err(UserError::Other(format!(
            "--ray needs the Python package `ray` for {py} (pip install -r python/requirements.txt; BAMDP_PYTHON picks another interpreter)"
        )));
    }
    Ok(())
}

/// Runs `todo` as Ray tasks; fills in `summary`.
pub fn run(
    args: &SweepArgs,
    todo: &[&Job],
    address: Option<&str>,
    summary: &mut SweepSummary,
) -> Result<(), UserError> {
    check_ray_installed()?;
    let exe = std::env::current_exe()
        .map_err(|e| UserError::Other(format!("cannot find the bamdp executable: {e}")))?;
    let env_workers: usize = std::env::var("BAMDP_ENV_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1);
    let jobs: Vec<serde_json::Value> = todo
        .iter()
        .map(|j| {
            let python_env = Family::parse(&j.config.env).is_some();
            let mut env = serde_json::Map::new();
            let mut cpus = j.config.run.threads.max(1);
            if python_env {
                cpus += env_workers;
                env.insert("BAMDP_ENV_WORKERS".into(), env_workers.to_string().into());
            }
            serde_json::json!({
                "relative": j.relative(),
                "config": j.config.to_toml_string(),
                "seed": j.seed,
                "num_cpus": cpus,
                "env": env,
            })
        })
        .collect();
    let local_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = std::path::absolute(&args.out)
        .map_err(|e| UserError::file(&args.out, format!("cannot resolve path: {e}")))?;
    let spec = serde_json::json!({
        "address": address,
        "out": out,
        "bamdp": exe,
        "local_cpus": local_cpus,
        "jobs": jobs,
    });
    let spec_path = args.out.join(".ray-jobs.json");
    atomic_write(&spec_path, spec.to_string().as_bytes())?;
    let driver_path: PathBuf = args.out.join(".bamdp_sweep_ray.py");
    atomic_write(&driver_path, DRIVER.as_bytes())?;
    let mut child = Command::new(python())
        .arg(&driver_path)
        .arg(&spec_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| UserError::Other(format!("--ray: cannot start the driver: {e}")))?;
    let stderr = child.stderr.take().expect("piped stderr");
    let err_thread = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.push(line);
        }
        lines
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let mut settled = 0;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Some(rest) = line.strip_prefix("RESULT ") else {
            continue;
        };
        let (status, relative) = rest.split_once(' ').unwrap_or((rest, ""));
        settled += 1;
        match status {
            "finished" => summary.finished += 1,
            "interrupted" => summary.interrupted += 1,
            _ => summary.failed.push(
                args.out
                    .join(relative)
                    .join(super::LOG)
                    .display()
                    .to_string(),
            ),
        }
        if !args.quiet {
            eprintln!("[{settled}/{}] {relative} {status} (ray)", todo.len());
        }
    }
    let status = child
        .wait()
        .map_err(|e| UserError::Other(format!("--ray: waiting for the driver: {e}")))?;
    let errors = err_thread.join().unwrap_or_default();
    let _ = std::fs::remove_file(&spec_path);
    let _ = std::fs::remove_file(&driver_path);
    if !status.success() {
        let message = errors
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "the Ray driver failed ({status}): {}",
                    errors.last().cloned().unwrap_or_default()
                )
            });
        return Err(UserError::Other(message));
    }
    Ok(())
}
