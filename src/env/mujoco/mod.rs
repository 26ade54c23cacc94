//! Native MuJoCo simulators: the locomotion meta-tasks of [`super::python`]
//! (`cheetah-vel`, `cheetah-dir`, `ant-dir` on gymnasium's v5 HalfCheetah and Ant) and
//! MetaWorld v3 (all 50 classes as `ml1-<task>` envs, `ml10` and `ml45`), stepped through
//! MuJoCo's C library from Rust, with no Python process in the loop (docs/simulators.md).
//!
//! - [`lib`]: the library, opened at run time (bamdp builds and runs without it), and
//!   thin `mjModel` / `mjData` wrappers over the fields bamdp reads ([`offsets`]).
//! - [`locomotion`]: one row's HalfCheetah or Ant with VariBAD's task rewards.
//! - [`metaworld`]: the Sawyer base, the ported task classes (a table of `TaskClass`
//!   impls), their task lists, ML10 and ML45 ([`mt19937`]: NumPy's legacy generator, from
//!   which MetaWorld draws them).
//! - [`batch`]: the batch: task and reset-seed streams, episode and trial ends, rows
//!   stepped on `run.threads` threads.
//!
//! Which backend runs an env is [`Backend`]: `auto` (the default) is native for the
//! envs in [`PORTED`] and the Python bridge for the others; `native` requires a port;
//! `python` always uses the bridge. Both backends draw every task and reset seed from
//! the same streams, so a row plays the same tasks either way.
//!
//! ```
//! use bamdp::env::mujoco::{Backend, PORTED};
//! assert!(PORTED.contains(&"cheetah-vel"));
//! assert_eq!(Backend::parse("python").unwrap(), Backend::Python);
//! assert!(Backend::parse("gpu").is_err());
//! ```

pub mod batch;
pub mod lib;
pub mod locomotion;
pub mod metaworld;
pub mod mt19937;
#[allow(non_upper_case_globals, dead_code)]
pub mod offsets;

use super::{BatchEnv, Split};
use crate::error::UserError;
use metaworld::benchmark;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Envs with a native port.
pub const PORTED: &[&str] = &[
    "cheetah-vel",
    "cheetah-dir",
    "ant-dir",
    "ml1-reach",
    "ml1-push",
    "ml1-pick-place",
    "ml1-door-open",
    "ml1-drawer-close",
    "ml1-button-press-topdown",
    "ml1-peg-insert-side",
    "ml1-window-open",
    "ml1-sweep",
    "ml1-basketball",
    "ml1-drawer-open",
    "ml1-door-close",
    "ml1-shelf-place",
    "ml1-sweep-into",
    "ml1-lever-pull",
    "ml1-bin-picking",
    "ml1-box-close",
    "ml1-hand-insert",
    "ml1-door-lock",
    "ml1-door-unlock",
    "ml1-assembly",
    "ml1-button-press-topdown-wall",
    "ml1-button-press",
    "ml1-button-press-wall",
    "ml1-coffee-button",
    "ml1-coffee-pull",
    "ml1-coffee-push",
    "ml1-dial-turn",
    "ml1-faucet-open",
    "ml1-faucet-close",
    "ml1-disassemble",
    "ml1-handle-press-side",
    "ml1-handle-press",
    "ml1-window-close",
    "ml1-reach-wall",
    "ml1-push-wall",
    "ml1-pick-place-wall",
    "ml1-push-back",
    "ml1-soccer",
    "ml1-plate-slide",
    "ml1-plate-slide-side",
    "ml1-plate-slide-back",
    "ml1-plate-slide-back-side",
    "ml1-handle-pull",
    "ml1-handle-pull-side",
    "ml1-peg-unplug-side",
    "ml1-pick-out-of-hole",
    "ml1-hammer",
    "ml1-stick-push",
    "ml1-stick-pull",
    "ml10",
    "ml45",
];

/// Whether `name` has a native port.
pub fn is_ported(name: &str) -> bool {
    PORTED.contains(&name)
}

/// Which simulator steps a MuJoCo or MetaWorld env (`env_backend` in the config).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Native where the env is ported ([`PORTED`]), the Python bridge elsewhere.
    #[default]
    Auto,
    /// Native; an env without a port is an error.
    Native,
    /// The Python bridge (`python/bamdp_envs/worker.py`).
    Python,
}

impl Backend {
    pub const ALLOWED: &'static str = "one of: auto, native, python";
    pub fn parse(s: &str) -> Result<Backend, UserError> {
        match s {
            "auto" => Ok(Backend::Auto),
            "native" => Ok(Backend::Native),
            "python" => Ok(Backend::Python),
            other => Err(UserError::invalid("env_backend", other, Self::ALLOWED)),
        }
    }
    /// Whether env `name` (a MuJoCo or MetaWorld env) runs natively under this
    /// backend; an error when `native` is asked for an env without a port.
    pub fn runs_native(self, name: &str) -> Result<bool, UserError> {
        match self {
            Backend::Python => Ok(false),
            Backend::Auto => Ok(is_ported(name)),
            Backend::Native if is_ported(name) => Ok(true),
            Backend::Native => Err(UserError::Other(format!(
                "env `{name}` has no native port (ported: {}); env_backend = \"python\" (or --set env_backend=python) hands it to the Python bridge",
                PORTED.join(", ")
            ))),
        }
    }
}

/// What can go wrong finding or loading MuJoCo, its models and assets.
#[derive(Clone, Debug, thiserror::Error)]
pub enum MujocoError {
    #[error(
        "native MuJoCo needs {what}, which was not found; install it with: {}",
        lib::INSTALL
    )]
    Missing { what: String },
    #[error("{}: MuJoCo version {found} found, bamdp's native simulators are built for {} (set BAMDP_MUJOCO_LIB to that library, or run: {})", path.display(), lib::MUJOCO_VERSION, lib::INSTALL)]
    Version { path: PathBuf, found: i32 },
    #[error("{}: MuJoCo could not load the model: {message}", path.display())]
    Model { path: PathBuf, message: String },
}

impl From<MujocoError> for UserError {
    fn from(e: MujocoError) -> UserError {
        UserError::Other(e.to_string())
    }
}

/// The folder of an installed Python package, asked of `BAMDP_PYTHON` (default
/// `python3`) once per package and remembered. The package is located, not imported.
pub fn python_package_dir(package: &str) -> Result<PathBuf, MujocoError> {
    static FOUND: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    if let Some(p) = FOUND.lock().unwrap().get(package) {
        return Ok(p.clone());
    }
    let python = std::env::var("BAMDP_PYTHON").unwrap_or_else(|_| "python3".into());
    let missing = |why: String| MujocoError::Missing {
        what: format!("the Python package `{package}` ({why})"),
    };
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import importlib.util,os,sys\ns=importlib.util.find_spec(sys.argv[1])\nprint(os.path.dirname(s.origin) if s and s.origin else '')",
            package,
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| missing(format!("could not run `{python}`: {e}; set BAMDP_PYTHON")))?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || dir.is_empty() {
        return Err(missing(format!("`{python}` cannot find it")));
    }
    let dir = PathBuf::from(dir);
    FOUND
        .lock()
        .unwrap()
        .insert(package.to_string(), dir.clone());
    Ok(dir)
}

/// The folder of a package's model files: the environment variable `var` if set, else
/// `sub` inside the installed Python package `package`.
pub fn assets_dir(var: &str, package: &str, sub: &str) -> Result<PathBuf, MujocoError> {
    let dir = match std::env::var(var) {
        Ok(v) => PathBuf::from(v),
        Err(_) => python_package_dir(package)?.join(sub),
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(MujocoError::Missing {
            what: format!("the {package} model files in {} (set {var})", dir.display()),
        })
    }
}

/// The ported env `ml1-<task>` and its MetaWorld class `<task>-v3`.
fn metaworld_class(name: &str) -> Option<(&'static str, &'static dyn metaworld::TaskClass)> {
    let env = *PORTED.iter().find(|p| **p == name)?;
    let class = metaworld::class(&format!("{}-v3", env.strip_prefix("ml1-")?))?;
    Some((env, class))
}

/// A native batch of env `name` (one of [`PORTED`]); see [`super::make`].
pub fn make(
    name: &str,
    num_envs: usize,
    split: Split,
    seed: u64,
    episodes_per_trial: Option<usize>,
    threads: usize,
) -> Result<Box<dyn BatchEnv>, UserError> {
    let family = family(name, split, seed)?;
    let env = batch::NativeBatch::new(family, num_envs, split, seed, episodes_per_trial, threads)?;
    Ok(Box::new(env))
}

type SharedFamily = std::sync::Arc<dyn batch::Family + Send + Sync>;

/// The native task family of env `name` (one of [`PORTED`]) for `split` of the run
/// seeded with `seed`. A family still alive elsewhere for the same arguments is shared
/// rather than compiled again (a family is immutable and its models take ~0.3 s each
/// to compile): the memory guards build a one-row batch to size a row and keep its
/// family ([`crate::env::probe`]) while the full batch is built.
pub fn family(name: &str, split: Split, seed: u64) -> Result<SharedFamily, UserError> {
    type Key = (String, Split, u64);
    static ALIVE: Mutex<Vec<(Key, std::sync::Weak<dyn batch::Family + Send + Sync>)>> =
        Mutex::new(Vec::new());
    let key = (name.to_string(), split, seed);
    {
        let mut alive = ALIVE.lock().unwrap_or_else(|e| e.into_inner());
        alive.retain(|(_, w)| w.strong_count() > 0);
        if let Some(f) = alive
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(f);
        }
    }
    let family = new_family(name, split, seed)?;
    ALIVE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((key, std::sync::Arc::downgrade(&family)));
    Ok(family)
}

fn new_family(name: &str, split: Split, seed: u64) -> Result<SharedFamily, UserError> {
    let family: SharedFamily = if let Some(kind) = locomotion::Kind::parse(name) {
        std::sync::Arc::new(locomotion::LocomotionFamily::new(kind)?)
    } else if let Some(bench) = [&benchmark::ML10, &benchmark::ML45]
        .into_iter()
        .find(|b| b.env == name)
    {
        let bench_seed = (seed & 0xFFFF_FFFF) as u32;
        std::sync::Arc::new(benchmark::BenchmarkFamily::new(bench, split, bench_seed)?)
    } else if let Some((env, class)) = metaworld_class(name) {
        // MetaWorld seeds NumPy's legacy generator: the bridge passes the low 32 bits.
        let bench_seed = (seed & 0xFFFF_FFFF) as u32;
        std::sync::Arc::new(metaworld::SawyerFamily::ml1(env, class, split, bench_seed)?)
    } else {
        return Err(UserError::invalid(
            "env",
            name,
            &format!("one of: {}", PORTED.join(", ")),
        ));
    };
    Ok(family)
}
