//! GEMM throughput of `nn::gemm` (the library every matrix product goes through) at
//! the shapes of the presets: GFLOP/s (2 m k n per product) on one thread and on two
//! threads running independent products, as the learner's chunks do. These are the
//! denominators of the floating-point-limit estimates in docs/benchmarks.md. Plain
//! `Instant` timing, median of repeats. Run with `cargo bench --bench gemm`.

use bamdp::nn::gemm::{matmul, Mat};
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
}
