//! TEMPORARY local stand-in; replaced by the real module from branch `cfg`.
use serde::{Deserialize, Serialize};
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Config { pub method: String, pub env: String, pub seed: u64, pub run: RunConfig, pub ppo: PpoConfig, pub policy: PolicyConfig, pub rl2: Rl2Config, pub eval: EvalConfig }
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunConfig { pub total_frames: u64, pub num_envs: usize, pub steps_per_update: usize, pub checkpoint_every: usize, pub log_every: usize, pub threads: usize }
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub enum ValueLoss { Huber, Mse }
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub enum Activation { Tanh, Relu }
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PpoConfig { pub lr: f64, pub anneal_lr: bool, pub gamma: f64, pub gae_lambda: f64, pub clip: f64, pub epochs: usize, pub minibatches: usize, pub value_coef: f64, pub entropy_coef: f64, pub max_grad_norm: f64, pub value_loss: ValueLoss, pub clip_value: bool, pub adam_eps: f64, pub norm_obs: bool, pub norm_reward: bool }
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PolicyConfig { pub hidden: Vec<usize>, pub activation: Activation }
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Rl2Config { pub gru_hidden: usize, pub obs_embed: usize, pub action_embed: usize, pub reward_embed: usize }
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvalConfig { pub num_tasks: usize }
impl Default for Config { fn default() -> Self { Config { method: "rl2".into(), env: "gridnavi".into(), seed: 1,
  run: RunConfig { total_frames: 2_000_000, num_envs: 16, steps_per_update: 60, checkpoint_every: 100, log_every: 10, threads: 2 },
  ppo: PpoConfig { lr: 7e-4, anneal_lr: false, gamma: 0.95, gae_lambda: 0.95, clip: 0.05, epochs: 2, minibatches: 4, value_coef: 0.5, entropy_coef: 0.01, max_grad_norm: 0.5, value_loss: ValueLoss::Huber, clip_value: true, adam_eps: 1e-8, norm_obs: false, norm_reward: true },
  policy: PolicyConfig { hidden: vec![32], activation: Activation::Tanh }, rl2: Rl2Config { gru_hidden: 64, obs_embed: 8, action_embed: 8, reward_embed: 8 }, eval: EvalConfig { num_tasks: 200 } } } }
