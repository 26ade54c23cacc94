//! `drawer-close-v3` (`SawyerDrawerCloseEnvV3`): push an open drawer shut. The task
//! vector places the drawer, which starts pulled out by 15 cm. Reward: 10 times the
//! Hamacher product of "gripper at the handle, closing" (a Gaussian reach times the
//! gripper effort) and the handle's closeness to the closed position; 10 and success
//! within 6.5 cm. MetaWorld computes it in float32 whenever the gripper effort is the
//! action's own float32 value, and so does the port.

use super::reward::{dist, hamacher_product, hamacher_product_f32, tolerance, Sigmoid};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct DrawerClose;

/// `TARGET_RADIUS` of the base class: the class's own `_TARGET_RADIUS` (0.04) is not
/// the one its reward reads.
const TARGET_RADIUS: f64 = 0.05;
/// How far the drawer starts pulled out (`maxDist`).
const MAX_DIST: f64 = 0.15;

/// Objects of the drawer scene (drawer-close, drawer-open).
pub(super) const DRAWER: &[(Obj, &str)] = &[
    (Obj::Body, "drawer_link"),
    (Obj::Body, "drawer"),
    (Obj::Site, "goal"),
];

/// The hand's start, a float32 array in the drawer classes.
pub(super) const DRAWER_HAND: [f64; 3] = [0.0, 0.6f32 as f64, 0.2f32 as f64];

/// The drawer handle: `drawer_link` + [0, -0.16, `dz`].
pub(super) fn handle(s: &Sawyer, dz: f64) -> [f64; 3] {
    let p = s.body(s.named[0]);
    [p[0] + 0.0, p[1] + -0.16, p[2] + dz]
}

impl TaskClass for DrawerClose {
    fn name(&self) -> &'static str {
        "drawer-close-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_drawer.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        DRAWER_HAND
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.9, 0.0], &[0.1, 0.9, 0.0])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        DRAWER
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        let (drawer, goal) = (s.named[1], s.named[2]);
        s.model_mut().body_pos_mut(drawer).copy_from_slice(&v[..3]);
        s.target = [v[0] + 0.0, v[1] + -0.16, v[2] + 0.09];
        // _set_obj_xyz(-maxDist): the drawer slide pulled out, velocities kept.
        s.data.qpos_mut()[9] = -MAX_DIST;
        s.data.forward();
        s.obj_init_pos = handle(s, 0.05);
        let target = s.target;
        s.model_mut().site_pos_mut(goal).copy_from_slice(&target);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((handle(s, 0.05), [0.0; 4]))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let target_to_obj = dist(obj, s.target);
        let target_to_obj_init = dist(s.obj_init_pos, s.target);
        let in_place = tolerance(
            target_to_obj,
            0.0,
            TARGET_RADIUS,
            (target_to_obj_init - TARGET_RADIUS).abs(),
            Sigmoid::LongTail,
        );
        let handle_reach_radius = 0.005;
        let tcp_to_obj = dist(obj, s.tcp_center());
        let tcp_to_obj_init = dist(s.obj_init_pos, s.init_tcp);
        let reach = tolerance(
            tcp_to_obj,
            0.0,
            handle_reach_radius,
            (tcp_to_obj_init - handle_reach_radius).abs(),
            Sigmoid::Gaussian,
        );
        let closed = target_to_obj <= TARGET_RADIUS + 0.015;
        // min(max(0, a), 1): the float32 action when 0 < a <= 1, else 0 or 1.
        let a = action[3];
        let (grasped, reward) = if a > 0.0 && a <= 1.0 {
            let reach = hamacher_product_f32(reach as f32, a);
            let r = if closed {
                1.0
            } else {
                hamacher_product_f32(reach, in_place as f32)
            };
            (reach as f64, (r * 10.0) as f64)
        } else {
            let gripper = if a > 1.0 { 1.0 } else { 0.0 };
            let reach = hamacher_product(reach, gripper);
            let r = if closed {
                1.0
            } else {
                hamacher_product(reach, in_place)
            };
            (reach, r * 10.0)
        };
        Evaluation {
            reward,
            success: closed,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.01),
                grasp_success: 1.0,
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target: target_to_obj,
                unscaled_reward: reward,
            },
        }
    }
}
