//! Acting cost of the transformer memory per step with its key/value cache, and how it
//! grows with the context: 16 rows (the GridNavi preset's environments), the preset's
//! sizes (2 layers, width 32, 2 heads, feed-forward 64), timed at trial positions where
//! the context holds `ctx` tokens, for a window large enough to never slide. Next to it,
//! a full recomputation over the same context (what acting without a cache would cost)
//! and RL2's GRU step at the RL2 preset's width. Plain `Instant` timing, median of
//! repeats. Run with `cargo bench --bench transformer`.

use bamdp::nn::host::{self};
use bamdp::nn::params::GruCell;
use bamdp::nn::transformer::{sequence, Positions, Transformer, TransformerSpec};
use bamdp::nn::Params;
use bamdp::rng::Rng;
use std::time::Instant;

const ROWS: usize = 16;
const TOKEN: usize = 25;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Microseconds per step (all 16 rows) at context length `ctx`.
fn cached_step(ctx: usize) -> f64 {
    let spec = TransformerSpec {
        layers: 2,
        heads: 2,
        width: 32,
        window: ctx.max(1),
        mlp: 64,
        positions: Positions::Rotary,
    };
    let mut rng = Rng::new(1);
    let mut p = Params::new();
    let tf = Transformer::new(&mut p, "tf", TOKEN, spec, &mut rng);
    let tokens: Vec<f32> = (0..ROWS * TOKEN).map(|_| rng.normal() as f32).collect();
    let mut state = vec![0.0f32; ROWS * tf.state_dim()];
    let mut s = tf.scratch(ROWS);
    let mut out = vec![0.0f32; ROWS * 32];
    // Fill the cache up to ctx - 1 tokens, then time the step that sees ctx tokens.
    for _ in 0..ctx - 1 {
        tf.step(&p, &tokens, ROWS, &mut state, &mut s, &mut out);
    }
    let saved = state.clone();
    let reps = (20_000 / ctx).clamp(20, 2000);
    median(
        (0..7)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    state.copy_from_slice(&saved);
                    tf.step(&p, &tokens, ROWS, &mut state, &mut s, &mut out);
                }
                let copy = {
                    let t = Instant::now();
                    for _ in 0..reps {
                        state.copy_from_slice(&saved);
                    }
                    t.elapsed().as_secs_f64()
                };
                (t.elapsed().as_secs_f64() - copy) / reps as f64 * 1e6
            })
            .collect(),
    )
}

/// Microseconds to recompute the whole context of `ctx` tokens for 16 rows.
fn full_recompute(ctx: usize) -> f64 {
    let spec = TransformerSpec {
        layers: 2,
        heads: 2,
        width: 32,
        window: ctx,
        mlp: 64,
        positions: Positions::Rotary,
    };
    let mut rng = Rng::new(1);
    let mut p = Params::new();
    let tf = Transformer::new(&mut p, "tf", TOKEN, spec, &mut rng);
    let tokens: Vec<f32> = (0..ctx * ROWS * TOKEN)
        .map(|_| rng.normal() as f32)
        .collect();
    let mut reset = vec![0.0f32; ctx * ROWS];
    reset[..ROWS].iter_mut().for_each(|v| *v = 1.0);
    let h0 = vec![0.0f32; ROWS * tf.state_dim()];
    let reps = (2000 / ctx).clamp(3, 200);
    median(
        (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    std::hint::black_box(sequence::forward(
                        &p, &tf, &tokens, &reset, &h0, ctx, ROWS,
                    ));
                }
                t.elapsed().as_secs_f64() / reps as f64 * 1e6
            })
            .collect(),
    )
}

fn gru_step() -> f64 {
    let mut rng = Rng::new(1);
    let mut p = Params::new();
    let cell = GruCell::new(&mut p, "gru", TOKEN, 64, &mut rng);
    let x: Vec<f32> = (0..ROWS * TOKEN).map(|_| rng.normal() as f32).collect();
    let mut h = vec![0.0f32; ROWS * 64];
    let mut scratch = vec![0.0f32; 2 * ROWS * 3 * 64];
    let reps = 5000;
    median(
        (0..7)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    host::gru_step(&p, &cell, &x, &mut h, ROWS, &mut scratch);
                }
                t.elapsed().as_secs_f64() / reps as f64 * 1e6
            })
            .collect(),
    )
}

fn main() {
    println!(
        "16 rows, token width {TOKEN}; transformer 2 layers x width 32 x 2 heads, feed-forward 64"
    );
    println!("GRU-64 step (RL2 preset's memory): {:.2} us", gru_step());
    println!("| context tokens | cached step (us, 16 rows) | full recomputation (us, 16 rows) |");
    println!("|---:|---:|---:|");
    for ctx in [1, 4, 16, 60, 64, 256, 1024] {
        let full = if ctx <= 256 {
            format!("{:.1}", full_recompute(ctx))
        } else {
            "-".to_string()
        };
        println!("| {ctx} | {:.2} | {full} |", cached_step(ctx));
    }
}
