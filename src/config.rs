//! TEMPORARY local stand-in; replaced by the real module from branch `cfg`.
use serde::{Deserialize, Serialize};
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Config {
    pub method: String,
    pub env: String,
    pub seed: u64,
    pub run: RunConfig,
    pub ppo: PpoConfig,
    pub policy: PolicyConfig,
    pub rl2: Rl2Config,
    pub eval: EvalConfig,
}
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunConfig {
    pub total_frames: u64,
    pub num_envs: usize,
    pub steps_per_update: usize,
    pub checkpoint_every: usize,
    pub log_every: usize,
    pub threads: usize,
}
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum ValueLoss {
    Huber,
    Mse,
}
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Tanh,
    Relu,
}
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PpoConfig {
    pub lr: f64,
    pub anneal_lr: bool,
    pub gamma: f64,
    pub gae_lambda: f64,
    pub clip: f64,
    pub epochs: usize,
    pub minibatches: usize,
    pub value_coef: f64,
    pub entropy_coef: f64,
    pub max_grad_norm: f64,
    pub value_loss: ValueLoss,
    pub clip_value: bool,
    pub adam_eps: f64,
    pub norm_obs: bool,
    pub norm_reward: bool,
}
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PolicyConfig {
    pub hidden: Vec<usize>,
    pub activation: Activation,
}
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Rl2Config {
    pub gru_hidden: usize,
    pub obs_embed: usize,
    pub action_embed: usize,
    pub reward_embed: usize,
}
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvalConfig {
    pub num_tasks: usize,
}
impl Default for Config {
    fn default() -> Self {
        Config {
            method: "rl2".into(),
            env: "gridnavi".into(),
            seed: 1,
            run: RunConfig {
                total_frames: 2_000_000,
                num_envs: 16,
                steps_per_update: 60,
                checkpoint_every: 100,
                log_every: 10,
                threads: 2,
            },
            ppo: PpoConfig {
                lr: 7e-4,
                anneal_lr: false,
                gamma: 0.95,
                gae_lambda: 0.95,
                clip: 0.05,
                epochs: 2,
                minibatches: 4,
                value_coef: 0.5,
                entropy_coef: 0.01,
                max_grad_norm: 0.5,
                value_loss: ValueLoss::Huber,
                clip_value: true,
                adam_eps: 1e-8,
                norm_obs: false,
                norm_reward: true,
            },
            policy: PolicyConfig {
                hidden: vec![32],
                activation: Activation::Tanh,
            },
            rl2: Rl2Config {
                gru_hidden: 64,
                obs_embed: 8,
                action_embed: 8,
                reward_embed: 8,
            },
            eval: EvalConfig { num_tasks: 200 },
        }
    }
}
use crate::error::UserError;
impl Config {
    pub fn load(path: &std::path::Path, overrides: &[String]) -> Result<Config, UserError> {
        let s = std::fs::read_to_string(path).map_err(|e| UserError::file(path, e.to_string()))?;
        let c = Self::from_toml_str(&s, "x")?;
        c.with_overrides(overrides)
    }
    pub fn from_toml_str(s: &str, _src: &str) -> Result<Config, UserError> {
        toml::from_str(s).map_err(|e| UserError::Other(e.to_string()))
    }
    pub fn with_overrides(self, o: &[String]) -> Result<Config, UserError> {
        let mut v: toml::Value = toml::Value::try_from(&self).unwrap();
        for kv in o {
            let (k, val) = kv.split_once('=').unwrap();
            let (sec, key) = k.split_once('.').unwrap();
            let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("x = {val}"))
                .map(|t| t["x"].clone())
                .unwrap_or(toml::Value::String(val.into()));
            v[sec].as_table_mut().unwrap().insert(key.into(), parsed);
        }
        v.try_into()
            .map_err(|e: toml::de::Error| UserError::Other(e.to_string()))
    }
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).unwrap()
    }
}
