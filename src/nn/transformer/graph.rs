//! The transformer built from burn ops: the autodiff reference the host paths are
//! tested against (and the pure-burn training path, [`crate::nn::AgentNet::forward_graph`]).
//! LayerNorm, the feed-forward layers and the projections run over the whole
//! time-major segment; attention runs per row with an explicit mask built from the same
//! [`contexts`] as the host path.

use super::kernels::{rope_angles, LN_EPS};
use super::sequence::contexts;
use super::{Positions, Transformer};
use crate::nn::graph::{self, GraphParams};
use crate::nn::host::Act;
use crate::nn::params::Slot;
use burn::tensor::{activation, Tensor};

fn layer_norm(gp: &GraphParams, g: Slot, b: Slot, x: Tensor<2>) -> Tensor<2> {
    let mu = x.clone().mean_dim(1);
    let xc = x - mu;
    let var = xc.clone().square().mean_dim(1);
    xc / (var + LN_EPS).sqrt() * gp.get(g) + gp.get(b)
}

fn gelu(x: Tensor<2>) -> Tensor<2> {
    let inner = (x.clone() + x.clone() * x.clone() * x.clone() * 0.044_715) * 0.797_884_6;
    x * (inner.tanh() + 1.0) * 0.5
}

/// Rotates each head of `x` (`[m, d]`) by the angles of `positions`.
fn rope(x: Tensor<2>, positions: &[usize], heads: usize, dh: usize) -> Tensor<2> {
    let (m, half) = (positions.len(), dh / 2);
    let device = x.device();
    let mut cos = vec![0.0f32; m * half];
    let mut sin = vec![0.0f32; m * half];
    for (t, &pos) in positions.iter().enumerate() {
        rope_angles(
            pos,
            &mut cos[t * half..(t + 1) * half],
            &mut sin[t * half..(t + 1) * half],
        );
    }
    let cos = graph::constant(&cos, m, half, &device);
    let sin = graph::constant(&sin, m, half, &device);
    let parts = (0..heads)
        .flat_map(|h| {
            let a = x.clone().slice([0..m, h * dh..h * dh + half]);
            let b = x.clone().slice([0..m, h * dh + half..(h + 1) * dh]);
            [
                a.clone() * cos.clone() - b.clone() * sin.clone(),
                a * sin.clone() + b * cos.clone(),
            ]
        })
        .collect();
    Tensor::cat(parts, 1)
}

/// Row `r`'s tokens of a time-major `[steps*rows, c]` tensor, `[steps, c]`.
fn row_of(x: Tensor<2>, steps: usize, rows: usize, r: usize) -> Tensor<2> {
    let c = x.dims()[1];
    x.reshape([steps, rows, c])
        .slice([0..steps, r..r + 1, 0..c])
        .reshape([steps, c])
}

/// The transformer's outputs `[steps*rows, width]` for tokens `[steps*rows, token]`;
/// `reset` and `h0` as in [`super::sequence::forward`] (the cached context is constant).
pub fn sequence(
    gp: &GraphParams,
    tf: &Transformer,
    tokens: Tensor<2>,
    reset: &[f32],
    h0: &[f32],
    steps: usize,
    rows: usize,
) -> Tensor<2> {
    let spec = &tf.spec;
    let (d, w, dh, heads) = (spec.width, spec.window, spec.head_dim(), spec.heads);
    let sd = tf.state_dim();
    let device = tokens.device();
    let ctx = contexts(reset, h0, sd, w, steps, rows);
    let scale = 1.0 / (dh as f32).sqrt();
    let mut x = gp.dense(&tf.input, tokens, Act::None);
    for (l, blk) in tf.blocks.iter().enumerate() {
        let h = layer_norm(gp, blk.ln1_g, blk.ln1_b, x.clone());
        let qkv = gp.dense(&blk.qkv, h, Act::None);
        let mut row_outs = Vec::with_capacity(rows);
        for r in 0..rows {
            let qkv_r = row_of(qkv.clone(), steps, rows, r);
            let rc: Vec<_> = (0..steps).map(|t| ctx[t * rows + r]).collect();
            // Cached tokens of the trial before the segment, in position order.
            let c0 = h0[r * sd] as usize;
            let pre: Vec<usize> = if reset[r] != 0.0 {
                vec![]
            } else {
                ((c0 + 1).saturating_sub(w)..c0).collect()
            };
            let cached = |part: usize| {
                let base = r * sd + tf.key_offset(l) + part * w * d;
                let v: Vec<f32> = pre
                    .iter()
                    .flat_map(|&pos| h0[base + (pos % w) * d..base + (pos % w + 1) * d].to_vec())
                    .collect();
                graph::constant(&v, pre.len(), d, &device)
            };
            let mut q = qkv_r.clone().slice([0..steps, 0..d]);
            let mut k = qkv_r.clone().slice([0..steps, d..2 * d]);
            let v = qkv_r.slice([0..steps, 2 * d..3 * d]);
            if spec.positions == Positions::Rotary {
                let pos: Vec<usize> = rc.iter().map(|c| c.pos).collect();
                q = rope(q, &pos, heads, dh);
                k = rope(k, &pos, heads, dh);
            }
            let (k, v) = if pre.is_empty() {
                (k, v)
            } else {
                (
                    Tensor::cat(vec![cached(0), k], 0),
                    Tensor::cat(vec![cached(1), v], 0),
                )
            };
            let m = pre.len() + steps;
            let mut mask = vec![-1e9f32; steps * m];
            for (t, c) in rc.iter().enumerate() {
                for (j, &pos) in pre.iter().enumerate() {
                    if pos >= c.pre_lo && pos < c.pre_lo + c.n_pre {
                        mask[t * m + j] = 0.0;
                    }
                }
                for s in c.seg_lo..c.seg_lo + c.n_seg {
                    mask[t * m + pre.len() + s] = 0.0;
                }
            }
            let mask = graph::constant(&mask, steps, m, &device);
            let outs = (0..heads)
                .map(|hd| {
                    let c = hd * dh..(hd + 1) * dh;
                    let qh = q.clone().slice([0..steps, c.clone()]);
                    let kh = k.clone().slice([0..m, c.clone()]);
                    let vh = v.clone().slice([0..m, c]);
                    let scores = qh.matmul(kh.transpose()) * scale + mask.clone();
                    activation::softmax(scores, 1).matmul(vh)
                })
                .collect();
            row_outs.push(Tensor::cat(outs, 1).reshape([steps, 1, d]));
        }
        let o = Tensor::cat(row_outs, 1).reshape([steps * rows, d]);
        x = x + gp.dense(&blk.out, o, Act::None);
        let h = layer_norm(gp, blk.ln2_g, blk.ln2_b, x.clone());
        let u = gelu(gp.dense(&blk.fc1, h, Act::None));
        x = x + gp.dense(&blk.fc2, u, Act::None);
    }
    layer_norm(gp, tf.lnf_g, tf.lnf_b, x)
}
