//! Training: the transformer over a whole time-major rollout segment (`steps x rows`
//! tokens, `t * rows + r`) on the host, and its exact backward pass.
//!
//! Like the fused GRU ([`crate::nn::gru_op`]), the token embeddings and the heads run in
//! burn; this op sits between them. A trial start (`reset`) cuts attention; a segment
//! that begins mid-trial attends to the cached keys and values of the row's state `h0`
//! as constants (no gradient flows into them, as with RL2's initial hidden state).

use super::kernels::{
    attend, dot, gelu, gelu_grad, layer_norm, layer_norm_backward, linear, linear_backward, matmul,
    rope_angles, rope_apply,
};
use super::{Positions, Transformer};
use crate::nn::params::{Params, Slot};

/// The tokens one query attends to, in position order: `n_pre` cached tokens from the
/// row's initial state (positions `pre_lo..`), then `n_seg` tokens of the segment
/// (times `seg_lo..`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// Position of the query in its trial.
    pub pos: usize,
    pub pre_lo: usize,
    pub n_pre: usize,
    pub seg_lo: usize,
    pub n_seg: usize,
}

/// Each token's [`Context`] for a segment whose rows start from cached counts in `h0`.
pub fn contexts(
    reset: &[f32],
    h0: &[f32],
    state_dim: usize,
    window: usize,
    steps: usize,
    rows: usize,
) -> Vec<Context> {
    let mut ctx = vec![Context::default(); steps * rows];
    for r in 0..rows {
        let c0 = h0[r * state_dim] as usize;
        let mut start: Option<usize> = None;
        for t in 0..steps {
            let i = t * rows + r;
            if reset[i] != 0.0 {
                start = Some(t);
            }
            let pos = start.map_or(c0 + t, |s| t - s);
            let lo = (pos + 1).saturating_sub(window);
            ctx[i] = match start {
                Some(s) => Context {
                    pos,
                    pre_lo: 0,
                    n_pre: 0,
                    seg_lo: s + lo,
                    n_seg: pos - lo + 1,
                },
                None => {
                    let seg_lo = lo.saturating_sub(c0);
                    Context {
                        pos,
                        pre_lo: lo,
                        n_pre: c0.saturating_sub(lo),
                        seg_lo,
                        n_seg: t - seg_lo + 1,
                    }
                }
            };
        }
    }
    ctx
}

struct LayerTape {
    xhat1: Vec<f32>,
    rstd1: Vec<f32>,
    h1: Vec<f32>,
    /// Rotated queries and keys, values: `[n, 3d]`.
    qkv: Vec<f32>,
    /// Attention probabilities `[n, heads, window]`.
    prob: Vec<f32>,
    o: Vec<f32>,
    xhat2: Vec<f32>,
    rstd2: Vec<f32>,
    h2: Vec<f32>,
    /// Feed-forward pre-activations and activations `[n, mlp]`.
    u: Vec<f32>,
    a: Vec<f32>,
}

/// What [`backward`] needs from [`forward`].
pub struct SequenceTape {
    steps: usize,
    rows: usize,
    tokens: Vec<f32>,
    ctx: Vec<Context>,
    h0: Vec<f32>,
    layers: Vec<LayerTape>,
    xhat_f: Vec<f32>,
    rstd_f: Vec<f32>,
    /// Rotary cosines and sines per token, `[n, head_dim / 2]` each (empty without).
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl SequenceTape {
    pub fn steps(&self) -> usize {
        self.steps
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Key (`part = 1`) or value (`part = 2`) of head `hd` of context token `j` of query
/// `(t, r)` with context `c`.
#[allow(clippy::too_many_arguments)]
#[inline]
fn context_slice<'a>(
    tf: &Transformer,
    qkv: &'a [f32],
    h0: &'a [f32],
    l: usize,
    part: usize,
    c: &Context,
    r: usize,
    rows: usize,
    hd: usize,
    j: usize,
) -> &'a [f32] {
    let (d, w, dh) = (tf.spec.width, tf.spec.window, tf.spec.head_dim());
    if j < c.n_pre {
        let slot = (c.pre_lo + j) % w;
        let off = r * tf.state_dim() + tf.key_offset(l) + (part - 1) * w * d + slot * d + hd * dh;
        &h0[off..off + dh]
    } else {
        let i = (c.seg_lo + j - c.n_pre) * rows + r;
        let off = i * 3 * d + part * d + hd * dh;
        &qkv[off..off + dh]
    }
}

/// Runs the transformer over `steps x rows` tokens (`[steps*rows, token]`), with trial
/// starts flagged in `reset` and each row's cached context in `h0`
/// (`rows * state_dim()`). Returns the outputs `[steps*rows, width]` and the tape.
pub fn forward(
    p: &Params,
    tf: &Transformer,
    tokens: &[f32],
    reset: &[f32],
    h0: &[f32],
    steps: usize,
    rows: usize,
) -> (Vec<f32>, SequenceTape) {
    let spec = &tf.spec;
    let (d, w, dh, heads, mlp) = (
        spec.width,
        spec.window,
        spec.head_dim(),
        spec.heads,
        spec.mlp,
    );
    let n = steps * rows;
    let scale = 1.0 / (dh as f32).sqrt();
    let ctx = contexts(reset, h0, tf.state_dim(), w, steps, rows);
    let mut x = vec![0.0f32; n * d];
    linear(p, &tf.input, tokens, n, &mut x);
    // Every layer and the backward pass rotate by the same angles: compute them once.
    let half = dh / 2;
    let rotary = spec.positions == Positions::Rotary;
    let (mut cos, mut sin) = if rotary {
        (vec![0.0f32; n * half], vec![0.0f32; n * half])
    } else {
        (vec![], vec![])
    };
    if rotary {
        for (i, c) in ctx.iter().enumerate() {
            let span = i * half..(i + 1) * half;
            rope_angles(c.pos, &mut cos[span.clone()], &mut sin[span]);
        }
    }
    let mut layers = Vec::with_capacity(spec.layers);
    for (l, blk) in tf.blocks.iter().enumerate() {
        let mut lt = LayerTape {
            xhat1: vec![0.0; n * d],
            rstd1: vec![0.0; n],
            h1: vec![0.0; n * d],
            qkv: vec![0.0; n * 3 * d],
            prob: vec![0.0; n * heads * w],
            o: vec![0.0; n * d],
            xhat2: vec![0.0; n * d],
            rstd2: vec![0.0; n],
            h2: vec![0.0; n * d],
            u: vec![0.0; n * mlp],
            a: vec![0.0; n * mlp],
        };
        layer_norm(
            p.get(blk.ln1_g),
            p.get(blk.ln1_b),
            &x,
            &mut lt.h1,
            Some(&mut lt.xhat1),
            Some(&mut lt.rstd1),
        );
        linear(p, &blk.qkv, &lt.h1, n, &mut lt.qkv);
        if rotary {
            for i in 0..n {
                let span = i * half..(i + 1) * half;
                rope_apply(
                    &mut lt.qkv[i * 3 * d..i * 3 * d + 2 * d],
                    dh,
                    &cos[span.clone()],
                    &sin[span],
                    false,
                );
            }
        }
        for (i, c) in ctx.iter().enumerate() {
            let r = i % rows;
            let m = c.n_pre + c.n_seg;
            for hd in 0..heads {
                let q = &lt.qkv[i * 3 * d + hd * dh..i * 3 * d + (hd + 1) * dh];
                let pb = (i * heads + hd) * w;
                attend(
                    q,
                    scale,
                    m,
                    |j| context_slice(tf, &lt.qkv, h0, l, 1, c, r, rows, hd, j),
                    |j| context_slice(tf, &lt.qkv, h0, l, 2, c, r, rows, hd, j),
                    &mut lt.prob[pb..pb + m],
                    &mut lt.o[i * d + hd * dh..i * d + (hd + 1) * dh],
                );
            }
        }
        add_bias(p.get(blk.out.b), &mut x);
        matmul(&mut x, &lt.o, false, p.get(blk.out.w), false, n, d, d, true);
        layer_norm(
            p.get(blk.ln2_g),
            p.get(blk.ln2_b),
            &x,
            &mut lt.h2,
            Some(&mut lt.xhat2),
            Some(&mut lt.rstd2),
        );
        linear(p, &blk.fc1, &lt.h2, n, &mut lt.u);
        for (a, u) in lt.a.iter_mut().zip(&lt.u) {
            *a = gelu(*u);
        }
        add_bias(p.get(blk.fc2.b), &mut x);
        matmul(
            &mut x,
            &lt.a,
            false,
            p.get(blk.fc2.w),
            false,
            n,
            mlp,
            d,
            true,
        );
        layers.push(lt);
    }
    let mut out = vec![0.0f32; n * d];
    let mut xhat_f = vec![0.0f32; n * d];
    let mut rstd_f = vec![0.0f32; n];
    layer_norm(
        p.get(tf.lnf_g),
        p.get(tf.lnf_b),
        &x,
        &mut out,
        Some(&mut xhat_f),
        Some(&mut rstd_f),
    );
    let tape = SequenceTape {
        steps,
        rows,
        tokens: tokens.to_vec(),
        ctx,
        h0: h0.to_vec(),
        layers,
        xhat_f,
        rstd_f,
        cos,
        sin,
    };
    (out, tape)
}

fn add_bias(b: &[f32], x: &mut [f32]) {
    for row in x.chunks_mut(b.len()) {
        for (v, bj) in row.iter_mut().zip(b) {
            *v += bj;
        }
    }
}

/// Disjoint mutable views of two slots of a flat gradient (`a` before `b`).
fn two_slots(grad: &mut [f32], a: Slot, b: Slot) -> (&mut [f32], &mut [f32]) {
    assert!(a.offset + a.len() <= b.offset);
    let (lo, hi) = grad.split_at_mut(b.offset);
    (&mut lo[a.range()], &mut hi[..b.len()])
}

/// Back-propagates `d_out` (dLoss/d outputs, `[steps*rows, width]`) through the
/// segment: adds the parameter gradients into `grad` (laid out like `Params::data`) and
/// writes dLoss/d tokens into `d_tokens` (`[steps*rows, token]`).
pub fn backward(
    p: &Params,
    tf: &Transformer,
    tape: &SequenceTape,
    d_out: &[f32],
    grad: &mut [f32],
    d_tokens: &mut [f32],
) {
    let spec = &tf.spec;
    let (d, w, dh, heads, mlp) = (
        spec.width,
        spec.window,
        spec.head_dim(),
        spec.heads,
        spec.mlp,
    );
    let rows = tape.rows;
    let n = tape.steps * rows;
    let scale = 1.0 / (dh as f32).sqrt();
    let mut dx = vec![0.0f32; n * d];
    let mut dh_buf = vec![0.0f32; n * d];
    let mut d_o = vec![0.0f32; n * d];
    let mut dqkv = vec![0.0f32; n * 3 * d];
    let mut du = vec![0.0f32; n * mlp];
    let mut dp = vec![0.0f32; w];
    let mut dq = vec![0.0f32; dh];
    let half = dh / 2;
    {
        let (dg, db) = two_slots(grad, tf.lnf_g, tf.lnf_b);
        layer_norm_backward(
            p.get(tf.lnf_g),
            &tape.xhat_f,
            &tape.rstd_f,
            d_out,
            dg,
            db,
            &mut dx,
        );
    }
    for (l, blk) in tf.blocks.iter().enumerate().rev() {
        let lt = &tape.layers[l];
        // Feed-forward branch: x2 = x1 + fc2(gelu(fc1(LN2(x1)))).
        linear_backward(p, &blk.fc2, &lt.a, &dx, n, grad, Some(&mut du));
        for (g, u) in du.iter_mut().zip(&lt.u) {
            *g *= gelu_grad(*u);
        }
        linear_backward(p, &blk.fc1, &lt.h2, &du, n, grad, Some(&mut dh_buf));
        {
            let (dg, db) = two_slots(grad, blk.ln2_g, blk.ln2_b);
            layer_norm_backward(
                p.get(blk.ln2_g),
                &lt.xhat2,
                &lt.rstd2,
                &dh_buf,
                dg,
                db,
                &mut dx,
            );
        }
        // Attention branch: x1 = x0 + out(attention(qkv(LN1(x0)))).
        linear_backward(p, &blk.out, &lt.o, &dx, n, grad, Some(&mut d_o));
        dqkv.iter_mut().for_each(|v| *v = 0.0);
        for (i, c) in tape.ctx.iter().enumerate() {
            let r = i % rows;
            let m = c.n_pre + c.n_seg;
            for hd in 0..heads {
                let prob = &lt.prob[(i * heads + hd) * w..][..m];
                let dout = &d_o[i * d + hd * dh..i * d + (hd + 1) * dh];
                let mut g = 0.0f32;
                for j in 0..m {
                    let v = context_slice(tf, &lt.qkv, &tape.h0, l, 2, c, r, rows, hd, j);
                    dp[j] = dot(dout, v);
                    g += prob[j] * dp[j];
                }
                dq.iter_mut().for_each(|v| *v = 0.0);
                let q = &lt.qkv[i * 3 * d + hd * dh..i * 3 * d + (hd + 1) * dh];
                for j in 0..m {
                    let ds = scale * prob[j] * (dp[j] - g);
                    let k = context_slice(tf, &lt.qkv, &tape.h0, l, 1, c, r, rows, hd, j);
                    for (a, b) in dq.iter_mut().zip(k) {
                        *a += ds * b;
                    }
                    if j >= c.n_pre {
                        let src = (c.seg_lo + j - c.n_pre) * rows + r;
                        let kb = src * 3 * d + d + hd * dh;
                        for (a, b) in dqkv[kb..kb + dh].iter_mut().zip(q) {
                            *a += ds * b;
                        }
                        let vb = kb + d;
                        for (a, b) in dqkv[vb..vb + dh].iter_mut().zip(dout) {
                            *a += prob[j] * b;
                        }
                    }
                }
                let qb = i * 3 * d + hd * dh;
                for (a, b) in dqkv[qb..qb + dh].iter_mut().zip(&dq) {
                    *a += b;
                }
            }
        }
        if spec.positions == Positions::Rotary {
            for i in 0..n {
                let span = i * half..(i + 1) * half;
                rope_apply(
                    &mut dqkv[i * 3 * d..i * 3 * d + 2 * d],
                    dh,
                    &tape.cos[span.clone()],
                    &tape.sin[span],
                    true,
                );
            }
        }
        linear_backward(p, &blk.qkv, &lt.h1, &dqkv, n, grad, Some(&mut dh_buf));
        let (dg, db) = two_slots(grad, blk.ln1_g, blk.ln1_b);
        layer_norm_backward(
            p.get(blk.ln1_g),
            &lt.xhat1,
            &lt.rstd1,
            &dh_buf,
            dg,
            db,
            &mut dx,
        );
    }
    linear_backward(p, &tf.input, &tape.tokens, &dx, n, grad, Some(d_tokens));
}
