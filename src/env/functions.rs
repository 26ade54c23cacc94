//! Function optimisation (VariBASeD's setting; docs/methods.md#functions): each task is a
//! random function `f` on the box `[-1, 1]^D` (`D` = 1 or 2), the action is a query
//! point `x`, the reward is `f(x)`, and nothing else changes. Owns the five function
//! families, their sampling, the rescaling to `[0, 1]`, the per-row task streams and the
//! batch's checkpoint state.
//!
//! VariBASeD names the families (random Fourier series, norms, rationals, polynomials,
//! slopes) but publishes neither their parameter distributions nor its horizons, so
//! **every number below is our choice**. Notation: `U(a, b)` uniform, `N(0, 1)` standard
//! normal, `U{..}` uniform over a set; draws happen in the order written.
//! - **fourier**: `f(x) = sum_{k=1..3} a_k sin(pi (w_k . x) + phi_k)` with
//!   `phi_k ~ U(0, 2 pi)`, radial frequency `r_k` (1-D: `r_k ~ U(0.5, 3)`, `w_k = r_k`;
//!   2-D: `r_k ~ U(0.5, 2)`, `theta_k ~ U(0, 2 pi)`, `w_k = r_k (cos theta_k,
//!   sin theta_k)`) and amplitude `a_k = u_k / r_k`, `u_k ~ U(0.5, 1.5)` (decaying in
//!   frequency). Over the box a term makes `r_k` full periods along `w_k`. Draw order per
//!   term: `r`, (`theta`), `u`, `phi`.
//! - **norm**: `f(x) = -||x - c||_p`, `p ~ U{1, 2, inf}`, `c ~ U([-1, 1]^D)`. In 1-D the
//!   three norms coincide (`-|x - c|`); `p` is drawn anyway.
//! - **rational**: `f(x) = sum_{j=1..J} v_j / (1 + s_j ||x - c_j||_2^2)` (Cauchy-type
//!   bumps), `J ~ U{1, 2}`, per bump `c_j ~ U([-1, 1]^D)` and sharpness
//!   `s_j = 10^{U(0, 2)}` (log-uniform in `[1, 100]`); weights `v_1 = 1`,
//!   `v_2 ~ U(0.25, 1)`.
//! - **polynomial**: degree `n ~ U{2, 3, 4}`; 1-D `f(x) = sum_{i=1..n} a_i x^i`, 2-D
//!   `f(x, y) = sum_{1 <= i + j <= n} a_ij x^i y^j` (cross terms included), every
//!   coefficient `~ N(0, 1)` (drawn for `i` then `j` ascending). No constant term: the
//!   rescaling removes it.
//! - **slope**: `f(x) = w . x`, `w ~ N(0, I_D)`: its optimum is a corner of the box.
//!
//! **Rescaling.** When a task is made, `lo` and `hi` are the minimum and maximum of `f`
//! over a grid (201 evenly spaced points in 1-D, 41 x 41 in 2-D, both including the
//! box's corners) and the family's known candidate optima (the norm's centre, the
//! rational bumps' centres; clamped into the box). Rewards are `(f(x) - lo) / (hi - lo)`,
//! so every task's values span `[0, 1]` on those points, rewards are comparable across
//! families, and `1 - reward` is the regret with respect to that maximum. Between grid
//! points a smooth task may exceed 1 by a little (under 0.4% on a 4x finer grid for 40
//! random tasks of every family, the most in 2-D Fourier tasks; `tests/functions.rs`). A draw with `hi - lo` below `1e-12` (measure zero) is redrawn. The
//! grid is implicit (coordinates computed from the index), so drawing a task inside
//! [`BatchEnv::step`] allocates nothing. Functions are evaluated in f64; rewards are
//! handed out as f32.
//!
//! **Env names**: `functions-1d`, `functions-2d` draw each task's family uniformly from
//! the five (`U{..}` in the order fourier, norm, rational, polynomial, slope, before the
//! family's own draws); `functions-{1d,2d}-<family>` use one family.
//!
//! **Actions**: a continuous box `[-1, 1]^D`; the env clips the agent's unbounded
//! Gaussian samples to it (as the point robot does) and panics on NaN (an agent bug). In
//! 1-D a function is evaluated at `(x, 0)` (all 1-D parameters have a zero second
//! component).
//!
//! **Observation** (our choice): one value, the index of the step within the episode
//! divided by the episode length (`0, 1/L, .., (L-1)/L`; the final observation of an
//! episode is `L/L = 1`). The state does not change, so this is all a state could say;
//! it tells the policy how many queries remain.
//!
//! **Ends**: episodes end only by the time limit (`truncated`); `trial_end` after the
//! last episode of a trial, then the row draws a new task. Defaults (our choice): 10
//! queries x 2 episodes in 1-D, 20 x 2 in 2-D; both configurable (`[functions]` in the
//! config, [`Options`]).
//!
//! **Success**: a step succeeds when its reward is `>= 0.95` ([`SUCCESS_THRESHOLD`]):
//! within 5% of the task's range below its maximum.
//!
//! Row `i` draws its tasks from `Rng::stream(seed, TRAIN_TASKS or TEST_TASKS, i)`, so a
//! row's task sequence does not depend on the batch size; the test split is fresh tasks
//! from a separate stream.

use super::{ActionSpace, BatchEnv, EnvSpec, Split, StepOut};
use crate::error::{StateError, UserError};
use crate::rng::{streams, Rng};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Default queries per episode in 1-D (our choice).
pub const EPISODE_LEN_1D: usize = 10;
/// Default queries per episode in 2-D (our choice).
pub const EPISODE_LEN_2D: usize = 20;
/// Default episodes per trial (our choice).
pub const EPISODES_PER_TRIAL: usize = 2;
/// Largest configurable episode length.
pub const MAX_EPISODE_LEN: usize = 1000;
/// Largest configurable number of episodes per trial.
pub const MAX_EPISODES_PER_TRIAL: usize = 100;
/// Lower bound of each action (query) dimension.
pub const ACTION_LOW: f32 = -1.0;
/// Upper bound of each action (query) dimension.
pub const ACTION_HIGH: f32 = 1.0;
/// Grid points of the rescaling grid in 1-D.
pub const GRID_1D: usize = 201;
/// Grid points per axis of the rescaling grid in 2-D.
pub const GRID_2D: usize = 41;
/// A step succeeds when its (rescaled) reward is at least this.
pub const SUCCESS_THRESHOLD: f64 = 0.95;
/// Terms of a Fourier task.
pub const FOURIER_TERMS: usize = 3;
/// Smallest `hi - lo` a task may have (smaller draws are redrawn).
const MIN_RANGE: f64 = 1e-12;

/// Every env name of this module: `functions-1d`, its five single-family variants, then
/// the same for 2-D.
pub const ENV_NAMES: [&str; 12] = [
    "functions-1d",
    "functions-1d-fourier",
    "functions-1d-norm",
    "functions-1d-rational",
    "functions-1d-polynomial",
    "functions-1d-slope",
    "functions-2d",
    "functions-2d-fourier",
    "functions-2d-norm",
    "functions-2d-rational",
    "functions-2d-polynomial",
    "functions-2d-slope",
];

/// A function family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Fourier,
    Norm,
    Rational,
    Polynomial,
    Slope,
}

/// The five families, in the order the mixed variants draw them.
pub const FAMILIES: [Family; 5] = [
    Family::Fourier,
    Family::Norm,
    Family::Rational,
    Family::Polynomial,
    Family::Slope,
];

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Fourier => "fourier",
            Family::Norm => "norm",
            Family::Rational => "rational",
            Family::Polynomial => "polynomial",
            Family::Slope => "slope",
        }
    }
    pub fn parse(s: &str) -> Option<Family> {
        FAMILIES.into_iter().find(|f| f.name() == s)
    }
}

/// Which functions a batch draws: the dimension and one family or all five.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// 1 or 2.
    pub dim: usize,
    /// `None`: each task draws its family uniformly from [`FAMILIES`].
    pub family: Option<Family>,
}

impl Variant {
    /// The variant an entry of [`ENV_NAMES`] names; `None` for any other string.
    pub fn parse(name: &str) -> Option<Variant> {
        let k = ENV_NAMES.iter().position(|n| *n == name)?;
        Some(Variant {
            dim: 1 + k / 6,
            family: (k % 6).checked_sub(1).map(|f| FAMILIES[f]),
        })
    }

    /// Like [`Variant::parse`], but a name that starts with `functions` and is not one
    /// of [`ENV_NAMES`] is an error listing them; `Ok(None)` for other envs' names.
    pub fn from_env_name(name: &str) -> Result<Option<Variant>, UserError> {
        match Variant::parse(name) {
            Some(v) => Ok(Some(v)),
            None if name.starts_with("functions") => Err(UserError::invalid(
                "env",
                name,
                &format!("one of: {}", ENV_NAMES.join(", ")),
            )),
            None => Ok(None),
        }
    }

    /// The env name of this variant. Panics on a dimension other than 1 or 2.
    pub fn name(self) -> &'static str {
        assert!(
            self.dim == 1 || self.dim == 2,
            "functions: dimension {} is not 1 or 2",
            self.dim
        );
        let f = self.family.map_or(0, |f| {
            1 + FAMILIES.iter().position(|&g| g == f).unwrap_or(0)
        });
        ENV_NAMES[6 * (self.dim - 1) + f]
    }

    /// Default queries per episode of this dimension.
    pub fn default_episode_len(self) -> usize {
        if self.dim == 1 {
            EPISODE_LEN_1D
        } else {
            EPISODE_LEN_2D
        }
    }
}

/// Horizon options (the config's `[functions]` section); `None` takes the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub episode_len: Option<usize>,
    pub episodes_per_trial: Option<usize>,
}

impl Options {
    /// Checks the bounds; errors name the config key.
    pub fn check(&self) -> Result<(), UserError> {
        for (key, value, max) in [
            ("functions.episode_len", self.episode_len, MAX_EPISODE_LEN),
            (
                "functions.episodes_per_trial",
                self.episodes_per_trial,
                MAX_EPISODES_PER_TRIAL,
            ),
        ] {
            if let Some(v) = value {
                if !(1..=max).contains(&v) {
                    return Err(UserError::invalid(key, &v.to_string(), &allowed(max)));
                }
            }
        }
        Ok(())
    }
}

/// What [`Options::check`] and the config accept for a key bounded by `max`.
pub fn allowed(max: usize) -> String {
    format!("an integer in 1..={max} (leave the key out for the env's default)")
}

/// One Fourier term `amplitude * sin(pi * (freq . x) + phase)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wave {
    pub amplitude: f64,
    pub freq: [f64; 2],
    pub phase: f64,
}

/// The `p` of a norm task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    L1,
    L2,
    Inf,
}

/// One bump `weight / (1 + sharpness * ||x - centre||_2^2)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bump {
    pub weight: f64,
    pub sharpness: f64,
    pub centre: [f64; 2],
}

/// Highest polynomial degree.
pub const MAX_DEGREE: usize = 4;

/// The parameters of a task's (unscaled) function `f`; fixed-size, so tasks are `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "lowercase", deny_unknown_fields)]
pub enum Shape {
    /// `sum_k amplitude_k sin(pi freq_k . x + phase_k)`.
    Fourier { waves: [Wave; FOURIER_TERMS] },
    /// `-||x - centre||_p`.
    Norm { p: NormKind, centre: [f64; 2] },
    /// `sum_j weight_j / (1 + sharpness_j ||x - centre_j||^2)`; a bump of weight 0 adds
    /// nothing (single-bump tasks).
    Rational { bumps: [Bump; 2] },
    /// `sum coef[i][j] x^i y^j`; entries with `i + j > 4` must be 0.
    Polynomial {
        coef: [[f64; MAX_DEGREE + 1]; MAX_DEGREE + 1],
    },
    /// `w . x`.
    Slope { w: [f64; 2] },
}

impl Shape {
    pub fn family(&self) -> Family {
        match self {
            Shape::Fourier { .. } => Family::Fourier,
            Shape::Norm { .. } => Family::Norm,
            Shape::Rational { .. } => Family::Rational,
            Shape::Polynomial { .. } => Family::Polynomial,
            Shape::Slope { .. } => Family::Slope,
        }
    }

    /// `f(x)`, unscaled.
    #[inline]
    pub fn eval(&self, x: [f64; 2]) -> f64 {
        match self {
            Shape::Fourier { waves } => waves
                .iter()
                .map(|w| w.amplitude * (PI * (w.freq[0] * x[0] + w.freq[1] * x[1]) + w.phase).sin())
                .sum(),
            Shape::Norm { p, centre } => {
                let (dx, dy) = ((x[0] - centre[0]).abs(), (x[1] - centre[1]).abs());
                -match p {
                    NormKind::L1 => dx + dy,
                    NormKind::L2 => (dx * dx + dy * dy).sqrt(),
                    NormKind::Inf => dx.max(dy),
                }
            }
            Shape::Rational { bumps } => bumps
                .iter()
                .map(|b| {
                    let (dx, dy) = (x[0] - b.centre[0], x[1] - b.centre[1]);
                    b.weight / (1.0 + b.sharpness * (dx * dx + dy * dy))
                })
                .sum(),
            Shape::Polynomial { coef } => {
                let mut xp = [1.0; MAX_DEGREE + 1];
                let mut yp = [1.0; MAX_DEGREE + 1];
                for k in 1..=MAX_DEGREE {
                    xp[k] = xp[k - 1] * x[0];
                    yp[k] = yp[k - 1] * x[1];
                }
                let mut sum = 0.0;
                for i in 0..=MAX_DEGREE {
                    for j in 0..=MAX_DEGREE - i {
                        sum += coef[i][j] * xp[i] * yp[j];
                    }
                }
                sum
            }
            Shape::Slope { w } => w[0] * x[0] + w[1] * x[1],
        }
    }

    /// Points where the family's optimum is known to lie (clamped into the box), checked
    /// next to the grid so kinks and sharp peaks between grid points count.
    fn candidates(&self) -> ([[f64; 2]; 2], usize) {
        let clamp = |c: [f64; 2]| [c[0].clamp(-1.0, 1.0), c[1].clamp(-1.0, 1.0)];
        match self {
            Shape::Norm { centre, .. } => ([clamp(*centre), [0.0; 2]], 1),
            Shape::Rational { bumps } => ([clamp(bumps[0].centre), clamp(bumps[1].centre)], 2),
            _ => ([[0.0; 2]; 2], 0),
        }
    }

    /// Every parameter finite, sharpness non-negative, polynomial degree at most 4.
    fn check(&self) -> Result<(), String> {
        let finite = |xs: &[f64]| xs.iter().all(|v| v.is_finite());
        let ok = match self {
            Shape::Fourier { waves } => waves
                .iter()
                .all(|w| finite(&[w.amplitude, w.freq[0], w.freq[1], w.phase])),
            Shape::Norm { centre, .. } => finite(centre),
            Shape::Rational { bumps } => bumps.iter().all(|b| {
                finite(&[b.weight, b.sharpness, b.centre[0], b.centre[1]]) && b.sharpness >= 0.0
            }),
            Shape::Polynomial { coef } => {
                for (i, row) in coef.iter().enumerate() {
                    for (j, &c) in row.iter().enumerate() {
                        if i + j > MAX_DEGREE && c != 0.0 {
                            return Err(format!(
                                "polynomial coefficient of x^{i} y^{j} is {c}, but the degree is at most {MAX_DEGREE}"
                            ));
                        }
                    }
                }
                coef.iter().all(|row| finite(row))
            }
            Shape::Slope { w } => finite(w),
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} task has a non-finite (or negative sharpness) parameter: {self:?}",
                self.family().name()
            ))
        }
    }

    /// A random shape of `family` in `dim` dimensions (see the module doc).
    pub fn sample(family: Family, dim: usize, rng: &mut Rng) -> Shape {
        let two_d = dim == 2;
        match family {
            Family::Fourier => {
                let mut waves = [Wave {
                    amplitude: 0.0,
                    freq: [0.0; 2],
                    phase: 0.0,
                }; FOURIER_TERMS];
                for w in &mut waves {
                    let r = if two_d {
                        u(rng, 0.5, 2.0)
                    } else {
                        u(rng, 0.5, 3.0)
                    };
                    w.freq = if two_d {
                        let theta = u(rng, 0.0, 2.0 * PI);
                        [r * theta.cos(), r * theta.sin()]
                    } else {
                        [r, 0.0]
                    };
                    w.amplitude = u(rng, 0.5, 1.5) / r;
                    w.phase = u(rng, 0.0, 2.0 * PI);
                }
                Shape::Fourier { waves }
            }
            Family::Norm => {
                let p = [NormKind::L1, NormKind::L2, NormKind::Inf][rng.below(3) as usize];
                let mut centre = [0.0; 2];
                for c in centre.iter_mut().take(dim) {
                    *c = u(rng, -1.0, 1.0);
                }
                Shape::Norm { p, centre }
            }
            Family::Rational => {
                let count = 1 + rng.below(2) as usize;
                let mut bumps = [Bump {
                    weight: 0.0,
                    sharpness: 0.0,
                    centre: [0.0; 2],
                }; 2];
                for (j, b) in bumps.iter_mut().take(count).enumerate() {
                    for c in b.centre.iter_mut().take(dim) {
                        *c = u(rng, -1.0, 1.0);
                    }
                    b.sharpness = 10f64.powf(u(rng, 0.0, 2.0));
                    b.weight = if j == 0 { 1.0 } else { u(rng, 0.25, 1.0) };
                }
                Shape::Rational { bumps }
            }
            Family::Polynomial => {
                let degree = 2 + rng.below(3) as usize;
                let mut coef = [[0.0; MAX_DEGREE + 1]; MAX_DEGREE + 1];
                for (i, row) in coef.iter_mut().enumerate() {
                    let js = if two_d { degree.saturating_sub(i) } else { 0 };
                    for (j, c) in row.iter_mut().enumerate().take(js + 1) {
                        if (1..=degree).contains(&(i + j)) {
                            *c = rng.normal();
                        }
                    }
                }
                Shape::Polynomial { coef }
            }
            Family::Slope => {
                let mut w = [0.0; 2];
                for v in w.iter_mut().take(dim) {
                    *v = rng.normal();
                }
                Shape::Slope { w }
            }
        }
    }
}

/// Uniform in `[lo, hi)`.
#[inline]
fn u(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.uniform()
}

/// A task: a function and the affine map that rescales it to `[0, 1]` (module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Task {
    dim: usize,
    shape: Shape,
    lo: f64,
    range: f64,
}

impl Task {
    /// The task of `shape` in `dim` (1 or 2) dimensions, its rescaling computed on the
    /// grid and candidates. Errors on a bad dimension, a non-finite parameter, or a
    /// function that is (nearly) constant over the box.
    pub fn new(dim: usize, shape: Shape) -> Result<Task, String> {
        if dim != 1 && dim != 2 {
            return Err(format!("dimension {dim} is not 1 or 2"));
        }
        shape.check()?;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut see = |x: [f64; 2]| {
            let v = shape.eval(x);
            lo = lo.min(v);
            hi = hi.max(v);
        };
        if dim == 1 {
            for k in 0..GRID_1D {
                see([grid_coord(k, GRID_1D), 0.0]);
            }
        } else {
            for k in 0..GRID_2D {
                for l in 0..GRID_2D {
                    see([grid_coord(k, GRID_2D), grid_coord(l, GRID_2D)]);
                }
            }
        }
        let (points, count) = shape.candidates();
        for &c in &points[..count] {
            see(if dim == 1 { [c[0], 0.0] } else { c });
        }
        let range = hi - lo;
        if !(range.is_finite() && range >= MIN_RANGE) {
            return Err(format!(
                "{} task spans [{lo}, {hi}] over the box: too flat to rescale",
                shape.family().name()
            ));
        }
        Ok(Task {
            dim,
            shape,
            lo,
            range,
        })
    }

    /// A random task of `family` (a random family if `None`) from `rng`; degenerate
    /// draws are redrawn.
    pub fn sample(dim: usize, family: Option<Family>, rng: &mut Rng) -> Task {
        let family = family.unwrap_or_else(|| FAMILIES[rng.below(FAMILIES.len() as u64) as usize]);
        loop {
            if let Ok(task) = Task::new(dim, Shape::sample(family, dim, rng)) {
                return task;
            }
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn family(&self) -> Family {
        self.shape.family()
    }
    /// `(lo, hi)`: the unscaled minimum and maximum the rescaling maps to 0 and 1.
    pub fn bounds(&self) -> (f64, f64) {
        (self.lo, self.lo + self.range)
    }

    /// The unscaled `f(x)`; in 1-D `x[1]` is ignored (the function is `f(x, 0)`).
    #[inline]
    pub fn raw(&self, x: [f64; 2]) -> f64 {
        let x = if self.dim == 1 { [x[0], 0.0] } else { x };
        self.shape.eval(x)
    }

    /// The rescaled value `(f(x) - lo) / (hi - lo)`: the reward of querying `x`.
    #[inline]
    pub fn value(&self, x: [f64; 2]) -> f64 {
        (self.raw(x) - self.lo) / self.range
    }
}

/// Coordinate `k` of an `n`-point grid over `[-1, 1]` (exact at both ends).
#[inline]
pub fn grid_coord(k: usize, n: usize) -> f64 {
    -1.0 + 2.0 * k as f64 / (n - 1) as f64
}

/// A batch of function-optimisation environments (see the module doc).
pub struct Functions {
    spec: EnvSpec,
    split: Split,
    variant: Variant,
    /// Task per row.
    task: Vec<Task>,
    /// Steps taken in the current trial per row.
    t: Vec<u32>,
    /// Task stream per row.
    rng: Vec<Rng>,
}

/// What `save_state` writes; `load_state` checks every field before using any. Shapes
/// round-trip exactly (serde_json's `float_roundtrip`); the rescaling is recomputed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    env: String,
    split: Split,
    shape: Vec<Shape>,
    t: Vec<u32>,
    rng: Vec<Rng>,
}

impl Functions {
    /// `num_envs` rows of `variant` drawing tasks from `split`'s streams for `seed`,
    /// with the horizon of `options` (defaults where `None`). The rows start a trial
    /// right away; `reset` starts fresh ones. Errors name the option out of bounds.
    pub fn new(
        variant: Variant,
        num_envs: usize,
        split: Split,
        seed: u64,
        options: Options,
    ) -> Result<Functions, UserError> {
        options.check()?;
        if variant.dim != 1 && variant.dim != 2 {
            return Err(UserError::invalid(
                "env",
                &format!("functions-{}d", variant.dim),
                "dimension 1 or 2",
            ));
        }
        let label = match split {
            Split::Train => streams::TRAIN_TASKS,
            Split::Test => streams::TEST_TASKS,
        };
        let mut env = Functions {
            spec: EnvSpec {
                name: variant.name(),
                obs_dim: 1,
                action: ActionSpace::Continuous {
                    dim: variant.dim,
                    low: ACTION_LOW,
                    high: ACTION_HIGH,
                },
                episode_len: options.episode_len.unwrap_or(variant.default_episode_len()),
                episodes_per_trial: options.episodes_per_trial.unwrap_or(EPISODES_PER_TRIAL),
                has_success: true,
            },
            split,
            variant,
            task: Vec::with_capacity(num_envs),
            t: vec![0; num_envs],
            rng: (0..num_envs)
                .map(|i| Rng::stream(seed, label, i as u64))
                .collect(),
        };
        for rng in &mut env.rng {
            env.task
                .push(Task::sample(variant.dim, variant.family, rng));
        }
        Ok(env)
    }

    pub fn split(&self) -> Split {
        self.split
    }
    pub fn variant(&self) -> Variant {
        self.variant
    }
    /// The task of `row`.
    pub fn task(&self, row: usize) -> &Task {
        &self.task[row]
    }
    /// Steps taken so far in `row`'s current trial.
    pub fn trial_step(&self, row: usize) -> usize {
        self.t[row] as usize
    }

    /// Replace `row`'s task (for tests and hand-worked cases); counters are kept.
    /// Panics if its dimension is not the batch's.
    pub fn set_task(&mut self, row: usize, task: Task) {
        assert_eq!(
            task.dim, self.variant.dim,
            "Functions::set_task: task dimension"
        );
        self.task[row] = task;
    }

    fn new_trial(&mut self, row: usize) {
        self.task[row] = Task::sample(self.variant.dim, self.variant.family, &mut self.rng[row]);
        self.t[row] = 0;
    }

    fn trial_len(&self) -> u32 {
        self.spec.trial_len() as u32
    }
}

impl BatchEnv for Functions {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn num_envs(&self) -> usize {
        self.task.len()
    }

    fn reset(&mut self, obs: &mut [f32]) {
        let n = self.num_envs();
        assert_eq!(obs.len(), n, "Functions::reset: obs buffer size");
        for i in 0..n {
            // A trial that has not begun is fresh already: its task stays.
            if self.t[i] != 0 {
                self.new_trial(i);
            }
        }
        obs.fill(0.0);
    }

    fn step(&mut self, actions: &[f32], out: &mut StepOut) {
        let n = self.num_envs();
        let dim = self.variant.dim;
        // Check sizes once, so the loop below cannot go out of bounds half-way.
        assert_eq!(actions.len(), dim * n, "Functions::step: actions length");
        out.assert_sized(n, 1, "Functions::step");
        let len = self.spec.episode_len as u32;
        let trial_len = self.trial_len();
        for i in 0..n {
            let mut x = [0.0; 2];
            for d in 0..dim {
                let a = actions[dim * i + d];
                assert!(!a.is_nan(), "Functions: action {a} is NaN");
                x[d] = a.clamp(ACTION_LOW, ACTION_HIGH) as f64;
            }
            let v = self.task[i].value(x);
            let t = self.t[i];
            let next_t = t + 1;
            let episode_end = next_t.is_multiple_of(len);

            out.reward[i] = v as f32;
            out.success[i] = v >= SUCCESS_THRESHOLD;
            out.terminated[i] = false;
            out.truncated[i] = episode_end;
            out.trial_end[i] = next_t == trial_len;
            out.episode_index[i] = t / len;
            out.final_obs[i] = (t % len + 1) as f32 / len as f32;

            if next_t == trial_len {
                self.new_trial(i);
            } else {
                self.t[i] = next_t;
            }
            out.obs[i] = (self.t[i] % len) as f32 / len as f32;
        }
    }

    fn save_state(&self) -> serde_json::Value {
        let saved = Saved {
            env: self.spec.name.to_string(),
            split: self.split,
            shape: self.task.iter().map(|t| t.shape).collect(),
            t: self.t.clone(),
            rng: self.rng.clone(),
        };
        serde_json::to_value(saved).expect("Functions state serialises")
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<(), StateError> {
        let name = self.spec.name;
        let s = Saved::deserialize(state).map_err(|e| StateError::Decode {
            what: format!("{name} state"),
            detail: e.to_string(),
        })?;
        let n = self.num_envs();
        super::check_saved_state(
            name,
            self.split,
            n,
            &s.env,
            s.split,
            &[
                ("shape", s.shape.len()),
                ("t", s.t.len()),
                ("rng", s.rng.len()),
            ],
        )?;
        let trial_len = self.trial_len();
        let mut tasks = Vec::with_capacity(n);
        for (i, shape) in s.shape.into_iter().enumerate() {
            if let Some(f) = self.variant.family {
                if shape.family() != f {
                    return Err(StateError::Mismatch(format!(
                        "{name} state: row {i} is a {} task, this batch draws only {} tasks",
                        shape.family().name(),
                        f.name()
                    )));
                }
            }
            let task = Task::new(self.variant.dim, shape)
                .map_err(|e| StateError::Mismatch(format!("{name} state: row {i}: {e}")))?;
            if s.t[i] >= trial_len {
                return Err(StateError::Mismatch(format!(
                    "{name} state: row {i} step {} is not below the trial length {trial_len}",
                    s.t[i]
                )));
            }
            tasks.push(task);
        }
        self.task = tasks;
        self.t = s.t;
        self.rng = s.rng;
        Ok(())
    }
}

/// The function tasks' task-independent dynamics for planners: the state is the time
/// feature (step within the episode / episode length), queries change nothing else.
#[derive(Clone, Copy, Debug)]
pub struct FunctionDynamics {
    pub dim: usize,
    pub episode_len: usize,
    pub episodes_per_trial: usize,
}

impl super::KnownDynamics for FunctionDynamics {
    fn obs_dim(&self) -> usize {
        1
    }
    fn action(&self) -> ActionSpace {
        ActionSpace::Continuous {
            dim: self.dim,
            low: ACTION_LOW,
            high: ACTION_HIGH,
        }
    }
    fn episode_len(&self) -> usize {
        self.episode_len
    }
    fn episodes_per_trial(&self) -> usize {
        self.episodes_per_trial
    }
    fn first_obs(&self, out: &mut [f32]) {
        out[0] = 0.0;
    }
    fn next_obs(&self, _: &[f32], _: &[f32], t: usize, out: &mut [f32]) {
        out[0] = (t + 1) as f32 / self.episode_len as f32;
    }
}
