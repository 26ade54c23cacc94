//! Running methods: the training loop, evaluation, checkpoints, metrics, benchmarks.

pub mod bench;
pub mod eval;
pub mod eval_every;
pub mod files;
pub mod metrics;
pub mod tensorboard;
pub mod train;
pub mod trainer;
