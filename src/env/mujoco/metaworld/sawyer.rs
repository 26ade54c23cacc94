//! The Sawyer base of MetaWorld v3 (`SawyerXYZEnv`), shared by every task class: the
//! mocap arm control, the gripper, the 39-value observation with the previous frame,
//! the hand reset, observation clipping, and the v2 gripper-caging reward.
//!
//! - Model: the class's MJCF from the installed `metaworld` package's `assets/` folder
//!   (`BAMDP_METAWORLD_ASSETS` names it instead), with MetaWorld's mocap weld reset.
//!   Classes move bodies and sites of the model at reset, so each row owns a copy.
//! - Step: clip the action to [-1, 1], move the mocap body by `0.01 a[:3]` (float32,
//!   as NumPy computes it) inside the mocap box, `ctrl = (a[3], -a[3])`, 5 x `mj_step`,
//!   `mj_rnePostConstraint`, `mj_forward`; observation (hand, gripper opening, the
//!   class's object position and quaternion padded to 14, the previous frame's 18
//!   values, a zero goal) clipped to the observation box; the class's reward and
//!   success.
//! - Reset: MetaWorld runs the class's `reset_model` on the live data, then
//!   `mj_resetData` and `reset_model` again, with the task's frozen random vector.
//!   Only the second call shapes the state, except through the model changes the first
//!   one leaves: the port repeats the first call only for the classes whose reset reads
//!   back what it wrote to the model ([`TaskClass::resets_twice`]). The first
//!   observation repeats the current frame as the previous one.
//!
//! ```no_run
//! use bamdp::env::mujoco::metaworld::{class, SawyerFamily};
//! use bamdp::env::Split;
//! let family = SawyerFamily::ml1("ml1-reach", class("reach-v3").unwrap(), Split::Train, 0)?;
//! assert_eq!(family.tasks().len(), 50);
//! # Ok::<(), bamdp::env::mujoco::MujocoError>(())
//! ```

use super::reward::{dist, hamacher_product, matrix_to_quat_xyzw, norm, tolerance_long_tail};
use super::{task_vectors, Evaluation, Obj, TaskClass, HORIZON};
use crate::env::mujoco::batch::{Family, Outcome, RowSim, Shape};
use crate::env::mujoco::lib::{Data, Model};
use crate::env::mujoco::offsets::{EQ_WELD, OBJ_BODY, OBJ_GEOM, OBJ_JOINT, OBJ_SITE};
use crate::env::mujoco::{assets_dir, MujocoError};
use crate::env::python::METAWORLD_EPISODES_PER_TRIAL;
use crate::env::replay::TaskDraw;
use crate::env::Split;
use crate::error::UserError;
use crate::rng::Rng;
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

const FRAME_SKIP: usize = 5;
const ACTION_SCALE: f32 = 1.0 / 100.0;
/// `_HAND_SPACE`: the box the observed hand position is clipped to.
const HAND_LOW: [f64; 3] = [-0.525, 0.348, -0.0525];
const HAND_HIGH: [f64; 3] = [0.525, 1.025, 0.7];
/// The mocap orientation MetaWorld holds the hand at.
const MOCAP_QUAT: [f64; 4] = [1.0, 0.0, 1.0, 0.0];

/// Ids of the named bodies and sites the Sawyer base reads.
#[derive(Clone, Copy)]
struct Ids {
    hand: usize,
    rightclaw: usize,
    leftclaw: usize,
    right_ee: usize,
    left_ee: usize,
    leftpad: usize,
    rightpad: usize,
    leftpad_geom: usize,
    rightpad_geom: usize,
    mocap: usize,
}

/// One MetaWorld class on one split of a benchmark: the compiled model (copied into
/// every row) and the split's task vectors.
pub struct SawyerFamily {
    name: &'static str,
    class: &'static dyn TaskClass,
    model: Arc<Model>,
    ids: Ids,
    named: Vec<usize>,
    tasks: Vec<Vec<f64>>,
}

impl SawyerFamily {
    /// `name`: the env name (`ml1-reach`); `bench_seed`: the seed of the MetaWorld
    /// benchmark (the bridge's, [`crate::env::python::PyBatchEnv::benchmark_seed`]).
    pub fn ml1(
        name: &'static str,
        class: &'static dyn TaskClass,
        split: Split,
        bench_seed: u32,
    ) -> Result<SawyerFamily, MujocoError> {
        let seed = match split {
            Split::Train => bench_seed,
            Split::Test => bench_seed.wrapping_add(1),
        };
        SawyerFamily::with_tasks(name, class, task_vectors(class, seed))
    }

    /// A family of `class` playing the given task vectors.
    pub fn with_tasks(
        name: &'static str,
        class: &'static dyn TaskClass,
        tasks: Vec<Vec<f64>>,
    ) -> Result<SawyerFamily, MujocoError> {
        let dir = assets_dir("BAMDP_METAWORLD_ASSETS", "metaworld", "assets")?;
        let path = dir.join(class.xml());
        let mut model = Model::from_xml(&path)?;
        // SawyerMocapBase.reset_mocap_welds.
        for i in 0..model.neq() {
            if model.eq_type()[i] == EQ_WELD {
                model
                    .eq_data_mut(i)
                    .copy_from_slice(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0]);
            }
        }
        let ids = Ids {
            hand: need(&model, &path, Obj::Body, "hand")?,
            rightclaw: need(&model, &path, Obj::Body, "rightclaw")?,
            leftclaw: need(&model, &path, Obj::Body, "leftclaw")?,
            right_ee: need(&model, &path, Obj::Site, "rightEndEffector")?,
            left_ee: need(&model, &path, Obj::Site, "leftEndEffector")?,
            leftpad: need(&model, &path, Obj::Body, "leftpad")?,
            rightpad: need(&model, &path, Obj::Body, "rightpad")?,
            leftpad_geom: need(&model, &path, Obj::Geom, "leftpad_geom")?,
            rightpad_geom: need(&model, &path, Obj::Geom, "rightpad_geom")?,
            mocap: {
                let b = need(&model, &path, Obj::Body, "mocap")?;
                model.body_mocapid()[b].max(0) as usize
            },
        };
        let named = class
            .names()
            .iter()
            .map(|&(kind, n)| need(&model, &path, kind, n))
            .collect::<Result<_, _>>()?;
        Ok(SawyerFamily {
            name,
            class,
            model: Arc::new(model),
            ids,
            named,
            tasks,
        })
    }

    /// The split's task vectors (MetaWorld's `rand_vec` of each task).
    pub fn tasks(&self) -> &[Vec<f64>] {
        &self.tasks
    }

    /// The bytes of the compiled model, as of each row's copy.
    pub fn model_bytes(&self) -> usize {
        self.model.bytes()
    }

    pub fn new_row(&self) -> Result<Sawyer, MujocoError> {
        let data = Data::new(Arc::new(self.model.try_clone()?))?;
        let (mocap_low, mocap_high) = self.class.mocap_box();
        Ok(Sawyer {
            class: self.class,
            ids: self.ids,
            named: self.named.clone(),
            data,
            tasks: self.tasks.clone(),
            mocap_low,
            mocap_high,
            target: [0.0; 3],
            obj_init_pos: [0.0; 3],
            init_tcp: [0.0; 3],
            reset_point: [0.0; 3],
            reset_value: 0.0,
            first_step_value: Cell::new(None),
            prev: [0.0; 18],
            last: None,
        })
    }
}

/// Every MetaWorld family's spaces and time layout (ML1's classes and the ML10 / ML45
/// benchmarks alike): a 39-value observation, 4 actions in [-1, 1], 500-step episodes.
pub const SAWYER_SHAPE: Shape = Shape {
    obs_dim: 39,
    act_dim: 4,
    act_bounds: (-1.0, 1.0),
    episode_len: HORIZON,
    episodes_per_trial: METAWORLD_EPISODES_PER_TRIAL,
    has_success: true,
};

fn need(model: &Model, path: &Path, kind: Obj, name: &str) -> Result<usize, MujocoError> {
    let obj = match kind {
        Obj::Body => OBJ_BODY,
        Obj::Geom => OBJ_GEOM,
        Obj::Site => OBJ_SITE,
        Obj::Joint => OBJ_JOINT,
    };
    model.id(obj, name).ok_or_else(|| MujocoError::Model {
        path: path.to_path_buf(),
        message: format!("no object named `{name}`"),
    })
}

impl Family for SawyerFamily {
    fn name(&self) -> &'static str {
        self.name
    }
    fn shape(&self) -> Shape {
        SAWYER_SHAPE
    }
    fn num_tasks(&self) -> usize {
        self.tasks.len()
    }
    fn task_class(&self, index: u32) -> Option<&'static str> {
        ((index as usize) < self.tasks.len()).then(|| self.class.name())
    }
    /// The bridge's draws: a uniform task of the list for training; the held-out list
    /// in turn for testing (row `r`'s `j`-th trial plays `(r + j rows) mod N`).
    fn draw_task(
        &self,
        rng: &mut Rng,
        split: Split,
        row: usize,
        trial: u64,
        rows: usize,
    ) -> (u32, f64) {
        TaskDraw::List(self.tasks.len()).draw(rng, split, row, trial, rows)
    }
    fn row(&self) -> Result<Box<dyn RowSim>, UserError> {
        Ok(Box::new(self.new_row()?))
    }
}

/// One row's Sawyer arm on one class. The fields a class sets at reset and reads in
/// its reward are public to the class files.
pub struct Sawyer {
    class: &'static dyn TaskClass,
    ids: Ids,
    /// The ids of the class's [`TaskClass::names`], in order.
    pub(super) named: Vec<usize>,
    pub(super) data: Data,
    tasks: Vec<Vec<f64>>,
    mocap_low: [f64; 3],
    mocap_high: [f64; 3],
    /// `_target_pos`.
    pub(super) target: [f64; 3],
    /// `obj_init_pos`.
    pub(super) obj_init_pos: [f64; 3],
    /// The gripper's centre after the hand reset (`init_tcp`).
    pub(super) init_tcp: [f64; 3],
    /// A point a class records at reset (its file says which).
    pub(super) reset_point: [f64; 3],
    /// A value a class records at reset (its file says which).
    pub(super) reset_value: f64,
    /// A value a class records at its first step after a reset (its file says which);
    /// `None` after every reset. A `Cell` because the reward reads the row immutably.
    pub(super) first_step_value: Cell<Option<f64>>,
    /// The previous frame's 18 observation values.
    prev: [f64; 18],
    /// The last step's evaluation.
    last: Option<Evaluation>,
}

impl Sawyer {
    /// The last step's reward, success and `info` (`None` before the first step).
    pub fn last_evaluation(&self) -> Option<Evaluation> {
        self.last
    }

    /// `do_simulation(ctrl, 5)` as gymnasium runs it.
    fn simulate(&mut self, ctrl: [f64; 2]) {
        self.data.ctrl_mut().copy_from_slice(&ctrl);
        self.data.step(FRAME_SKIP);
        self.data.rne_post_constraint();
    }

    /// `model` of this row (its own copy).
    pub(super) fn model_mut(&mut self) -> &mut Model {
        self.data
            .model_mut()
            .expect("a Sawyer row owns its model copy")
    }

    pub(super) fn site(&self, s: usize) -> [f64; 3] {
        let p = self.data.site_xpos();
        [p[3 * s], p[3 * s + 1], p[3 * s + 2]]
    }
    pub(super) fn body(&self, b: usize) -> [f64; 3] {
        let p = self.data.xpos();
        [p[3 * b], p[3 * b + 1], p[3 * b + 2]]
    }
    pub(super) fn geom(&self, g: usize) -> [f64; 3] {
        let p = self.data.geom_xpos();
        [p[3 * g], p[3 * g + 1], p[3 * g + 2]]
    }
    /// A body's orientation quaternion as MetaWorld observes it (`xquat`, w first).
    pub(super) fn body_quat(&self, b: usize) -> [f64; 4] {
        let q = self.data.xquat();
        [q[4 * b], q[4 * b + 1], q[4 * b + 2], q[4 * b + 3]]
    }
    /// A geom's orientation as scipy's (x, y, z, w) quaternion of its `xmat`.
    pub(super) fn geom_quat_xyzw(&self, g: usize) -> [f64; 4] {
        matrix_to_quat_xyzw(&self.data.geom_xmat()[9 * g..9 * g + 9])
    }
    /// A body's orientation as scipy's (x, y, z, w) quaternion of its `xmat`.
    pub(super) fn body_quat_xyzw(&self, b: usize) -> [f64; 4] {
        matrix_to_quat_xyzw(&self.data.xmat()[9 * b..9 * b + 9])
    }
    /// A site's orientation as scipy's (x, y, z, w) quaternion of its `xmat`.
    pub(super) fn site_quat_xyzw(&self, s: usize) -> [f64; 4] {
        matrix_to_quat_xyzw(&self.data.site_xmat()[9 * s..9 * s + 9])
    }
    /// The point between the two finger pads.
    pub(super) fn tcp_center(&self) -> [f64; 3] {
        let (r, l) = (self.site(self.ids.right_ee), self.site(self.ids.left_ee));
        [
            (r[0] + l[0]) / 2.0,
            (r[1] + l[1]) / 2.0,
            (r[2] + l[2]) / 2.0,
        ]
    }
    pub(super) fn left_pad(&self) -> [f64; 3] {
        self.body(self.ids.leftpad)
    }
    pub(super) fn right_pad(&self) -> [f64; 3] {
        self.body(self.ids.rightpad)
    }

    /// `touching_object(geom)`: both finger pads push on the geom (the summed normal
    /// forces of their contacts with it are positive), summed in contact order.
    pub(super) fn touching(&self, geom: usize) -> bool {
        let (mut left, mut right) = (0.0, 0.0);
        for (g, force) in self.data.contacts() {
            if g.contains(&geom) {
                if g.contains(&self.ids.leftpad_geom) {
                    left += force;
                }
                if g.contains(&self.ids.rightpad_geom) {
                    right += force;
                }
            }
        }
        0.0 < left && 0.0 < right
    }

    /// `_reset_hand`: hold the mocap at the hand's start for 50 steps, gripper open.
    pub(super) fn reset_hand(&mut self) {
        let m = self.ids.mocap;
        let hand = self.class.hand_init_pos();
        for _ in 0..50 {
            self.data.mocap_pos_mut()[3 * m..3 * m + 3].copy_from_slice(&hand);
            self.data.mocap_quat_mut()[4 * m..4 * m + 4].copy_from_slice(&MOCAP_QUAT);
            self.simulate([-1.0, 1.0]);
        }
        self.init_tcp = self.tcp_center();
    }

    /// The base's `_set_obj_xyz`: the object's free joint at `pos`, at rest.
    pub(super) fn set_obj_xyz(&mut self, pos: [f64; 3]) {
        self.data.qpos_mut()[9..12].copy_from_slice(&pos);
        self.data.qvel_mut()[9..15].fill(0.0);
        self.data.forward();
    }

    /// The 18 current-frame values: hand, gripper opening, object poses padded to 14.
    fn frame(&self) -> [f64; 18] {
        let mut f = [0.0; 18];
        f[..3].copy_from_slice(&self.body(self.ids.hand));
        let (r, l) = (self.body(self.ids.rightclaw), self.body(self.ids.leftclaw));
        f[3] = (dist(r, l) / 0.1).clamp(0.0, 1.0);
        f[4..].copy_from_slice(&self.class.objects(self).values());
        f
    }

    /// `_get_obs`: current frame, previous frame, zero goal (partially observable);
    /// the current frame becomes the previous one.
    fn observe(&mut self, obs: &mut [f64; 39]) {
        let cur = self.frame();
        obs[..18].copy_from_slice(&cur);
        obs[18..36].copy_from_slice(&self.prev);
        obs[36..].fill(0.0);
        self.prev = cur;
    }

    /// The base's `_gripper_caging_reward` (v2) for an object at `obj` with the
    /// default desired gripper effort 1; see [`Sawyer::gripper_caging_effort`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gripper_caging(
        &self,
        action: &[f32],
        obj: [f64; 3],
        obj_radius: f64,
        pad_success_thresh: f64,
        xz_thresh: f64,
        high_density: bool,
    ) -> (f64, bool) {
        let density = if high_density {
            Density::High
        } else {
            Density::Low
        };
        self.gripper_caging_with(
            action,
            obj,
            &Caging {
                obj_radius,
                pad_success_thresh,
                object_reach_radius: 0.0,
                xz_thresh,
                desired_effort: 1.0,
                density,
            },
        )
    }

    /// The base's `_gripper_caging_reward` (v2) for an object at `obj`, with its
    /// float32 turns: the gripper effort `min(max(0, a), desired) / desired` is a
    /// float32 value when `0 < a <= desired`, and a Hamacher product or mean with it
    /// is float32 arithmetic in NumPy. Returns the value, and whether NumPy holds it as
    /// a float32 (which makes the caller's arithmetic float32 too).
    pub(super) fn gripper_caging_with(
        &self,
        action: &[f32],
        obj: [f64; 3],
        c: &Caging,
    ) -> (f64, bool) {
        let Caging {
            obj_radius,
            pad_success_thresh,
            object_reach_radius,
            xz_thresh,
            desired_effort,
            density,
        } = *c;
        let (left, right) = (self.left_pad(), self.right_pad());
        let mut caging_lr = [0.0; 2];
        for (c, pad_y) in caging_lr.iter_mut().zip([left[1], right[1]]) {
            let to_obj = (pad_y - obj[1]).abs();
            let to_init = (pad_y - self.obj_init_pos[1]).abs();
            let margin = (to_init - pad_success_thresh).abs();
            *c = tolerance_long_tail(to_obj, obj_radius, pad_success_thresh, margin);
        }
        let caging_y = hamacher_product(caging_lr[0], caging_lr[1]);
        let tcp = self.tcp_center();
        let (oi, it) = (self.obj_init_pos, self.init_tcp);
        let xz_margin = norm(&[oi[0] - it[0], oi[2] - it[2]]) - xz_thresh;
        let caging_xz = tolerance_long_tail(
            norm(&[tcp[0] - obj[0], tcp[2] - obj[2]]),
            0.0,
            xz_thresh,
            xz_margin,
        );
        let caging = hamacher_product(caging_y, caging_xz);
        // min(max(0, a), desired) / desired: a float32 when 0 < a <= desired (the
        // division in float32), else a Python number.
        let a = action[3];
        let effort32 = (a > 0.0 && a as f64 <= desired_effort).then(|| a / desired_effort as f32);
        let gripping = if caging > 0.97 { effort32 } else { None };
        match gripping {
            Some(g) => {
                // hamacher_product(python float, float32) and the mean are float32.
                let c = caging as f32;
                let d = c + g - c * g;
                let cg = if d > 0.0 { (c * g) / d } else { 0.0 };
                let v = match density {
                    Density::Low => cg,
                    Density::High => (cg + c) / 2.0,
                    Density::Medium => (cg + self.reach(obj, object_reach_radius) as f32) / 2.0,
                };
                (v as f64, true)
            }
            None => {
                let g = if caging > 0.97 && a as f64 > desired_effort {
                    1.0
                } else {
                    0.0
                };
                let cg = hamacher_product(caging, g);
                let v = match density {
                    Density::Low => cg,
                    Density::High => (cg + caging) / 2.0,
                    Density::Medium => (cg + self.reach(obj, object_reach_radius)) / 2.0,
                };
                (v, false)
            }
        }
    }
}

impl Sawyer {
    /// The medium-density caging reward's reach term: the gripper centre's closeness
    /// to the object.
    fn reach(&self, obj: [f64; 3], object_reach_radius: f64) -> f64 {
        let tcp_to_obj = dist(obj, self.tcp_center());
        let tcp_to_obj_init = dist(self.obj_init_pos, self.init_tcp);
        let margin = (tcp_to_obj_init - object_reach_radius).abs();
        tolerance_long_tail(tcp_to_obj, 0.0, object_reach_radius, margin)
    }
}

/// How the caging reward mixes in more terms (`high_density`, `medium_density`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Density {
    /// Caging and gripping only.
    Low,
    /// The mean with the caging term.
    High,
    /// The mean with the reach term.
    Medium,
}

/// The parameters of the base's `_gripper_caging_reward`.
#[derive(Clone, Copy, Debug)]
pub struct Caging {
    pub obj_radius: f64,
    pub pad_success_thresh: f64,
    pub object_reach_radius: f64,
    pub xz_thresh: f64,
    pub desired_effort: f64,
    pub density: Density,
}

impl RowSim for Sawyer {
    /// The row's own copy of the model (meshes and textures included: ~21 MB) and its
    /// data, with its task list.
    fn bytes(&self) -> usize {
        let tasks: usize = self
            .tasks
            .iter()
            .map(|t| std::mem::size_of::<Vec<f64>>() + 8 * t.len())
            .sum();
        std::mem::size_of::<Self>()
            + 8 * self.named.len()
            + tasks
            + self.data.bytes()
            + self.data.model().bytes()
    }
    fn reset(&mut self, task_index: u32, _task_value: f64, _seed: u64, obs: &mut [f32]) {
        // MetaWorld's reset is deterministic given the task (the seed is unused).
        let v = self.tasks[task_index as usize].clone();
        self.first_step_value.set(None);
        if self.class.resets_twice() {
            self.class.reset_model(self, &v);
        }
        self.data.reset();
        self.class.reset_model(self, &v);
        let mut o = [0.0; 39];
        self.observe(&mut o);
        // SawyerXYZEnv.reset: the previous frame of the first observation is itself.
        let cur: [f64; 18] = o[..18].try_into().unwrap();
        o[18..36].copy_from_slice(&cur);
        self.prev = cur;
        for (d, s) in obs.iter_mut().zip(&o) {
            *d = *s as f32;
        }
    }

    fn bare_steps(&mut self, env_steps: usize, ctrl: f64) {
        self.data.ctrl_mut().copy_from_slice(&[ctrl, -ctrl]);
        self.data.step(FRAME_SKIP * env_steps);
    }

    #[allow(clippy::needless_range_loop)] // parallel arrays share one index
    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Outcome {
        let m = self.ids.mocap;
        // set_xyz_action: a float32 delta (NumPy: float32 array times a Python float).
        for d in 0..3 {
            let delta = action[d].clamp(-1.0, 1.0) * ACTION_SCALE;
            let p = self.data.mocap_pos()[3 * m + d] + delta as f64;
            self.data.mocap_pos_mut()[3 * m + d] = p.clamp(self.mocap_low[d], self.mocap_high[d]);
        }
        self.data.mocap_quat_mut()[4 * m..4 * m + 4].copy_from_slice(&MOCAP_QUAT);
        let grip = action[3] as f64;
        self.simulate([grip, -grip]);
        self.data.forward();
        let mut o = [0.0; 39];
        self.observe(&mut o);
        for k in [0, 18] {
            for d in 0..3 {
                o[k + d] = o[k + d].clamp(HAND_LOW[d], HAND_HIGH[d]);
            }
            o[k + 3] = o[k + 3].clamp(-1.0, 1.0);
        }
        let e = self.class.evaluate(self, action, &o);
        self.last = Some(e);
        for (d, s) in obs.iter_mut().zip(&o) {
            *d = *s as f32;
        }
        Outcome {
            reward: e.reward as f32,
            terminated: false,
            success: e.success,
        }
    }
}
