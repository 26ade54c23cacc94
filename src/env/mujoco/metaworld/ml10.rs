//! MetaWorld's ML10 benchmark (`metaworld.ML10(seed)`), native: 10 training classes
//! and 5 held-out test classes, 50 tasks each, with the task lists metaworld builds.
//!
//! metaworld seeds NumPy's legacy generator once per split (with the same seed for
//! both) and then, class after class in the split's order, resets an env 50 times,
//! so one [`Mt19937`] stream runs through all the classes of a split. The split's task
//! list is class-major (class 0's 50 tasks, then class 1's, ...), as the bridge's.
//!
//! A row keeps one simulator per class of its split and switches between them as its
//! trials change class, as a bridge worker keeps one env per class.
//!
//! ```no_run
//! use bamdp::env::mujoco::metaworld::ml10::{Ml10Family, TEST, TRAIN};
//! use bamdp::env::Split;
//! let family = Ml10Family::new(Split::Test, 0)?;
//! assert_eq!(family.task_names().len(), 5 * 50);
//! assert_eq!((TRAIN.len(), TEST.len()), (10, 5));
//! # Ok::<(), bamdp::env::mujoco::MujocoError>(())
//! ```

use super::sawyer::{Sawyer, SawyerFamily};
use super::{class, draw_reset_vector, TaskClass, GOALS, HORIZON};
use crate::env::mujoco::batch::{Family, Outcome, RowSim};
use crate::env::mujoco::mt19937::Mt19937;
use crate::env::mujoco::MujocoError;
use crate::env::python::METAWORLD_EPISODES_PER_TRIAL;
use crate::env::replay::TaskDraw;
use crate::env::Split;
use crate::error::UserError;
use crate::rng::Rng;

/// `ML10_V3["train"]`, in metaworld's order.
pub const TRAIN: &[&str] = &[
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
];
/// `ML10_V3["test"]`, in metaworld's order.
pub const TEST: &[&str] = &[
    "drawer-open-v3",
    "door-close-v3",
    "shelf-place-v3",
    "sweep-into-v3",
    "lever-pull-v3",
];

/// The classes of a split, from the class table.
fn split_classes(split: Split) -> Vec<&'static dyn TaskClass> {
    let names = match split {
        Split::Train => TRAIN,
        Split::Test => TEST,
    };
    names
        .iter()
        .map(|n| class(n).expect("every ML10 class is ported"))
        .collect()
}

/// The task vectors of a split of `metaworld.ML10(seed)`, per class in the split's
/// order (see the module doc).
pub fn task_vectors(split: Split, seed: u32) -> Vec<(&'static str, Vec<Vec<f64>>)> {
    let mut mt = Mt19937::new(seed);
    split_classes(split)
        .into_iter()
        .map(|c| {
            let tasks = (0..GOALS).map(|_| draw_reset_vector(c, &mut mt)).collect();
            (c.name(), tasks)
        })
        .collect()
}

/// One split of ML10: a [`SawyerFamily`] per class and the class-major task list.
pub struct Ml10Family {
    classes: Vec<SawyerFamily>,
    names: Vec<&'static str>,
}

impl Ml10Family {
    /// `bench_seed`: the seed of the benchmark (the bridge's, the low 32 bits of the
    /// run seed).
    pub fn new(split: Split, bench_seed: u32) -> Result<Ml10Family, MujocoError> {
        let mut classes = Vec::new();
        let mut names = Vec::new();
        for (name, tasks) in task_vectors(split, bench_seed) {
            names.extend(std::iter::repeat_n(name, tasks.len()));
            let c = class(name).expect("every ML10 class is ported");
            classes.push(SawyerFamily::with_tasks("ml10", c, tasks)?);
        }
        Ok(Ml10Family { classes, names })
    }
    /// The class of each task of the split's list.
    pub fn task_names(&self) -> &[&'static str] {
        &self.names
    }
    /// The class families, in the split's order.
    pub fn classes(&self) -> &[SawyerFamily] {
        &self.classes
    }
    pub fn new_row(&self) -> Result<Ml10Row, MujocoError> {
        let sims = self
            .classes
            .iter()
            .map(|f| f.new_row())
            .collect::<Result<_, _>>()?;
        Ok(Ml10Row { sims, current: 0 })
    }
}

impl Family for Ml10Family {
    fn name(&self) -> &'static str {
        "ml10"
    }
    fn obs_dim(&self) -> usize {
        39
    }
    fn act_dim(&self) -> usize {
        4
    }
    fn act_bounds(&self) -> (f32, f32) {
        (-1.0, 1.0)
    }
    fn episode_len(&self) -> usize {
        HORIZON
    }
    fn episodes_per_trial(&self) -> usize {
        METAWORLD_EPISODES_PER_TRIAL
    }
    fn has_success(&self) -> bool {
        true
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

/// One row of ML10: a simulator per class, the current one stepping.
pub struct Ml10Row {
    sims: Vec<Sawyer>,
    current: usize,
}

impl Ml10Row {
    /// The last step's reward, success and `info` ([`Sawyer::last_evaluation`]).
    pub fn last_evaluation(&self) -> Option<super::Evaluation> {
        self.sims[self.current].last_evaluation()
    }
}

impl RowSim for Ml10Row {
    fn reset(&mut self, task_index: u32, task_value: f64, seed: u64, obs: &mut [f32]) {
        let (k, i) = (task_index as usize / GOALS, task_index as usize % GOALS);
        self.current = k;
        self.sims[k].reset(i as u32, task_value, seed, obs);
    }
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Outcome {
        self.sims[self.current].step(action, obs)
    }
    fn bare_steps(&mut self, env_steps: usize, ctrl: f64) {
        self.sims[self.current].bare_steps(env_steps, ctrl);
    }
}
