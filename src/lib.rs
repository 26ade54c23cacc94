//! # bamdp: Bayes-adaptive deep reinforcement learning
//!
//! Every method is a **belief model** (how the history of a trial becomes a task
//! representation) times a **policy improver** (how the policy gets better), run on a
//! batch of **environments** that play BAMDP trials: k episodes of one task, the
//! belief kept across episodes and reset between trials.
//!
//! - [`env`]: batched environments, task splits, the three kinds of end.
//! - [`belief`]: the belief interface, exact beliefs (oracles), VariBAD and GLiBRL.
//! - [`improve`]: policy improvers (PPO with GAE; the Belief-SMC planner and its EM step).
//! - [`nn`]: host-side parameters, optimiser and fast inference; burn graphs for training.
//! - [`run`]: training loop, evaluation, checkpoints, metrics, benchmarks.
//! - [`method`]: the method registry: what each `method` builds (memory, belief,
//!   learner, planner).
//! - [`config`]: the TOML schema, overrides and validation.
//! - [`sweep`]: grids of configs x seeds (x named variants), locally or on a Ray cluster.
//! - [`report`]: tables, figures and an HTML page from run folders; [`stats`]: the
//!   statistics behind them (IQM, stratified bootstrap, probability of improvement).
//! - [`api`]: the small surface embedders use (the Python package): envs, train, act.
//!
//! See ARCHITECTURE.md at the repository root for the data flow and invariants.

pub mod api;
pub mod belief;
pub mod cli;
pub mod codec;
pub mod config;
pub mod env;
pub mod error;
pub mod improve;
pub mod method;
pub mod nn;
pub mod par;
pub mod report;
pub mod rng;
pub mod run;
pub mod stats;
pub mod sweep;
