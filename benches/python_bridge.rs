//! Env steps per second through bamdp's Python bridge (src/env/python/): a batch of
//! `--rows` environments on `--workers` worker processes, stepped with uniform random
//! actions for `--seconds`, no learning. Compare with benches/python_raw.py (the same
//! simulators in a plain Python loop and in gymnasium's AsyncVectorEnv).
//!
//! `--parts 1` (default) steps the whole batch in lock-step (`BatchEnv::step`);
//! `--parts P` splits each worker's rows into P parts and drives them double-buffered
//! (`step_begin` / `step_end`): while a worker simulates one part, the next part's
//! actions are already queued in its pipe, so it never waits for a round trip.
//!
//!     cargo bench --bench python_bridge -- --env cheetah-vel --rows 8 --workers 2 --seconds 20
//!     cargo bench --bench python_bridge -- --env cheetah-vel --rows 8 --workers 2 --parts 2
#![allow(clippy::needless_range_loop)] // rows index several parallel arrays

use bamdp::env::python::{Options, PyBatchEnv};
use bamdp::env::{BatchEnv, Split, StepOut};
use bamdp::rng::Rng;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str, d: &str| -> String {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| d.to_string())
    };
    let env_name = get("--env", "cheetah-vel");
    let rows: usize = get("--rows", "8").parse().unwrap();
    let workers: usize = get("--workers", "2").parse().unwrap();
    let seconds: f64 = get("--seconds", "20").parse().unwrap();
    let parts: usize = get("--parts", "1").parse().unwrap();
    let mut opts = Options::from_env().unwrap();
    opts.workers = workers;
    opts.parts = parts;
    let mut env = PyBatchEnv::new(&env_name, rows, Split::Train, 0, None, opts).unwrap();
    let ad = env.spec().action.width();
    let mut out = StepOut::new(rows, env.spec().obs_dim);
    let mut rng = Rng::new(0);
    let mut acts = vec![0.0f32; rows * ad];
    // Warm-up.
    for _ in 0..50 {
        env.step(&acts, &mut out);
    }
    let pids: Vec<u32> = (0..env.num_workers()).map(|w| env.worker_pid(w)).collect();
    let own0 = cpu_seconds(std::process::id());
    let cpu0: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() + own0;
    let start = Instant::now();
    let mut steps = 0u64;
    if parts == 1 {
        while start.elapsed().as_secs_f64() < seconds {
            for a in acts.iter_mut() {
                *a = (2.0 * rng.uniform() - 1.0) as f32;
            }
            env.step(&acts, &mut out);
            steps += rows as u64;
        }
    } else {
        // Double-buffered: every part in flight; collect the oldest, act, resend it.
        let part_rows: Vec<Vec<usize>> = (0..parts).map(|g| env.part_rows(g).collect()).collect();
        for g in 0..parts {
            env.step_begin(g, &acts);
        }
        while start.elapsed().as_secs_f64() < seconds {
            for g in 0..parts {
                env.step_end(g, &mut out);
                for &r in &part_rows[g] {
                    for a in &mut acts[r * ad..(r + 1) * ad] {
                        *a = (2.0 * rng.uniform() - 1.0) as f32;
                    }
                }
                env.step_begin(g, &acts);
                steps += part_rows[g].len() as u64;
            }
        }
        for g in 0..parts {
            env.step_end(g, &mut out);
        }
    }
    let rate = steps as f64 / start.elapsed().as_secs_f64();
    let own_end = cpu_seconds(std::process::id());
    let cpu: f64 = pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>() + own_end - cpu0;
    let own = own_end - own0;
    println!(
        "bridge env={env_name} rows={rows} workers={workers} parts={parts}: {rate:.0} steps/s wall, {:.0} steps per CPU-second (workers + bamdp; bamdp {:.0}%)",
        steps as f64 / cpu,
        100.0 * own / cpu
    );
}

/// User + system CPU seconds of process `pid` so far (Linux /proc; 100 ticks/s).
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the 12th, stime the 13th.
    let rest = s.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}
