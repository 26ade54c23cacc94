//! `VecEnvCore`: a bamdp batch of environments stepped from Python. `step` reads the
//! actions in place when they are a C-contiguous float32 array (any continuous env) and
//! returns fresh arrays (the caller keeps them), filled by one copy from the batch's
//! reused step buffers. python/bamdp/vector.py wraps it as a Gymnasium `VectorEnv`.

use crate::arrays::{array_kind, c_order, describe, read, Kind};
use crate::errors::{invalid, user};
use bamdp::api::{self, EnvArgs};
use bamdp::env::{ActionSpace, BatchEnv, StepOut};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::Mutex;

struct Inner {
    env: Box<dyn BatchEnv>,
    out: StepOut,
    /// Discrete actions converted to the batch's f32 encoding.
    actions: Vec<f32>,
    /// Trials started by each row since the last reset (a task is drawn per trial).
    trial_index: Vec<i64>,
}

#[pyclass(module = "bamdp._native")]
pub struct VecEnvCore {
    inner: Mutex<Inner>,
    name: String,
    split: String,
    num_envs: usize,
    args: EnvArgs,
    #[pyo3(get)]
    obs_dim: usize,
    /// Number of discrete actions (0 for continuous envs).
    #[pyo3(get)]
    num_actions: usize,
    /// Width of one continuous action (0 for discrete envs).
    #[pyo3(get)]
    action_dim: usize,
    #[pyo3(get)]
    action_low: f32,
    #[pyo3(get)]
    action_high: f32,
    #[pyo3(get)]
    episode_len: usize,
    #[pyo3(get)]
    episodes_per_trial: usize,
    #[pyo3(get)]
    has_success: bool,
}

fn build(name: &str, n: usize, split: &str, seed: u64, args: &EnvArgs) -> PyResult<Inner> {
    let env = api::make_env(name, n, split, seed, args).map_err(user)?;
    let od = env.spec().obs_dim;
    let width = env.spec().action.width();
    Ok(Inner {
        env,
        out: StepOut::new(n, od),
        actions: vec![0.0; n * width],
        trial_index: vec![0; n],
    })
}

#[pymethods]
impl VecEnvCore {
    #[new]
    #[pyo3(signature = (name, num_envs, split="train", seed=0, episodes_per_trial=None, episode_len=None))]
    fn new(
        py: Python<'_>,
        name: &str,
        num_envs: usize,
        split: &str,
        seed: u64,
        episodes_per_trial: Option<usize>,
        episode_len: Option<usize>,
    ) -> PyResult<Self> {
        let args = EnvArgs {
            episodes_per_trial,
            episode_len,
        };
        let inner = py.detach(|| build(name, num_envs, split, seed, &args))?;
        let spec = inner.env.spec().clone();
        let (num_actions, action_dim, low, high) = match spec.action {
            ActionSpace::Discrete(n) => (n, 0, 0.0, n as f32 - 1.0),
            ActionSpace::Continuous { dim, low, high } => (0, dim, low, high),
        };
        Ok(VecEnvCore {
            inner: Mutex::new(inner),
            name: name.to_string(),
            split: split.to_string(),
            num_envs,
            args,
            obs_dim: spec.obs_dim,
            num_actions,
            action_dim,
            action_low: low,
            action_high: high,
            episode_len: spec.episode_len,
            episodes_per_trial: spec.episodes_per_trial,
            has_success: spec.has_success,
        })
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }
    #[getter]
    fn split(&self) -> &str {
        &self.split
    }
    #[getter]
    fn num_envs(&self) -> usize {
        self.num_envs
    }

    /// Starts a fresh trial (new task) on every row and returns the first observations
    /// (`num_envs x obs_dim`, float32). With `seed`, the batch is rebuilt from that seed
    /// first, so the tasks and everything after are those of `make_vec_env(..., seed)`.
    #[pyo3(signature = (seed=None))]
    fn reset<'py>(
        &self,
        py: Python<'py>,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let mut guard = self.inner.lock().expect("env lock");
        if let Some(seed) = seed {
            let (name, split, n, args) = (&self.name, &self.split, self.num_envs, &self.args);
            *guard = py.detach(|| build(name, n, split, seed, args))?;
        }
        let inner = &mut *guard;
        inner.trial_index.iter_mut().for_each(|t| *t = 0);
        let obs = &mut inner.out.obs;
        let env = &mut inner.env;
        py.detach(|| env.reset(obs));
        let arr = PyArray2::<f32>::zeros(py, [self.num_envs, self.obs_dim], false);
        // SAFETY: `arr` is new, C-contiguous and not shared yet.
        unsafe { arr.as_slice_mut() }
            .expect("fresh array is contiguous")
            .copy_from_slice(&inner.out.obs);
        Ok(arr)
    }

    /// One step of every row. `actions`: for discrete envs an integer (or float32) array
    /// of `num_envs` action indices; for continuous envs a float32 (or float64) array of
    /// `num_envs x action_dim` values. Returns `(obs, reward, terminated, truncated,
    /// trial_end, success, episode_index, task_id, final_obs, ended)`; `success` is None
    /// for envs without a success signal, `final_obs` and `ended` None unless an episode
    /// ended on some row.
    fn step<'py>(
        &self,
        py: Python<'py>,
        actions: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut guard = self.inner.lock().expect("env lock");
        let inner = &mut *guard;
        let n = self.num_envs;
        if let Some(why) = inner.env.fatal() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(why));
        }
        let env = &mut inner.env;
        let out = &mut inner.out;
        if self.num_actions > 0 {
            let na = self.num_actions;
            let want = format!("an integer array of {n} action indices in 0..{na}");
            let shape_ok = |s: &[usize]| s == [n] || s == [n, 1];
            let bad_index = |v: String| invalid("actions", &v, &want);
            match array_kind(actions) {
                Some(Kind::I64) => {
                    let a = read::<i64>(actions, "actions", &want, shape_ok)?;
                    for (dst, &v) in inner.actions.iter_mut().zip(c_order(&a).iter()) {
                        if v < 0 || v as usize >= na {
                            return Err(bad_index(format!("{v}")));
                        }
                        *dst = v as f32;
                    }
                }
                Some(Kind::I32) => {
                    let a = read::<i32>(actions, "actions", &want, shape_ok)?;
                    for (dst, &v) in inner.actions.iter_mut().zip(c_order(&a).iter()) {
                        if v < 0 || v as usize >= na {
                            return Err(bad_index(format!("{v}")));
                        }
                        *dst = v as f32;
                    }
                }
                Some(Kind::F32) => {
                    let a = read::<f32>(actions, "actions", &want, shape_ok)?;
                    for (dst, &v) in inner.actions.iter_mut().zip(c_order(&a).iter()) {
                        if !(v >= 0.0 && (v as usize) < na && v.fract() == 0.0) {
                            return Err(bad_index(format!("{v}")));
                        }
                        *dst = v;
                    }
                }
                _ => return Err(invalid("actions", &describe(actions), &want)),
            }
            let acts = &inner.actions;
            py.detach(|| env.step(acts, out));
        } else {
            let dim = self.action_dim;
            let want = format!("a float32 array of shape ({n}, {dim})");
            let shape_ok = |s: &[usize]| s == [n, dim] || (dim == 1 && s == [n]);
            let finite = |v: f32| -> PyResult<()> {
                if v.is_finite() {
                    Ok(())
                } else {
                    Err(invalid("actions", &format!("{v}"), "finite values"))
                }
            };
            match array_kind(actions) {
                Some(Kind::F32) => {
                    let a = read::<f32>(actions, "actions", &want, shape_ok)?;
                    let acts = c_order(&a);
                    acts.iter().try_for_each(|&v| finite(v))?;
                    let acts: &[f32] = &acts;
                    py.detach(|| env.step(acts, out));
                }
                Some(Kind::F64) => {
                    let a = read::<f64>(actions, "actions", &want, shape_ok)?;
                    for (dst, &v) in inner.actions.iter_mut().zip(c_order(&a).iter()) {
                        *dst = v as f32;
                        finite(*dst)?;
                    }
                    let acts = &inner.actions;
                    py.detach(|| env.step(acts, out));
                }
                _ => return Err(invalid("actions", &describe(actions), &want)),
            }
        }
        if let Some(why) = inner.env.fatal() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(why));
        }
        let out = &inner.out;
        let od = self.obs_dim;
        let obs = PyArray2::<f32>::zeros(py, [n, od], false);
        // SAFETY (`as_slice_mut` below): the arrays are new, contiguous and unshared.
        unsafe { obs.as_slice_mut() }
            .expect("contiguous")
            .copy_from_slice(&out.obs);
        // Only rows whose episode ended carry a final observation (SAME_STEP autoreset).
        let ended: Vec<bool> = (0..n).map(|r| out.episode_end(r)).collect();
        let (final_obs, ended) = if ended.iter().any(|&e| e) {
            let f = PyArray2::<f32>::zeros(py, [n, od], false);
            unsafe { f.as_slice_mut() }
                .expect("contiguous")
                .copy_from_slice(&out.final_obs);
            (f.into_any(), PyArray1::from_vec(py, ended).into_any())
        } else {
            (py.None().into_bound(py), py.None().into_bound(py))
        };
        let task_id: Vec<i64> = (0..n)
            .map(|r| inner.trial_index[r] * n as i64 + r as i64)
            .collect();
        for (t, &end) in inner.trial_index.iter_mut().zip(&out.trial_end) {
            *t += end as i64;
        }
        let success = if self.has_success {
            PyArray1::from_slice(py, &out.success).into_any()
        } else {
            py.None().into_bound(py)
        };
        let items: [Bound<'py, PyAny>; 10] = [
            obs.into_any(),
            PyArray1::from_slice(py, &out.reward).into_any(),
            PyArray1::from_slice(py, &out.terminated).into_any(),
            PyArray1::from_slice(py, &out.truncated).into_any(),
            PyArray1::from_slice(py, &out.trial_end).into_any(),
            success,
            PyArray1::from_slice(py, &out.episode_index).into_any(),
            PyArray1::from_vec(py, task_id).into_any(),
            final_obs,
            ended,
        ];
        PyTuple::new(py, items)
    }

    /// Seconds spent stepping the batch `steps` times in a Rust loop, cycling through the
    /// rows of `actions` (`T x (num_envs * action width)` float32, discrete actions as
    /// indices): the native cost that python/benches/vec_env.py compares `step` with.
    fn bench_native_steps(
        &self,
        py: Python<'_>,
        actions: &Bound<'_, PyAny>,
        steps: usize,
    ) -> PyResult<f64> {
        let width = self.num_envs * self.action_dim.max(1);
        let want = format!("a float32 array of shape (T, {width})");
        let a = read::<f32>(actions, "actions", &want, |s| {
            s.len() == 2 && s[1] == width && s[0] > 0
        })?;
        let acts = c_order(&a).into_owned();
        let mut guard = self.inner.lock().expect("env lock");
        let inner = &mut *guard;
        let (env, out) = (&mut inner.env, &mut inner.out);
        Ok(py.detach(|| {
            let t = std::time::Instant::now();
            for (_, row) in (0..steps).zip(acts.chunks_exact(width).cycle()) {
                env.step(row, out);
            }
            t.elapsed().as_secs_f64()
        }))
    }

    /// The batch's full state (tasks, positions, counters, random streams) as JSON,
    /// the same object a checkpoint stores.
    fn state_json(&self) -> String {
        let guard = self.inner.lock().expect("env lock");
        guard.env.save_state().to_string()
    }

    /// Versions of the external simulators behind this batch (empty for native envs).
    fn versions(&self) -> Vec<(String, String)> {
        self.inner.lock().expect("env lock").env.versions()
    }
}

/// Names and one-line descriptions of the environments bamdp knows.
#[pyfunction]
fn env_names() -> Vec<(String, String)> {
    bamdp::env::ENVS
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<VecEnvCore>()?;
    m.add_function(wrap_pyfunction!(env_names, m)?)?;
    Ok(())
}
