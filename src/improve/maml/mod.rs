//! MAML-TRPO (Finn, Abbeel & Levine 2017): gradient-based meta-RL. A memoryless
//! policy adapts to each task by policy-gradient step(s) on that task's adaptation
//! episodes; the meta-parameters are trained by TRPO on the episodes the adapted
//! policies then collect. See docs/methods.md ("MAML").
//!
//! - [`policy`]: the host MLP (Gaussian or categorical head) on flat `f64`
//!   parameters with hand-written gradients, Hessian-vector and Fisher-vector products;
//! - [`baseline`]: returns, the per-task linear feature baseline, GAE, standardisation;
//! - [`trpo`]: conjugate gradient and the KL-constrained backtracking line search;
//! - [`meta`]: the inner step, the exact or first-order meta-gradient and the outer step;
//! - [`rollout`]: one meta-batch of tasks on a [`crate::env::BatchEnv`], one task per row;
//! - [`train`]: the training loop and its run folder; [`eval`]: adaptation at meta-test;
//!   [`agent`]: the same adaptation for a caller that steps the environment.
//!
//! ```
//! use bamdp::improve::maml::policy::{Activation, Head, Policy, Tape};
//! use bamdp::improve::maml::meta::{AdaptBatch, Maml};
//! let policy = Policy::new(2, &[8], Activation::Tanh, Head::Gaussian { dim: 2 });
//! let theta = policy.init(&mut bamdp::rng::Rng::new(0));
//! let batch = AdaptBatch {
//!     obs: vec![0.1, -0.2, 0.3, 0.4],
//!     actions: vec![0.5, 0.0, -0.5, 1.0],
//!     advantages: vec![1.0, -1.0],
//! };
//! let maml = Maml { policy: &policy, inner_lr: 0.1, first_order: false, threads: 1 };
//! let adapted = maml.inner_step(&theta, &batch, &mut Tape::default());
//! assert_eq!(adapted.len(), theta.len());
//! assert!(adapted != theta);
//! ```

pub mod agent;
pub mod eval;
pub mod memory;
pub mod meta;
pub mod policy;
pub mod rollout;
pub mod train;
pub mod trpo;

use serde::{Deserialize, Serialize};

/// `[maml]`: MAML-TRPO (used when `method = "maml"`, `improver = "maml"`). Defaults
/// are Meta-World+'s MAML-TRPO settings except the network (the MAML paper's).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MamlConfig {
    /// Inner (adaptation) step size alpha.
    pub inner_lr: f64,
    /// Inner policy-gradient steps; each collects its own adaptation episodes.
    pub inner_steps: usize,
    /// Tasks per meta-update (one env row each).
    pub meta_batch: usize,
    /// Adaptation episodes per task and inner step.
    pub episodes_per_task: usize,
    /// Post-adaptation episodes per task (the outer objective's samples).
    pub post_episodes: usize,
    /// TRPO's trust region: maximum mean KL of the post-adaptation policies.
    pub max_kl: f64,
    pub cg_iters: usize,
    /// Added to the Fisher-vector products (`F + damping I`).
    pub cg_damping: f64,
    /// Backtracking candidates of the line search.
    pub line_search_steps: usize,
    pub backtrack_ratio: f64,
    /// Drop the second-order term through the inner step (first-order MAML).
    pub first_order: bool,
    pub hidden: Vec<usize>,
    pub activation: policy::Activation,
    pub gamma: f64,
    pub gae_lambda: f64,
    /// Standardise advantages per task and batch (both references do).
    pub normalize_advantages: bool,
    /// Meta-test: adaptation episodes per inner step (Meta-World: 10).
    pub eval_adapt_episodes: usize,
    /// Meta-test: episodes with the adapted weights (Meta-World: 3).
    pub eval_episodes: usize,
    /// Arithmetic of the policy's matrix products: `"f64"` (exact to `f64` rounding)
    /// or `"f32"` (operands rounded to `f32`, products in faer's `f32` kernels, about
    /// twice as fast on the MetaWorld presets' `[512, 512]` layers; Meta-World+'s
    /// MAML-TRPO computes in `f32`). Everything else stays `f64`
    /// ([`crate::nn::gemm_mixed`]).
    pub matmul: crate::nn::gemm_mixed::Precision,
}

impl Default for MamlConfig {
    fn default() -> Self {
        MamlConfig {
            inner_lr: 0.1,
            inner_steps: 1,
            meta_batch: 20,
            episodes_per_task: 10,
            post_episodes: 10,
            max_kl: 0.01,
            cg_iters: 10,
            cg_damping: 1e-5,
            line_search_steps: 15,
            backtrack_ratio: 0.8,
            first_order: false,
            hidden: vec![100, 100],
            activation: policy::Activation::Relu,
            gamma: 0.99,
            gae_lambda: 1.0,
            normalize_advantages: true,
            eval_adapt_episodes: 10,
            eval_episodes: 3,
            matmul: crate::nn::gemm_mixed::Precision::F64,
        }
    }
}

/// A config problem: `(key, value, what is allowed)`.
pub type Problem = (&'static str, String, String);

impl MamlConfig {
    /// The first problem of the `[maml]` section and of its pairing with `method` /
    /// `improver`, if any.
    pub fn problem(&self, method: &str, improver: &str) -> Option<Problem> {
        let p = |k: &'static str, v: &dyn std::fmt::Display, a: &str| {
            Some((k, v.to_string(), a.to_string()))
        };
        if improver == "maml" && method != "maml" {
            return p(
                "method",
                &format!("{method:?}"),
                "\"maml\" with improver = \"maml\" (MAML adapts a memoryless policy's weights; it does not combine with a belief)",
            );
        }
        if method == "maml" && improver != "maml" {
            return p(
                "improver",
                &format!("{improver:?}"),
                "\"maml\" for method \"maml\"",
            );
        }
        if method != "maml" {
            return None;
        }
        let c = self;
        if !(c.inner_lr >= 0.0 && c.inner_lr.is_finite()) {
            return p("maml.inner_lr", &c.inner_lr, "a finite number >= 0");
        }
        for (key, value) in [
            ("maml.inner_steps", c.inner_steps),
            ("maml.meta_batch", c.meta_batch),
            ("maml.episodes_per_task", c.episodes_per_task),
            ("maml.post_episodes", c.post_episodes),
            ("maml.line_search_steps", c.line_search_steps),
            ("maml.eval_adapt_episodes", c.eval_adapt_episodes),
            ("maml.eval_episodes", c.eval_episodes),
        ] {
            if value == 0 {
                return p(key, &value, "an integer > 0");
            }
        }
        // Each inner step keeps its own block of episodes and parameters in memory
        // and is differentiated through; far more than a handful never fits.
        if c.inner_steps > 64 {
            return p("maml.inner_steps", &c.inner_steps, "an integer in 1..=64");
        }
        if c.meta_batch > 4096 {
            return p("maml.meta_batch", &c.meta_batch, "an integer in 1..=4096");
        }
        if !(c.max_kl > 0.0 && c.max_kl.is_finite()) {
            return p("maml.max_kl", &c.max_kl, "a finite number > 0");
        }
        if !(c.cg_damping >= 0.0 && c.cg_damping.is_finite()) {
            return p("maml.cg_damping", &c.cg_damping, "a finite number >= 0");
        }
        if !(c.backtrack_ratio > 0.0 && c.backtrack_ratio < 1.0) {
            return p(
                "maml.backtrack_ratio",
                &c.backtrack_ratio,
                "a number in (0, 1)",
            );
        }
        if !(0.0..=1.0).contains(&c.gamma) {
            return p("maml.gamma", &c.gamma, "a number in [0, 1]");
        }
        if !(0.0..=1.0).contains(&c.gae_lambda) {
            return p("maml.gae_lambda", &c.gae_lambda, "a number in [0, 1]");
        }
        if let Some(&w) = c.hidden.iter().find(|&&w| w == 0 || w > 4096) {
            return p("maml.hidden", &w, "layer widths in 1..=4096");
        }
        None
    }

    /// Episodes in one training trial: every inner step's adaptation episodes, then
    /// the post-adaptation episodes.
    pub fn train_episodes_per_trial(&self) -> usize {
        self.train_blocks().iter().sum()
    }

    /// Episodes of each block of a training trial: `episodes_per_task` per inner
    /// step, then `post_episodes`.
    pub fn train_blocks(&self) -> Vec<usize> {
        let mut blocks = vec![self.episodes_per_task; self.inner_steps];
        blocks.push(self.post_episodes);
        blocks
    }
}
