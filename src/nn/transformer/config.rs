//! `[transformer]`: the run configuration of `method = "transformer"`, and the
//! [`TransformerSpec`] it builds.

use super::{Positions, TransformerSpec};
use crate::error::UserError;
use serde::{Deserialize, Serialize};

/// Largest context window accepted: the cache holds `2 · layers · window · width`
/// floats per environment.
pub const MAX_WINDOW: usize = 4096;

/// `[transformer]`: the causal transformer memory and its token embeddings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerConfig {
    pub layers: usize,
    pub heads: usize,
    /// Model width (a multiple of `heads`).
    pub width: usize,
    /// Tokens each step attends to (itself and up to `window - 1` earlier ones of the
    /// trial, across episode boundaries).
    pub window: usize,
    /// Hidden width of each block's feed-forward layer.
    pub mlp: usize,
    /// "rotary" or "none".
    pub positions: Positions,
    /// Token embedding widths, as RL2's `[rl2]` (0 feeds the one-hot action directly).
    pub obs_embed: usize,
    pub action_embed: usize,
    pub reward_embed: usize,
}

impl Default for TransformerConfig {
    fn default() -> Self {
        TransformerConfig {
            layers: 2,
            heads: 2,
            width: 32,
            window: 64,
            mlp: 64,
            positions: Positions::Rotary,
            obs_embed: 8,
            action_embed: 8,
            reward_embed: 8,
        }
    }
}

/// Reports one bad key: `(key, value, what is allowed)`.
pub type Bad<'a> = dyn Fn(&str, &dyn std::fmt::Display, &str) -> Result<(), UserError> + 'a;

impl TransformerConfig {
    pub fn spec(&self) -> TransformerSpec {
        TransformerSpec {
            layers: self.layers,
            heads: self.heads,
            width: self.width,
            window: self.window,
            mlp: self.mlp,
            positions: self.positions,
        }
    }

    /// Checks every constraint, reporting the first violation through `bad`.
    pub fn check(&self, bad: &Bad) -> Result<(), UserError> {
        for (key, value) in [
            ("transformer.layers", self.layers),
            ("transformer.heads", self.heads),
            ("transformer.width", self.width),
            ("transformer.mlp", self.mlp),
            ("transformer.obs_embed", self.obs_embed),
            ("transformer.reward_embed", self.reward_embed),
        ] {
            if value == 0 {
                return bad(key, &value, "an integer > 0");
            }
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return bad(
                "transformer.window",
                &self.window,
                &format!("an integer in 1..={MAX_WINDOW}"),
            );
        }
        if !self.width.is_multiple_of(self.heads) {
            return bad(
                "transformer.width",
                &self.width,
                &format!(
                    "a multiple of transformer.heads = {} (heads split the width)",
                    self.heads
                ),
            );
        }
        let head = self.width / self.heads;
        if self.positions == Positions::Rotary && !head.is_multiple_of(2) {
            return bad(
                "transformer.width",
                &self.width,
                &format!(
                    "width / heads even with positions = \"rotary\" (rotary turns pairs; width / heads is {head})"
                ),
            );
        }
        Ok(())
    }
}
