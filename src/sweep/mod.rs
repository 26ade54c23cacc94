//! `bamdp sweep`: the grid configs x seeds (x named variants, each a set of config
//! overrides), each a normal run folder `OUT/[<variant>/]<env>/<method>/seed-<s>/`
//! trained and then meta-tested into `eval.json`. Runs go seed by seed (every variant
//! and config of seed 1, then of seed 2, ...), so a sweep cut short has the same seeds
//! for every cell of the grid.
//! Re-running the same command finishes what is missing: evaluated runs are skipped,
//! runs with a checkpoint resume from it, the rest start. Locally `--jobs` runs go at
//! once, each a child process of this binary (`bamdp sweep-run`) with its output in
//! the run's `train.log`; with `--ray` every run is a Ray task ([`ray`]).

pub mod job;
pub mod ray;

use crate::config::Config;
use crate::error::UserError;
use crate::run::files;
use files::{EVAL_JSON, LOG};
use indicatif::{ProgressBar, ProgressStyle};
use job::{JobState, EXIT_INTERRUPTED};
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
    /// Named sets of overrides, applied after `overrides`; none: one unnamed cell.
    pub variants: Vec<Variant>,
    pub out: PathBuf,
    /// Runs at a time (local); `None`: cores / run.threads.
    pub jobs: Option<usize>,
    /// `Some(None)`: Ray at `RAY_ADDRESS` or a new local instance; `Some(Some(a))`: at `a`.
    pub ray: Option<Option<String>>,
    /// Print nothing but errors and the final line (tests).
    pub quiet: bool,
}

/// A named set of config overrides swept like a config (`--variant "NAME: KEY=VALUE
/// ..."`): its runs go to `OUT/NAME/...` and carry `run.label = NAME`, so `bamdp
/// report` shows them as `<method> [NAME]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub overrides: Vec<String>,
}

impl Variant {
    /// Parses `NAME: KEY=VALUE KEY=VALUE ...` (`NAME:` alone: no overrides, e.g. the
    /// preset as the baseline). A space inside a value is allowed where the next word
    /// does not look like `KEY=` (`policy.hidden=[256, 256]`).
    ///
    /// ```
    /// use bamdp::sweep::Variant;
    /// let v = Variant::parse("wide: policy.hidden=[256, 256] ppo.lr=1e-3").unwrap();
    /// assert_eq!(v.name, "wide");
    /// assert_eq!(v.overrides, ["policy.hidden=[256, 256]", "ppo.lr=1e-3"]);
    /// assert!(Variant::parse("no colon").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, UserError> {
        let bad = |why: &str| {
            UserError::invalid(
                "--variant",
                s,
                &format!("{why}; write NAME: KEY=VALUE KEY=VALUE ... (NAME of letters, digits, '.', '_', '-')"),
            )
        };
        let (name, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("no ':' after the name"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            || name.starts_with('.')
        {
            return Err(bad("the name is empty or has other characters"));
        }
        let mut overrides: Vec<String> = Vec::new();
        for word in rest.split_whitespace() {
            let starts_key = word.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_'))
            });
            match overrides.last_mut() {
                Some(last) if !starts_key => {
                    last.push(' ');
                    last.push_str(word);
                }
                None if !starts_key => return Err(bad(&format!("{word:?} is not KEY=VALUE"))),
                _ => overrides.push(word.to_string()),
            }
        }
        Ok(Variant {
            name: name.to_string(),
            overrides,
        })
    }
}

/// One cell of the grid.
#[derive(Clone, Debug)]
pub struct Job {
    pub config_path: PathBuf,
    /// The variant's name, if the sweep has variants.
    pub variant: Option<String>,
    /// Every `--set` of this run: the sweep's, then its variant's (and its label).
    pub overrides: Vec<String>,
    pub config: Config,
    pub seed: u64,
    /// `OUT/[<variant>/]<env>/<method>/seed-<s>`.
    pub dir: PathBuf,
    pub state: JobState,
}

impl Job {
    /// `[<variant>/]<env>/<method>/seed-<s>` below the sweep folder.
    pub fn relative(&self) -> String {
        format!(
            "{}{}/{}/seed-{}",
            self.variant
                .as_ref()
                .map_or(String::new(), |v| format!("{v}/")),
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
const LEFT_BEFORE_CONFIG: &[&str] = &[LOG, files::METRICS_CSV, files::RUN_JSON, files::TB];

/// Whether a file named `name` can be what a run killed before its config.toml was in
/// place leaves behind: one of [`LEFT_BEFORE_CONFIG`], or the temporary file of an
/// atomic write of one of them or of config.toml (killed before the rename; on a
/// loaded machine the write's `fsync` makes that window long enough to hit: a test
/// that kills a sweep mid-way did). A sweep restarts such a folder.
fn left_before_config(name: &str) -> bool {
    LEFT_BEFORE_CONFIG.contains(&name)
        || LEFT_BEFORE_CONFIG
            .iter()
            .chain(&[files::CONFIG])
            .any(|of| files::is_atomic_write_temp(name, of))
}

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
    if args.out.join(files::CONFIG).exists() {
        return Err(UserError::file(
            &args.out,
            "is a run folder; give sweep a folder of its own (runs go to OUT/<env>/<method>/seed-<s>)",
        ));
    }
    for path in &args.configs {
        if !path.is_file() {
            return Err(UserError::file(path, "no such config file"));
        }
    }
    for (i, v) in args.variants.iter().enumerate() {
        if args.variants[..i].iter().any(|w| w.name == v.name) {
            return Err(UserError::invalid(
                "--variant",
                &v.name,
                "a name no other --variant of the sweep has",
            ));
        }
    }
    // (name, overrides) per cell: the variants, or the sweep's overrides alone.
    let cells: Vec<(Option<&str>, Vec<String>)> = if args.variants.is_empty() {
        vec![(None, args.overrides.clone())]
    } else {
        args.variants
            .iter()
            .map(|v| {
                let mut o = args.overrides.clone();
                o.push(format!("run.label={}", v.name));
                o.extend(v.overrides.iter().cloned());
                (Some(v.name.as_str()), o)
            })
            .collect()
    };
    let mut jobs: Vec<Job> = Vec::new();
    for &seed in &args.seeds {
        for (variant, overrides) in &cells {
            for path in &args.configs {
                let config = job::resolve(path, overrides, seed).map_err(|e| match variant {
                    Some(v) => UserError::Other(format!("--variant {v}: {e}")),
                    None => e,
                })?;
                let mut j = Job {
                    config_path: path.clone(),
                    variant: variant.map(str::to_string),
                    overrides: overrides.clone(),
                    config,
                    seed,
                    dir: PathBuf::new(),
                    state: JobState::New,
                };
                j.dir = args.out.join(j.relative());
                check_folder(&j, &jobs)?;
                j.state = job::state(&j.dir, &j.config)?;
                jobs.push(j);
            }
        }
    }
    Ok(jobs)
}

/// A run folder may be written by one cell of the grid only, and may only hold a run
/// of that cell's config (or what a run killed before its config.toml leaves).
fn check_folder(j: &Job, planned: &[Job]) -> Result<(), UserError> {
    if let Some(other) = planned.iter().find(|o| o.dir == j.dir) {
        return Err(UserError::file(
            &j.dir,
            format!(
                "both {} and {} write this run folder (same env and method): sweep them into different --out folders",
                other.config_path.display(),
                j.config_path.display()
            ),
        ));
    }
    let recorded = j.dir.join(files::CONFIG);
    if recorded.is_file() {
        let text = std::fs::read_to_string(&recorded)
            .map_err(|e| UserError::file(&recorded, format!("cannot read: {e}")))?;
        if !same_config(&text, &j.config) {
            let sets = if j.overrides.is_empty() {
                "(none)".to_string()
            } else {
                j.overrides.join(" ")
            };
            return Err(UserError::file(
                &j.dir,
                format!(
                    "holds a run of a different config than {} with --set {sets} and seed {}: use another --out, or remove the folder",
                    j.config_path.display(),
                    j.seed
                ),
            ));
        }
        return Ok(());
    }
    let only_left_before_config = |dir: &Path| {
        std::fs::read_dir(dir).is_ok_and(|d| {
            d.into_iter()
                .all(|e| e.is_ok_and(|e| left_before_config(&e.file_name().to_string_lossy())))
        })
    };
    if j.dir.exists() && !only_left_before_config(&j.dir) {
        return Err(UserError::file(
            &j.dir,
            "exists but holds no run (no config.toml): use another --out, or remove the folder",
        ));
    }
    Ok(())
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
    let Ok(mut f) = std::fs::File::open(dir.join(files::METRICS_CSV)) else {
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

fn spawn(job: &Job) -> Result<Running, UserError> {
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
    for o in &job.overrides {
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
            let mut r = spawn(todo[next])?;
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
/// key keeps its default (a sweep started by an older bamdp can be finished by a newer),
/// and with `run.threads` left out: results do not depend on the thread count
/// (ARCHITECTURE.md, "Invariants"), so a rerun may continue a run on other threads.
fn same_config(recorded: &str, cfg: &Config) -> bool {
    let want = cfg.to_toml_string();
    recorded == want
        || Config::from_recorded(recorded).is_some_and(|mut c| {
            c.run.threads = cfg.run.threads;
            c.to_toml_string() == want
        })
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
        // Another thread count is the same run (results are thread-invariant).
        let threads = cfg.run.threads;
        let more = text.replace(
            &format!("threads = {threads}"),
            &format!("threads = {}", threads + 1),
        );
        assert_ne!(more, text);
        assert!(same_config(&more, &cfg));
        let other = text.replace("features = 16", "features = 24");
        assert_ne!(other, text);
        assert!(!same_config(&other, &cfg));
        assert!(!same_config("method = \"rl2\"\n", &cfg));
    }

    #[test]
    fn a_run_killed_before_its_config_is_restarted_and_other_files_are_kept() {
        // The temporary name `files::atomic_write` gives config.toml.
        let temp = files::atomic_temp_name(files::CONFIG, std::process::id(), 7);
        assert!(left_before_config(&temp), "{temp}");
        assert!(!left_before_config("config.toml.tmp"));
        assert!(!left_before_config(".config.toml.tmp.12.x"));
        assert!(left_before_config("metrics.csv") && left_before_config("tb"));
        // A user's file, or the temporary file of another name, is not ours to remove.
        assert!(!left_before_config("notes.txt"));
        assert!(!left_before_config(".notes.txt.tmp.4242.0"));
        assert!(!left_before_config(".config.toml.swp"));
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

    #[test]
    fn variants_parse_values_with_spaces_and_refuse_what_is_not_key_value() {
        let v = Variant::parse(" base :").unwrap();
        assert_eq!((v.name.as_str(), v.overrides.len()), ("base", 0));
        let v = Variant::parse("b128: glibrl.basis_hidden=[128, 128]  seed_offset=2").unwrap();
        assert_eq!(
            v.overrides,
            ["glibrl.basis_hidden=[128, 128]", "seed_offset=2"]
        );
        for bad in [
            "no-colon",
            ": a=1",
            "a b: x=1",
            "../up: x=1",
            ".hidden: x=1",
            "n: 128]",
        ] {
            let e = Variant::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("--variant") && e.contains("NAME: KEY=VALUE"),
                "{bad}: {e}"
            );
        }
    }

    fn args(out: &Path, variants: &[&str]) -> SweepArgs {
        let configs = ["rl2", "varibad"].map(|m| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/gridnavi/{m}.toml"))
        });
        SweepArgs {
            configs: configs.to_vec(),
            seeds: vec![1, 2],
            overrides: vec!["run.total_frames=1000".into(), "ppo.lr=1e-3".into()],
            variants: variants
                .iter()
                .map(|v| Variant::parse(v).unwrap())
                .collect(),
            out: out.to_path_buf(),
            jobs: None,
            ray: None,
            quiet: true,
        }
    }

    #[test]
    fn a_plan_goes_seed_by_seed_and_a_variant_gets_its_folder_label_and_overrides() {
        let tmp = tempfile::tempdir().unwrap();
        let jobs = plan(&args(tmp.path(), &[])).unwrap();
        let order: Vec<String> = jobs.iter().map(Job::relative).collect();
        assert_eq!(
            order,
            [
                "gridnavi/rl2/seed-1",
                "gridnavi/varibad/seed-1",
                "gridnavi/rl2/seed-2",
                "gridnavi/varibad/seed-2"
            ]
        );
        let jobs = plan(&args(tmp.path(), &["base:", "slow: ppo.lr=1e-4"])).unwrap();
        let order: Vec<String> = jobs.iter().map(Job::relative).collect();
        assert_eq!(
            order[..4],
            [
                "base/gridnavi/rl2/seed-1",
                "base/gridnavi/varibad/seed-1",
                "slow/gridnavi/rl2/seed-1",
                "slow/gridnavi/varibad/seed-1"
            ]
        );
        assert_eq!(order.len(), 8);
        for j in &jobs {
            assert_eq!(j.dir, tmp.path().join(j.relative()));
            let name = j.variant.as_deref().unwrap();
            assert_eq!(j.config.run.label, name);
            // The variant's value wins over the sweep's --set.
            let lr = if name == "slow" { 1e-4 } else { 1e-3 };
            assert_eq!(j.config.ppo.lr, lr, "{}", j.relative());
            assert_eq!(j.config.run.total_frames, 1000);
        }
    }

    #[test]
    fn variants_need_distinct_names_and_valid_overrides() {
        let tmp = tempfile::tempdir().unwrap();
        let e = plan(&args(tmp.path(), &["a: ppo.lr=1e-4", "a: ppo.lr=1e-5"])).unwrap_err();
        assert!(e.to_string().contains("--variant"), "{e}");
        let e = plan(&args(tmp.path(), &["neg: ppo.lr=-1"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--variant neg") && e.contains("ppo.lr"), "{e}");
    }

    /// A run folder's recorded config must read back as the config it records, for
    /// every preset, or a rerun on another thread count would refuse the folder.
    #[test]
    fn every_preset_round_trips_through_its_recorded_config() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut checked = 0;
        for dir in std::fs::read_dir(&root).unwrap() {
            let dir = dir.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&dir).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_none_or(|e| e != "toml") {
                    continue;
                }
                let cfg = Config::load(&path, &[]).unwrap();
                let text = cfg.to_toml_string();
                let back = Config::from_toml_str(&text, "config.toml").unwrap();
                assert_eq!(back.to_toml_string(), text, "{}", path.display());
                let mut other = cfg.clone();
                other.run.threads += 1;
                assert!(
                    same_config(&other.to_toml_string(), &cfg),
                    "{}",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(checked > 20, "{checked} presets");
    }
}
