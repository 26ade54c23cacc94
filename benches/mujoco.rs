//! Env steps per second, native MuJoCo (src/env/mujoco/) against the Python bridge
//! (src/env/python/), side by side in one run: a batch of `--rows` rows stepped with
//! uniform random actions for `--seconds` per measurement, on 1 and 2 threads (native:
//! `run.threads`; bridge: worker processes), no learning. Prints one JSON object per
//! line with `steps_per_s`; native lines add `mj_step_fraction`, the share of the
//! batch's time that a bare loop of the same `mj_step` calls takes (same model, same
//! number of calls: the rest is bamdp's reward, observation, reset and thread work).
//! Envs without a native port get bridge figures only.
//!
//!     cargo bench --bench mujoco -- --seconds 5 --rows 8
//!     cargo bench --bench mujoco -- --envs cheetah-vel,ml1-reach
#![allow(clippy::needless_range_loop)]

use bamdp::env::mujoco::{is_ported, Backend};
use bamdp::env::{EnvOptions, Split, StepOut};
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
    let envs = get(
        "--envs",
        "cheetah-vel,ant-dir,ml1-reach,ml1-push,ml1-pick-place,ml10,ml45",
    );
    let rows: usize = get("--rows", "8").parse().unwrap();
    let seconds: f64 = get("--seconds", "5").parse().unwrap();
    for env in envs.split(',') {
        for threads in [1, 2] {
            let bridge = steps_per_s(env, Backend::Python, rows, threads, seconds);
            let mut line = serde_json::json!({
                "env": env, "rows": rows, "threads": threads,
                "bridge_steps_per_s": bridge.0.round(),
            });
            if is_ported(env) {
                let native = steps_per_s(env, Backend::Native, rows, threads, seconds);
                let bare = bare_mj_step_seconds(env, native.1);
                line["steps_per_s"] = native.0.round().into();
                line["native_over_bridge"] = ((native.0 / bridge.0 * 100.0).round() / 100.0).into();
                // Per thread: the bare loop runs on one thread.
                let native_thread_s = native.1 as f64 / native.0 * threads as f64;
                line["mj_step_fraction"] =
                    ((bare / native_thread_s * 1000.0).round() / 1000.0).into();
            } else {
                line["steps_per_s"] = serde_json::Value::Null;
                line["native"] = "not ported".into();
            }
            println!("{line}");
        }
    }
}

/// (steps per second, steps taken) of a `backend` batch of `env`.
fn steps_per_s(
    env: &str,
    backend: Backend,
    rows: usize,
    threads: usize,
    seconds: f64,
) -> (f64, u64) {
    if backend == Backend::Python {
        std::env::set_var("BAMDP_ENV_WORKERS", threads.to_string());
    }
    let opts = EnvOptions {
        backend,
        threads,
        ..EnvOptions::default()
    };
    let mut batch = bamdp::env::make(env, rows, Split::Train, 0, &opts).unwrap();
    let ad = batch.spec().action.width();
    let mut out = StepOut::new(rows, batch.spec().obs_dim);
    let mut rng = Rng::new(0);
    let mut acts = vec![0.0f32; rows * ad];
    for _ in 0..50 {
        batch.step(&acts, &mut out);
    }
    let start = Instant::now();
    let mut steps = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for a in acts.iter_mut() {
            *a = 2.0 * rng.uniform_f32() - 1.0;
        }
        batch.step(&acts, &mut out);
        steps += rows as u64;
    }
    (steps as f64 / start.elapsed().as_secs_f64(), steps)
}

/// Seconds a bare loop of `steps` env steps' worth of `mj_step` calls (5 per env step,
/// random controls) takes on one thread, on `env`'s model (for a multi-class env such
/// as `ml10` or `ml45`, cycling through its classes' models every 200 steps).
fn bare_mj_step_seconds(env: &str, steps: u64) -> f64 {
    let family = bamdp::env::mujoco::family(env, Split::Train, 0).unwrap();
    let mut row = family.row().unwrap();
    let mut obs = vec![0.0f32; family.shape().obs_dim];
    // Task indices 50 apart: one per class of a MetaWorld list (0 for locomotion).
    let n = family.num_tasks() as u64;
    let task = |chunk: u64| if n == 0 { 0 } else { (chunk * 50 % n) as u32 };
    row.reset(task(0), 1.0, 0, &mut obs);
    row.bare_steps(1, 0.0); // warm-up
    let mut rng = Rng::new(1);
    let mut left = steps;
    let mut seconds = 0.0;
    let mut chunk = 0;
    while left > 0 {
        let k = left.min(200);
        let start = Instant::now();
        row.bare_steps(k as usize, 2.0 * rng.uniform() - 1.0);
        seconds += start.elapsed().as_secs_f64();
        chunk += 1;
        row.reset(task(chunk), 1.0, left, &mut obs);
        left -= k;
    }
    seconds
}
