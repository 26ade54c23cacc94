//! Acting: one token per row per step against each row's key/value cache.
//!
//! A row's cache lives in its flat memory state (see the module doc of
//! [`super`]): zeroing the state at a trial start empties it. Each step appends the new
//! token's rotated key and value at slot `position mod window` of every layer and
//! attends over the last `min(position + 1, window)` tokens, so a step costs
//! O(layers · (width² + window · width)) whatever the trial's length, and allocates
//! nothing.

use super::kernels::{attend, gelu, layer_norm, linear, matmul, rope_angles, rope_apply};
use super::{Positions, Transformer, TransformerSpec};
use crate::nn::params::Params;

/// Buffers for [`Transformer::step`], sized for a number of rows.
pub struct StepScratch {
    rows: usize,
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    o: Vec<f32>,
    u: Vec<f32>,
    prob: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl StepScratch {
    pub(crate) fn new(spec: &TransformerSpec, rows: usize) -> Self {
        let d = spec.width;
        let half = spec.head_dim() / 2;
        StepScratch {
            rows,
            x: vec![0.0; rows * d],
            h: vec![0.0; rows * d],
            qkv: vec![0.0; rows * 3 * d],
            o: vec![0.0; rows * d],
            u: vec![0.0; rows * spec.mlp],
            prob: vec![0.0; spec.window],
            cos: vec![0.0; rows * half],
            sin: vec![0.0; rows * half],
        }
    }
}

impl Transformer {
    /// Advances `rows` rows by one token each (`tokens`: `rows * token_dim()`), updating
    /// their caches in `state` (`rows * state_dim()`), and writes the newest token's
    /// output (`rows * width`) into `out`. A row whose state is all zeros starts a trial.
    pub fn step(
        &self,
        p: &Params,
        tokens: &[f32],
        rows: usize,
        state: &mut [f32],
        s: &mut StepScratch,
        out: &mut [f32],
    ) {
        assert!(rows <= s.rows, "scratch built for {} rows", s.rows);
        let spec = &self.spec;
        let (d, w, dh, mlp) = (spec.width, spec.window, spec.head_dim(), spec.mlp);
        let sd = self.state_dim();
        let scale = 1.0 / (dh as f32).sqrt();
        let x = &mut s.x[..rows * d];
        let h = &mut s.h[..rows * d];
        linear(p, &self.input, tokens, rows, x);
        // Each row's rotary angles, shared by every layer.
        let half = dh / 2;
        let rotary = spec.positions == Positions::Rotary;
        if rotary {
            for r in 0..rows {
                let pos = state[r * sd] as usize;
                let span = r * half..(r + 1) * half;
                rope_angles(pos, &mut s.cos[span.clone()], &mut s.sin[span]);
            }
        }
        for (l, blk) in self.blocks.iter().enumerate() {
            layer_norm(p.get(blk.ln1_g), p.get(blk.ln1_b), x, h, None, None);
            let qkv = &mut s.qkv[..rows * 3 * d];
            linear(p, &blk.qkv, h, rows, qkv);
            let o = &mut s.o[..rows * d];
            o.iter_mut().for_each(|v| *v = 0.0);
            let (ko, vo) = (self.key_offset(l), self.key_offset(l) + w * d);
            for r in 0..rows {
                let row_state = &mut state[r * sd..(r + 1) * sd];
                let pos = row_state[0] as usize;
                let tok = &mut qkv[r * 3 * d..(r + 1) * 3 * d];
                if rotary {
                    let span = r * half..(r + 1) * half;
                    rope_apply(
                        &mut tok[..2 * d],
                        dh,
                        &s.cos[span.clone()],
                        &s.sin[span],
                        false,
                    );
                }
                let slot = pos % w;
                row_state[ko + slot * d..ko + (slot + 1) * d].copy_from_slice(&tok[d..2 * d]);
                row_state[vo + slot * d..vo + (slot + 1) * d].copy_from_slice(&tok[2 * d..]);
                let n = (pos + 1).min(w);
                let lo = pos + 1 - n;
                let row_state = &*row_state;
                for hd in 0..spec.heads {
                    let c = hd * dh..(hd + 1) * dh;
                    let at = |base: usize, j: usize| {
                        let off = base + ((lo + j) % w) * d + hd * dh;
                        &row_state[off..off + dh]
                    };
                    attend(
                        &tok[c.clone()],
                        scale,
                        n,
                        |j| at(ko, j),
                        |j| at(vo, j),
                        &mut s.prob,
                        &mut o[r * d + c.start..r * d + c.end],
                    );
                }
            }
            residual(p, &blk.out, o, rows, x);
            layer_norm(p.get(blk.ln2_g), p.get(blk.ln2_b), x, h, None, None);
            let u = &mut s.u[..rows * mlp];
            linear(p, &blk.fc1, h, rows, u);
            u.iter_mut().for_each(|v| *v = gelu(*v));
            residual(p, &blk.fc2, u, rows, x);
        }
        layer_norm(
            p.get(self.lnf_g),
            p.get(self.lnf_b),
            x,
            &mut out[..rows * d],
            None,
            None,
        );
        for r in 0..rows {
            state[r * sd] += 1.0;
        }
    }
}

/// `x += a · W + b` (a residual branch's output projection).
fn residual(p: &Params, layer: &crate::nn::params::Dense, a: &[f32], rows: usize, x: &mut [f32]) {
    let (fi, fo) = (layer.fan_in(), layer.fan_out());
    let b = p.get(layer.b);
    for row in x.chunks_mut(fo) {
        for (v, bj) in row.iter_mut().zip(b) {
            *v += bj;
        }
    }
    matmul(x, a, false, p.get(layer.w), false, rows, fi, fo, true);
}
