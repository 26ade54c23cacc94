//! Running methods: acting, the training loop, checkpoints, evaluation, metrics,
//! benchmarks.

pub mod actor;
pub mod bench;
pub mod checkpoint;
pub mod class_metrics;
pub mod eval;
pub mod eval_every;
pub mod eval_metaworld;
pub mod files;
pub mod guard;
pub mod metrics;
pub mod tensorboard;
pub mod train;
pub mod trainer;
