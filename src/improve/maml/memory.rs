//! The memory one MAML update holds at its peak, from the config and the env's sizes,
//! for the run's memory guard ([`crate::run::guard::check_maml_memory`]). The peak is
//! the TRPO step's Fisher-vector products: every task's samples (kept by the
//! collector), every task's inner-step parameters (the collector's and the outer
//! step's copies, and one gradient per task), every task's forward passes and backward
//! deltas, which the outer step keeps for all its products, and each thread's scratch
//! of tangents and deltas for a whole block of samples — on the MetaWorld presets
//! (5,000-step blocks, 512-unit layers) over a gigabyte.
//!
//! ```
//! use bamdp::improve::maml::memory::{Phase, UpdateMemory};
//! use bamdp::improve::maml::policy::{Activation, Head, Policy};
//! let policy = Policy::new(39, &[512, 512], Activation::Tanh, Head::Gaussian { dim: 4 });
//! // ML10's preset: 20 tasks, 10 + 10 episodes of 500 steps, 2 threads.
//! let m = UpdateMemory::new(Phase::Training, &policy, 20, &[10, 10], 500, 2);
//! assert!(m.tapes > 1 << 30 && m.tapes > m.samples + m.parameters);
//! ```

use super::policy::Policy;
use super::rollout::row_sample_bytes;

/// Bytes of a MAML update's buffers, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateMemory {
    /// Every task's samples (observations, actions, advantages, rewards, ...).
    pub samples: u128,
    /// Parameter vectors: each task's inner-step parameters and gradients.
    pub parameters: u128,
    /// The policy's forward and backward passes: every task's kept during the outer
    /// step and each thread's scratch (a tape per thread at meta-test).
    pub tapes: u128,
}

/// Which of MAML's loops the buffers serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// A training update: collection, then the TRPO outer step.
    Training,
    /// A meta-test (`bamdp eval` of a MAML run): collection with the inner step only.
    Evaluation,
}

impl UpdateMemory {
    /// `rows` tasks at once (`maml.meta_batch`, or the meta-test's rows) whose trials
    /// play `block_episodes` (each inner step's, then the post-adaptation episodes) of
    /// at most `episode_len` steps, on `threads` threads.
    pub fn new(
        phase: Phase,
        policy: &Policy,
        rows: usize,
        block_episodes: &[usize],
        episode_len: usize,
        threads: usize,
    ) -> UpdateMemory {
        let blocks = block_episodes.len() as u128;
        let theta = 8 * policy.len() as u128;
        let threads = threads.clamp(1, rows.max(1)) as u128;
        // Saturating: absurd sizes must give a huge estimate (and a refusal), not wrap.
        let steps: Vec<usize> = block_episodes
            .iter()
            .map(|e| e.saturating_mul(episode_len))
            .collect();
        let samples = rows as u128 * row_sample_bytes(policy, block_episodes, episode_len);
        let (parameters, tapes) = match phase {
            Phase::Training => {
                // The conjugate gradient's peak: every task's passes (each inner step's
                // forward pass, backward deltas and weights, the post-adaptation forward
                // pass; a first-order run keeps less) and each thread's scratch, sized
                // for the largest block.
                let post = *steps.last().expect("a post-adaptation block");
                let adapt = &steps[..steps.len() - 1];
                let per_task: u128 = adapt
                    .iter()
                    .map(|&n| policy.frozen_bytes(n, true) + 8 * n as u128)
                    .sum::<u128>()
                    + policy.frozen_bytes(post, false);
                let widest = steps.iter().copied().max().unwrap_or(0);
                // The collector's and the outer step's parameters per block and one
                // product per task; the gradient, the conjugate gradient's and the
                // line search's vectors; each thread's vectors through the inner steps.
                (
                    theta * (rows as u128 * (2 * blocks + 1) + 4 + 3 * threads),
                    rows as u128 * per_task + threads * policy.scratch_bytes(widest),
                )
            }
            Phase::Evaluation => {
                // The inner step's tape on an adaptation block.
                let adapt = steps[..steps.len() - 1].iter().max().copied().unwrap_or(0);
                (
                    theta * rows as u128 * blocks,
                    threads * policy.tape_bytes(adapt),
                )
            }
        };
        UpdateMemory {
            samples,
            parameters,
            tapes,
        }
    }

    pub fn total(&self) -> u128 {
        self.samples + self.parameters + self.tapes
    }
}
