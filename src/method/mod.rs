//! Methods: what a config's `method` builds. A method is a small [`Method`] impl that
//! turns its own config section and the env's [`EnvSpec`] into the parts the run loop
//! holds: the policy's own memory (RL2's GRU, or a causal transformer), the belief the
//! policy acts on, the [`BeliefLearner`] that trains that belief from a buffer of
//! trials, and the planner over the belief (improver `smc`). The run loop (`run/`) only sees these parts, so a
//! new belief is one folder plus one entry in [`TABLE`] and a preset.
//!
//! `method` and `improver` are parsed once into [`MethodId`] and [`Improver`]; the
//! runnable combinations users know by name (VariBASeD = varibad x smc, GLiBRL x SMC =
//! glibrl x smc) are [`COMBINATIONS`].
//!
//! ```
//! use bamdp::method::{self, MethodId};
//! assert_eq!(method::lookup(MethodId::Varibad).name(), "varibad");
//! assert_eq!(method::combination("varibased").unwrap().method, MethodId::Varibad);
//! ```

pub mod glibrl;
pub mod maml;
pub mod memoryless;
pub mod oracle;
pub mod rl2;
pub mod transformer;
pub mod varibad;

pub use crate::belief::learner::BeliefLearner;

use crate::belief::BatchedBelief;
use crate::config::{Activation, Config, PolicyStd};
use crate::env::{ActionSpace, EnvSpec, KnownDynamics};
use crate::error::UserError;
use crate::improve::smc::{PlanStep, SmcSettings};
use crate::nn::host::Act;
use crate::nn::{AgentNet, HeadSpec, MemorySpec, Params};
use crate::rng::{streams, Rng};
use serde::{Deserialize, Serialize};

/// The methods a config can name (`method = "..."`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodId {
    Rl2,
    Transformer,
    Oracle,
    Varibad,
    Glibrl,
    Memoryless,
    Maml,
}

/// How the policy improves (`improver = "..."`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Improver {
    /// PPO with GAE on the policy's own samples.
    Ppo,
    /// Belief-SMC planning with EM.
    Smc,
    /// MAML-TRPO: inner policy-gradient step(s) per task, TRPO outer step.
    Maml,
}

impl MethodId {
    pub const ALL: [MethodId; 7] = [
        MethodId::Rl2,
        MethodId::Transformer,
        MethodId::Oracle,
        MethodId::Varibad,
        MethodId::Glibrl,
        MethodId::Memoryless,
        MethodId::Maml,
    ];
    pub fn as_str(self) -> &'static str {
        lookup(self).name()
    }
    /// The method called `name` in configs (composites aside, see [`combination`]).
    pub fn parse(name: &str) -> Option<MethodId> {
        MethodId::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl Improver {
    pub const ALL: [Improver; 3] = [Improver::Ppo, Improver::Smc, Improver::Maml];
    pub fn as_str(self) -> &'static str {
        match self {
            Improver::Ppo => "ppo",
            Improver::Smc => "smc",
            Improver::Maml => "maml",
        }
    }
    pub fn parse(name: &str) -> Option<Improver> {
        Improver::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for MethodId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Improver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for MethodId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<&str> for Improver {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One method: builds its parts from its config section and the env's spec. Every
/// part is optional; the defaults build nothing (the memoryless policy).
pub trait Method: Send + Sync {
    /// The name in configs, run folders and `bamdp methods`.
    fn name(&self) -> &'static str;
    /// One line for `bamdp methods`.
    fn about(&self) -> &'static str;
    /// The policy's own memory over (s, a_prev, r_prev, done_prev), trained by the
    /// policy loss (RL2's GRU, or the transformer method's causal transformer).
    fn memory(&self, _cfg: &Config, _spec: &EnvSpec) -> Option<MemorySpec> {
        None
    }
    /// The belief the policy reads next to the observation, for `rows` rows.
    fn belief(
        &self,
        _cfg: &Config,
        _spec: &EnvSpec,
        _rows: usize,
    ) -> Result<Option<Box<dyn BatchedBelief>>, UserError> {
        Ok(None)
    }
    /// The learner that trains the belief from a buffer of trials, recording `rows`
    /// env rows.
    fn learner(
        &self,
        _cfg: &Config,
        _spec: &EnvSpec,
        _rows: usize,
    ) -> Result<Option<Box<dyn BeliefLearner>>, UserError> {
        Ok(None)
    }
    /// The Belief-SMC planner over this method's belief (None: the belief cannot be
    /// simulated, e.g. no reward predictive).
    fn planner(
        &self,
        _spec: &EnvSpec,
        _settings: SmcSettings,
        _dynamics: Box<dyn KnownDynamics>,
        _rows: usize,
        _threads: usize,
    ) -> Option<Box<dyn PlanStep>> {
        None
    }
}

/// The built-in methods, one entry each.
pub static TABLE: [&dyn Method; 7] = [
    &rl2::Rl2,
    &transformer::Transformer,
    &oracle::Oracle,
    &varibad::Varibad,
    &glibrl::Glibrl,
    &memoryless::Memoryless,
    &maml::Maml,
];

/// The built-in method of `id`.
pub fn lookup(id: MethodId) -> &'static dyn Method {
    let i = MethodId::ALL
        .iter()
        .position(|&m| m == id)
        .expect("every MethodId is in ALL");
    TABLE[i]
}

/// A runnable combination by the name users know, with its presets.
#[derive(Clone, Copy, Debug)]
pub struct Combination {
    pub name: &'static str,
    pub method: MethodId,
    pub improver: Improver,
    pub presets: &'static [&'static str],
}

/// Every runnable method x improver combination. The composites' names are accepted
/// as `method = "..."` in configs (see [`combination`]).
pub const COMBINATIONS: &[Combination] = &[
    Combination {
        name: "rl2",
        method: MethodId::Rl2,
        improver: Improver::Ppo,
        presets: &[
            "configs/*/rl2.toml",
            "configs/*/rl2-metaworld-plus.toml",
            "configs/ml10/rl2-metaworld-plus-faithful.toml",
        ],
    },
    Combination {
        name: "transformer",
        method: MethodId::Transformer,
        improver: Improver::Ppo,
        presets: &["configs/*/transformer.toml"],
    },
    Combination {
        name: "varibad",
        method: MethodId::Varibad,
        improver: Improver::Ppo,
        presets: &["configs/*/varibad.toml"],
    },
    Combination {
        name: "glibrl",
        method: MethodId::Glibrl,
        improver: Improver::Ppo,
        presets: &["configs/*/glibrl.toml"],
    },
    Combination {
        name: "oracle",
        method: MethodId::Oracle,
        improver: Improver::Ppo,
        presets: &["configs/gridnavi/oracle.toml"],
    },
    Combination {
        name: "memoryless",
        method: MethodId::Memoryless,
        improver: Improver::Ppo,
        presets: &[
            "configs/gridnavi/memoryless.toml",
            "configs/point_robot/memoryless.toml",
        ],
    },
    Combination {
        name: "varibased",
        method: MethodId::Varibad,
        improver: Improver::Smc,
        presets: &[
            "configs/gridnavi/varibased.toml",
            "configs/functions-1d/varibased.toml",
            "configs/functions-2d/varibased.toml",
        ],
    },
    Combination {
        name: "glibrl-smc",
        method: MethodId::Glibrl,
        improver: Improver::Smc,
        presets: &[
            "configs/gridnavi/glibrl-smc.toml",
            "configs/functions-1d/glibrl-smc.toml",
            "configs/functions-2d/glibrl-smc.toml",
        ],
    },
    Combination {
        name: "maml",
        method: MethodId::Maml,
        improver: Improver::Maml,
        presets: &["configs/*/maml.toml"],
    },
];

/// The composite named `name` (`varibased`, `glibrl-smc`), or a plain method with PPO.
pub fn combination(name: &str) -> Option<&'static Combination> {
    COMBINATIONS.iter().find(|c| c.name == name)
}

/// Names `method = ...` accepts, for error messages.
pub fn method_names() -> String {
    let names: Vec<&str> = COMBINATIONS.iter().map(|c| c.name).collect();
    format!("one of: {}", names.join(", "))
}

/// The network and its parameters for a method, a config and an env, initialised
/// deterministically from the seed. `belief_dim` is the width of the belief's features.
pub fn build_agent(
    method: &dyn Method,
    cfg: &Config,
    spec: &EnvSpec,
    belief_dim: usize,
) -> (AgentNet, Params) {
    let (n_actions, gaussian) = match spec.action {
        ActionSpace::Discrete(n) => (n, false),
        ActionSpace::Continuous { dim, .. } => (dim, true),
    };
    let act = match cfg.policy.activation {
        Activation::Tanh => Act::Tanh,
        Activation::Relu => Act::Relu,
    };
    let mut rng = Rng::stream(cfg.seed, streams::INIT, 0);
    let mut params = Params::new();
    let memory = method.memory(cfg, spec);
    // With memory the input is [obs | previous action | previous reward | done flag].
    let memory_inputs = memory.map_or(0, |m| m.action_dim + 2);
    let input_dim = spec.obs_dim + memory_inputs + belief_dim;
    let head = match (gaussian, cfg.policy.std) {
        (false, _) => HeadSpec::Categorical,
        (true, PolicyStd::Parameter) => HeadSpec::Gaussian,
        (true, PolicyStd::State) => HeadSpec::StateGaussian,
    };
    let net = AgentNet::with_head(
        &mut params,
        input_dim,
        n_actions,
        head,
        &cfg.policy.hidden,
        act,
        memory,
        &mut rng,
    );
    (net, params)
}
