//! MetaWorld v3 (metaworld 3.1.1, reward version "v2"), ported: the Sawyer base
//! (`SawyerXYZEnv`: mocap arm control, gripper, the 39-value observation with the
//! previous frame, the hand reset, observation clipping) and its task classes, with
//! MetaWorld's benchmark task lists rebuilt from its own random draws.
//!
//! - Model: the class's MJCF from the installed `metaworld` package's `assets/` folder
//!   (`BAMDP_METAWORLD_ASSETS` names it instead), with MetaWorld's mocap weld reset.
//! - Step: clip the action to [-1, 1], move the mocap body by `0.01 a[:3]` (float32,
//!   as NumPy computes it) inside the mocap box, `ctrl = (a[3], -a[3])`, 5 x `mj_step`,
//!   `mj_rnePostConstraint`, `mj_forward`; observation (hand, gripper opening, object
//!   position and quaternion padded to 14, the previous frame's 18 values, a zero goal)
//!   clipped to the observation box; the class's reward and success.
//! - Reset: `mj_resetData`, then the class's `reset_model` with the task's frozen
//!   random vector (MetaWorld resets twice, `mj_resetData` in between, so only the
//!   second reset shapes the state); the first observation repeats the current frame
//!   as the previous one.
//! - Tasks: `metaworld.ML1(name, seed)` builds 50 random vectors per split by resetting
//!   an env 50 times with NumPy's legacy global generator seeded with `seed` (train)
//!   or `seed + 1` (test); each reset runs `reset_model` twice, each drawing until the
//!   class's rejection test passes. [`task_vectors`] replays exactly those draws with
//!   [`Mt19937`].

use super::batch::{Family, Outcome, RowSim};
use super::lib::{Data, Model};
use super::mt19937::Mt19937;
use super::offsets::{EQ_WELD, OBJ_BODY, OBJ_GEOM, OBJ_SITE};
use super::{assets_dir, MujocoError};
use crate::env::python::METAWORLD_EPISODES_PER_TRIAL;
use crate::env::Split;
use crate::error::UserError;
use crate::rng::Rng;
use std::path::Path;
use std::sync::Arc;

/// MetaWorld's `_N_GOALS`: tasks per class and split.
pub const GOALS: usize = 50;
/// `max_path_length`.
pub const HORIZON: usize = 500;
const FRAME_SKIP: usize = 5;
const ACTION_SCALE: f32 = 1.0 / 100.0;
/// `_HAND_SPACE`: the box the observed hand position is clipped to.
const HAND_LOW: [f64; 3] = [-0.525, 0.348, -0.0525];
const HAND_HIGH: [f64; 3] = [0.525, 1.025, 0.7];
/// The mocap orientation MetaWorld holds the hand at.
const MOCAP_QUAT: [f64; 4] = [1.0, 0.0, 1.0, 0.0];

/// A ported MetaWorld task class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Reach,
    Push,
    PickPlace,
}

impl Class {
    /// The class behind a MetaWorld env name (`reach-v3`).
    pub fn parse(name: &str) -> Option<Class> {
        match name {
            "reach-v3" => Some(Class::Reach),
            "push-v3" => Some(Class::Push),
            "pick-place-v3" => Some(Class::PickPlace),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Class::Reach => "reach-v3",
            Class::Push => "push-v3",
            Class::PickPlace => "pick-place-v3",
        }
    }
    fn xml(self) -> &'static str {
        match self {
            Class::Reach => "sawyer_xyz/sawyer_reach_v3.xml",
            Class::Push => "sawyer_xyz/sawyer_push_v3.xml",
            Class::PickPlace => "sawyer_xyz/sawyer_pick_place_v3.xml",
        }
    }
    /// `hand_low`, `hand_high` (the mocap box).
    fn mocap_box(self) -> ([f64; 3], [f64; 3]) {
        match self {
            Class::Reach | Class::Push | Class::PickPlace => ([-0.5, 0.40, 0.05], [0.5, 1.0, 0.5]),
        }
    }
    fn hand_init_pos(self) -> [f64; 3] {
        match self {
            Class::Reach | Class::Push | Class::PickPlace => [0.0, 0.6, 0.2],
        }
    }
    /// `_random_reset_space` (low, high).
    fn reset_space(self) -> (Vec<f64>, Vec<f64>) {
        match self {
            Class::Reach | Class::PickPlace => (
                vec![-0.1, 0.6, 0.02, -0.1, 0.8, 0.05],
                vec![0.1, 0.7, 0.02, 0.1, 0.9, 0.3],
            ),
            Class::Push => (
                vec![-0.1, 0.6, 0.02, -0.1, 0.8, 0.01],
                vec![0.1, 0.7, 0.02, 0.1, 0.9, 0.02],
            ),
        }
    }
    /// Whether `reset_model` keeps a drawn vector (its rejection loop's test).
    fn accepts(self, v: &[f64]) -> bool {
        match self {
            // `while norm(goal_pos[:2] - target[:2]) < 0.15`, target = goal_pos[3:].
            Class::Reach | Class::Push | Class::PickPlace => {
                norm(&[v[0] - v[3], v[1] - v[4]]) >= 0.15
            }
        }
    }
}

/// The random vectors of MetaWorld's task list for `class` built with `seed` (see the
/// module doc): `metaworld.ML1(name, seed).train_tasks` for `seed`, `test_tasks` for
/// `seed + 1`.
pub fn task_vectors(class: Class, seed: u32) -> Vec<Vec<f64>> {
    let mut mt = Mt19937::new(seed);
    let (low, high) = class.reset_space();
    let mut v = vec![0.0; low.len()];
    let mut out = Vec::with_capacity(GOALS);
    for _ in 0..GOALS {
        for _reset_model_call in 0..2 {
            loop {
                mt.uniform(&low, &high, &mut v);
                if class.accepts(&v) {
                    break;
                }
            }
        }
        out.push(v.clone());
    }
    out
}

/// The Euclidean norm, summed left to right.
fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// metaworld's `reward_utils.tolerance` with the `long_tail` sigmoid and the default
/// value 0.1 at the margin: 1 inside `[lower, upper]`, else `1 / ((d s)^2 + 1)` with
/// `d` the distance to the bounds over `margin` and `s = sqrt(1 / 0.1 - 1)`.
pub fn tolerance_long_tail(x: f64, lower: f64, upper: f64, margin: f64) -> f64 {
    let in_bounds = lower <= x && x <= upper;
    if margin == 0.0 {
        return if in_bounds { 1.0 } else { 0.0 };
    }
    if in_bounds {
        return 1.0;
    }
    let d = if x < lower { lower - x } else { x - upper } / margin;
    let scale = (1.0f64 / 0.1 - 1.0).sqrt();
    1.0 / ((d * scale).powi(2) + 1.0)
}

/// metaworld's `reward_utils.hamacher_product` of two values in [0, 1].
pub fn hamacher_product(a: f64, b: f64) -> f64 {
    let denominator = a + b - a * b;
    if denominator > 0.0 {
        (a * b) / denominator
    } else {
        0.0
    }
}

/// The quaternion (x, y, z, w) of a rotation matrix (row-major), as scipy's
/// `Rotation.from_matrix(m).as_quat()` computes it for an orthogonal matrix.
fn matrix_to_quat_xyzw(m: &[f64]) -> [f64; 4] {
    let at = |i: usize, j: usize| m[3 * i + j];
    let trace = at(0, 0) + at(1, 1) + at(2, 2);
    let decision = [at(0, 0), at(1, 1), at(2, 2), trace];
    let mut choice = 0;
    for c in 1..4 {
        if decision[c] > decision[choice] {
            choice = c;
        }
    }
    let mut q = [0.0; 4];
    if choice != 3 {
        let i = choice;
        let j = (i + 1) % 3;
        let k = (j + 1) % 3;
        q[i] = 1.0 - trace + 2.0 * at(i, i);
        q[j] = at(j, i) + at(i, j);
        q[k] = at(k, i) + at(i, k);
        q[3] = at(k, j) - at(j, k);
    } else {
        q[0] = at(2, 1) - at(1, 2);
        q[1] = at(0, 2) - at(2, 0);
        q[2] = at(1, 0) - at(0, 1);
        q[3] = 1.0 + trace;
    }
    let n = norm(&q);
    q.map(|v| v / n)
}

/// Ids of the named bodies, sites and geoms the Sawyer base reads.
#[derive(Clone, Copy)]
struct Ids {
    hand: usize,
    rightclaw: usize,
    leftclaw: usize,
    obj: usize,
    obj_geom: usize,
    right_ee: usize,
    left_ee: usize,
    leftpad: usize,
    rightpad: usize,
    mocap: usize,
}

/// One MetaWorld class on one split of a benchmark: the compiled model (shared by
/// every row) and the split's task vectors.
pub struct SawyerFamily {
    name: &'static str,
    class: Class,
    model: Arc<Model>,
    ids: Ids,
    tasks: Vec<Vec<f64>>,
}

impl SawyerFamily {
    /// `name`: the env name (`ml1-reach`); `bench_seed`: the seed of the MetaWorld
    /// benchmark (the bridge's, [`crate::env::python::PyBatchEnv::benchmark_seed`]).
    pub fn ml1(
        name: &'static str,
        class: Class,
        split: Split,
        bench_seed: u32,
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
            hand: need(&model, &path, OBJ_BODY, "hand")?,
            rightclaw: need(&model, &path, OBJ_BODY, "rightclaw")?,
            leftclaw: need(&model, &path, OBJ_BODY, "leftclaw")?,
            obj: need(&model, &path, OBJ_BODY, "obj")?,
            obj_geom: need(&model, &path, OBJ_GEOM, "objGeom")?,
            right_ee: need(&model, &path, OBJ_SITE, "rightEndEffector")?,
            left_ee: need(&model, &path, OBJ_SITE, "leftEndEffector")?,
            leftpad: need(&model, &path, OBJ_BODY, "leftpad")?,
            rightpad: need(&model, &path, OBJ_BODY, "rightpad")?,
            mocap: {
                let b = need(&model, &path, OBJ_BODY, "mocap")?;
                model.body_mocapid()[b].max(0) as usize
            },
        };
        let seed = match split {
            Split::Train => bench_seed,
            Split::Test => bench_seed.wrapping_add(1),
        };
        Ok(SawyerFamily {
            name,
            class,
            model: Arc::new(model),
            ids,
            tasks: task_vectors(class, seed),
        })
    }

    /// The split's task vectors (MetaWorld's `rand_vec` of each task).
    pub fn tasks(&self) -> &[Vec<f64>] {
        &self.tasks
    }

    pub fn new_row(&self) -> Result<Sawyer, MujocoError> {
        let data = Data::new(self.model.clone())?;
        let (mocap_low, mocap_high) = self.class.mocap_box();
        Ok(Sawyer {
            class: self.class,
            ids: self.ids,
            data,
            tasks: self.tasks.clone(),
            mocap_low,
            mocap_high,
            target: [0.0; 3],
            obj_init_pos: [0.0; 3],
            init_tcp: [0.0; 3],
            prev: [0.0; 18],
        })
    }
}

fn need(model: &Model, path: &Path, obj: i32, name: &str) -> Result<usize, MujocoError> {
    model.id(obj, name).ok_or_else(|| MujocoError::Model {
        path: path.to_path_buf(),
        message: format!("no object named `{name}`"),
    })
}

impl Family for SawyerFamily {
    fn name(&self) -> &'static str {
        self.name
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
        self.tasks.len()
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
        let n = self.tasks.len() as u64;
        match split {
            Split::Train => (rng.below(n) as u32, 0.0),
            Split::Test => (((row as u64 + trial * rows as u64) % n) as u32, 0.0),
        }
    }
    fn row(&self) -> Result<Box<dyn RowSim>, UserError> {
        Ok(Box::new(self.new_row()?))
    }
}

/// One row's Sawyer arm on one class.
pub struct Sawyer {
    class: Class,
    ids: Ids,
    data: Data,
    tasks: Vec<Vec<f64>>,
    mocap_low: [f64; 3],
    mocap_high: [f64; 3],
    target: [f64; 3],
    obj_init_pos: [f64; 3],
    /// The gripper's centre after the hand reset (`init_tcp`).
    init_tcp: [f64; 3],
    /// The previous frame's 18 observation values.
    prev: [f64; 18],
}

impl Sawyer {
    /// `do_simulation(ctrl, 5)` as gymnasium runs it.
    fn simulate(&mut self, ctrl: [f64; 2]) {
        self.data.ctrl_mut().copy_from_slice(&ctrl);
        self.data.step(FRAME_SKIP);
        self.data.rne_post_constraint();
    }

    fn site(&self, s: usize) -> [f64; 3] {
        let p = self.data.site_xpos();
        [p[3 * s], p[3 * s + 1], p[3 * s + 2]]
    }
    fn body(&self, b: usize) -> [f64; 3] {
        let p = self.data.xpos();
        [p[3 * b], p[3 * b + 1], p[3 * b + 2]]
    }
    /// The point between the two finger pads.
    fn tcp_center(&self) -> [f64; 3] {
        let (r, l) = (self.site(self.ids.right_ee), self.site(self.ids.left_ee));
        [
            (r[0] + l[0]) / 2.0,
            (r[1] + l[1]) / 2.0,
            (r[2] + l[2]) / 2.0,
        ]
    }

    /// `_reset_hand`: hold the mocap at the hand's start for 50 steps, gripper open.
    fn reset_hand(&mut self) {
        let m = self.ids.mocap;
        let hand = self.class.hand_init_pos();
        for _ in 0..50 {
            self.data.mocap_pos_mut()[3 * m..3 * m + 3].copy_from_slice(&hand);
            self.data.mocap_quat_mut()[4 * m..4 * m + 4].copy_from_slice(&MOCAP_QUAT);
            self.simulate([-1.0, 1.0]);
        }
        self.init_tcp = self.tcp_center();
    }

    /// `_set_obj_xyz`: the object's free joint at `pos`, at rest.
    fn set_obj_xyz(&mut self, pos: [f64; 3]) {
        self.data.qpos_mut()[9..12].copy_from_slice(&pos);
        self.data.qvel_mut()[9..15].fill(0.0);
        self.data.forward();
    }

    /// The 18 current-frame values: hand, gripper opening, object pose padded to 14.
    fn frame(&self) -> [f64; 18] {
        let mut f = [0.0; 18];
        f[..3].copy_from_slice(&self.body(self.ids.hand));
        let (r, l) = (self.body(self.ids.rightclaw), self.body(self.ids.leftclaw));
        let apart = norm(&[r[0] - l[0], r[1] - l[1], r[2] - l[2]]);
        f[3] = (apart / 0.1).clamp(0.0, 1.0);
        f[4..7].copy_from_slice(&self.body(self.ids.obj));
        let g = self.ids.obj_geom;
        let q = matrix_to_quat_xyzw(&self.data.geom_xmat()[9 * g..9 * g + 9]);
        f[7..11].copy_from_slice(&q);
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

    /// The class's `reset_model` from freshly reset data, with the task's vector.
    fn reset_model(&mut self, v: &[f64]) {
        match self.class {
            Class::Reach => {
                self.reset_hand();
                self.target = [v[3], v[4], v[5]];
                self.obj_init_pos = [v[0], v[1], v[2]];
                self.set_obj_xyz(self.obj_init_pos);
            }
            Class::PickPlace => {
                self.reset_hand();
                self.target = [v[3], v[4], v[5]];
                self.obj_init_pos = [v[0], v[1], v[2]];
                self.set_obj_xyz(self.obj_init_pos);
            }
            Class::Push => {
                self.reset_hand();
                // fix_extreme_obj_pos keeps the object's resting height.
                let z = self.body(self.ids.obj)[2];
                self.target = [v[3], v[4], z];
                self.obj_init_pos = [v[0], v[1], z];
                self.set_obj_xyz(self.obj_init_pos);
            }
        }
    }

    /// `_gripper_caging_reward` (v2) for an object at `obj`, with its float32 turns:
    /// the gripper effort is the action's float32 value, and a Hamacher product or
    /// mean with it is float32 arithmetic in NumPy. Returns the value, and whether
    /// NumPy holds it as a float32 (which makes the caller's arithmetic float32 too).
    #[allow(clippy::too_many_arguments)]
    fn gripper_caging(
        &self,
        action: &[f32],
        obj: [f64; 3],
        obj_radius: f64,
        pad_success_thresh: f64,
        xz_thresh: f64,
        high_density: bool,
    ) -> (f64, bool) {
        let (left, right) = (self.body(self.ids.leftpad), self.body(self.ids.rightpad));
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
        // min(max(0, a), 1.0) / 1.0: a float32 when 0 < a <= 1, else a Python number.
        let a = action[3];
        let effort32 = (a > 0.0 && a <= 1.0).then_some(a);
        let gripping = if caging > 0.97 { effort32 } else { None };
        match gripping {
            Some(g) => {
                // hamacher_product(python float, float32) and the mean are float32.
                let c = caging as f32;
                let d = c + g - c * g;
                let cg = if d > 0.0 { (c * g) / d } else { 0.0 };
                let v = if high_density { (cg + c) / 2.0 } else { cg };
                (v as f64, true)
            }
            None => {
                let g = if caging > 0.97 && a > 1.0 { 1.0 } else { 0.0 };
                let cg = hamacher_product(caging, g);
                let v = if high_density {
                    (cg + caging) / 2.0
                } else {
                    cg
                };
                (v, false)
            }
        }
    }

    /// pick-place's own `_gripper_caging_reward` (both pads caging the object in y,
    /// the gripper centre over it in x-z, high density), with NumPy's float32 turns as
    /// in [`Sawyer::gripper_caging`].
    fn pick_place_caging(&self, action: &[f32], obj: [f64; 3]) -> (f64, bool) {
        let (pad_margin, xz_margin, obj_radius) = (0.05, 0.005, 0.015);
        let tcp = self.tcp_center();
        let (left, right) = (self.body(self.ids.leftpad), self.body(self.ids.rightpad));
        // MetaWorld's `init_left_pad` / `init_right_pad` are views of the live body
        // positions (`get_body_com` returns `data.body(..).xpos`), not copies: the
        // "initial" pads are the current ones.
        let (init_left, init_right) = (left, right);
        let right_margin = ((obj[1] - init_right[1]).abs() - pad_margin).abs();
        let left_margin = ((obj[1] - init_left[1]).abs() - pad_margin).abs();
        let right_caging =
            tolerance_long_tail(obj[1] - right[1], obj_radius, pad_margin, right_margin);
        let left_caging =
            tolerance_long_tail(left[1] - obj[1], obj_radius, pad_margin, left_margin);
        let y_caging = hamacher_product(left_caging, right_caging);
        // The x-z distances with the y entry zeroed (tcp + [0, -tcp_y, 0]).
        let xz = |p: [f64; 3]| [p[0], p[1] + -p[1], p[2]];
        let (t, o) = (xz(tcp), xz(obj));
        let tcp_obj = norm(&[t[0] - o[0], t[1] - o[1], t[2] - o[2]]);
        let (oi, it) = (xz(self.obj_init_pos), xz(self.init_tcp));
        let margin = norm(&[oi[0] - it[0], oi[1] - it[1], oi[2] - it[2]]) - xz_margin;
        let x_z_caging = tolerance_long_tail(tcp_obj, 0.0, xz_margin, margin);
        let caging = hamacher_product(y_caging, x_z_caging);
        // min(max(0, a), 1): the float32 action when 0 < a <= 1, else 0 or 1.
        let a = action[3];
        if caging > 0.97 && a > 0.0 && a <= 1.0 {
            let c = caging as f32;
            let d = c + a - c * a;
            let cg = if d > 0.0 { (c * a) / d } else { 0.0 };
            (((cg + c) / 2.0) as f64, true)
        } else {
            let g = if caging > 0.97 && a > 1.0 { 1.0 } else { 0.0 };
            ((hamacher_product(caging, g) + caging) / 2.0, false)
        }
    }

    /// The class's reward and success at the current state (`obs`: the clipped
    /// observation).
    fn evaluate(&self, action: &[f32], obs: &[f64; 39]) -> (f64, bool) {
        match self.class {
            Class::Reach => {
                let tcp = self.tcp_center();
                let t = self.target;
                let dist = norm(&[tcp[0] - t[0], tcp[1] - t[1], tcp[2] - t[2]]);
                let h = self.class.hand_init_pos();
                let margin = norm(&[h[0] - t[0], h[1] - t[1], h[2] - t[2]]);
                let in_place = tolerance_long_tail(dist, 0.0, 0.05, margin);
                (10.0 * in_place, dist <= 0.05)
            }
            Class::Push => {
                let obj = [obs[4], obs[5], obs[6]];
                let tcp_opened = obs[3];
                let tcp = self.tcp_center();
                let t = self.target;
                let oi = self.obj_init_pos;
                let tcp_to_obj = norm(&[obj[0] - tcp[0], obj[1] - tcp[1], obj[2] - tcp[2]]);
                let target_to_obj = norm(&[obj[0] - t[0], obj[1] - t[1], obj[2] - t[2]]);
                let target_to_obj_init = norm(&[oi[0] - t[0], oi[1] - t[1], oi[2] - t[2]]);
                let in_place = tolerance_long_tail(target_to_obj, 0.0, 0.05, target_to_obj_init);
                let (grasped, float32) = self.gripper_caging(action, obj, 0.015, 0.05, 0.005, true);
                let mut reward = 2.0 * grasped;
                if tcp_to_obj < 0.02 && tcp_opened > 0.0 {
                    reward = if float32 {
                        let r = reward as f32;
                        (r + (1.0f32 + r + (5.0 * in_place) as f32)) as f64
                    } else {
                        reward + (1.0 + reward + 5.0 * in_place)
                    };
                }
                if target_to_obj < 0.05 {
                    reward = 10.0;
                }
                (reward, target_to_obj <= 0.05)
            }
            Class::PickPlace => {
                let obj = [obs[4], obs[5], obs[6]];
                let tcp_opened = obs[3];
                let tcp = self.tcp_center();
                let t = self.target;
                let oi = self.obj_init_pos;
                let obj_to_target = norm(&[obj[0] - t[0], obj[1] - t[1], obj[2] - t[2]]);
                let tcp_to_obj = norm(&[obj[0] - tcp[0], obj[1] - tcp[1], obj[2] - tcp[2]]);
                let margin = norm(&[oi[0] - t[0], oi[1] - t[1], oi[2] - t[2]]);
                let in_place = tolerance_long_tail(obj_to_target, 0.0, 0.05, margin);
                let (grasped, float32) = self.pick_place_caging(action, obj);
                let lifted = tcp_to_obj < 0.02 && tcp_opened > 0.0 && obj[2] - 0.01 > oi[2];
                let mut reward = if float32 {
                    // hamacher_product(float32, float) and `+=` stay float32.
                    let (g, p) = (grasped as f32, in_place as f32);
                    let d = g + p - g * p;
                    let mut r = if d > 0.0 { (g * p) / d } else { 0.0 };
                    if lifted {
                        r += (1.0 + 5.0 * in_place) as f32;
                    }
                    r as f64
                } else {
                    let mut r = hamacher_product(grasped, in_place);
                    if lifted {
                        r += 1.0 + 5.0 * in_place;
                    }
                    r
                };
                if obj_to_target < 0.05 {
                    reward = 10.0;
                }
                (reward, obj_to_target <= 0.07)
            }
        }
    }
}

impl RowSim for Sawyer {
    fn reset(&mut self, task_index: u32, _task_value: f64, _seed: u64, obs: &mut [f32]) {
        // MetaWorld's reset is deterministic given the task (the seed is unused).
        let v = self.tasks[task_index as usize].clone();
        self.data.reset();
        self.reset_model(&v);
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
        let (reward, success) = self.evaluate(action, &o);
        for (d, s) in obs.iter_mut().zip(&o) {
            *d = *s as f32;
        }
        Outcome {
            reward: reward as f32,
            terminated: false,
            success,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reward_utilities_match_their_definitions() {
        assert_eq!(tolerance_long_tail(0.03, 0.0, 0.05, 0.2), 1.0);
        // At distance `margin` beyond the bound the long tail is 0.1.
        assert!((tolerance_long_tail(0.25, 0.0, 0.05, 0.2) - 0.1).abs() < 1e-12);
        assert_eq!(tolerance_long_tail(0.3, 0.0, 0.05, 0.0), 0.0);
        assert_eq!(hamacher_product(0.0, 0.0), 0.0);
        assert!((hamacher_product(0.5, 0.5) - 0.25 / 0.75).abs() < 1e-15);
        assert_eq!(hamacher_product(1.0, 0.3), 0.3);
    }

    #[test]
    fn quaternions_of_simple_rotations() {
        let id = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(matrix_to_quat_xyzw(&id), [0.0, 0.0, 0.0, 1.0]);
        // 180 degrees about z.
        let rz = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0];
        assert_eq!(matrix_to_quat_xyzw(&rz), [0.0, 0.0, 1.0, 0.0]);
    }
}
