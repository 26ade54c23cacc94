//! Policy improvers: how a policy gets better from experience. PPO with GAE, and the
//! Belief-SMC planner ([`smc`]) whose targets VariBASeD's EM step fits. Improvers read from rollout buffers and never
//! reach back into environments or beliefs.

pub mod em;
pub mod normalize;
pub mod ppo;
pub mod smc;
