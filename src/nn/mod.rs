//! Neural-network building blocks.
//!
//! Parameters, the optimiser state and rollout inference live on the host as flat
//! `f32` vectors ([`Params`], [`Adam`], [`host`]): rollouts run a whole batch through
//! tiny dense/GRU kernels with no allocation and no framework overhead, and a
//! checkpoint is a handful of vectors. Training builds a burn autodiff graph from the
//! same parameters ([`graph`]), reads the gradients back, and the host optimiser applies
//! them. Both forward paths are checked against each other in tests.

pub mod adam;
pub mod agent;
pub mod gemm;
pub mod gemm64;
pub mod gemm_mixed;
pub mod graph;
pub mod gru_op;
pub mod head;
pub mod host;
pub mod lanes;
pub mod mlp_op;
pub mod overlap;
pub mod params;
pub mod rows32;
pub mod rows64;
pub mod transformer;

pub use adam::Adam;
pub use agent::{AgentNet, CoreSpec, HeadSpec, MemorySpec};
pub use params::{Params, Slot};
