//! `bamdp sweep` and `bamdp report` end to end on GridNavi with a tiny budget: a grid of
//! 2 configs x 3 seeds, killed mid-way and rerun (only the missing work is done), a
//! report over it, and the report opened in a real headless browser when Chromium
//! is installed (.ci/run installs it); and a sweep interrupted by Ctrl-C, rerun on
//! another thread count, equal to one never interrupted.

mod run_support;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BAMDP: &str = env!("CARGO_BIN_EXE_bamdp");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// 40 updates of 16 x 60 frames, a checkpoint every 2 updates, a small meta-test.
fn sweep_command(out: &Path, seeds: &str) -> Command {
    let mut c = Command::new(BAMDP);
    c.arg("sweep")
        .arg("--config")
        .arg(repo("configs/gridnavi/rl2.toml"))
        .arg("--config")
        .arg(repo("configs/gridnavi/oracle.toml"))
        .args(["--seeds", seeds])
        .args(["--set", "run.total_frames=38400"])
        .args(["--set", "run.checkpoint_every=2"])
        .args(["--set", "run.threads=1"])
        .args(["--set", "eval.num_tasks=24"])
        .args(["--set", "eval.every_frames=19200"])
        .args(["--jobs", "2", "--out"])
        .arg(out)
        .stdin(Stdio::null());
    c
}

fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for method in ["rl2", "oracle"] {
        for seed in 1..=3 {
            dirs.push(
                out.join("gridnavi")
                    .join(method)
                    .join(format!("seed-{seed}")),
            );
        }
    }
    dirs
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `update` column of a metrics.csv.
fn updates(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

fn kill(child: &mut Child) {
    // SIGKILL: nothing is saved on the way out; the runs die with the sweep.
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sweep_kill_rerun_report_and_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let dirs = run_dirs(&out);

    // 1. Start the sweep and kill it once some runs are finished and another is mid-way.
    let mut child = sweep_command(&out, "1-3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let done = dirs
            .iter()
            .filter(|d| d.join("eval.json").is_file())
            .count();
        let partial = dirs
            .iter()
            .filter(|d| !d.join("eval.json").exists() && d.join("checkpoint/meta.json").is_file())
            .count();
        if done >= 1 && partial >= 1 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the sweep ended ({status}) before it could be killed mid-way: raise the budget"
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "sweep made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(&mut child);
    std::thread::sleep(Duration::from_millis(300)); // the runs die with their parent
    let finished: Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> = dirs
        .iter()
        .filter(|d| d.join("eval.json").is_file())
        .map(|d| {
            let p = d.join("eval.json");
            (
                d.clone(),
                std::fs::read(&p).unwrap(),
                p.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    let unfinished = dirs.len() - finished.len();
    assert!(unfinished >= 1);

    // 2. Rerun: finished runs are skipped, partial ones resume, the rest start.
    let o = sweep_command(&out, "1-3").output().unwrap();
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    for (d, bytes, mtime) in &finished {
        let rel = d.strip_prefix(&out).unwrap().display().to_string();
        assert!(
            log.lines()
                .any(|l| l.starts_with(&rel) && l.contains("done (skipped)")),
            "{rel} not skipped:\n{log}"
        );
        let p = d.join("eval.json");
        assert_eq!(&std::fs::read(&p).unwrap(), bytes, "{rel} was redone");
        assert_eq!(p.metadata().unwrap().modified().unwrap(), *mtime);
    }
    assert!(
        log.contains(&format!("{} finished now", unfinished)),
        "expected {unfinished} runs finished now:\n{log}"
    );
    for d in &dirs {
        assert!(
            d.join("eval.json").is_file(),
            "{} has no eval.json",
            d.display()
        );
        // Exactly one row per update, whatever was killed and resumed.
        assert_eq!(
            updates(d),
            (1..=40).collect::<Vec<u64>>(),
            "{}",
            d.display()
        );
        let eval: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("eval.json")).unwrap()).unwrap();
        assert_eq!(eval["split"], "test");
        assert_eq!(eval["episode_returns"].as_array().unwrap().len(), 4);
        assert!(eval["success_rate"].is_null() || eval["success_rate"].is_array());
        // eval.every_frames: a held-out meta-test at 19200 and 38400 frames.
        let curve = std::fs::read_to_string(d.join("eval.csv")).unwrap();
        let frames: Vec<&str> = curve
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap())
            .collect();
        assert_eq!(frames, ["19200", "38400"], "{}", d.display());
        assert!(std::fs::read_to_string(d.join("train.log"))
            .unwrap()
            .contains("meta-test"));
    }

    // 3. A third run has nothing to do.
    let o = sweep_command(&out, "1-3").output().unwrap();
    assert!(o.status.success());
    assert!(
        text(&o).contains("6 already done, 0 finished now"),
        "{}",
        text(&o)
    );

    // 4. The report.
    let report = tmp.path().join("report");
    let o = Command::new(BAMDP)
        .arg("report")
        .arg(&out)
        .arg("--out")
        .arg(&report)
        .args(["--reps", "500"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let summary = std::fs::read_to_string(report.join("summary.md")).unwrap();
    for needle in [
        "## gridnavi",
        "| rl2 |",
        "| oracle |",
        "IQM [95% CI]",
        "P(row > column)",
        "### meta-test return per episode",
        "| method | runs | episode 1 | episode 2 | episode 3 | episode 4 | success ep 1 / 4 |",
        "### training return at fractions of the frame budget",
    ] {
        assert!(
            summary.contains(needle),
            "summary.md lacks {needle:?}:\n{summary}"
        );
    }
    // Each run's own score, by seed, in the method's row.
    let row = summary.lines().find(|l| l.starts_with("| rl2 |")).unwrap();
    let per_seed = row.split(" | ").nth(4).unwrap();
    let seeds: Vec<&str> = per_seed
        .split(", ")
        .map(|c| c.split(':').next().unwrap())
        .collect();
    assert_eq!(seeds, ["1", "2", "3"], "{row}");
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "index.html reaches the network"
    );
    let figures: Vec<String> = std::fs::read_dir(report.join("figures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for stem in [
        "gridnavi-train-return-frames",
        "gridnavi-train-return-wall",
        "gridnavi-test-return-frames",
        "gridnavi-adaptation-return",
        "gridnavi-profile-return",
        "gridnavi-entropy-frames",
    ] {
        for ext in ["svg", "png"] {
            assert!(
                figures.contains(&format!("{stem}.{ext}")),
                "no {stem}.{ext} in {figures:?}"
            );
        }
        let png = std::fs::read(report.join("figures").join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(html.contains(&format!("figures/{stem}.svg")));
    }

    // 4b. `--relabel`: the unlabelled runs reported under a label, and the page says
    // so; a FROM that labels no run, or no '=', is a user error.
    let relabelled = tmp.path().join("relabelled");
    let report_with = |relabel: &str| {
        Command::new(BAMDP)
            .arg("report")
            .arg(&out)
            .arg("--out")
            .arg(&relabelled)
            .args(["--reps", "50", "--relabel", relabel])
            .output()
            .unwrap()
    };
    let o = report_with("=merged");
    assert!(o.status.success(), "{}", text(&o));
    let merged = std::fs::read_to_string(relabelled.join("summary.md")).unwrap();
    assert!(merged.contains("| rl2 [merged] |"), "{merged}");
    assert!(!merged.contains("| rl2 |"), "{merged}");
    assert!(
        merged.contains(r#"Runs labelled "" are reported as "merged" (--relabel)."#),
        "{merged}"
    );
    for (bad, needles) in [
        ("nosuch=x", vec!["--relabel", "nosuch=x", r#"found: """#]),
        ("nosuch", vec!["--relabel", "nosuch", "FROM=TO"]),
    ] {
        let o = report_with(bad);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        for n in needles {
            assert!(text(&o).contains(n), "{bad}: no {n:?} in {}", text(&o));
        }
    }

    // 5. A real browser.
    browser_check(&report, tmp.path());
}

/// Opens index.html in headless Chromium: no console errors, every figure decoded
/// (the page's script sets data-figures="N/N"), and a screenshot saved beside it.
fn browser_check(report: &Path, tmp: &Path) {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        eprintln!(
            "NOTICE: /usr/bin/chromium is not installed: skipping the browser check of the report"
        );
        return;
    }
    let index = report.join("index.html");
    let url = format!("file://{}", index.display());
    let common = |profile: &str| {
        let mut c = Command::new(chromium);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--allow-file-access-from-files",
        ])
        .arg(format!("--user-data-dir={}", tmp.join(profile).display()))
        .stdin(Stdio::null());
        c
    };
    let o = common("profile-dom")
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "chromium failed:\n{stderr}");
    let console_errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("ERROR") || l.contains("Uncaught")))
        .collect();
    assert!(
        console_errors.is_empty(),
        "console errors:\n{}",
        console_errors.join("\n")
    );
    let marker = dom
        .split("data-figures=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("the page's script did not run:\n{dom}"));
    let (loaded, total) = marker.split_once('/').unwrap();
    assert!(total.parse::<usize>().unwrap() >= 8, "{marker}");
    assert_eq!(loaded, total, "figures that did not load: {marker}");
    let shot = report.join("screenshot.png");
    let o = common("profile-shot")
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,2400")
        .arg(&url)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // Keep a copy for people to look at (target/ is not committed).
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    std::fs::copy(&shot, &keep).unwrap();
    eprintln!("report screenshot: {}", keep.display());
}

/// A sweep interrupted by Ctrl-C and rerun with another `run.threads` continues its
/// runs on the new thread count (the only key a rerun may change) and ends with the
/// metrics and meta-test of a sweep that was never interrupted.
#[test]
fn rerun_on_another_thread_count_resumes_exactly() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let sweep = |out: &Path, threads: usize| {
        let mut c = Command::new(BAMDP);
        c.arg("sweep")
            .arg("--config")
            .arg(repo("configs/gridnavi/rl2.toml"))
            .args(["--seeds", "1"])
            .args(["--set", "run.total_frames=192000"])
            .args(["--set", "run.checkpoint_every=2"])
            .args(["--set", "eval.num_tasks=24"])
            .args(["--set", &format!("run.threads={threads}")])
            .args(["--jobs", "1", "--out"])
            .arg(out)
            .stdin(Stdio::null());
        c
    };
    let whole = tmp.path().join("whole");
    let o = sweep(&whole, 1).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let split = tmp.path().join("split");
    let run = split.join("gridnavi/rl2/seed-1");
    // Its own process group, so that Ctrl-C reaches the sweep and its run together,
    // as from a terminal.
    let mut child = sweep(&split, 1)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while updates_so_far(&run) < 4 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it could be interrupted: raise the budget"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "training did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    // Not finished: exit code 3, so that a script running sweeps in a row stops.
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let done = updates(&run).len();
    assert!(
        done < 200 && !run.join("eval.json").exists(),
        "interrupt came too late to test anything ({done} updates)"
    );
    let o = sweep(&split, 2).output().unwrap();
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("1 finished now"), "{log}");
    assert!(
        std::fs::read_to_string(run.join("train.log"))
            .unwrap()
            .contains("on 2 threads"),
        "the rerun did not resume on its own thread count"
    );
    assert!(std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .contains("threads = 2"));
    let a = whole.join("gridnavi/rl2/seed-1");
    assert_eq!(run_support::metrics(&a), run_support::metrics(&run));
    let returns = |d: &Path| {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("eval.json")).unwrap()).unwrap();
        v["episode_returns"].clone()
    };
    assert_eq!(returns(&a), returns(&run));
}

/// Rows of a metrics.csv being written (0 before it exists).
fn updates_so_far(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.csv"))
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0)
}
