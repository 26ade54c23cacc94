//! `transformer`: RL2 with a causal transformer over the trial's tokens
//! (s, a_prev, r_prev, done_prev) in place of the GRU (the TrMRL / ECET / AMAGO
//! family). The policy's memory is the belief; PPO's gradient flows through it.
//! The token embeddings and the transformer's sizes come from `[transformer]`
//! ([`crate::nn::transformer::TransformerConfig`]).

use super::Method;
use crate::config::Config;
use crate::env::EnvSpec;
use crate::nn::{CoreSpec, MemorySpec};

pub struct Transformer;

impl Method for Transformer {
    fn name(&self) -> &'static str {
        "transformer"
    }
    fn about(&self) -> &'static str {
        "a causal transformer over the trial's (observation, previous action, previous reward) tokens is the belief (TrMRL / ECET / AMAGO family), trained end to end by PPO"
    }
    fn memory(&self, cfg: &Config, spec: &EnvSpec) -> Option<MemorySpec> {
        let t = &cfg.transformer;
        Some(MemorySpec {
            obs_dim: spec.obs_dim,
            action_dim: spec.action.input_width(),
            obs_embed: t.obs_embed,
            action_embed: t.action_embed,
            reward_embed: t.reward_embed,
            hidden: t.width,
            core: CoreSpec::Transformer(t.spec()),
        })
    }
}
