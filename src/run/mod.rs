//! Training loop, evaluation, checkpoints, metrics.
pub mod files;
pub mod metrics;
pub mod tensorboard;
