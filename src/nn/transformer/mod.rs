//! An in-context causal transformer memory (the TrMRL / ECET / AMAGO family): the
//! agent's memory is a pre-LayerNorm transformer over the tokens of the current trial.
//!
//! Each step of a trial is one token, the same embedded (observation, previous action,
//! previous reward, episode-end flag) vector RL2's GRU reads, projected to `width`.
//! Blocks are `x += Wo·Attn(LN(x))`, `x += W2·gelu(W1·LN(x))`; the output is `LN(x)` of
//! the newest token, which the actor and critic read. Attention is causal, multi-head,
//! with rotary positions (or none), over a sliding window of the last `window` tokens of
//! the trial; as in ECET the window spans episode boundaries, so the agent attends to
//! what happened in earlier episodes of the same trial. Nothing crosses a trial start.
//!
//! Three paths compute the same function, checked against each other in tests:
//! - [`cache`]: acting, one token per step per row against a per-row key/value cache
//!   (a ring of `window` slots per layer, held in the row's flat memory state, reset
//!   with it at trial starts), allocation-free;
//! - [`sequence`]: training, the whole rollout segment at once on the host with GEMMs,
//!   and its exact hand-written backward pass ([`sequence::backward`]);
//! - [`graph`]: the same forward built from burn ops, the autodiff reference.
//!
//! The memory state of a row is `[count | K_0 | V_0 | K_1 | V_1 | ...]`: the number of
//! tokens of the trial seen so far, then per layer the rotated keys and the values of
//! the last `window` tokens (slot = position mod window). Training segments that start
//! mid-trial read their earlier context from that state as constants, like RL2's
//! initial hidden state (Transformer-XL's stop-gradient memory).
//!
//! ```
//! use bamdp::nn::transformer::{Positions, Transformer, TransformerSpec};
//! use bamdp::nn::Params;
//! use bamdp::rng::Rng;
//!
//! let spec = TransformerSpec { layers: 2, heads: 2, width: 16, window: 8, mlp: 32, positions: Positions::Rotary };
//! let mut p = Params::new();
//! let tf = Transformer::new(&mut p, "mem.tf", 5, spec, &mut Rng::new(1));
//! // One row, two steps through the cache.
//! let mut state = vec![0.0f32; tf.state_dim()];
//! let mut scratch = tf.scratch(1);
//! let mut out = vec![0.0f32; 16];
//! tf.step(&p, &[0.1, 0.2, 0.3, 0.4, 0.0], 1, &mut state, &mut scratch, &mut out);
//! tf.step(&p, &[0.5, 0.0, 0.1, 0.2, 1.0], 1, &mut state, &mut scratch, &mut out);
//! assert_eq!(state[0], 2.0); // two tokens of the trial cached
//! // The output is layer-normalised: zero mean over the width.
//! assert!(out.iter().sum::<f32>().abs() < 1e-4);
//! ```

pub mod cache;
pub mod config;
pub mod graph;
mod kernels;
pub mod sequence;

pub use cache::StepScratch;
pub use config::TransformerConfig;

use super::params::{Dense, Params, Slot};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// How token positions enter attention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Positions {
    /// Rotary embeddings (RoFormer) on queries and keys: scores depend on the distance
    /// between tokens only, so a sliding window needs no position table.
    #[default]
    Rotary,
    /// No positional signal beyond the causal mask.
    None,
}

/// Sizes of the transformer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformerSpec {
    pub layers: usize,
    pub heads: usize,
    /// Model width `d` (a multiple of `heads`; the head width is even with rotary).
    pub width: usize,
    /// Tokens attended to: the newest one and up to `window - 1` before it in the trial.
    pub window: usize,
    /// Hidden width of each block's feed-forward layer.
    pub mlp: usize,
    pub positions: Positions,
}

impl TransformerSpec {
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }
}

/// One pre-LayerNorm block's parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub ln1_g: Slot,
    pub ln1_b: Slot,
    /// `[d, 3d]`: queries, keys, values side by side.
    pub qkv: Dense,
    pub out: Dense,
    pub ln2_g: Slot,
    pub ln2_b: Slot,
    pub fc1: Dense,
    pub fc2: Dense,
}

/// The transformer's parameter slots (values live in a [`Params`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transformer {
    pub spec: TransformerSpec,
    /// Token projection `[token, d]`.
    pub input: Dense,
    pub blocks: Vec<Block>,
    pub lnf_g: Slot,
    pub lnf_b: Slot,
}

impl Transformer {
    /// Builds the transformer for tokens of width `token` and appends its parameters to
    /// `p`. Residual projections start scaled by `1/sqrt(2 layers)` (GPT-2's rule), so
    /// the residual stream's scale does not grow with depth.
    pub fn new(
        p: &mut Params,
        name: &str,
        token: usize,
        spec: TransformerSpec,
        rng: &mut Rng,
    ) -> Self {
        let d = spec.width;
        assert!(
            spec.heads > 0 && d.is_multiple_of(spec.heads),
            "width % heads"
        );
        assert!(spec.window > 0 && spec.layers > 0 && spec.mlp > 0);
        if spec.positions == Positions::Rotary {
            assert!(
                spec.head_dim().is_multiple_of(2),
                "rotary needs even head width"
            );
        }
        let res_gain = 1.0 / ((2 * spec.layers) as f32).sqrt();
        let input = Dense::new(p, &format!("{name}.input"), token, d, 1.0, rng);
        let blocks = (0..spec.layers)
            .map(|l| {
                let n = format!("{name}.{l}");
                Block {
                    ln1_g: p.bias(&format!("{n}.ln1.g"), d, 1.0),
                    ln1_b: p.bias(&format!("{n}.ln1.b"), d, 0.0),
                    qkv: Dense::new(p, &format!("{n}.qkv"), d, 3 * d, 1.0, rng),
                    out: Dense::new(p, &format!("{n}.out"), d, d, res_gain, rng),
                    ln2_g: p.bias(&format!("{n}.ln2.g"), d, 1.0),
                    ln2_b: p.bias(&format!("{n}.ln2.b"), d, 0.0),
                    fc1: Dense::new(p, &format!("{n}.fc1"), d, spec.mlp, 1.0, rng),
                    fc2: Dense::new(p, &format!("{n}.fc2"), spec.mlp, d, res_gain, rng),
                }
            })
            .collect();
        Transformer {
            spec,
            input,
            blocks,
            lnf_g: p.bias(&format!("{name}.lnf.g"), d, 1.0),
            lnf_b: p.bias(&format!("{name}.lnf.b"), d, 0.0),
        }
    }

    /// Width of a token.
    pub fn token_dim(&self) -> usize {
        self.input.fan_in()
    }

    /// Floats of memory state per row: the token count and the key/value cache.
    pub fn state_dim(&self) -> usize {
        1 + 2 * self.spec.layers * self.spec.window * self.spec.width
    }

    /// Offset of layer `l`'s key ring inside a row's state (values follow it).
    pub(crate) fn key_offset(&self, l: usize) -> usize {
        1 + 2 * l * self.spec.window * self.spec.width
    }

    /// Reusable buffers for [`Transformer::step`] over `rows` rows.
    pub fn scratch(&self, rows: usize) -> StepScratch {
        StepScratch::new(&self.spec, rows)
    }
}
