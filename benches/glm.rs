//! GLM belief micro-benchmarks: the streaming rank-1 update per env-step and the
//! batched trial loss (forward + backward). Plain `Instant` timing: warm-up, then the
//! median of several repeats. Run with `cargo bench --bench glm`.

use bamdp::belief::glm::{GlmStream, MniwPrior, PriorGrad, TrialBatchLoss};
use bamdp::rng::Rng;
use std::hint::black_box;
use std::time::Instant;

/// Median seconds per call of `f` over `repeats` timed runs of `inner` calls each.
fn median_secs(repeats: usize, inner: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..inner.max(3) {
        f();
    }
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..inner {
                f();
            }
            t.elapsed().as_secs_f64() / inner as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[repeats / 2]
}

fn prior(d: usize, m: usize) -> MniwPrior {
    MniwPrior::isotropic(d, m, 1.0, 0.5, m as f64 + 2.0).unwrap()
}

fn stream_bench(d: usize, m: usize) {
    let rows = 16;
    let steps = 100;
    let mut rng = Rng::new(1);
    let c: Vec<f64> = (0..steps * rows * d).map(|_| rng.normal()).collect();
    let y: Vec<f64> = (0..steps * rows * m).map(|_| rng.normal()).collect();
    let p = prior(d, m);
    let mut s = GlmStream::new(&p, rows).unwrap();
    let mask = vec![true; rows];
    // One call = a whole trial of `steps` batched updates over `rows` rows.
    let per_trial = median_secs(9, 5, || {
        s.reset_rows(&p, &mask).unwrap();
        for t in 0..steps {
            s.update_all(
                &c[t * rows * d..(t + 1) * rows * d],
                &y[t * rows * m..(t + 1) * rows * m],
            );
        }
        black_box(s.mean_row(0)[0]);
    });
    let per_update = per_trial / (steps * rows) as f64;
    println!(
        "stream update  d={d:>2} m={m:>2} rows={rows}: {:>7.3} us per env-step (row update)",
        per_update * 1e6
    );
}

fn trials_bench(prefixes_per_trial: usize, f32_inputs: bool) {
    let (d, m, trials, steps) = (32, 2, 64, 100);
    let mut rng = Rng::new(2);
    let c: Vec<f64> = (0..trials * steps * d).map(|_| rng.normal()).collect();
    let y: Vec<f64> = (0..trials * steps * m).map(|_| rng.normal()).collect();
    let prefixes: Vec<usize> = if prefixes_per_trial == 1 {
        vec![steps; trials]
    } else {
        (0..trials * prefixes_per_trial)
            .map(|_| 1 + rng.below(steps as u64) as usize)
            .collect()
    };
    let p = prior(d, m);
    let mut tbl = TrialBatchLoss::new();
    let mut pg = PriorGrad::zeros(d, m);
    let secs = if f32_inputs {
        let c32: Vec<f32> = c.iter().map(|&v| v as f32).collect();
        let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let mut gc = vec![0f32; c.len()];
        median_secs(11, 5, || {
            let l = tbl
                .loss_and_grad(
                    &p,
                    &c32,
                    &y32,
                    trials,
                    steps,
                    &prefixes,
                    prefixes_per_trial,
                    &mut gc,
                    &mut pg,
                )
                .unwrap();
            black_box(l);
        })
    } else {
        let mut gc = vec![0f64; c.len()];
        median_secs(11, 5, || {
            let l = tbl
                .loss_and_grad(
                    &p,
                    &c,
                    &y,
                    trials,
                    steps,
                    &prefixes,
                    prefixes_per_trial,
                    &mut gc,
                    &mut pg,
                )
                .unwrap();
            black_box(l);
        })
    };
    println!(
        "trial loss+grad {trials} x {steps} x d={d}, m={m}, {prefixes_per_trial} prefix(es)/trial{}: {:>7.3} ms",
        if f32_inputs { ", f32 in/out" } else { "" },
        secs * 1e3
    );
}

fn main() {
    // `cargo bench --bench glm -- trial4` runs only the benches whose name contains it.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if run("stream") {
        stream_bench(32, 2);
        stream_bench(32, 39);
        stream_bench(8, 2);
    }
    if run("trial1") {
        trials_bench(1, false);
        trials_bench(1, true);
    }
    if run("trial4") {
        trials_bench(4, false);
    }
}
