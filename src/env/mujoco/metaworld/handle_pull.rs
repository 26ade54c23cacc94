//! `handle-pull-v3` and `handle-pull-side-v3` (`SawyerHandlePull[Side]EnvV3`): pull a
//! handle up, in handle-press's scenes ([`super::handle_press`]). One parameterised
//! [`HandlePull`] covers both: they differ in the scene, the reset space, the observed
//! handle site, the distance to the goal (height only, or 3-D), the caging radii and
//! the success radius. Reward: the Hamacher product of the gripper caging and the
//! handle's closeness to the goal, plus a bonus once the open gripper holds the
//! handle up; 10 within 5 cm.

use super::reward::{dist, hamacher_product, hamacher_product_f32, norm, tolerance_long_tail};
use super::{Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

/// The base's `TARGET_RADIUS`.
const TARGET_RADIUS: f64 = 0.05;

/// One handle-pull class.
pub struct HandlePull {
    pub name: &'static str,
    pub xml: &'static str,
    pub low: &'static [f64],
    pub high: &'static [f64],
    /// The box, the observed handle site (`handleRight`, `handleCenter`) and the goal
    /// site.
    pub names: &'static [(Obj, &'static str)],
    /// Sideways: the 3-D distance to the goal, `obj_init_pos` the handle's start
    /// instead of the box's, the lift test on z (handle-pull tests y, as MetaWorld).
    pub side: bool,
    /// `obj_radius` and `pad_success_thresh` of the caging reward.
    pub obj_radius: f64,
    pub pad_success_thresh: f64,
    pub success_radius: f64,
}

pub static HANDLE_PULL: HandlePull = HandlePull {
    name: "handle-pull-v3",
    xml: "sawyer_xyz/sawyer_handle_press.xml",
    low: &[-0.1, 0.8, -0.001],
    high: &[0.1, 0.9, 0.001],
    names: &[
        (Obj::Body, "box"),
        (Obj::Site, "handleRight"),
        (Obj::Site, "goalPull"),
    ],
    side: false,
    obj_radius: 0.022,
    pad_success_thresh: 0.05,
    success_radius: TARGET_RADIUS,
};
pub static HANDLE_PULL_SIDE: HandlePull = HandlePull {
    name: "handle-pull-side-v3",
    xml: "sawyer_xyz/sawyer_handle_press_sideways.xml",
    low: &[-0.35, 0.65, 0.0],
    high: &[-0.25, 0.75, 0.0],
    names: &[
        (Obj::Body, "box"),
        (Obj::Site, "handleCenter"),
        (Obj::Site, "goalPull"),
    ],
    side: true,
    obj_radius: 0.032,
    pad_success_thresh: 0.06,
    success_radius: 0.08,
};

impl HandlePull {
    fn place_box(s: &mut Sawyer, v: &[f64]) {
        let b = s.named[0];
        s.model_mut().body_pos_mut(b).copy_from_slice(&v[..3]);
    }
}

impl TaskClass for HandlePull {
    fn name(&self) -> &'static str {
        self.name
    }
    fn xml(&self) -> &'static str {
        self.xml
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (self.low, self.high)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        self.names
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        // MetaWorld's first call of the reset left the box where the task puts it.
        HandlePull::place_box(s, v);
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        HandlePull::place_box(s, v);
        s.data.qpos_mut()[9] = -0.1;
        s.data.qvel_mut()[9] = 0.0;
        s.data.forward();
        s.target = s.site(s.named[2]);
        if self.side {
            s.obj_init_pos = s.site(s.named[1]);
        }
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.site(s.named[1]), [0.0; 4]))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let (t, oi) = (s.target, s.obj_init_pos);
        let (target_to_obj, target_to_obj_init) = if self.side {
            // norm((p - target) * [1, 1, 1]).
            let scaled = |p: [f64; 3]| {
                [
                    (p[0] - t[0]) * 1.0,
                    (p[1] - t[1]) * 1.0,
                    (p[2] - t[2]) * 1.0,
                ]
            };
            (norm(&scaled(obj)), norm(&scaled(oi)))
        } else {
            ((t[2] - obj[2]).abs(), (t[2] - oi[2]).abs())
        };
        let in_place = tolerance_long_tail(target_to_obj, 0.0, TARGET_RADIUS, target_to_obj_init);
        let (grasped, float32) = s.gripper_caging(
            action,
            obj,
            self.obj_radius,
            self.pad_success_thresh,
            0.01,
            true,
        );
        let tcp_opened = obs[3];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let lift = if self.side { obj[2] } else { obj[1] };
        let bonus = tcp_to_obj < 0.035 && tcp_opened > 0.0 && lift - 0.01 > oi[2];
        let mut reward = if float32 {
            let mut r = hamacher_product_f32(grasped as f32, in_place as f32);
            if bonus {
                r += (1.0 + 5.0 * in_place) as f32;
            }
            r as f64
        } else {
            let mut r = hamacher_product(grasped, in_place);
            if bonus {
                r += 1.0 + 5.0 * in_place;
            }
            r
        };
        if target_to_obj < TARGET_RADIUS {
            reward = 10.0;
        }
        Evaluation {
            reward,
            success: target_to_obj <= self.success_radius,
            info: Info {
                near_object: super::flag(tcp_to_obj <= 0.05),
                grasp_success: super::flag(tcp_opened > 0.0 && obj[2] - 0.03 > oi[2]),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target: target_to_obj,
                unscaled_reward: reward,
            },
        }
    }
}
