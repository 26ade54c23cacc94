//! The TOML configuration: schema with defaults, `--set key=value` overrides, and
//! validation.
//!
//! Presets live at `configs/<env>/<method>.toml`. A file may omit any section or key
//! (the defaults below fill them in) but may not contain unknown ones. Overrides are
//! applied to the parsed TOML table before it becomes a [`Config`], typed by the
//! schema's defaults; [`Config::validate`] then checks every constraint. All problems
//! are reported as [`UserError`]s naming the file (or `--set`), the key and the value.

use crate::error::UserError;
use serde::{Deserialize, Serialize};

pub use crate::belief::glibrl::GlibrlConfig;
pub use crate::belief::variational::{RewardDecoderKind, VaribadConfig};
pub use crate::improve::smc::SmcConfig;
use std::collections::BTreeSet;
use std::path::Path;

pub use crate::method::{Improver, MethodId};

/// The whole configuration of a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The belief side of the method (see [`crate::method`]); the composites
    /// `varibased` and `glibrl-smc` are accepted and set `improver` too.
    pub method: MethodId,
    /// Environment name, one of [`crate::env::ENVS`].
    pub env: String,
    /// Master seed of every random stream.
    pub seed: u64,
    pub run: RunConfig,
    pub ppo: PpoConfig,
    pub policy: PolicyConfig,
    pub rl2: Rl2Config,
    pub transformer: crate::nn::transformer::TransformerConfig,
    pub varibad: crate::belief::variational::VaribadConfig,
    pub glibrl: crate::belief::glibrl::GlibrlConfig,
    /// How the policy improves: "ppo" (every method) or "smc" (Belief-SMC planning with
    /// EM, for the belief methods oracle, varibad and glibrl; VariBASeD is
    /// `method = "varibad"`, `improver = "smc"`).
    pub improver: Improver,
    pub smc: crate::improve::smc::SmcConfig,
    /// Who simulates MuJoCo / MetaWorld envs: "auto" (native where ported, else the
    /// Python bridge), "native" or "python" (see [`crate::env::mujoco::Backend`]).
    pub env_backend: String,
    pub functions: FunctionsConfig,
    pub eval: EvalConfig,
    pub maml: crate::improve::maml::MamlConfig,
}

/// Policy improvers, with a one-line description.
pub const IMPROVERS: &[(&str, &str)] = &[
    ("ppo", "PPO with GAE on the policy's own samples"),
    (
        "smc",
        "Belief-SMC planning (K particles, K_Omega nested task samples, depth D) with EM: the policy fits the planner's target, the value TD(lambda) returns",
    ),
    (
        "maml",
        "MAML-TRPO for method = \"maml\": inner policy-gradient step(s) per task, TRPO on the post-adaptation episodes",
    ),
];

/// `[run]`: sizes and cadence of the training loop.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Environment frames to train for.
    pub total_frames: u64,
    /// Environments stepped in lock-step.
    pub num_envs: usize,
    /// Steps per environment between two updates.
    pub steps_per_update: usize,
    /// Write a checkpoint every this many updates.
    pub checkpoint_every: usize,
    /// Log (plain lines when not on a terminal) every this many updates.
    pub log_every: usize,
    /// Worker threads for gradient computation; results must not depend on it.
    pub threads: usize,
    /// Free-form name of this variant of the method (e.g. `d24` in an ablation):
    /// `bamdp report` shows and groups runs as `method [label]`. Not used in training.
    pub label: String,
}

/// `[ppo]`: PPO with GAE.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    pub lr: f64,
    /// Linearly anneal the learning rate to 0 over the run.
    pub anneal_lr: bool,
    pub gamma: f64,
    pub gae_lambda: f64,
    /// Ratio clip range.
    pub clip: f64,
    pub epochs: usize,
    /// Minibatches per epoch: groups of whole training sequences, so it divides their
    /// number, `run.num_envs` x `run.steps_per_update / bptt_steps`.
    pub minibatches: usize,
    /// Truncated back-propagation through time: train on sequences of this many steps,
    /// each starting from the recurrent state the actor had there (0: each env's whole
    /// rollout is one sequence). Divides `run.steps_per_update` (unless
    /// `bptt_order = "time"`).
    pub bptt_steps: usize,
    /// How the pieces of `bptt_steps` are trained: `shuffled` (disjoint pieces in random
    /// minibatches, each from the state the actor had there) or `time` (Meta-World+'s
    /// RL2: a minibatch is one piece of every env column, in time order, each from the
    /// state the current parameters reach at the previous piece; RL2 only).
    pub bptt_order: BpttOrder,
    /// With `bptt_order = "time"`: steps each piece shares with the next (pieces start
    /// every `bptt_steps - bptt_overlap` steps; Meta-World+'s RL2: 50 of 250).
    pub bptt_overlap: usize,
    pub value_coef: f64,
    pub entropy_coef: f64,
    pub max_grad_norm: f64,
    pub value_loss: ValueLoss,
    /// Clip the value update like the policy ratio.
    pub clip_value: bool,
    pub adam_eps: f64,
    /// Normalise observations with running statistics.
    pub norm_obs: bool,
    /// Normalise the belief's features in the policy input with running statistics
    /// (methods with a belief only; VariBAD's reference code has the same switch,
    /// `norm_latent_for_policy`). GLiBRL's posterior mean and log-precisions drift over
    /// a long trial to values far outside a tanh layer's range.
    pub norm_belief: bool,
    /// Normalise rewards by a running estimate of the return's scale.
    pub norm_reward: bool,
    /// Standardise the advantages over each rollout before the policy loss (off:
    /// Meta-World+'s RL2).
    pub normalize_advantages: bool,
    /// End an update's epochs at the first minibatch whose approximate KL divergence
    /// from the rollout's policy exceeds 1.5 x this (the rule of Meta-World+'s
    /// `target_kl`, whose default, as here, is none: every epoch runs). Bounds how far
    /// one update moves the policy when many epochs over a large rollout would move it
    /// past the clip's trust region. PPO's update only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_kl: Option<f64>,
    /// The values GAE subtracts: the critic's (`value`, trained by the value loss) or a
    /// linear feature baseline fitted per trial to each rollout's returns (`linear`, as
    /// Meta-World+'s RL2 and MAML; the critic is then not trained).
    pub baseline: Baseline,
}

/// `ppo.bptt_order`: the order and starting states of truncated-BPTT pieces.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BpttOrder {
    /// Disjoint pieces, shuffled into minibatches, each from the actor's stored state.
    #[default]
    Shuffled,
    /// One piece of every column per minibatch, in time order, each from the state the
    /// current parameters reach ([`crate::improve::ppo`]).
    Time,
}

impl BpttOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            BpttOrder::Shuffled => "shuffled",
            BpttOrder::Time => "time",
        }
    }
}

/// `ppo.baseline`: where GAE's values come from.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// The actor-critic's value head, trained by PPO's value loss.
    #[default]
    Value,
    /// rllab's linear feature baseline ([`crate::improve::baseline`]), refitted to every
    /// rollout, per trial of each env row.
    Linear,
}

/// Loss of the value head.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ValueLoss {
    Huber,
    Mse,
}

/// `[policy]`: the MLP on top of the belief.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Hidden layer widths (may be empty: a linear policy).
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// Standard deviation of a continuous-action policy (a categorical one ignores it).
    pub std: PolicyStd,
}

/// `policy.std`: where a Gaussian policy's standard deviations come from.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyStd {
    /// One learnt log standard deviation per action dimension, the same in every state
    /// (VariBAD's reference, CleanRL).
    #[default]
    Parameter,
    /// Meta-World+'s RL2 head: the actor outputs the mean and the log standard
    /// deviations of each state, both through tanh (so std lies in [1/e, e]).
    State,
}

/// Activation of hidden layers.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Tanh,
    Relu,
}

/// `[rl2]`: the recurrent belief of RL^2.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Rl2Config {
    pub gru_hidden: usize,
    pub obs_embed: usize,
    /// 0 feeds the one-hot action directly.
    pub action_embed: usize,
    pub reward_embed: usize,
}

/// `[functions]`: horizon of the function-optimisation envs (`functions-*` only). A key
/// left out takes the env's default (10 queries in 1-D, 20 in 2-D; 2 episodes), which is
/// why both are optional.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionsConfig {
    /// Queries per episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode_len: Option<usize>,
    /// Episodes per trial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episodes_per_trial: Option<usize>,
}

/// `[eval]`: meta-test.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Tasks (trials) played at meta-test.
    pub num_tasks: usize,
    /// Meta-test on held-out tasks every this many frames during training, into the
    /// run's eval.csv (0: never; see `run::eval_every`).
    pub every_frames: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            method: MethodId::Rl2,
            env: "gridnavi".to_string(),
            seed: 1,
            run: RunConfig::default(),
            ppo: PpoConfig::default(),
            policy: PolicyConfig::default(),
            rl2: Rl2Config::default(),
            transformer: Default::default(),
            varibad: VaribadConfig::default(),
            glibrl: GlibrlConfig::default(),
            improver: Improver::Ppo,
            smc: SmcConfig::default(),
            env_backend: "auto".to_string(),
            functions: FunctionsConfig::default(),
            eval: EvalConfig::default(),
            maml: Default::default(),
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            total_frames: 2_000_000,
            num_envs: 16,
            steps_per_update: 60,
            checkpoint_every: 100,
            log_every: 10,
            threads: 2,
            label: String::new(),
        }
    }
}

impl PpoConfig {
    /// Steps per training sequence the rollout buffer keeps a starting state for: the
    /// pieces of `bptt_steps` when they are shuffled; whole columns otherwise (in time
    /// order only the first piece starts from a stored state).
    pub fn sequence_steps(&self, steps_per_update: usize) -> usize {
        match (self.bptt_steps, self.bptt_order) {
            (0, _) | (_, BpttOrder::Time) => steps_per_update,
            (n, BpttOrder::Shuffled) => n,
        }
    }

    /// Start steps of the time-ordered pieces of a column of `steps` steps: every
    /// `bptt_steps - bptt_overlap` steps while a whole piece fits (as Meta-World+, the
    /// steps after the last whole piece are not trained on).
    pub fn time_ordered_starts(&self, steps: usize) -> Vec<usize> {
        let stride = self.bptt_steps.saturating_sub(self.bptt_overlap).max(1);
        (0..steps)
            .step_by(stride)
            .take_while(|s| s + self.bptt_steps <= steps)
            .collect()
    }
}

impl Default for PpoConfig {
    fn default() -> Self {
        PpoConfig {
            lr: 7e-4,
            anneal_lr: false,
            gamma: 0.95,
            gae_lambda: 0.95,
            clip: 0.05,
            epochs: 2,
            minibatches: 4,
            bptt_steps: 0,
            bptt_order: BpttOrder::Shuffled,
            bptt_overlap: 0,
            value_coef: 0.5,
            entropy_coef: 0.01,
            max_grad_norm: 0.5,
            value_loss: ValueLoss::Huber,
            clip_value: true,
            adam_eps: 1e-8,
            norm_obs: false,
            norm_belief: false,
            norm_reward: true,
            normalize_advantages: true,
            target_kl: None,
            baseline: Baseline::Value,
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            hidden: vec![32],
            activation: Activation::Tanh,
            std: PolicyStd::Parameter,
        }
    }
}

impl Default for Rl2Config {
    fn default() -> Self {
        Rl2Config {
            gru_hidden: 64,
            obs_embed: 8,
            action_embed: 8,
            reward_embed: 8,
        }
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            num_tasks: 200,
            every_frames: 0,
        }
    }
}

impl Config {
    /// Read `path`, apply `overrides` (each `section.key=value` or `key=value`), and
    /// validate. Errors name the file, or `--set` for problems an override caused.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config, UserError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UserError::file(path, format!("cannot read config file: {e}")))?;
        let file = path.display().to_string();
        let from_file = parse_file(&text, path, &file)?;
        if overrides.is_empty() {
            from_file.validate(&file)?;
            return Ok(from_file);
        }
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| toml_error(path, &e))?;
        let mut overridden = BTreeSet::new();
        let source_of = |overridden: &BTreeSet<String>, key: &str| {
            if overridden.contains(key) {
                "--set".to_string()
            } else {
                file.clone()
            }
        };
        let mut config = from_file;
        for raw in overrides {
            overridden.insert(apply_override(&mut table, raw)?);
            resolve_method(&mut table, &|key| source_of(&overridden, key))?;
            config = table
                .clone()
                .try_into()
                .map_err(|e| UserError::Other(format!("--set {raw}: {}", error_message(&e))))?;
        }
        let source_of = |key: &str| source_of(&overridden, key);
        config.check(&source_of)?;
        Ok(config)
    }

    /// This config with `overrides` applied and validated (e.g. extending a resumed run
    /// with `--set run.total_frames=...`).
    pub fn with_overrides(&self, overrides: &[String]) -> Result<Config, UserError> {
        let mut table = toml::Table::try_from(self)
            .map_err(|e| UserError::Other(format!("config cannot be written as TOML: {e}")))?;
        for raw in overrides {
            apply_override(&mut table, raw)?;
        }
        resolve_method(&mut table, &|_| "--set".to_string())?;
        let config: Config = table
            .try_into()
            .map_err(|e| UserError::Other(format!("--set: {}", error_message(&e))))?;
        config.validate("--set")?;
        Ok(config)
    }

    /// Parse a resolved config (as written by [`Config::to_toml_string`]) and
    /// validate it; `source_name` (e.g. the path it was read from) names it in errors.
    pub fn from_toml_str(s: &str, source_name: &str) -> Result<Config, UserError> {
        let config = parse_file(s, Path::new(source_name), source_name)?;
        config.validate(source_name)?;
        Ok(config)
    }

    /// A run folder's recorded config as this binary resolves it: keys an older binary
    /// did not write take their defaults. `None` when this binary no longer accepts it
    /// (a removed key or method). Continuing a run (the sweep) and pooling runs as seeds
    /// of one setting (the report) both compare configs through this.
    pub fn from_recorded(text: &str) -> Option<Config> {
        Config::from_toml_str(text, crate::run::files::CONFIG).ok()
    }

    /// The resolved config as TOML, every key written out (the copy kept in run folders).
    pub fn to_toml_string(&self) -> String {
        // Only fails for integers beyond i64 (TOML's range): `seed` above i64::MAX,
        // which no TOML file or override can produce and `validate` rejects.
        match toml::to_string(self) {
            Ok(s) => s,
            Err(e) => format!("# config could not be written as TOML: {e}\n"),
        }
    }

    /// The env construction options this config sets.
    pub fn env_options(&self) -> crate::env::EnvOptions {
        crate::env::EnvOptions {
            functions: crate::env::functions::Options {
                episode_len: self.functions.episode_len,
                episodes_per_trial: self.functions.episodes_per_trial,
            },
            backend: crate::env::mujoco::Backend::parse(&self.env_backend).unwrap_or_default(),
            threads: self.run.threads,
        }
    }

    /// Check every constraint of the schema; errors name `source` (a file path or
    /// `--set`), the key, the bad value and what is allowed.
    pub fn validate(&self, source: &str) -> Result<(), UserError> {
        self.check(&|_| source.to_string())
    }

    /// [`Config::validate`] with the source chosen per key.
    fn check(&self, source_of: &dyn Fn(&str) -> String) -> Result<(), UserError> {
        let bad =
            |key: &str, value: &dyn std::fmt::Display, allowed: &str| -> Result<(), UserError> {
                Err(UserError::Invalid {
                    location: format!("{}: ", source_of(key)),
                    key: key.to_string(),
                    value: value.to_string(),
                    allowed: allowed.to_string(),
                })
            };
        let names = |list: &[(&str, &str)]| {
            let names: Vec<&str> = list.iter().map(|e| e.0).collect();
            format!("one of: {}", names.join(", "))
        };
        // `functions-*` names are checked on their own, so a bad family lists the valid
        // names rather than the patterns of ENVS.
        let functions_env = match crate::env::functions::Variant::from_env_name(&self.env) {
            Ok(v) => v.is_some(),
            Err(_) => {
                let names = crate::env::functions::ENV_NAMES.join(", ");
                return bad("env", &self.env, &format!("one of: {names}"));
            }
        };
        // pybridge hook: `ml1-<task>` names are a pattern, see `env::is_known`.
        if !crate::env::is_known(&self.env) {
            return bad("env", &self.env, &names(crate::env::ENVS));
        }
        if crate::env::mujoco::Backend::parse(&self.env_backend).is_err() {
            return bad(
                "env_backend",
                &self.env_backend,
                crate::env::mujoco::Backend::ALLOWED,
            );
        }
        if self.seed > i64::MAX as u64 {
            return bad("seed", &self.seed, "an integer in 0..=9223372036854775807");
        }

        const POSITIVE: &str = "an integer > 0";
        let r = &self.run;
        let positive_ints: [(&str, u64); 5] = [
            ("run.total_frames", r.total_frames),
            ("run.num_envs", r.num_envs as u64),
            ("run.steps_per_update", r.steps_per_update as u64),
            ("run.checkpoint_every", r.checkpoint_every as u64),
            ("run.log_every", r.log_every as u64),
        ];
        for (key, value) in positive_ints {
            if value == 0 {
                return bad(key, &value, POSITIVE);
            }
        }
        if r.threads == 0 {
            return bad("run.threads", &r.threads, POSITIVE);
        }

        let p = &self.ppo;
        // (key, value, allowed?, what is allowed); every float must also be finite.
        type FloatRule<'a> = (&'a str, f64, fn(f64) -> bool, &'a str);
        let floats: [FloatRule; 8] = [
            ("ppo.lr", p.lr, |x| x > 0.0, "a finite number > 0"),
            (
                "ppo.gamma",
                p.gamma,
                |x| x > 0.0 && x <= 1.0,
                "a number in (0, 1]",
            ),
            (
                "ppo.gae_lambda",
                p.gae_lambda,
                |x| (0.0..=1.0).contains(&x),
                "a number in [0, 1]",
            ),
            ("ppo.clip", p.clip, |x| x > 0.0, "a finite number > 0"),
            (
                "ppo.value_coef",
                p.value_coef,
                |x| x >= 0.0,
                "a finite number >= 0",
            ),
            (
                "ppo.entropy_coef",
                p.entropy_coef,
                |x| x >= 0.0,
                "a finite number >= 0",
            ),
            (
                "ppo.max_grad_norm",
                p.max_grad_norm,
                |x| x > 0.0,
                "a finite number > 0",
            ),
            (
                "ppo.adam_eps",
                p.adam_eps,
                |x| x > 0.0,
                "a finite number > 0",
            ),
        ];
        for (key, value, ok, allowed) in floats {
            if !(value.is_finite() && ok(value)) {
                return bad(key, &value, allowed);
            }
        }
        if p.epochs == 0 {
            return bad("ppo.epochs", &p.epochs, POSITIVE);
        }
        if let Some(t) = p.target_kl {
            if !(t.is_finite() && t > 0.0) {
                return bad(
                    "ppo.target_kl",
                    &t,
                    "a finite number > 0 (or no key: no limit)",
                );
            }
            if self.improver != Improver::Ppo {
                return bad(
                    "ppo.target_kl",
                    &t,
                    &format!(
                        "no key with improver = {:?} (only PPO's update has a KL to stop at)",
                        self.improver.as_str()
                    ),
                );
            }
        }
        if p.bptt_order == BpttOrder::Time {
            self.check_time_ordered_bptt(&bad)?;
        } else {
            if p.bptt_overlap > 0 {
                return bad(
                "ppo.bptt_overlap",
                &p.bptt_overlap,
                "0 with ppo.bptt_order = \"shuffled\" (overlapping pieces need bptt_order = \"time\")",
            );
            }
            if p.bptt_steps > 0 && !r.steps_per_update.is_multiple_of(p.bptt_steps) {
                return bad(
                    "ppo.bptt_steps",
                    &p.bptt_steps,
                    &format!(
                        "0 (whole rollouts) or a divisor of run.steps_per_update = {}",
                        r.steps_per_update
                    ),
                );
            }
            // Training sequences per env column: 1 without truncation.
            let pieces = r.steps_per_update.checked_div(p.bptt_steps);
            let sequences = r.num_envs * pieces.unwrap_or(1);
            if p.minibatches == 0 || !sequences.is_multiple_of(p.minibatches) {
                let allowed = match pieces {
                None => format!(
                    "an integer > 0 that must divide run.num_envs = {} (minibatches are groups of whole env sequences)",
                    r.num_envs
                ),
                Some(pieces) => format!(
                    "an integer > 0 that must divide the {sequences} training sequences (run.num_envs = {} x run.steps_per_update / ppo.bptt_steps = {pieces})",
                    r.num_envs
                ),
            };
                // Blame an override of either key on `--set`.
                let key = if source_of("run.num_envs") == "--set" {
                    "run.num_envs"
                } else {
                    "ppo.minibatches"
                };
                return Err(UserError::Invalid {
                    location: format!("{}: ", source_of(key)),
                    key: "ppo.minibatches".to_string(),
                    value: p.minibatches.to_string(),
                    allowed,
                });
            }
        }

        if let Some(width) = self.policy.hidden.iter().find(|&&w| w == 0) {
            return bad(
                "policy.hidden",
                &format!("{:?}", self.policy.hidden),
                &format!("a list of integers > 0 (found {width})"),
            );
        }

        let q = &self.rl2;
        for (key, value) in [
            ("rl2.gru_hidden", q.gru_hidden),
            ("rl2.obs_embed", q.obs_embed),
            ("rl2.reward_embed", q.reward_embed),
            ("eval.num_tasks", self.eval.num_tasks),
        ] {
            if value == 0 {
                return bad(key, &value, POSITIVE);
            }
        }
        self.varibad.check(&bad)?;
        self.transformer.check(&bad)?;
        self.glibrl.check(&bad)?;
        if self.ppo.baseline == Baseline::Linear && self.improver != Improver::Ppo {
            return bad(
                "ppo.baseline",
                &"\"linear\"",
                &format!(
                    "\"value\" with improver = {:?} (its planner bootstraps from the value head; MAML fits its own linear baseline)",
                    self.improver.as_str()
                ),
            );
        }
        if self.policy.std == PolicyStd::State && self.improver != Improver::Ppo {
            return bad(
                "policy.std",
                &"\"state\"",
                &format!(
                    "\"parameter\" with improver = {:?} (its planner or inner loop samples with a state-independent standard deviation; \"state\" needs improver = \"ppo\")",
                    self.improver.as_str()
                ),
            );
        }
        if let Some((key, value, allowed)) = self
            .maml
            .problem(self.method.as_str(), self.improver.as_str())
        {
            return bad(key, &value, &allowed);
        }
        self.check_smc(&bad)?;
        self.check_functions(&bad, functions_env)
    }

    /// `ppo.bptt_order = "time"`: RL2's GRU trained by PPO, pieces shorter than the
    /// rollout that overlap less than their length, one minibatch per piece.
    fn check_time_ordered_bptt(&self, bad: &BadValue) -> Result<(), UserError> {
        let (p, steps) = (&self.ppo, self.run.steps_per_update);
        if self.method != MethodId::Rl2 || self.improver != Improver::Ppo {
            return bad(
                "ppo.bptt_order",
                &"\"time\"",
                &format!(
                    "\"shuffled\" for method {:?} with improver {:?} (the state carried from piece to piece is RL2's GRU state, trained by PPO)",
                    self.method.as_str(),
                    self.improver.as_str()
                ),
            );
        }
        if p.bptt_steps == 0 || p.bptt_steps > steps {
            return bad(
                "ppo.bptt_steps",
                &p.bptt_steps,
                &format!(
                    "an integer in 1..={steps} (run.steps_per_update) with ppo.bptt_order = \"time\""
                ),
            );
        }
        if p.bptt_overlap >= p.bptt_steps {
            return bad(
                "ppo.bptt_overlap",
                &p.bptt_overlap,
                &format!("an integer below ppo.bptt_steps = {}", p.bptt_steps),
            );
        }
        let pieces = p.time_ordered_starts(steps).len();
        if p.minibatches != pieces {
            return bad(
                "ppo.minibatches",
                &p.minibatches,
                &format!(
                    "{pieces} with ppo.bptt_order = \"time\": a minibatch is one piece of every env, and pieces of ppo.bptt_steps = {} starting every {} steps fit {pieces} times in run.steps_per_update = {steps}",
                    p.bptt_steps,
                    p.bptt_steps - p.bptt_overlap
                ),
            );
        }
        Ok(())
    }

    fn check_smc(&self, bad: &BadValue) -> Result<(), UserError> {
        if self.improver != Improver::Smc {
            return Ok(());
        }
        if !matches!(
            self.method,
            MethodId::Oracle | MethodId::Varibad | MethodId::Glibrl
        ) {
            return bad(
                "improver",
                &"\"smc\"",
                &format!(
                    "\"ppo\" for method {:?}: the planner needs a belief it can simulate (methods oracle, varibad, glibrl)",
                    self.method.as_str()
                ),
            );
        }
        self.smc.check(bad)?;
        if self.ppo.norm_reward {
            return bad(
                "ppo.norm_reward",
                &true,
                "false with improver = \"smc\" (the planner adds the belief's raw predicted rewards to the value function's estimates)",
            );
        }
        if self.method == MethodId::Glibrl && !self.glibrl.reward_head {
            return bad(
                "glibrl.reward_head",
                &false,
                "true with improver = \"smc\" (the planner draws rewards from the reward head)",
            );
        }
        Ok(())
    }

    fn check_functions(&self, bad: &BadValue, functions_env: bool) -> Result<(), UserError> {
        use crate::env::functions::{allowed, MAX_EPISODES_PER_TRIAL, MAX_EPISODE_LEN};
        let f = &self.functions;
        for (key, value, max) in [
            ("functions.episode_len", f.episode_len, MAX_EPISODE_LEN),
            (
                "functions.episodes_per_trial",
                f.episodes_per_trial,
                MAX_EPISODES_PER_TRIAL,
            ),
        ] {
            let Some(v) = value else { continue };
            if !(1..=max).contains(&v) {
                return bad(key, &v, &allowed(max));
            }
            // A key that would change nothing is a mistake worth reporting.
            if !functions_env {
                return bad(
                    key,
                    &v,
                    &format!(
                        "the key left out: [functions] applies only to functions-* envs (env is {:?})",
                        self.env
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Parses a config file's text: syntax and type errors carry the line (toml's own
/// messages); `method` and `improver` are checked and composites expanded first.
fn parse_file(text: &str, path: &Path, source: &str) -> Result<Config, UserError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| toml_error(path, &e))?;
    if resolve_method(&mut table, &|_| source.to_string())? {
        return table
            .try_into()
            .map_err(|e| UserError::file(path, format!("invalid config: {}", error_message(&e))));
    }
    toml::from_str(text).map_err(|e| toml_error(path, &e))
}

/// Checks the `method` and `improver` names of a config table with the schema's error
/// messages, and expands a composite method name (`varibased` = varibad x smc) into
/// its method and improver. Returns whether the table changed.
fn resolve_method(
    table: &mut toml::Table,
    source_of: &dyn Fn(&str) -> String,
) -> Result<bool, UserError> {
    let bad = |key: &str, value: &str, allowed: &str| UserError::Invalid {
        location: format!("{}: ", source_of(key)),
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.to_string(),
    };
    if let Some(toml::Value::String(name)) = table.get("improver") {
        if Improver::parse(name).is_none() {
            let names: Vec<&str> = IMPROVERS.iter().map(|i| i.0).collect();
            return Err(bad(
                "improver",
                &format!("{name:?}"),
                &format!("one of: {}", names.join(", ")),
            ));
        }
    }
    let Some(toml::Value::String(name)) = table.get("method") else {
        return Ok(false);
    };
    let Some(combination) = crate::method::combination(name) else {
        return Err(bad("method", name, &crate::method::method_names()));
    };
    let base = combination.method.as_str();
    if name == base {
        return Ok(false);
    }
    let improver = combination.improver.as_str();
    if let Some(toml::Value::String(given)) = table.get("improver") {
        if given != improver {
            return Err(bad(
                "improver",
                &format!("{given:?}"),
                &format!(
                    "{improver:?} (or no improver) with method = {name:?}, which is {base} x {improver}"
                ),
            ));
        }
    }
    table.insert("method".into(), toml::Value::String(base.into()));
    table.insert("improver".into(), toml::Value::String(improver.into()));
    Ok(true)
}

/// Reports a bad value: `(key, value, what is allowed)`; each section's config
/// struct checks its own keys through it.
pub type BadValue<'a> = dyn Fn(&str, &dyn std::fmt::Display, &str) -> Result<(), UserError> + 'a;

/// A TOML error in `source` (it carries the line, the key and a caret).
fn toml_error(source: &Path, e: &toml::de::Error) -> UserError {
    UserError::file(
        source,
        format!("invalid config: {}", e.to_string().trim_end()),
    )
}

/// A toml error from deserialising the overridden table, on one line (it names the key).
fn error_message(e: &toml::de::Error) -> String {
    e.to_string().trim().replace('\n', " ")
}

/// Apply one `key=value` override to `table`, typed by the schema's defaults.
/// Returns the dotted key it set.
fn apply_override(table: &mut toml::Table, raw: &str) -> Result<String, UserError> {
    let err = |msg: String| UserError::Other(format!("--set {raw}: {msg}"));
    let (key, value) = raw
        .split_once('=')
        .ok_or_else(|| err("expected key=value (e.g. ppo.lr=3e-4)".to_string()))?;
    let (key, value) = (key.trim(), value.trim());
    let mut reference = match toml::Table::try_from(Config::default()) {
        Ok(t) => t,
        Err(e) => return Err(err(format!("internal error: schema not serialisable: {e}"))),
    };
    // Optional keys are absent from the defaults; type them here.
    let optional = [
        ("functions", "episode_len", toml::Value::Integer(1)),
        ("functions", "episodes_per_trial", toml::Value::Integer(1)),
        ("ppo", "target_kl", toml::Value::Float(1.0)),
    ];
    for (section, key, typed) in &optional {
        let table = reference
            .entry(*section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = table {
            t.insert(key.to_string(), typed.clone());
        }
    }
    let top_keys = || reference.keys().cloned().collect::<Vec<_>>().join(", ");

    let parts: Vec<&str> = key.split('.').collect();
    let (section, name) = match parts.as_slice() {
        [name] => (None, *name),
        [section, name] => (Some(*section), *name),
        _ => return Err(err(format!("key `{key}` must be `key` or `section.key`"))),
    };
    let expected = match section {
        None => match reference.get(name) {
            Some(toml::Value::Table(_)) => {
                return Err(err(format!(
                    "`{name}` is a section; set one of its keys as {name}.<key>=value"
                )))
            }
            Some(v) => v,
            None => {
                return Err(err(format!(
                    "unknown key `{name}`; valid keys: {}",
                    top_keys()
                )))
            }
        },
        Some(section) => {
            let Some(toml::Value::Table(keys)) = reference.get(section) else {
                return Err(err(format!(
                    "unknown section `{section}`; valid keys: {}",
                    top_keys()
                )));
            };
            match keys.get(name) {
                Some(v) => v,
                None => {
                    let valid: Vec<&str> = keys.keys().map(String::as_str).collect();
                    return Err(err(format!(
                        "unknown key `{name}` in [{section}]; valid keys: {}",
                        valid.join(", ")
                    )));
                }
            }
        }
    };
    // An optional key is unset by `none` (a preset's value removed, the default back).
    let is_optional =
        section.is_some_and(|sec| optional.iter().any(|(s, k, _)| *s == sec && *k == name));
    let parsed = if is_optional && value == "none" {
        None
    } else {
        let parsed = parse_like(value, expected);
        Some(parsed.map_err(|e| {
            err(if is_optional {
                format!("{e} (or none)")
            } else {
                e
            })
        })?)
    };

    let target = match section {
        None => table,
        Some(section) => {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => t,
                _ => return Err(err(format!("`{section}` in the file is not a section"))),
            }
        }
    };
    match parsed {
        Some(parsed) => target.insert(name.to_string(), parsed),
        None => target.remove(name),
    };
    Ok(key.to_string())
}

/// Parse `text` as a value of the same TOML type as `expected`.
fn parse_like(text: &str, expected: &toml::Value) -> Result<toml::Value, String> {
    use toml::Value;
    match expected {
        Value::Integer(_) => parse_integer(text).map(Value::Integer),
        Value::Float(_) => match text.replace('_', "").parse::<f64>() {
            Ok(x) => Ok(Value::Float(x)),
            Err(_) => Err("expected a number".to_string()),
        },
        Value::Boolean(_) => match text {
            "true" => Ok(Value::Boolean(true)),
            "false" => Ok(Value::Boolean(false)),
            _ => Err("expected true or false".to_string()),
        },
        Value::String(_) => {
            let quoted = text.len() >= 2
                && ((text.starts_with('"') && text.ends_with('"'))
                    || (text.starts_with('\'') && text.ends_with('\'')));
            if quoted {
                match parse_toml_value(text) {
                    Some(Value::String(s)) => Ok(Value::String(s)),
                    _ => Err("expected a string".to_string()),
                }
            } else {
                Ok(Value::String(text.to_string()))
            }
        }
        Value::Array(items) => {
            let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
            let inner = inner.unwrap_or(text).trim();
            let element = items.first().cloned().unwrap_or(Value::Integer(0));
            if inner.is_empty() {
                return Ok(Value::Array(Vec::new()));
            }
            let noun = match element {
                Value::Integer(_) => "a list of integers like [64,64]",
                Value::Float(_) => "a list of numbers like [0.5,1]",
                _ => "a list",
            };
            inner
                .split(',')
                .map(|item| parse_like(item.trim(), &element))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
                .map_err(|_| format!("expected {noun}"))
        }
        _ => Err("this key cannot be set with --set".to_string()),
    }
}

fn parse_integer(text: &str) -> Result<i64, String> {
    let digits = text.replace('_', "");
    let digits = digits.strip_prefix('+').unwrap_or(&digits);
    digits
        .parse::<i64>()
        .map_err(|_| "expected an integer".to_string())
}

/// Parse `text` as a TOML value (`v = <text>`).
fn parse_toml_value(text: &str) -> Option<toml::Value> {
    let table: toml::Table = format!("v = {text}").parse().ok()?;
    table.get("v").cloned()
}
