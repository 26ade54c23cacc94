//! Trained runs from Python: `AgentCore` acts with a run's latest checkpoint exactly as
//! `bamdp eval` does, and `train` runs `bamdp train` with the GIL released. While it
//! trains, SIGINT goes to bamdp's handler (Ctrl-C saves the checkpoint and stops, as in
//! the CLI); Python's handler is put back afterwards.

use crate::arrays::{bool_rows, f32_rows};
use crate::errors::user;
use bamdp::api::{self, AgentArgs, RunAgent};
use bamdp::env::ActionSpace;
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

#[pyclass(module = "bamdp._native")]
pub struct AgentCore {
    inner: Mutex<RunAgent>,
    #[pyo3(get)]
    rows: usize,
    #[pyo3(get)]
    obs_dim: usize,
    /// Number of discrete actions (0 for continuous action spaces).
    #[pyo3(get)]
    num_actions: usize,
    /// Width of a continuous action (0 for discrete action spaces).
    #[pyo3(get)]
    action_dim: usize,
    #[pyo3(get)]
    episodes_per_trial: usize,
    #[pyo3(get)]
    method: String,
    #[pyo3(get)]
    env: String,
    #[pyo3(get)]
    seed: u64,
    #[pyo3(get)]
    frames_trained: u64,
    /// Whether `adapt` changes the weights (MAML runs).
    #[pyo3(get)]
    adapts_weights: bool,
}

#[pymethods]
impl AgentCore {
    #[new]
    #[pyo3(signature = (run, rows=None, seed=None, greedy=false, episodes_per_trial=None, greedy_from_episode=0))]
    fn new(
        py: Python<'_>,
        run: PathBuf,
        rows: Option<usize>,
        seed: Option<u64>,
        greedy: bool,
        episodes_per_trial: Option<usize>,
        greedy_from_episode: usize,
    ) -> PyResult<Self> {
        let args = AgentArgs {
            rows,
            seed,
            greedy,
            greedy_from_episode,
            episodes_per_trial,
        };
        let agent = py.detach(|| RunAgent::load(&run, &args)).map_err(user)?;
        let spec = agent.spec().clone();
        let (num_actions, action_dim) = match spec.action {
            ActionSpace::Discrete(n) => (n, 0),
            ActionSpace::Continuous { dim, .. } => (0, dim),
        };
        let cfg = agent.config();
        Ok(AgentCore {
            rows: agent.rows(),
            obs_dim: spec.obs_dim,
            num_actions,
            action_dim,
            episodes_per_trial: spec.episodes_per_trial,
            method: cfg.method.to_string(),
            env: cfg.env.clone(),
            seed: args.seed.unwrap_or(cfg.seed),
            frames_trained: agent.frames_trained(),
            adapts_weights: agent.adapts_weights(),
            inner: Mutex::new(agent),
        })
    }

    /// Actions for observations `obs` (`rows x obs_dim`): int64 indices `(rows,)` for
    /// discrete envs, float32 `(rows, action_dim)` for continuous ones.
    fn act<'py>(&self, py: Python<'py>, obs: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let obs = f32_rows(obs, "obs", self.rows, self.obs_dim)?;
        let width = self.action_dim.max(1);
        let mut actions = vec![0.0f32; self.rows * width];
        let mut agent = self.inner.lock().expect("agent lock");
        let agent = &mut *agent;
        py.detach(|| agent.act(&obs, &mut actions)).map_err(user)?;
        if self.num_actions > 0 {
            let idx: Vec<i64> = actions.iter().map(|&a| a as i64).collect();
            Ok(PyArray1::from_vec(py, idx).into_any())
        } else {
            let arr = PyArray2::<f32>::zeros(py, [self.rows, width], false);
            // SAFETY: a new contiguous array, not shared yet.
            unsafe { arr.as_slice_mut() }
                .expect("contiguous")
                .copy_from_slice(&actions);
            Ok(arr.into_any())
        }
    }

    /// The outcome of the last actions (see `bamdp.Agent.observe`).
    #[pyo3(signature = (obs, reward, terminated, truncated, trial_end, final_obs=None, success=None))]
    #[allow(clippy::too_many_arguments)]
    fn observe(
        &self,
        py: Python<'_>,
        obs: &Bound<'_, PyAny>,
        reward: &Bound<'_, PyAny>,
        terminated: &Bound<'_, PyAny>,
        truncated: &Bound<'_, PyAny>,
        trial_end: &Bound<'_, PyAny>,
        final_obs: Option<&Bound<'_, PyAny>>,
        success: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let n = self.rows;
        let obs = f32_rows(obs, "obs", n, self.obs_dim)?;
        let reward = f32_rows(reward, "reward", n, 1)?;
        let terminated = bool_rows(terminated, "terminated", n)?;
        let truncated = bool_rows(truncated, "truncated", n)?;
        let trial_end = bool_rows(trial_end, "trial_end", n)?;
        let final_obs = final_obs
            .map(|f| f32_rows(f, "final_obs", n, self.obs_dim))
            .transpose()?;
        let success = success.map(|s| bool_rows(s, "success", n)).transpose()?;
        let mut agent = self.inner.lock().expect("agent lock");
        let agent = &mut *agent;
        py.detach(|| {
            agent.observe(
                &obs,
                &reward,
                &terminated,
                &truncated,
                &trial_end,
                final_obs.as_deref(),
                success.as_deref(),
            )
        })
        .map_err(user)
    }

    /// MAML's inner step on each row's steps since its trial started or the last
    /// `adapt`; nothing for methods that adapt by acting (see `bamdp.Agent.adapt`).
    fn adapt(&self, py: Python<'_>) -> PyResult<()> {
        let mut agent = self.inner.lock().expect("agent lock");
        let agent = &mut *agent;
        py.detach(|| agent.adapt()).map_err(user)
    }
}

/// A saved signal disposition (plain data: handler address, mask, flags).
struct SavedAction(libc::sigaction);
// SAFETY: `sigaction` holds a handler address and flags, no references to thread-local data.
unsafe impl Send for SavedAction {}
unsafe impl Sync for SavedAction {}

fn current_sigint() -> libc::sigaction {
    // SAFETY: reading the current disposition into a zeroed struct.
    unsafe {
        let mut a: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGINT, std::ptr::null(), &mut a);
        a
    }
}

fn set_sigint(a: &libc::sigaction) {
    // SAFETY: `a` was read by `current_sigint`, so it is a valid disposition.
    unsafe {
        libc::sigaction(libc::SIGINT, a, std::ptr::null_mut());
    }
}

/// bamdp's SIGINT handler, installed once and saved; Python's handler is restored.
fn bamdp_sigint() -> &'static libc::sigaction {
    static ACTION: OnceLock<SavedAction> = OnceLock::new();
    &ACTION
        .get_or_init(|| {
            let python = current_sigint();
            api::interrupt_flag();
            let ours = current_sigint();
            set_sigint(&python);
            SavedAction(ours)
        })
        .0
}

/// Runs `bamdp train`; returns `(run folder, interrupted)`.
#[pyfunction]
#[pyo3(signature = (config=None, out=None, overrides=Vec::new(), resume=false, force=false, quiet=false))]
fn train(
    py: Python<'_>,
    config: Option<PathBuf>,
    out: Option<PathBuf>,
    overrides: Vec<String>,
    resume: bool,
    force: bool,
    quiet: bool,
) -> PyResult<(PathBuf, bool)> {
    let args = api::TrainArgs {
        config,
        overrides,
        out,
        resume,
        force,
        quiet,
    };
    let ours = bamdp_sigint();
    let python = current_sigint();
    set_sigint(ours);
    let result = py.detach(|| api::train(&args));
    set_sigint(&python);
    let trained = result.map_err(user)?;
    Ok((trained.run, trained.interrupted))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<AgentCore>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    Ok(())
}
