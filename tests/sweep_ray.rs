//! `bamdp sweep --ray` on a Ray head started by this test on 127.0.0.1: a run killed
//! mid-way beforehand resumes from its checkpoint inside a Ray task, the other runs
//! start there, and every folder comes back with its evaluation.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BAMDP: &str = env!("CARGO_BIN_EXE_bamdp");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn sweep(out: &Path, configs: &[&str], seeds: &str) -> Command {
    let mut c = Command::new(BAMDP);
    c.arg("sweep");
    for cfg in configs {
        c.arg("--config")
            .arg(repo(&format!("configs/gridnavi/{cfg}.toml")));
    }
    c.args(["--seeds", seeds])
        .args(["--set", "run.total_frames=38400"])
        .args(["--set", "run.checkpoint_every=2"])
        .args(["--set", "run.threads=1"])
        .args(["--set", "eval.num_tasks=24"])
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null());
    c
}

/// A Ray head in the foreground (`--block`), stopped when dropped.
struct RayHead(Child);

impl Drop for RayHead {
    fn drop(&mut self) {
        // SIGTERM: `ray start --block` then stops the processes it started.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn updates(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn sweep_on_a_local_ray_cluster_resumes_a_killed_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");

    // 1. A run killed mid-way (locally): it has a checkpoint and no evaluation.
    let partial = out.join("gridnavi/rl2/seed-1");
    let mut child = sweep(&out, &["rl2"], "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !partial.join("checkpoint/meta.json").is_file() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        assert!(start.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!partial.join("eval.json").exists());

    // 2. A Ray head on 127.0.0.1 with 2 CPUs.
    let port = free_port();
    let ray_tmp = tmp.path().join("ray");
    let head = Command::new("python3")
        .args([
            "-c",
            "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()",
        ])
        .args([
            "start",
            "--head",
            "--block",
            "--num-cpus=2",
            "--include-dashboard=false",
        ])
        .arg("--node-ip-address=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--temp-dir={}", ray_tmp.display()))
        .env("RAY_USAGE_STATS_ENABLED", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with ray (pip install -r python/requirements.txt)");
    let _head = RayHead(head);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the Ray head did not come up"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // 3. The grid on Ray: the killed run resumes, the others start.
    let address = format!("127.0.0.1:{port}");
    let o = sweep(&out, &["rl2", "oracle"], "1-2")
        .args(["--ray", &address])
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("gridnavi/rl2/seed-1") && l.contains("resume at update")),
        "{log}"
    );
    assert!(log.contains("0 already done, 4 finished now"), "{log}");
    for method in ["rl2", "oracle"] {
        for seed in 1..=2 {
            let d = out.join(format!("gridnavi/{method}/seed-{seed}"));
            assert!(
                d.join("eval.json").is_file(),
                "{}: no eval.json\n{log}",
                d.display()
            );
            assert_eq!(
                updates(&d),
                (1..=40).collect::<Vec<u64>>(),
                "{}",
                d.display()
            );
        }
    }
    let resumed = std::fs::read_to_string(partial.join("train.log")).unwrap();
    assert!(resumed.contains("resuming"), "{resumed}");
    assert!(!out.join(".ray-jobs.json").exists());

    // 4. Nothing left to do.
    let o = sweep(&out, &["rl2", "oracle"], "1-2")
        .args(["--ray", &address])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && log.contains("4 already done, 0 finished now"),
        "{log}"
    );
}
