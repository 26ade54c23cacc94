//! gymnasium v5 HalfCheetah and Ant with VariBAD's task rewards, exactly as the Python
//! bridge computes them (`MujocoFamily` in `python/bamdp_envs/worker.py`):
//!
//! - model: gymnasium's `half_cheetah.xml` / `ant.xml`, read from the installed
//!   `gymnasium` package (`BAMDP_GYMNASIUM_ASSETS` names the folder instead);
//! - step: `ctrl = action`, 5 x `mj_step`, `mj_rnePostConstraint` (gymnasium's
//!   `do_simulation`); dt = 5 x timestep;
//! - observation: HalfCheetah `qpos[1:] ++ qvel` (17), Ant `qpos[2:] ++ qvel` (27);
//! - reward (the worker's arithmetic, with its NumPy float32 / float64 mix, so the
//!   values are bit-identical): `cheetah-vel` `-|v - task| - 0.05 |a|^2`, `cheetah-dir`
//!   `task * v - 0.05 |a|^2` (v: forward velocity of the root; rounded to float32 before
//!   the control cost, which is a float32 sum); `ant-dir` `v . (cos g, sin g) - 0.5
//!   |a|^2 - 5e-4 |clip(cfrc_ext, -1, 1)|^2 + 1` with the torso's planar velocity v;
//! - Ant terminates when unhealthy (a non-finite state or torso height outside
//!   [0.2, 1.0]); HalfCheetah never does;
//! - reset: `mj_resetData`, then `qpos = qpos0 + U(-0.1, 0.1)`, `qvel = 0.1 N(0, 1)`,
//!   `mj_forward`. The noise is drawn from bamdp's stream of the episode's reset seed,
//!   not from NumPy's generator: the same distribution as gymnasium's, not the same
//!   samples (the equality tests pass the reset state explicitly, see
//!   docs/simulators.md).

use super::batch::{Family, Outcome, RowSim, Shape};
use super::lib::{Data, Model};
use super::offsets::OBJ_BODY;
use super::{assets_dir, MujocoError};
use crate::env::python::{MUJOCO_EPISODES_PER_TRIAL, MUJOCO_EPISODE_LEN};
use crate::env::replay::TaskDraw;
use crate::env::Split;
use crate::error::UserError;
use crate::rng::{streams, Rng};
use std::sync::Arc;

/// gymnasium's `frame_skip` for both envs.
const FRAME_SKIP: usize = 5;
/// gymnasium's `reset_noise_scale` for both envs.
const RESET_NOISE: f64 = 0.1;

/// Which locomotion meta-task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    CheetahVel,
    CheetahDir,
    AntDir,
}

impl Kind {
    pub fn parse(name: &str) -> Option<Kind> {
        match name {
            "cheetah-vel" => Some(Kind::CheetahVel),
            "cheetah-dir" => Some(Kind::CheetahDir),
            "ant-dir" => Some(Kind::AntDir),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::CheetahVel => "cheetah-vel",
            Kind::CheetahDir => "cheetah-dir",
            Kind::AntDir => "ant-dir",
        }
    }
    fn is_ant(self) -> bool {
        self == Kind::AntDir
    }
    fn xml(self) -> &'static str {
        if self.is_ant() {
            "ant.xml"
        } else {
            "half_cheetah.xml"
        }
    }
    /// Leading `qpos` entries left out of the observation (the root's x, or x and y).
    fn skip_qpos(self) -> usize {
        if self.is_ant() {
            2
        } else {
            1
        }
    }
}

/// A locomotion meta-task: the compiled model, shared by every row.
pub struct LocomotionFamily {
    kind: Kind,
    model: Arc<Model>,
    torso: usize,
}

impl LocomotionFamily {
    pub fn new(kind: Kind) -> Result<LocomotionFamily, MujocoError> {
        let dir = assets_dir("BAMDP_GYMNASIUM_ASSETS", "gymnasium", "envs/mujoco/assets")?;
        let model = Model::from_xml(&dir.join(kind.xml()))?;
        let torso = model
            .id(OBJ_BODY, "torso")
            .ok_or_else(|| MujocoError::Model {
                path: dir.join(kind.xml()),
                message: "no body named `torso`".into(),
            })?;
        Ok(LocomotionFamily {
            kind,
            model: Arc::new(model),
            torso,
        })
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// One row's simulator.
    pub fn new_row(&self) -> Result<Locomotion, MujocoError> {
        let data = Data::new(self.model.clone())?;
        let dt = self.model.timestep() * FRAME_SKIP as f64;
        Ok(Locomotion {
            kind: self.kind,
            torso: self.torso,
            dt,
            task: 0.0,
            qpos: vec![0.0; self.model.nq()],
            qvel: vec![0.0; self.model.nv()],
            data,
        })
    }
}

impl Family for LocomotionFamily {
    fn name(&self) -> &'static str {
        self.kind.name()
    }
    fn shape(&self) -> Shape {
        Shape {
            obs_dim: self.model.nq() - self.kind.skip_qpos() + self.model.nv(),
            act_dim: self.model.nu(),
            act_bounds: (-1.0, 1.0),
            episode_len: MUJOCO_EPISODE_LEN,
            episodes_per_trial: MUJOCO_EPISODES_PER_TRIAL,
            has_success: false,
        }
    }
    fn num_tasks(&self) -> usize {
        0
    }
    /// The bridge's draws (`PyBatchEnv::draw_task`): a target velocity `3 U(0, 1)`, or
    /// a direction / angle of -1 or +1 with probability 1/2.
    fn draw_task(
        &self,
        rng: &mut Rng,
        split: Split,
        row: usize,
        trial: u64,
        rows: usize,
    ) -> (u32, f64) {
        let draw = match self.kind {
            Kind::CheetahVel => TaskDraw::Velocity,
            _ => TaskDraw::Direction,
        };
        draw.draw(rng, split, row, trial, rows)
    }
    fn row(&self) -> Result<Box<dyn RowSim>, UserError> {
        Ok(Box::new(self.new_row()?))
    }
}

/// One row's HalfCheetah or Ant.
pub struct Locomotion {
    kind: Kind,
    data: Data,
    torso: usize,
    dt: f64,
    task: f64,
    qpos: Vec<f64>,
    qvel: Vec<f64>,
}

impl Locomotion {
    /// The task: target velocity, direction, or goal angle.
    pub fn set_task(&mut self, task: f64) {
        self.task = task;
    }
    /// Resets to `qpos`, `qvel` (gymnasium's `reset` after its noise draw) and writes
    /// the first observation.
    pub fn reset_to(&mut self, qpos: &[f64], qvel: &[f64], obs: &mut [f32]) {
        self.data.reset();
        self.data.qpos_mut().copy_from_slice(qpos);
        self.data.qvel_mut().copy_from_slice(qvel);
        self.data.forward();
        self.observe(obs);
    }
    /// The joint positions and velocities.
    pub fn state(&self) -> (&[f64], &[f64]) {
        (self.data.qpos(), self.data.qvel())
    }

    fn observe(&self, obs: &mut [f32]) {
        let skip = self.kind.skip_qpos();
        let (qpos, qvel) = (self.data.qpos(), self.data.qvel());
        for (o, v) in obs.iter_mut().zip(qpos[skip..].iter().chain(qvel)) {
            *o = *v as f32;
        }
    }
}

/// NumPy's float32 `np.square(a).sum()` over one row: its pairwise summation, which
/// for fewer than 8 values is a plain left-to-right sum and for 8 sums eight partial
/// sums pairwise (the control costs are float32 in the bridge).
fn numpy_sum_sq_f32(a: &[f32]) -> f32 {
    let sq = |x: f32| x * x;
    numpy_pairwise(a.len(), |i| sq(a[i]))
}

/// NumPy's pairwise summation (`pairwise_sum` in its `loops_utils.h`) of `n` values
/// `x(0..n)`, in any float type: below 8 values left to right, up to 128 with eight
/// running partial sums, above that split in halves at a multiple of 8.
fn numpy_pairwise<T: Copy + std::ops::Add<Output = T> + Default>(
    n: usize,
    x: impl Fn(usize) -> T + Copy,
) -> T {
    fn rec<T: Copy + std::ops::Add<Output = T> + Default>(
        lo: usize,
        n: usize,
        x: &impl Fn(usize) -> T,
    ) -> T {
        if n < 8 {
            let mut res = T::default();
            for i in 0..n {
                res = res + x(lo + i);
            }
            res
        } else if n <= 128 {
            let mut r = [T::default(); 8];
            for (j, rj) in r.iter_mut().enumerate() {
                *rj = x(lo + j);
            }
            let mut i = 8;
            while i < n - n % 8 {
                for (j, rj) in r.iter_mut().enumerate() {
                    *rj = *rj + x(lo + i + j);
                }
                i += 8;
            }
            let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            while i < n {
                res = res + x(lo + i);
                i += 1;
            }
            res
        } else {
            let n2 = (n / 2) - (n / 2) % 8;
            rec(lo, n2, x) + rec(lo + n2, n - n2, x)
        }
    }
    rec(0, n, &x)
}

impl RowSim for Locomotion {
    /// The row's data; the model is shared by all rows (the family's).
    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + 8 * (self.qpos.len() + self.qvel.len()) + self.data.bytes()
    }
    fn reset(&mut self, _task_index: u32, task_value: f64, seed: u64, obs: &mut [f32]) {
        self.task = task_value;
        let mut rng = Rng::stream(seed, streams::ENV_NOISE, 0);
        let mut qpos = std::mem::take(&mut self.qpos);
        let mut qvel = std::mem::take(&mut self.qvel);
        let qpos0 = self.data.model().qpos0();
        for (q, q0) in qpos.iter_mut().zip(qpos0) {
            *q = q0 + (-RESET_NOISE + 2.0 * RESET_NOISE * rng.uniform());
        }
        for v in qvel.iter_mut() {
            *v = RESET_NOISE * rng.normal();
        }
        self.reset_to(&qpos, &qvel, obs);
        self.qpos = qpos;
        self.qvel = qvel;
    }

    fn bare_steps(&mut self, env_steps: usize, ctrl: f64) {
        self.data.ctrl_mut().fill(ctrl);
        self.data.step(FRAME_SKIP * env_steps);
    }

    fn step(&mut self, action: &[f32], obs: &mut [f32]) -> Outcome {
        for (c, a) in self.data.ctrl_mut().iter_mut().zip(action) {
            *c = *a as f64;
        }
        let t = self.torso;
        let before = [
            self.data.xpos()[3 * t],
            self.data.xpos()[3 * t + 1],
            self.data.qpos()[0],
        ];
        self.data.step(FRAME_SKIP);
        self.data.rne_post_constraint();
        self.observe(obs);
        let sum_sq = numpy_sum_sq_f32(action);
        if self.kind.is_ant() {
            let xpos = self.data.xpos();
            let vx = (xpos[3 * t] - before[0]) / self.dt;
            let vy = (xpos[3 * t + 1] - before[1]) / self.dt;
            let forward = vx * self.task.cos() + vy * self.task.sin();
            let ctrl = 0.5f32 * sum_sq;
            let cfrc = self.data.cfrc_ext();
            let contact = 0.5
                * 1e-3
                * numpy_pairwise(cfrc.len(), |i| {
                    let c = cfrc[i].clamp(-1.0, 1.0);
                    c * c
                });
            let reward = forward - ctrl as f64 - contact + 1.0;
            let qpos = self.data.qpos();
            let finite = qpos.iter().chain(self.data.qvel()).all(|v| v.is_finite());
            let healthy = finite && (0.2..=1.0).contains(&qpos[2]);
            Outcome {
                reward: reward as f32,
                terminated: !healthy,
                success: false,
            }
        } else {
            let vel = (self.data.qpos()[0] - before[2]) / self.dt;
            let task_reward = match self.kind {
                Kind::CheetahVel => -(vel - self.task).abs(),
                _ => self.task * vel,
            };
            // A Python float minus NumPy's float32 control cost is float32 arithmetic.
            let ctrl = 0.05f32 * sum_sq;
            Outcome {
                reward: task_reward as f32 - ctrl,
                terminated: false,
                success: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::numpy_pairwise;

    #[test]
    fn pairwise_sum_orders_like_numpy() {
        // 8 values: ((x0+x1)+(x2+x3))+((x4+x5)+(x6+x7)), not left to right.
        let x = [1e8f32, 1.0, -1e8, 1.0, 0.5, 0.25, 3.0, 1.0];
        let s = numpy_pairwise(8, |i| x[i]);
        let expect = ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]));
        assert_eq!(s.to_bits(), expect.to_bits());
        // Few values: left to right.
        let s3 = numpy_pairwise(3, |i| x[i]);
        assert_eq!(s3.to_bits(), ((x[0] + x[1]) + x[2]).to_bits());
        // Exact on integers whatever the order: the blocks cover every value once.
        let n = 1000;
        let total = numpy_pairwise(n, |i| i as f64);
        assert_eq!(total, (n * (n - 1) / 2) as f64);
    }
}
