//! `bamdp sweep`: the grid configs x seeds, each a normal run folder
//! `OUT/<env>/<method>/seed-<s>/` trained and then meta-tested into `eval.json`.
//! Re-running the same command finishes what is missing: evaluated runs are skipped,
//! runs with a checkpoint resume from it, the rest start. Locally `--jobs` runs go at
//! once, each a child process of this binary (`bamdp sweep-run`) with its output in
//! the run's `train.log`; with `--ray` every run is a Ray task ([`ray`]).

pub mod job;
pub mod ray;

use crate::config::Config;
use crate::error::UserError;
use indicatif::{ProgressBar, ProgressStyle};
use job::{JobState, EVAL_JSON, EXIT_INTERRUPTED, LOG};
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `bamdp sweep`.
#[derive(Clone, Debug)]
pub struct SweepArgs {
    pub configs: Vec<PathBuf>,
    pub seeds: Vec<u64>,
    pub overrides: Vec<String>,
    pub out: PathBuf,
    /// Runs at a time (local); `None`: cores / run.threads.
    pub jobs: Option<usize>,
    /// `Some(None)`: Ray at `RAY_ADDRESS` or a new local instance; `Some(Some(a))`: at `a`.
    pub ray: Option<Option<String>>,
    /// Print nothing but errors and the final line (tests).
    pub quiet: bool,
}

/// One cell of the grid.
#[derive(Clone, Debug)]
pub struct Job {
    pub config_path: PathBuf,
    pub config: Config,
    pub seed: u64,
    /// `OUT/<env>/<method>/seed-<s>`.
    pub dir: PathBuf,
    pub state: JobState,
}

impl Job {
    /// `<env>/<method>/seed-<s>` below the sweep folder.
    pub fn relative(&self) -> String {
        format!(
            "{}/{}/seed-{}",
            self.config.env,
            method_folder(&self.config),
            self.seed
        )
    }
}

/// What a sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepSummary {
    pub total: usize,
    /// Already evaluated before this invocation.
    pub skipped: usize,
    pub finished: usize,
    pub interrupted: usize,
    pub failed: Vec<String>,
}

/// What a run killed before writing its config.toml can have left in its folder.
const LEFT_BEFORE_CONFIG: &[&str] = &[LOG, "metrics.csv", "run.json", "tb"];

/// The name users know the run's method by (`rl2`, `varibased`, `glibrl-smc`, ...; see
/// [`crate::method::COMBINATIONS`]), or `method-improver` for any other pairing.
pub fn method_folder(cfg: &Config) -> String {
    crate::method::COMBINATIONS
        .iter()
        .find(|c| c.method == cfg.method && c.improver == cfg.improver)
        .map_or_else(
            || format!("{}-{}", cfg.method, cfg.improver),
            |c| c.name.to_string(),
        )
}

/// Parses `--seeds`: `1-10`, `1,3,5`, `7`, or a mix (`1-3,8`).
pub fn parse_seeds(s: &str) -> Result<Vec<u64>, UserError> {
    let bad = || {
        UserError::invalid(
            "--seeds",
            s,
            "seeds like 1-10, 1,3,5 or 7 (non-negative integers)",
        )
    };
    let mut seeds = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u64 = a.trim().parse().map_err(|_| bad())?;
        let b: u64 = b.trim().parse().map_err(|_| bad())?;
        if b < a || b - a >= 100_000 {
            return Err(bad());
        }
        seeds.extend(a..=b);
    }
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != seeds.len() || seeds.is_empty() {
        return Err(bad());
    }
    Ok(seeds)
}

/// Resolves every config x seed and checks the output folders: two configs may not
/// write the same folder, and a folder may only hold a run of its own config.
pub fn plan(args: &SweepArgs) -> Result<Vec<Job>, UserError> {
    if args.configs.is_empty() {
        return Err(UserError::Other(
            "sweep needs at least one --config FILE".into(),
        ));
    }
    if args.out.join("config.toml").exists() {
        return Err(UserError::file(
            &args.out,
            "is a run folder; give sweep a folder of its own (runs go to OUT/<env>/<method>/seed-<s>)",
        ));
    }
    let mut jobs: Vec<Job> = Vec::new();
    for path in &args.configs {
        if !path.is_file() {
            return Err(UserError::file(path, "no such config file"));
        }
        for &seed in &args.seeds {
            let config = job::resolve(path, &args.overrides, seed)?;
            let mut j = Job {
                config_path: path.clone(),
                config,
                seed,
                dir: PathBuf::new(),
                state: JobState::New,
            };
            j.dir = args.out.join(j.relative());
            if let Some(other) = jobs.iter().find(|o| o.dir == j.dir) {
                return Err(UserError::file(
                    &j.dir,
                    format!(
                        "both {} and {} write this run folder (same env and method): sweep them into different --out folders",
                        other.config_path.display(),
                        path.display()
                    ),
                ));
            }
            let recorded = j.dir.join("config.toml");
            if recorded.is_file() {
                let text = std::fs::read_to_string(&recorded)
                    .map_err(|e| UserError::file(&recorded, format!("cannot read: {e}")))?;
                if !same_config(&text, &j.config) {
                    return Err(UserError::file(
                        &j.dir,
                        format!(
                            "holds a run of a different config than {} with --set {} and seed {}: use another --out, or remove the folder",
                            path.display(),
                            if args.overrides.is_empty() { "(none)".to_string() } else { args.overrides.join(" ") },
                            seed
                        ),
                    ));
                }
            } else if j.dir.exists()
                && std::fs::read_dir(&j.dir)
                    .map(|mut d| {
                        d.any(|e| {
                            e.map(|e| {
                                !LEFT_BEFORE_CONFIG
                                    .contains(&e.file_name().to_string_lossy().as_ref())
                            })
                            .unwrap_or(true)
                        })
                    })
                    .unwrap_or(true)
            {
                return Err(UserError::file(
                    &j.dir,
                    "exists but holds no run (no config.toml): use another --out, or remove the folder",
                ));
            }
            j.state = job::state(&j.dir, &j.config)?;
            jobs.push(j);
        }
    }
    Ok(jobs)
}

fn describe(state: JobState) -> String {
    match state {
        JobState::Done => "done (skipped)".into(),
        JobState::Trained => "trained: evaluate".into(),
        JobState::Partial {
            update,
            frames,
            total,
        } => format!("resume at update {update} ({frames}/{total} frames)"),
        JobState::New => "start".into(),
    }
}

/// Runs the sweep.
pub fn sweep(args: &SweepArgs) -> Result<SweepSummary, UserError> {
    let jobs = plan(args)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| UserError::file(&args.out, format!("cannot create folder: {e}")))?;
    if !args.quiet {
        for j in &jobs {
            eprintln!("{:<40} {}", j.relative(), describe(j.state));
        }
    }
    let mut summary = SweepSummary {
        total: jobs.len(),
        skipped: jobs.iter().filter(|j| j.state == JobState::Done).count(),
        ..Default::default()
    };
    let todo: Vec<&Job> = jobs.iter().filter(|j| j.state != JobState::Done).collect();
    if !todo.is_empty() {
        match &args.ray {
            Some(address) => ray::run(args, &todo, address.as_deref(), &mut summary)?,
            None => run_local(args, &todo, &mut summary)?,
        }
    }
    if !args.quiet || !summary.failed.is_empty() {
        eprintln!(
            "sweep {}: {} runs, {} already done, {} finished now, {} interrupted, {} failed",
            args.out.display(),
            summary.total,
            summary.skipped,
            summary.finished,
            summary.interrupted,
            summary.failed.len()
        );
    }
    if !summary.failed.is_empty() {
        return Err(UserError::Other(format!(
            "{} of {} runs failed (logs: {}); rerun the same command to retry them",
            summary.failed.len(),
            summary.total,
            summary.failed.join(", ")
        )));
    }
    Ok(summary)
}

/// Runs at a time by default: cores / the largest `run.threads`.
fn default_jobs(jobs: &[&Job]) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = jobs
        .iter()
        .map(|j| j.config.run.threads.max(1))
        .max()
        .unwrap_or(1);
    (cores / threads).max(1)
}

/// Copies a child's output into `dir/train.log`, opening it at the first bytes (by
/// then the child has created the run folder; `--force` may have recreated it).
fn copy_to_log(mut from: impl Read + Send + 'static, dir: PathBuf) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut log: Option<std::fs::File> = None;
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if log.is_none() {
                let _ = std::fs::create_dir_all(&dir);
                log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(LOG))
                    .ok();
            }
            if let Some(f) = log.as_mut() {
                let _ = f.write_all(&buf[..n]);
            }
        }
    })
}

/// The `frames` of the last row of a run's metrics.csv (reads only the file's tail).
pub fn frames_done(dir: &Path) -> u64 {
    let Ok(mut f) = std::fs::File::open(dir.join("metrics.csv")) else {
        return 0;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut tail = String::new();
    let _ = f.read_to_string(&mut tail);
    tail.lines()
        .rev()
        .find_map(|l| l.split(',').nth(1)?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

struct Running {
    child: Child,
    job: usize,
    copiers: Vec<std::thread::JoinHandle<()>>,
}

fn spawn(job: &Job, args: &SweepArgs) -> Result<Running, UserError> {
    let exe = std::env::current_exe()
        .map_err(|e| UserError::Other(format!("cannot find the bamdp executable: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("sweep-run")
        .arg("--config")
        .arg(&job.config_path)
        .arg("--seed")
        .arg(job.seed.to_string())
        .arg("--out")
        .arg(&job.dir);
    for o in &args.overrides {
        cmd.arg("--set").arg(o);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // A run must not outlive its sweep (a killed sweep would leave it training
        // while a rerun starts the same folder again).
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| UserError::Other(format!("cannot start a run of the sweep: {e}")))?;
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    Ok(Running {
        child,
        job: 0,
        copiers: vec![
            copy_to_log(out, job.dir.clone()),
            copy_to_log(err, job.dir.clone()),
        ],
    })
}

fn install_ctrlc() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // Children get the same Ctrl-C and checkpoint themselves; the sweep only stops
    // starting new runs. (If a handler exists already we never stop early.)
    let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
    flag
}

fn run_local(args: &SweepArgs, todo: &[&Job], summary: &mut SweepSummary) -> Result<(), UserError> {
    let parallel = args.jobs.unwrap_or_else(|| default_jobs(todo)).max(1);
    let stop = install_ctrlc();
    let total_frames: u64 = todo.iter().map(|j| j.config.run.total_frames).sum();
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(total_frames);
        b.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {human_pos}/{human_len} frames  {msg}  ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    });
    let mut next = 0;
    let mut running: Vec<Running> = Vec::new();
    let mut done_frames = 0u64;
    let mut settled = 0usize;
    let start = Instant::now();
    let mut last_line = Instant::now();
    loop {
        while running.len() < parallel && next < todo.len() && !stop.load(Ordering::SeqCst) {
            let mut r = spawn(todo[next], args)?;
            r.job = next;
            running.push(r);
            next += 1;
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut i = 0;
        while i < running.len() {
            let status = running[i]
                .child
                .try_wait()
                .map_err(|e| UserError::Other(format!("waiting for a run: {e}")))?;
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let r = running.swap_remove(i);
            for c in r.copiers {
                let _ = c.join();
            }
            let job = todo[r.job];
            settled += 1;
            let line = if job.dir.join(EVAL_JSON).is_file() && status.success() {
                summary.finished += 1;
                done_frames += job.config.run.total_frames;
                "finished"
            } else if status.code() == Some(EXIT_INTERRUPTED) || stop.load(Ordering::SeqCst) {
                summary.interrupted += 1;
                "interrupted (checkpoint kept)"
            } else {
                summary.failed.push(job.dir.join(LOG).display().to_string());
                "FAILED"
            };
            let msg = format!("[{settled}/{}] {} {line}", todo.len(), job.relative());
            match &bar {
                Some(b) => b.println(msg),
                None if !args.quiet => eprintln!("{msg}"),
                None => {}
            }
        }
        let frames: u64 = done_frames
            + running
                .iter()
                .map(|r| frames_done(&todo[r.job].dir))
                .sum::<u64>();
        let msg = format!(
            "runs {settled}/{} done, {} running",
            todo.len(),
            running.len()
        );
        if let Some(b) = &bar {
            b.set_position(frames.min(total_frames));
            b.set_message(msg);
        } else if !args.quiet && last_line.elapsed() > Duration::from_secs(30) {
            last_line = Instant::now();
            eprintln!(
                "{msg}; {frames}/{total_frames} frames; {:.0}s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if stop.load(Ordering::SeqCst) {
        eprintln!("interrupted: rerun the same command to continue the sweep");
    }
    Ok(())
}

/// Whether a run folder's recorded `config.toml` is the config `cfg`. Compared as parsed
/// by this binary, so a run recorded before a config key existed still matches when the
/// key keeps its default (a sweep started by an older bamdp can be finished by a newer).
fn same_config(recorded: &str, cfg: &Config) -> bool {
    let want = cfg.to_toml_string();
    recorded == want
        || Config::from_toml_str(recorded, "config.toml").is_ok_and(|c| c.to_toml_string() == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_configs_match_when_only_defaulted_keys_are_missing() {
        let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/gridnavi/glibrl.toml");
        let cfg = Config::load(&preset, &[]).unwrap();
        let text = cfg.to_toml_string();
        assert!(same_config(&text, &cfg));
        // Recorded by a bamdp without `glibrl.policy_input`: its default applies.
        let older: String = text
            .lines()
            .filter(|l| !l.starts_with("policy_input"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(older, text);
        assert!(same_config(&older, &cfg));
        let other = text.replace("features = 16", "features = 24");
        assert_ne!(other, text);
        assert!(!same_config(&other, &cfg));
        assert!(!same_config("method = \"rl2\"\n", &cfg));
    }

    #[test]
    fn seeds() {
        assert_eq!(parse_seeds("1-3").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_seeds("7").unwrap(), vec![7]);
        assert_eq!(parse_seeds("1,3, 5").unwrap(), vec![1, 3, 5]);
        assert_eq!(parse_seeds("0-1,8").unwrap(), vec![0, 1, 8]);
        for bad in ["", "3-1", "a", "1-", "1,1", "1-3,2", "-1"] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
    }
}
