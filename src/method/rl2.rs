//! `rl2`: the policy's own GRU memory over (s, a_prev, r_prev, done_prev) is the
//! belief; PPO's gradient flows through it (back-propagation through the rollout).

use super::Method;
use crate::config::Config;
use crate::env::EnvSpec;
use crate::nn::{CoreSpec, MemorySpec};

pub struct Rl2;

impl Method for Rl2 {
    fn name(&self) -> &'static str {
        "rl2"
    }
    fn about(&self) -> &'static str {
        "RL^2: a GRU over (observation, previous action, previous reward) is the belief, trained end to end by PPO"
    }
    fn memory(&self, cfg: &Config, spec: &EnvSpec) -> Option<MemorySpec> {
        let c = &cfg.rl2;
        Some(MemorySpec {
            obs_dim: spec.obs_dim,
            action_dim: spec.action.input_width(),
            obs_embed: c.obs_embed,
            action_embed: c.action_embed,
            reward_embed: c.reward_embed,
            hidden: c.gru_hidden,
            core: CoreSpec::Gru,
        })
    }
}
