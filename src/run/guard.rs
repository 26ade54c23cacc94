//! Guards that stop a run cleanly instead of crashing it:
//!
//! - memory: sizes whose buffers cannot fit in the machine's memory (`run.num_envs`,
//!   `run.steps_per_update`, `eval --num-tasks`, planner particles, MAML's meta-batch,
//!   episodes and network with its per-thread tapes, and the env's rows themselves:
//!   a native MetaWorld row holds its own copies of MuJoCo models, ~21 MB per class)
//!   are refused before the env or any buffer is built, with the estimate and the
//!   memory available (`/proc/meminfo`); the bytes of an env row come from a one-row
//!   batch ([`crate::env::probe`]);
//! - non-finite values: a NaN or infinite loss, gradient norm or parameter after an
//!   update stops training before that update is checkpointed.
//!
//! ```
//! use bamdp::run::guard::{format_bytes, MemoryNeed};
//! assert_eq!(format_bytes(3 << 30), "3.0 GiB");
//! let need = MemoryNeed::new("rollout buffers").add(1 << 20, 4);
//! assert_eq!(need.bytes(), 4 << 20);
//! ```

use super::trainer::{Trainer, UpdateReport};
use crate::config::Config;
use crate::env::EnvSpec;
use crate::error::UserError;
use crate::improve::maml::memory::{Phase, UpdateMemory};
use crate::method::Improver;

/// `bytes` for people: `12.3 GiB`, `45.0 MiB`.
pub fn format_bytes(bytes: u128) -> String {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    if gib >= 1.0 {
        format!("{gib:.1} GiB")
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// The machine's (available, total) memory in bytes from `/proc/meminfo`; None where
/// it cannot be read (the guard then lets everything through).
pub fn machine_memory() -> Option<(u128, u128)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u128> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    let total = field("MemTotal:")?;
    Some((field("MemAvailable:").unwrap_or(total), total))
}

/// An estimate of the memory a run needs, built from its largest buffers.
#[derive(Clone, Debug)]
pub struct MemoryNeed {
    what: &'static str,
    bytes: u128,
}

impl MemoryNeed {
    pub fn new(what: &'static str) -> Self {
        MemoryNeed { what, bytes: 0 }
    }
    /// Adds `count` items of `size` bytes (saturating: sizes come from users).
    pub fn add(mut self, count: u128, size: u128) -> Self {
        self.bytes = self.bytes.saturating_add(count.saturating_mul(size));
        self
    }
    pub fn bytes(&self) -> u128 {
        self.bytes
    }
    /// Refuses the estimate if it exceeds the memory available; `sizes` names the
    /// settings behind it and how to lower them.
    pub fn check(&self, sizes: &str) -> Result<(), UserError> {
        let Some((available, total)) = machine_memory() else {
            return Ok(());
        };
        if self.bytes <= available {
            return Ok(());
        }
        Err(UserError::Other(format!(
            "{sizes}: the {} need about {}, but this machine has {} available ({} in all, /proc/meminfo); lower these sizes",
            self.what,
            format_bytes(self.bytes),
            format_bytes(available),
            format_bytes(total)
        )))
    }
}

/// Bytes per float in every buffer.
const F32: u128 = 4;

/// ` (21.0 MiB per row of env ml1-reach)` after a key sizing env rows, when a row
/// holds memory of its own ([`crate::env::BatchEnv::row_bytes`]).
fn per_row(env: &str, row_bytes: usize) -> String {
    if row_bytes == 0 {
        return String::new();
    }
    format!(
        " ({} per row of env {env})",
        format_bytes(row_bytes as u128)
    )
}

/// Refuses a training config whose env rows and per-row buffers cannot fit, before
/// the env or any buffer is built: `row_bytes` per env row (from a one-row batch, 0
/// when unknown), and per env row and step the rollout's observation, network input,
/// action and a dozen scalars; the planner keeps `particles x nested` simulated rows
/// per env row.
pub fn check_training_memory(
    cfg: &Config,
    obs_dim: usize,
    row_bytes: usize,
) -> Result<(), UserError> {
    let rows = cfg.run.num_envs as u128;
    let steps = cfg.run.steps_per_update as u128;
    let per_sample = (2 * obs_dim as u128 + 16) * F32;
    let what = if row_bytes > 0 {
        "env's rows and rollout buffers"
    } else {
        "rollout buffers"
    };
    let need = MemoryNeed::new(what)
        .add(rows.saturating_mul(steps), per_sample)
        .add(rows, row_bytes as u128);
    need.check(&format!(
        "run.num_envs = {}{} x run.steps_per_update = {}",
        cfg.run.num_envs,
        per_row(&cfg.env, row_bytes),
        cfg.run.steps_per_update
    ))?;
    if cfg.improver == Improver::Smc {
        let c = &cfg.smc;
        let particles = rows
            .saturating_mul(c.particles as u128)
            .saturating_mul(c.nested as u128);
        MemoryNeed::new("planner's particles")
            .add(particles, (4 * obs_dim as u128 + 64) * F32)
            .check(&format!(
                "run.num_envs = {} x smc.particles = {} x smc.nested = {}",
                cfg.run.num_envs, c.particles, c.nested
            ))?;
    }
    Ok(())
}

/// Refuses a truncated-BPTT run whose kept recurrent states cannot fit: one state of
/// `state_dim` values per training sequence (`ppo.bptt_steps`), which for a
/// transformer's key/value window is large.
pub fn check_sequence_states(cfg: &Config, state_dim: usize) -> Result<(), UserError> {
    if cfg.ppo.bptt_steps == 0 || cfg.ppo.bptt_order == crate::config::BpttOrder::Time {
        // Time-ordered pieces keep one state per env (the rollout's first).
        return Ok(());
    }
    let pieces = (cfg.run.steps_per_update / cfg.ppo.bptt_steps) as u128;
    let sequences = (cfg.run.num_envs as u128).saturating_mul(pieces);
    MemoryNeed::new("recurrent states kept at the training sequences' starts")
        .add(sequences, state_dim as u128 * F32)
        .check(&format!(
            "run.num_envs = {} x run.steps_per_update / ppo.bptt_steps = {pieces} states of {state_dim} values",
            cfg.run.num_envs
        ))
}

/// Refuses `ppo.baseline = "linear"` when rollouts do not hold whole trials: the
/// baseline counts steps from each trial's start and treats the rollout's end as the
/// trial's (as Meta-World+'s RL2, whose rollout is one trial per task).
pub fn check_linear_baseline(cfg: &Config, spec: &EnvSpec) -> Result<(), UserError> {
    let (steps, trial) = (cfg.run.steps_per_update, spec.trial_len());
    if cfg.ppo.baseline != crate::config::Baseline::Linear || steps.is_multiple_of(trial) {
        return Ok(());
    }
    Err(UserError::invalid(
        "ppo.baseline",
        "\"linear\"",
        &format!(
            "\"value\" unless run.steps_per_update ({steps}) is a multiple of {}'s trial length ({trial} steps): the linear baseline fits whole trials",
            spec.name
        ),
    ))
}

/// Refuses a MAML run whose env rows and buffers cannot fit (see
/// [`crate::improve::maml::memory`]: samples, parameters and the per-thread tapes),
/// before the env, theta or any sample buffer exists: `rows` tasks at once (each env
/// row holding `row_bytes`) playing `block_episodes` per trial (a training update's
/// `maml.meta_batch` and blocks, or a meta-test's).
pub fn check_maml_memory(
    cfg: &Config,
    spec: &EnvSpec,
    phase: Phase,
    rows: usize,
    block_episodes: &[usize],
    row_bytes: usize,
) -> Result<(), UserError> {
    let m = &cfg.maml;
    let policy = crate::improve::maml::train::build_policy(cfg, spec);
    let need = UpdateMemory::new(
        phase,
        &policy,
        rows,
        block_episodes,
        spec.episode_len,
        cfg.run.threads.max(1),
    );
    let env_rows = per_row(&cfg.env, row_bytes);
    let blocks = match phase {
        Phase::Training => format!(
            "maml.meta_batch = {rows}{env_rows} x (maml.inner_steps = {} x maml.episodes_per_task = {} + maml.post_episodes = {})",
            m.inner_steps, m.episodes_per_task, m.post_episodes
        ),
        Phase::Evaluation => format!(
            "--num-tasks ({rows} at once{env_rows}) x (maml.inner_steps = {} x --episodes-per-task = {} + maml.eval_episodes = {})",
            m.inner_steps, block_episodes[0], m.eval_episodes
        ),
    };
    let what = if row_bytes > 0 {
        "env's rows and MAML's samples, parameters and scratch tapes"
    } else {
        "MAML's samples, parameters and scratch tapes"
    };
    MemoryNeed::new(what)
        .add(need.total(), 1)
        .add(rows as u128, row_bytes as u128)
        .check(&format!(
            "{blocks} episodes of {} steps, maml.hidden = {:?}, run.threads = {}",
            spec.episode_len, m.hidden, cfg.run.threads
        ))
}

/// Refuses an evaluation whose env rows and per-task results cannot fit: `rows` env
/// rows at once of `row_bytes` each (env `env`), and per task one return and one
/// success flag per episode.
pub fn check_eval_memory(
    num_tasks: usize,
    episodes: Option<usize>,
    env: &str,
    rows: usize,
    row_bytes: usize,
) -> Result<(), UserError> {
    let at_once = if row_bytes > 0 {
        format!(" ({rows} at once{})", per_row(env, row_bytes))
    } else {
        String::new()
    };
    let sizes = match episodes {
        Some(k) => format!("--num-tasks {num_tasks}{at_once} x --episodes-per-task {k}"),
        None => format!("--num-tasks {num_tasks}{at_once}"),
    };
    let what = if row_bytes > 0 {
        "env's rows and per-task results"
    } else {
        "per-task results"
    };
    MemoryNeed::new(what)
        .add(num_tasks as u128, 64 + 9 * episodes.unwrap_or(1) as u128)
        .add(rows as u128, row_bytes as u128)
        .check(&sizes)
}

/// The first non-finite quantity after an update, named: a loss or gradient norm of
/// the report, or a parameter of the policy or of the belief's learner.
pub fn non_finite(trainer: &Trainer, report: &UpdateReport) -> Option<String> {
    let s = &report.stats;
    for (name, v) in [
        ("policy loss", s.policy_loss),
        ("value loss", s.value_loss),
        ("entropy", s.entropy),
        ("gradient norm", s.grad_norm),
    ] {
        if !v.is_finite() {
            return Some(format!("the {name} is {v}"));
        }
    }
    if let (Some(l), Some(stats)) = (trainer.learner.as_ref(), report.learner.as_ref()) {
        for (name, v) in l.columns().iter().zip(stats) {
            // A learner statistic may be NaN by definition (e.g. no reward head), but
            // never infinite; its parameters are checked below.
            if v.is_infinite() {
                return Some(format!("the belief learner's {name} is {v}"));
            }
        }
    }
    let bad_param = |p: &crate::nn::Params| {
        let i = p.data.iter().position(|x| !x.is_finite())?;
        let slot = p.slots.iter().position(|s| s.range().contains(&i))?;
        Some((p.names[slot].clone(), p.data[i]))
    };
    if let Some((name, v)) = bad_param(&trainer.params) {
        return Some(format!("policy parameter {name} is {v}"));
    }
    if let Some(l) = trainer.learner.as_ref() {
        if let Some((name, v)) = bad_param(l.params()) {
            return Some(format!("belief parameter {name} is {v}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of `row_bytes` each: a third more rows than fit in the memory available.
    fn too_many_rows(row_bytes: usize) -> Option<usize> {
        let (available, _) = machine_memory()?;
        Some((available / row_bytes as u128 + available / row_bytes as u128 / 3 + 1) as usize)
    }

    #[test]
    fn truncated_bptt_counts_the_kept_states() {
        let Some((available, _)) = machine_memory() else {
            return;
        };
        let mut cfg = Config::default();
        cfg.run.num_envs = 16;
        cfg.run.steps_per_update = 600;
        // Off (whole columns: the states are the trainer's own), nothing is asked;
        // 40 pieces per column keep 640 states of a quarter of the memory each:
        // refused; one piece per column with small states fits.
        let state_dim = (available / 4 / 4) as usize;
        assert!(check_sequence_states(&cfg, state_dim).is_ok());
        cfg.ppo.bptt_steps = 15;
        let e = check_sequence_states(&cfg, state_dim)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ppo.bptt_steps = 40"), "{e}");
        cfg.ppo.bptt_steps = 600;
        let small = (available / 16 / 8) as usize;
        assert!(check_sequence_states(&cfg, small).is_ok());
    }

    #[test]
    fn training_counts_the_env_rows() {
        let row_bytes = 200 << 20;
        let Some(rows) = too_many_rows(row_bytes) else {
            return;
        };
        let mut cfg = Config {
            env: "ml10".into(),
            ..Config::default()
        };
        cfg.run.num_envs = rows;
        cfg.run.steps_per_update = 1;
        // The rollout buffers alone fit; the rows do not.
        check_training_memory(&cfg, 39, 0).unwrap();
        let err = check_training_memory(&cfg, 39, row_bytes)
            .unwrap_err()
            .to_string();
        for needle in [
            &format!("run.num_envs = {rows} (200.0 MiB per row of env ml10)"),
            "env's rows",
            "/proc/meminfo",
        ] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    }

    #[test]
    fn evaluation_counts_the_env_rows_it_builds_at_once() {
        let row_bytes = 1 << 30;
        let Some(rows) = too_many_rows(row_bytes) else {
            return;
        };
        check_eval_memory(rows, Some(3), "ml45", rows, 0).unwrap();
        let err = check_eval_memory(rows, Some(3), "ml45", rows, row_bytes)
            .unwrap_err()
            .to_string();
        let needle = format!("--num-tasks {rows} ({rows} at once (1.0 GiB per row of env ml45))");
        assert!(err.contains(&needle), "{needle:?} not in {err}");
    }
}
