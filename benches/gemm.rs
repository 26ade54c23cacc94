//! GEMM throughput of `nn::gemm` (the library every matrix product goes through) at
//! the shapes of the presets: GFLOP/s (2 m k n per product) on one thread and on two
//! threads running independent products, as the learner's chunks do. These are the
//! denominators of the floating-point-limit estimates in docs/benchmarks.md. Plain
//! `Instant` timing, median of repeats. Run with `cargo bench --bench gemm`.
//!
//! A second table times MAML's acting products (`nn::rows64`, `f64`, unfused, in
//! order) against the plain loop they replace, at the ML10 preset's shapes: one step of
//! `rows` rows through a [512, 512] tanh policy on 39 observations, the weights of each
//! row either shared (the adaptation episodes: one `theta`) or its own (after the
//! inner step: 20 adapted `theta`s, 46 MB, read from beyond the core's caches).
//!
//! A third (`cargo bench --bench gemm -- recurrence`) times the per-step products of
//! GRU recurrences over a few dozen rows: the library against `nn::rows32` (the same
//! bits without the library's packing).

use bamdp::nn::gemm::{library, matmul, Mat};
use bamdp::nn::{rows32, rows64};
use std::time::Instant;

fn gflops(m: usize, k: usize, n: usize, threads: usize) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
    let flop = 2.0 * (m * k * n) as f64;
    // Enough products for ~20 ms per repeat.
    let inner = ((2e7 / flop) as usize).max(1);
    let run = || {
        let mut c = vec![0.0f32; m * n];
        for _ in 0..inner {
            matmul(&mut c, Mat::rows(&a, m, k), Mat::rows(&b, k, n), true);
        }
        std::hint::black_box(&c);
    };
    run();
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(run);
                }
            });
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    flop * inner as f64 * threads as f64 / times[3] / 1e9
}

fn main() {
    // `cargo bench --bench gemm -- acting`: the acting table alone.
    if std::env::args().any(|a| a == "acting") {
        acting_table();
        return;
    }
    if std::env::args().any(|a| a == "recurrence") {
        recurrence_table();
        return;
    }
    println!("| m x k x n | what | GFLOP/s, 1 thread | GFLOP/s, 2 threads |");
    println!("|---|---|---|---|");
    for (m, k, n, what) in [
        (2, 64, 192, "GridNavi GRU step, PPO chunk (2 rows)"),
        (13, 64, 192, "GridNavi GRU step, VAE chunk (13 trials)"),
        (120, 32, 5, "GridNavi policy output layer (PPO chunk)"),
        (
            780,
            64,
            192,
            "GridNavi GRU input/weight gradient (VAE chunk)",
        ),
        (1024, 128, 128, "planner policy layer (1024 particles)"),
        (512, 16, 192, "planner, VariBAD GRU input (512 particles)"),
        (
            512,
            64,
            192,
            "planner, VariBAD GRU recurrence (512 particles)",
        ),
        (
            4096,
            32,
            32,
            "planner, VariBAD decoder layer 2 (512 x 8 nested)",
        ),
        (512, 35, 128, "planner, GLiBRL actor / critic layer 1"),
        (512, 128, 128, "planner, GLiBRL actor / critic layer 2"),
        (512, 35, 256, "planner, GLiBRL actor + critic layer 1 fused"),
        (512, 64, 64, "planner, GLiBRL basis layer 2"),
        (1, 256, 768, "ML10 GRU step (1 row)"),
        (5000, 256, 256, "ML10 policy layer (one minibatch)"),
        (5000, 256, 768, "ML10 GRU input projection"),
        (256, 5000, 768, "ML10 GRU weight gradient"),
    ] {
        println!(
            "| {m} x {k} x {n} | {what} | {:.1} | {:.1} |",
            gflops(m, k, n, 1),
            gflops(m, k, n, 2)
        );
    }
    acting_table();
    recurrence_table();
}

/// Microseconds per product for the library and for `rows32`, taking turns
/// ([`take_turns`]).
fn recurrence_us(m: usize, k: usize, n: usize) -> (f64, f64, f64) {
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
    let mut c = vec![0.0f32; m * n];
    let run = |reps: usize, ours: bool| {
        let t = Instant::now();
        for _ in 0..reps {
            if ours {
                rows32::product(&mut c, &a, &b, m, k, n, true);
            } else {
                library(&mut c, n, Mat::rows(&a, m, k), Mat::rows(&b, k, n), true);
            }
        }
        std::hint::black_box(&c);
        t.elapsed().as_secs_f64() / reps as f64
    };
    take_turns(run)
}

fn recurrence_table() {
    println!();
    if !rows32::available() {
        println!("(no AVX-512F: `rows32` does not run here, the library does)");
        return;
    }
    println!("| m x k x n | what | library, us (GFLOP/s) | rows32, us (GFLOP/s) | ratio (median of turns) |");
    println!("|---|---|---|---|---|");
    for (m, k, n, what) in [
        (23, 256, 768, "ML45 RL2 GRU step, forward (22-23 rows)"),
        (23, 768, 256, "ML45 RL2 GRU step, backward"),
        (45, 256, 768, "ML45 RL2 acting step (45 envs)"),
        (16, 256, 768, "16 rows"),
        (32, 256, 768, "32 rows"),
        (64, 256, 768, "64 rows"),
        (23, 128, 384, "ML45 VariBAD encoder step (23 rows)"),
        (45, 128, 384, "ML45 VariBAD encoder acting step"),
        (64, 39, 512, "64 rows, a first layer"),
    ] {
        let (old, new, ratio) = recurrence_us(m, k, n);
        let gf = |us: f64| 2.0 * (m * k * n) as f64 / us / 1e3;
        println!(
            "| {m} x {k} x {n} | {what} | {old:.1} ({:.0}) | {new:.1} ({:.0}) | {ratio:.2} |",
            gf(old),
            gf(new)
        );
    }
}

/// The loop `rows64::add_product` replaced (the old `Actor::forward_rows`): each row of
/// `w` read once for all rows, `y_r += x_rp w_p` for `p` in order. Not `rows64`'s own
/// reference loop, which takes one row at a time: this is the baseline acting had.
fn plain(y: &mut [f64], x: &[f64], w: &[f64], m: usize, k: usize, n: usize) {
    for p in 0..k {
        let wp = &w[p * n..(p + 1) * n];
        for (yr, xr) in y.chunks_mut(n).zip(x.chunks(k)).take(m) {
            let xp = xr[p];
            for (yj, &wpj) in yr.iter_mut().zip(wp) {
                *yj += xp * wpj;
            }
        }
    }
}

/// Microseconds per acting step of `rows` rows for the plain loop and for `rows64`,
/// with `thetas` weight sets used in turn, one row at a time when there are
/// several; the kernels take turns ([`take_turns`]).
fn acting_us(rows: usize, thetas: usize) -> (f64, f64, f64) {
    let layers = [(39, 512), (512, 512), (512, 8)];
    let size: usize = layers.iter().map(|(i, o)| i * o).sum();
    let weights: Vec<Vec<f64>> = (0..thetas)
        .map(|t| {
            (0..size)
                .map(|i| ((i + t) % 11) as f64 * 1e-3 - 5e-3)
                .collect()
        })
        .collect();
    let mut a = vec![0.1f64; rows * 512];
    let mut b = vec![0.0f64; rows * 512];
    let mut step = |theta: &[f64], m: usize, kernel: bool| {
        let mut off = 0;
        for &(fi, fo) in &layers {
            let w = &theta[off..off + fi * fo];
            off += fi * fo;
            let y = &mut b[..m * fo];
            y.iter_mut().for_each(|v| *v = 0.01);
            if kernel {
                rows64::add_product(y, &a[..m * fi], w, m, fi, fo);
            } else {
                plain(y, &a[..m * fi], w, m, fi, fo);
            }
            y.iter_mut().for_each(|v| *v = v.tanh());
            std::mem::swap(&mut a, &mut b);
        }
    };
    let run = |steps: usize, kernel: bool| {
        let t = Instant::now();
        for _ in 0..steps {
            if thetas == 1 {
                step(&weights[0], rows, kernel);
            } else {
                for w in &weights {
                    step(w, 1, kernel);
                }
            }
        }
        t.elapsed().as_secs_f64() / steps as f64
    };
    take_turns(run)
}

/// `run(reps, new)` (seconds per repeat) for the old and the new kernel in turns of
/// ~20 ms, 15 times: microseconds for each (medians) and the median of the per-turn
/// ratios new / old, so that a change in the machine's load falls on both alike.
fn take_turns(mut run: impl FnMut(usize, bool) -> f64) -> (f64, f64, f64) {
    let reps = ((0.02 / run(3, false)) as usize).max(1);
    let (mut old, mut new, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        let (o, n) = (run(reps, false), run(reps, true));
        old.push(o * 1e6);
        new.push(n * 1e6);
        ratios.push(n / o);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(old), median(new), median(ratios))
}

fn acting_table() {
    println!();
    println!("| MAML acting step (ML10 preset) | plain loop, us | rows64, us | ratio (median of turns) |");
    println!("|---|---|---|---|");
    for (rows, thetas, what) in [
        (20, 1, "20 rows, one theta (adaptation episodes)"),
        (
            20,
            20,
            "20 rows, 20 adapted thetas (post-adaptation episodes)",
        ),
        (1, 1, "1 row, one theta (evaluation)"),
    ] {
        let (old, new, ratio) = acting_us(rows, thetas);
        println!("| {what} | {old:.0} | {new:.0} | {ratio:.2} |");
    }
}
