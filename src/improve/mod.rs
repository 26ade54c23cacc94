//! Policy improvers: how a policy gets better from experience. PPO with GAE today;
//! the Belief-SMC planner with EM later. Improvers read from rollout buffers and never
//! reach back into environments or beliefs.

pub mod normalize;
pub mod ppo;
