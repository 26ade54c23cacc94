//! Belief-SMC planner throughput: simulated particle-steps per second on GridNavi
//! (16 environments, one planning call per real step) for each belief the planner can
//! use, at the reference budget K = 64, K_Omega = 8, D = 8 and over a sweep of
//! K x K_Omega x D (the cost should scale linearly). Networks are freshly initialised
//! with the presets' sizes: the cost does not depend on the weights. Plain `Instant`
//! timing, median of repeats. Run with `cargo bench --bench smc` (append a belief name
//! — oracle, varibad, glibrl — to run only that one). `SMC_BENCH_REPEATS=N` sets the
//! repeats (fewer than 5: at most 20 calls each, for profiling);
//! `SMC_BENCH_DISTINCT_ROWS=1` starts the 16 rows from 16 different cells instead of
//! all from the start cell.

use bamdp::config::Config;
use bamdp::env::{self, gridnavi::GridDynamics};
use bamdp::improve::smc::{NetPolicy, PlanOut, SmcConfig, SmcSettings};
use bamdp::rng::Rng;
use bamdp::run::trainer::{build_agent, make_belief};
use std::path::Path;
use std::time::Instant;

fn config(preset: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(preset);
    Config::load(&path, &[]).expect("preset loads")
}

fn settings(k: usize, nested: usize, depth: usize) -> SmcSettings {
    SmcSettings {
        config: SmcConfig {
            particles: k,
            nested,
            depth,
            eta: 0.5,
            resample_below: 0.5,
            ..SmcConfig::default()
        },
        gamma: 0.95,
    }
}

/// Particle-steps per second of `calls` planning calls for 16 rows.
fn bench(name: &str, k: usize, nested: usize, depth: usize, threads: usize) -> f64 {
    let rows = 16;
    let cfg = config(match name {
        "oracle" => "configs/gridnavi/oracle.toml",
        "varibad" => "configs/gridnavi/varibased.toml",
        _ => "configs/gridnavi/glibrl.toml",
    });
    let spec = env::make("gridnavi", rows, env::Split::Train, 1, &Default::default())
        .unwrap()
        .spec()
        .clone();
    // The method registry builds the belief and planner exactly as training does.
    let belief = make_belief(&cfg, &spec, rows)
        .unwrap()
        .expect("a belief method");
    let dynamics = Box::new(GridDynamics {
        episodes_per_trial: 4,
    });
    let mut planner = bamdp::method::lookup(cfg.method)
        .planner(&spec, settings(k, nested, depth), dynamics, rows, threads)
        .expect("a belief the planner can simulate");
    let (net, params) = build_agent(&cfg, &spec, belief.feature_dim()).unwrap();
    let policy = NetPolicy {
        net: &net,
        params: &params,
        norm: None,
    };
    // All rows at the start cell (0, 0) by default; `SMC_BENCH_DISTINCT_ROWS=1` puts
    // row r at cell (r mod 5, r div 5 mod 5), so no two rows plan from the same state
    // (the planner evaluates identical particles once, also across rows).
    let distinct = std::env::var("SMC_BENCH_DISTINCT_ROWS").is_ok_and(|v| v == "1");
    let obs: Vec<f32> = (0..rows)
        .flat_map(|r| {
            let (x, y) = if distinct { (r % 5, r / 5 % 5) } else { (0, 0) };
            [x as f32, y as f32]
        })
        .collect();
    let steps = vec![0u32; rows];
    let mut rngs: Vec<Rng> = (0..rows).map(|r| Rng::stream(1, 2, r as u64)).collect();
    let mut out = PlanOut::default();
    let mut call = || {
        planner.plan(belief.as_ref(), &policy, &obs, &steps, &mut rngs, &mut out);
    };
    call();
    let per_call = (rows * k * depth) as f64;
    let budget = 4e6 / (k * depth * nested.max(1)) as f64;
    let calls = (budget as usize).clamp(2, 200);
    let repeats = std::env::var("SMC_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let calls = if repeats < 5 { calls.min(20) } else { calls };
    let mut rates: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                call();
            }
            per_call * calls as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let only = args
        .iter()
        .find(|a| a.as_str() != "ref" && a.as_str() != "sweep")
        .cloned();
    // `ref`: only the reference budget on one thread (for profiling).
    let reference_only = args.iter().any(|a| a == "ref");
    // `sweep`: only the budget sweep.
    let sweep_only = args.iter().any(|a| a == "sweep");
    let beliefs = ["oracle", "varibad", "glibrl"];
    for name in beliefs
        .iter()
        .filter(|b| only.as_deref().is_none_or(|o| o == **b))
    {
        for threads in [1, 2] {
            if sweep_only {
                break;
            }
            let r = bench(name, 64, 8, 8, threads);
            println!(
                "smc {name:8} K=64 K_Omega=8 D=8 threads={threads}: {:>10.0} particle-steps/s",
                r
            );
        }
        if reference_only {
            continue;
        }
        for (k, nested, depth) in [
            (8, 8, 8),
            (256, 8, 8),
            (64, 1, 8),
            (64, 32, 8),
            (64, 8, 2),
            (64, 8, 32),
        ] {
            let r = bench(name, k, nested, depth, 2);
            let per = 1e9 / r;
            println!(
                "smc {name:8} K={k:<3} K_Omega={nested:<2} D={depth:<2} threads=2: {r:>10.0} particle-steps/s ({per:.0} ns each)"
            );
        }
    }
}
