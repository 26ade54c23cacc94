//! Bad input to `bamdp sweep` and `bamdp report`: exit code 2 and one clear line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BAMDP: &str = env!("CARGO_BIN_EXE_bamdp");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn bamdp(args: &[&str]) -> Command {
    let mut c = Command::new(BAMDP);
    c.args(args).stdin(Stdio::null());
    c
}

/// Exit code 2 and a single `error: ...` line containing every needle.
fn assert_user_error(o: Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr:\n{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "stderr:\n{stderr}");
    for n in needles {
        assert!(errors[0].contains(n), "{n:?} not in {:?}", errors[0]);
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn rl2() -> String {
    repo("configs/gridnavi/rl2.toml").display().to_string()
}

#[test]
fn unknown_config() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let o = bamdp(&[
        "sweep",
        "--config",
        "configs/nope.toml",
        "--seeds",
        "1-2",
        "--out",
    ])
    .arg(&out)
    .output()
    .unwrap();
    assert_user_error(o, &["configs/nope.toml", "no such config file"]);
    assert!(!out.exists(), "nothing is written for a bad sweep");
}

#[test]
fn bad_seeds_and_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let o = bamdp(&["sweep", "--config", &rl2(), "--seeds", "5-1", "--out"])
        .arg(tmp.path().join("s"))
        .output()
        .unwrap();
    assert_user_error(o, &["--seeds", "5-1"]);
    let o = bamdp(&[
        "sweep",
        "--config",
        &rl2(),
        "--seeds",
        "1",
        "--set",
        "ppo.nope=1",
        "--out",
    ])
    .arg(tmp.path().join("s"))
    .output()
    .unwrap();
    assert_user_error(o, &["nope"]);
}

#[test]
fn bad_variants() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    for (variants, needles) in [
        (
            &["d24 glibrl.features=24"][..],
            &["--variant", "NAME: KEY=VALUE"][..],
        ),
        (
            &["a: ppo.lr=1e-4", "a: ppo.lr=1e-5"],
            &["--variant", "\"a\""],
        ),
        (&["fast: ppo.lr=-1"], &["--variant fast", "ppo.lr"]),
        (&["typo: ppo.nope=1"], &["--variant typo", "nope"]),
    ] {
        let mut args = vec!["sweep", "--config", "", "--seeds", "1"];
        let config = rl2();
        args[2] = &config;
        for v in variants {
            args.extend(["--variant", v]);
        }
        args.push("--out");
        let o = bamdp(&args).arg(&out).output().unwrap();
        assert_user_error(o, needles);
        assert!(!out.exists(), "nothing is written for a bad sweep");
    }
}

#[test]
fn overlapping_output_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    // Two configs for the same env and method write the same run folders.
    let o = bamdp(&[
        "sweep",
        "--config",
        &rl2(),
        "--config",
        &rl2(),
        "--seeds",
        "1",
        "--out",
    ])
    .arg(&out)
    .output()
    .unwrap();
    assert_user_error(o, &["gridnavi/rl2/seed-1", "same env and method"]);
    // A run folder of another config is never touched.
    let run = out.join("gridnavi/rl2/seed-1");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.toml"), "method = \"rl2\"\n").unwrap();
    let o = bamdp(&["sweep", "--config", &rl2(), "--seeds", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_user_error(o, &["seed-1", "different config"]);
    assert_eq!(
        std::fs::read_to_string(run.join("config.toml")).unwrap(),
        "method = \"rl2\"\n"
    );
    // A folder that is not a run at all.
    let other = out.join("gridnavi/rl2/seed-2");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let o = bamdp(&["sweep", "--config", &rl2(), "--seeds", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_user_error(o, &["seed-2", "holds no run"]);
    // The sweep folder itself being a run folder.
    let o = bamdp(&["sweep", "--config", &rl2(), "--seeds", "1", "--out"])
        .arg(&run)
        .output()
        .unwrap();
    assert_user_error(o, &["is a run folder"]);
}

#[test]
fn ray_missing_or_unreachable() {
    let tmp = tempfile::tempdir().unwrap();
    // An interpreter without site-packages has no `ray`.
    let python = tmp.path().join("python-without-ray");
    std::fs::write(&python, "#!/bin/sh\nexec python3 -S \"$@\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = bamdp(&[
        "sweep",
        "--config",
        &rl2(),
        "--seeds",
        "1",
        "--ray",
        "--out",
    ])
    .arg(tmp.path().join("a"))
    .env("BAMDP_PYTHON", &python)
    .output()
    .unwrap();
    assert_user_error(o, &["--ray", "`ray`"]);
    // Nothing listens on port 1.
    let o = bamdp(&[
        "sweep",
        "--config",
        &rl2(),
        "--seeds",
        "1",
        "--ray",
        "127.0.0.1:1",
        "--out",
    ])
    .arg(tmp.path().join("b"))
    .output()
    .unwrap();
    assert_user_error(o, &["cannot reach the Ray cluster at 127.0.0.1:1"]);
}

#[test]
fn report_without_runs_or_evaluations() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = bamdp(&["report"])
        .arg(&empty)
        .arg("--out")
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert_user_error(o, &["no run folders"]);
    // A real run, trained but never evaluated.
    let runs = tmp.path().join("runs");
    let o = bamdp(&[
        "train",
        "--config",
        &rl2(),
        "--set",
        "run.total_frames=960",
        "--out",
    ])
    .arg(runs.join("one"))
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bamdp(&["report"])
        .arg(&runs)
        .arg("--out")
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert_user_error(o, &["no evaluations", "eval.json"]);
    let o = bamdp(&["report", "--out"])
        .arg(tmp.path().join("r"))
        .arg(tmp.path().join("missing"))
        .output()
        .unwrap();
    assert_user_error(o, &["missing", "no such folder"]);
}
