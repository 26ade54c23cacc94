//! MetaWorld's multi-class benchmarks ML10 and ML45 (`metaworld.ML10(seed)`,
//! `metaworld.ML45(seed)`), native: training classes and held-out test classes, 50
//! tasks each, with the task lists metaworld builds. One [`Benchmark`] value per
//! benchmark ([`ML10`], [`ML45`]) names its classes; [`BenchmarkFamily`] plays either.
//!
//! metaworld seeds NumPy's legacy generator once per split (with the same seed for
//! both) and then, class after class in the split's order, resets an env 50 times,
//! so one [`Mt19937`] stream runs through all the classes of a split: the order of
//! the class lists matters. The split's task list is class-major (class 0's 50 tasks,
//! then class 1's, ...), as the bridge's.
//!
//! A row holds the simulator of its current task's class only, and builds another
//! class's simulator from the family when a reset switches class (a bridge worker
//! keeps one env per class instead: ~21 MB each, see [`BenchmarkRow`]).
//!
//! ```no_run
//! use bamdp::env::mujoco::metaworld::benchmark::{BenchmarkFamily, ML10, ML45};
//! use bamdp::env::Split;
//! let family = BenchmarkFamily::new(&ML10, Split::Test, 0)?;
//! assert_eq!(family.task_names().len(), 5 * 50);
//! assert_eq!((ML45.train.len(), ML45.test.len()), (45, 5));
//! # Ok::<(), bamdp::env::mujoco::MujocoError>(())
//! ```

use super::sawyer::{Sawyer, SawyerFamily, SAWYER_SHAPE};
use super::{class, draw_reset_vector, TaskClass, GOALS};
use crate::env::mujoco::batch::{Family, Outcome, RowSim, Shape};
use crate::env::mujoco::mt19937::Mt19937;
use crate::env::mujoco::MujocoError;
use crate::env::replay::TaskDraw;
use crate::env::Split;
use crate::error::UserError;
use crate::rng::Rng;
use std::sync::Arc;

/// A multi-class benchmark: its env name and its classes per split, in metaworld's
/// order.
pub struct Benchmark {
    pub env: &'static str,
    pub train: &'static [&'static str],
    pub test: &'static [&'static str],
}

impl Benchmark {
    /// The classes of a split, from the class table.
    fn classes(&self, split: Split) -> Vec<&'static dyn TaskClass> {
        let names = match split {
            Split::Train => self.train,
            Split::Test => self.test,
        };
        names
            .iter()
            .map(|n| class(n).expect("every class of a benchmark is ported"))
            .collect()
    }
}

/// `ML10_V3`.
pub static ML10: Benchmark = Benchmark {
    env: "ml10",
    train: &[
        "reach-v3",
        "push-v3",
        "pick-place-v3",
        "door-open-v3",
        "drawer-close-v3",
        "button-press-topdown-v3",
        "peg-insert-side-v3",
        "window-open-v3",
        "sweep-v3",
        "basketball-v3",
    ],
    test: &[
        "drawer-open-v3",
        "door-close-v3",
        "shelf-place-v3",
        "sweep-into-v3",
        "lever-pull-v3",
    ],
};

/// `ML45_V3`.
pub static ML45: Benchmark = Benchmark {
    env: "ml45",
    train: &[
        "assembly-v3",
        "basketball-v3",
        "button-press-topdown-v3",
        "button-press-topdown-wall-v3",
        "button-press-v3",
        "button-press-wall-v3",
        "coffee-button-v3",
        "coffee-pull-v3",
        "coffee-push-v3",
        "dial-turn-v3",
        "disassemble-v3",
        "door-close-v3",
        "door-open-v3",
        "drawer-close-v3",
        "drawer-open-v3",
        "faucet-open-v3",
        "faucet-close-v3",
        "hammer-v3",
        "handle-press-side-v3",
        "handle-press-v3",
        "handle-pull-side-v3",
        "handle-pull-v3",
        "lever-pull-v3",
        "pick-place-wall-v3",
        "pick-out-of-hole-v3",
        "push-back-v3",
        "pick-place-v3",
        "plate-slide-v3",
        "plate-slide-side-v3",
        "plate-slide-back-v3",
        "plate-slide-back-side-v3",
        "peg-insert-side-v3",
        "peg-unplug-side-v3",
        "soccer-v3",
        "stick-push-v3",
        "stick-pull-v3",
        "push-wall-v3",
        "push-v3",
        "reach-wall-v3",
        "reach-v3",
        "shelf-place-v3",
        "sweep-into-v3",
        "sweep-v3",
        "window-open-v3",
        "window-close-v3",
    ],
    test: &[
        "bin-picking-v3",
        "box-close-v3",
        "hand-insert-v3",
        "door-lock-v3",
        "door-unlock-v3",
    ],
};

/// The task vectors of a split of `bench` built with `seed` (`metaworld.ML10(seed)`
/// for [`ML10`]), per class in the split's order (see the module doc).
pub fn task_vectors(
    bench: &Benchmark,
    split: Split,
    seed: u32,
) -> Vec<(&'static str, Vec<Vec<f64>>)> {
    let mut mt = Mt19937::new(seed);
    bench
        .classes(split)
        .into_iter()
        .map(|c| {
            let tasks = (0..GOALS).map(|_| draw_reset_vector(c, &mut mt)).collect();
            (c.name(), tasks)
        })
        .collect()
}

/// One split of a benchmark: a [`SawyerFamily`] per class and the class-major task
/// list.
pub struct BenchmarkFamily {
    env: &'static str,
    /// Shared with the rows, which build their simulators from it.
    classes: Arc<[SawyerFamily]>,
    names: Vec<&'static str>,
}

impl BenchmarkFamily {
    /// `bench_seed`: the seed of the benchmark (the bridge's, the low 32 bits of the
    /// run seed).
    pub fn new(
        bench: &'static Benchmark,
        split: Split,
        bench_seed: u32,
    ) -> Result<BenchmarkFamily, MujocoError> {
        let mut classes = Vec::new();
        let mut names = Vec::new();
        for (name, tasks) in task_vectors(bench, split, bench_seed) {
            names.extend(std::iter::repeat_n(name, tasks.len()));
            let c = class(name).expect("every class of a benchmark is ported");
            classes.push(SawyerFamily::with_tasks(bench.env, c, tasks)?);
        }
        Ok(BenchmarkFamily {
            env: bench.env,
            classes: classes.into(),
            names,
        })
    }
    /// The class of each task of the split's list.
    pub fn task_names(&self) -> &[&'static str] {
        &self.names
    }
    /// The class families, in the split's order.
    pub fn classes(&self) -> &[SawyerFamily] {
        &self.classes
    }
    /// A row holding the first class's simulator until its first reset.
    pub fn new_row(&self) -> Result<BenchmarkRow, MujocoError> {
        let largest_model = self
            .classes
            .iter()
            .map(SawyerFamily::model_bytes)
            .max()
            .unwrap_or(0);
        Ok(BenchmarkRow {
            sim: self.classes[0].new_row()?,
            current: 0,
            classes: Arc::clone(&self.classes),
            largest_model,
        })
    }
}

impl Family for BenchmarkFamily {
    fn name(&self) -> &'static str {
        self.env
    }
    fn shape(&self) -> Shape {
        SAWYER_SHAPE
    }
    fn num_tasks(&self) -> usize {
        self.names.len()
    }
    fn task_class(&self, index: u32) -> Option<&'static str> {
        self.names.get(index as usize).copied()
    }
    /// The bridge's draws, as for ML1 ([`SawyerFamily`]'s), over the whole list.
    fn draw_task(
        &self,
        rng: &mut Rng,
        split: Split,
        row: usize,
        trial: u64,
        rows: usize,
    ) -> (u32, f64) {
        TaskDraw::List(self.names.len()).draw(rng, split, row, trial, rows)
    }
    fn row(&self) -> Result<Box<dyn RowSim>, UserError> {
        Ok(Box::new(self.new_row()?))
    }
}

/// One row of a benchmark: the simulator of the current task's class, with its own
/// model copy (~21 MB).
///
/// A reset to a task of another class replaces the simulator with a fresh one of that
/// class ([`SawyerFamily::new_row`]: a model copy and its data). That allocates once
/// per class switch, at a trial's first reset (every few thousand steps), never in a
/// step. Nothing is lost by dropping the old simulator: a Sawyer reset re-initialises
/// all the state a task reads (`mj_resetData`, then the class's `reset_model`, which
/// writes every model field it reads before reading it), so a fresh simulator plays a
/// task exactly as one that played other tasks of its class before
/// (`tests/mujoco_native.rs` checks this for every class and for rows switching
/// classes). Different classes' models differ in size, so a model copy cannot be
/// written into the old one.
pub struct BenchmarkRow {
    sim: Sawyer,
    /// The index of `sim`'s class in `classes`.
    current: usize,
    classes: Arc<[SawyerFamily]>,
    /// The bytes of the split's largest model, which the row may come to hold.
    largest_model: usize,
}

impl BenchmarkRow {
    /// The last step's reward, success and `info` ([`Sawyer::last_evaluation`]).
    pub fn last_evaluation(&self) -> Option<super::Evaluation> {
        self.sim.last_evaluation()
    }
}

impl RowSim for BenchmarkRow {
    /// The current simulator with the split's largest model in place of its own: the
    /// most the row holds whichever class it plays (models of a split differ by a few
    /// percent; their data by less than a model's share of it).
    fn bytes(&self) -> usize {
        let own_model = self.sim.data.model().bytes();
        std::mem::size_of::<Self>() + self.sim.bytes() - own_model + self.largest_model
    }
    fn reset(&mut self, task_index: u32, task_value: f64, seed: u64, obs: &mut [f32]) {
        let (k, i) = (task_index as usize / GOALS, task_index as usize % GOALS);
        if k != self.current {
            // Once per class switch, not per step (see the struct's doc). The new
            // simulator is built before the old one is dropped, so a switching row
            // briefly holds two.
            self.sim = self.classes[k].new_row().unwrap_or_else(|e| {
                // As MuJoCo's error handler does (`lib::on_error`): reset cannot
                // return an error, and MuJoCo's allocation failures exit there.
                eprintln!("MuJoCo error: {e}");
                std::process::exit(crate::env::mujoco::lib::MUJOCO_ERROR_EXIT)
            });
            self.current = k;
            release_freed_memory();
        }
        self.sim.reset(i as u32, task_value, seed, obs);
    }
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Outcome {
        self.sim.step(action, obs)
    }
    fn bare_steps(&mut self, env_steps: usize, ctrl: f64) {
        self.sim.bare_steps(env_steps, ctrl);
    }
}

/// Returns the pages of freed heap blocks to the OS (`malloc_trim`). The dropped
/// simulator's ~21 MB model stays resident otherwise: glibc serves blocks of that size
/// from its heap once one was freed (and the `bamdp` binary keeps freed memory, see
/// `src/main.rs`), and the next class's model, of another size, does not always fit in
/// the hole, so rows switching class would grow the process (8 ML10 rows switching
/// five times: 44 MB resident per row instead of 27 MB, `tests/env_memory.rs`). Once
/// per class switch, like the switch itself.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
