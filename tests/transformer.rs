//! The transformer memory's three paths against each other and against the
//! definition: causality, the key/value cache against full recomputation, trial-start
//! resets, and the hand-written backward against burn's autodiff and finite
//! differences.

use bamdp::nn::graph::{self, GraphParams};
use bamdp::nn::transformer::{
    graph as tf_graph, sequence, Positions, Transformer, TransformerSpec,
};
use bamdp::nn::Params;
use bamdp::rng::Rng;
use burn::tensor::Device;

const TOKEN: usize = 5;

fn spec(positions: Positions, window: usize) -> TransformerSpec {
    TransformerSpec {
        layers: 2,
        heads: 2,
        width: 8,
        window,
        mlp: 12,
        positions,
    }
}

/// A transformer with non-trivial LayerNorm gains and biases, so every term matters.
fn build(spec: TransformerSpec, seed: u64) -> (Transformer, Params) {
    let mut rng = Rng::new(seed);
    let mut p = Params::new();
    let tf = Transformer::new(&mut p, "tf", TOKEN, spec, &mut rng);
    for v in p.data.iter_mut() {
        *v += 0.1 * rng.normal() as f32;
    }
    (tf, p)
}

fn normals(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// Runs the cache over time-major tokens, zeroing a row's state where `reset` says;
/// returns every step's outputs (time-major) and the final states.
fn run_cached(
    tf: &Transformer,
    p: &Params,
    tokens: &[f32],
    reset: &[f32],
    state: &mut [f32],
    steps: usize,
    rows: usize,
) -> Vec<f32> {
    let (d, sd) = (tf.spec.width, tf.state_dim());
    let mut s = tf.scratch(rows);
    let mut out = vec![0.0f32; steps * rows * d];
    for t in 0..steps {
        for r in 0..rows {
            if reset[t * rows + r] != 0.0 {
                state[r * sd..(r + 1) * sd]
                    .iter_mut()
                    .for_each(|v| *v = 0.0);
            }
        }
        tf.step(
            p,
            &tokens[t * rows * TOKEN..(t + 1) * rows * TOKEN],
            rows,
            state,
            &mut s,
            &mut out[t * rows * d..(t + 1) * rows * d],
        );
    }
    out
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

#[test]
fn changing_a_token_never_changes_earlier_outputs() {
    for positions in [Positions::Rotary, Positions::None] {
        let (tf, p) = build(spec(positions, 16), 1);
        let (steps, rows, d) = (9, 3, 8);
        let mut rng = Rng::new(2);
        let tokens = normals(steps * rows * TOKEN, &mut rng);
        let mut reset = vec![0.0f32; steps * rows];
        reset[..rows].iter_mut().for_each(|v| *v = 1.0);
        let h0 = vec![0.0f32; rows * tf.state_dim()];
        let (base, _) = sequence::forward(&p, &tf, &tokens, &reset, &h0, steps, rows);
        let (t0, r0) = (4, 1);
        let mut changed = tokens.clone();
        for v in &mut changed[(t0 * rows + r0) * TOKEN..(t0 * rows + r0 + 1) * TOKEN] {
            *v += 1.0;
        }
        let (out, _) = sequence::forward(&p, &tf, &changed, &reset, &h0, steps, rows);
        for t in 0..steps {
            for r in 0..rows {
                let i = (t * rows + r) * d;
                let same = out[i..i + d] == base[i..i + d];
                if t < t0 || r != r0 {
                    assert!(same, "{positions:?}: output (t={t}, r={r}) changed");
                } else {
                    assert!(
                        !same,
                        "{positions:?}: output (t={t}, r={r}) ignores token {t0}"
                    );
                }
            }
        }
    }
}

#[test]
fn cached_steps_equal_full_recomputation() {
    // Window 4 < trial length: the cache's ring wraps; a second trial starts on row 1.
    for (positions, window) in [
        (Positions::Rotary, 4),
        (Positions::Rotary, 32),
        (Positions::None, 3),
    ] {
        let (tf, p) = build(spec(positions, window), 3);
        let (steps, rows) = (11, 3);
        let mut rng = Rng::new(4);
        let tokens = normals(steps * rows * TOKEN, &mut rng);
        let mut reset = vec![0.0f32; steps * rows];
        reset[..rows].iter_mut().for_each(|v| *v = 1.0);
        reset[6 * rows + 1] = 1.0;
        let h0 = vec![0.0f32; rows * tf.state_dim()];
        let (full, _) = sequence::forward(&p, &tf, &tokens, &reset, &h0, steps, rows);
        let mut state = h0.clone();
        let cached = run_cached(&tf, &p, &tokens, &reset, &mut state, steps, rows);
        assert_close(
            &cached,
            &full,
            1e-5,
            &format!("{positions:?} window {window}"),
        );
    }
}

#[test]
fn a_segment_starting_mid_trial_reads_the_cache_as_context() {
    let (tf, p) = build(spec(Positions::Rotary, 5), 5);
    let (steps, rows, d) = (12, 2, 8);
    let mut rng = Rng::new(6);
    let tokens = normals(steps * rows * TOKEN, &mut rng);
    let mut reset = vec![0.0f32; steps * rows];
    reset[..rows].iter_mut().for_each(|v| *v = 1.0);
    reset[9 * rows] = 1.0; // row 0 starts a new trial inside the second segment
    let mut state = vec![0.0f32; rows * tf.state_dim()];
    let all = run_cached(&tf, &p, &tokens, &reset, &mut state, steps, rows);
    // First 7 steps through the cache, then the rest as one training segment from the
    // cache's state.
    let split = 7;
    let mut h0 = vec![0.0f32; rows * tf.state_dim()];
    run_cached(&tf, &p, &tokens, &reset, &mut h0, split, rows);
    let (seg, _) = sequence::forward(
        &p,
        &tf,
        &tokens[split * rows * TOKEN..],
        &reset[split * rows..],
        &h0,
        steps - split,
        rows,
    );
    assert_close(&seg, &all[split * rows * d..], 1e-5, "segment after cache");
}

#[test]
fn a_trial_start_empties_the_cache() {
    let (tf, p) = build(spec(Positions::Rotary, 8), 7);
    let (steps, rows, d) = (6, 2, 8);
    let mut rng = Rng::new(8);
    let first = normals(steps * rows * TOKEN, &mut rng);
    let second = normals(steps * rows * TOKEN, &mut rng);
    let mut reset = vec![0.0f32; steps * rows];
    reset[..rows].iter_mut().for_each(|v| *v = 1.0);
    // Row 0 plays `first` then `second` with a reset between; a fresh state plays
    // `second` alone: the outputs must agree exactly, and row 1 (no reset) must not.
    let mut state = vec![0.0f32; rows * tf.state_dim()];
    run_cached(&tf, &p, &first, &reset, &mut state, steps, rows);
    let mut reset2 = vec![0.0f32; steps * rows];
    reset2[0] = 1.0;
    let continued = run_cached(&tf, &p, &second, &reset2, &mut state, steps, rows);
    let mut fresh_state = vec![0.0f32; rows * tf.state_dim()];
    let fresh = run_cached(&tf, &p, &second, &reset, &mut fresh_state, steps, rows);
    for t in 0..steps {
        let i = t * rows * d;
        assert_eq!(continued[i..i + d], fresh[i..i + d], "row 0, step {t}");
        assert_ne!(
            continued[i + d..i + 2 * d],
            fresh[i + d..i + 2 * d],
            "row 1, step {t}"
        );
    }
    assert_eq!(state[0], steps as f32);
    assert_eq!(state[tf.state_dim()], (2 * steps) as f32);
}

/// The host backward of `loss = sum(weights * outputs)` against burn's autodiff of the
/// same transformer, over a segment that starts mid-trial (cached context), slides its
/// window and contains a trial start.
#[test]
fn backward_matches_burn_autodiff() {
    for positions in [Positions::Rotary, Positions::None] {
        let (tf, p) = build(spec(positions, 4), 9);
        let (steps, rows, d) = (7, 3, 8);
        let mut rng = Rng::new(10);
        let pre = 3;
        let pre_tokens = normals(pre * rows * TOKEN, &mut rng);
        let mut pre_reset = vec![0.0f32; pre * rows];
        pre_reset[..rows].iter_mut().for_each(|v| *v = 1.0);
        let mut h0 = vec![0.0f32; rows * tf.state_dim()];
        run_cached(&tf, &p, &pre_tokens, &pre_reset, &mut h0, pre, rows);
        let tokens = normals(steps * rows * TOKEN, &mut rng);
        let mut reset = vec![0.0f32; steps * rows];
        reset[2] = 1.0; // row 2 starts a trial with the segment
        reset[4 * rows] = 1.0; // row 0 starts one mid-segment
        let weights = normals(steps * rows * d, &mut rng);

        let device = Device::flex().autodiff();
        let gp = GraphParams::new(&p, &device);
        let xt = graph::constant(&tokens, steps * rows, TOKEN, &device).require_grad();
        let out_b = tf_graph::sequence(&gp, &tf, xt.clone(), &reset, &h0, steps, rows);
        let loss = (out_b.clone() * graph::constant(&weights, steps * rows, d, &device)).sum();
        let grads = loss.backward();
        let mut g_burn = vec![0.0f32; p.len()];
        gp.add_flat_grad(&grads, &mut g_burn);
        let dx_burn = graph::to_vec(xt.grad(&grads).unwrap());
        let out_burn = graph::to_vec(out_b);

        let (out, tape) = sequence::forward(&p, &tf, &tokens, &reset, &h0, steps, rows);
        let mut g = vec![0.0f32; p.len()];
        let mut dx = vec![0.0f32; tokens.len()];
        sequence::backward(&p, &tf, &tape, &weights, &mut g, &mut dx);

        assert_close(&out, &out_burn, 1e-5, "forward");
        for (s, name) in p.slots.iter().zip(&p.names) {
            assert_close(&g[s.range()], &g_burn[s.range()], 2e-4, name);
        }
        assert_close(&dx, &dx_burn, 2e-4, "token gradient");
    }
}

#[test]
fn backward_matches_finite_differences() {
    let (tf, p) = build(spec(Positions::Rotary, 3), 11);
    let (steps, rows, d) = (5, 2, 8);
    let mut rng = Rng::new(12);
    let tokens = normals(steps * rows * TOKEN, &mut rng);
    let mut reset = vec![0.0f32; steps * rows];
    reset[..rows].iter_mut().for_each(|v| *v = 1.0);
    let h0 = vec![0.0f32; rows * tf.state_dim()];
    let weights = normals(steps * rows * d, &mut rng);
    let loss = |p: &Params, tokens: &[f32]| -> f64 {
        let (out, _) = sequence::forward(p, &tf, tokens, &reset, &h0, steps, rows);
        out.iter()
            .zip(&weights)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    };
    let (_, tape) = sequence::forward(&p, &tf, &tokens, &reset, &h0, steps, rows);
    let mut g = vec![0.0f32; p.len()];
    let mut dx = vec![0.0f32; tokens.len()];
    sequence::backward(&p, &tf, &tape, &weights, &mut g, &mut dx);
    let eps = 1e-2f32;
    let check = |fd: f64, an: f32, what: &str| {
        assert!(
            (fd - an as f64).abs() < 3e-3 * (1.0 + fd.abs()),
            "{what}: finite difference {fd} vs backward {an}"
        );
    };
    for i in (0..p.len()).step_by(5) {
        let mut pp = p.clone();
        pp.data[i] += eps;
        let up = loss(&pp, &tokens);
        pp.data[i] -= 2.0 * eps;
        let down = loss(&pp, &tokens);
        check(
            (up - down) / (2.0 * eps as f64),
            g[i],
            &format!("param {i}"),
        );
    }
    for i in (0..tokens.len()).step_by(3) {
        let mut tt = tokens.clone();
        tt[i] += eps;
        let up = loss(&p, &tt);
        tt[i] -= 2.0 * eps;
        let down = loss(&p, &tt);
        check(
            (up - down) / (2.0 * eps as f64),
            dx[i],
            &format!("token {i}"),
        );
    }
}

#[test]
fn presets_load_and_validate() {
    use bamdp::config::Config;
    for env in ["gridnavi", "point_robot", "ml1-reach", "ml10"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("configs/{env}/transformer.toml"));
        let cfg = Config::load(&path, &[]).unwrap_or_else(|e| panic!("{env}: {e}"));
        assert_eq!(
            (cfg.method.as_str(), cfg.env.as_str()),
            ("transformer", env)
        );
    }
}
