//! `handle-press-v3` (`SawyerHandlePressEnvV3`): press a handle down. The task vector
//! places the handle's box; the goal is the handle's pressed height. Reward: 10 times
//! the Hamacher product of the gripper's closeness to the handle and the handle's
//! closeness to the goal height; 10 and success within 2 cm.
//!
//! The handle's start after the reset is [`Sawyer::reset_point`].

use super::reward::{dist, hamacher_product, norm, tolerance_long_tail};
use super::{Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct HandlePress;

/// The class's own `TARGET_RADIUS`.
const TARGET_RADIUS: f64 = 0.02;

/// Objects of the handle-press scenes: the box, the handle's start site and the goal
/// site.
pub(super) const HANDLE_PRESS: &[(Obj, &str)] = &[
    (Obj::Body, "box"),
    (Obj::Site, "handleStart"),
    (Obj::Site, "goalPress"),
];

/// The handle-press scenes' reset: the box at `v` (also before the hand reset, where
/// MetaWorld's first call of the reset left it for the second), the handle's joint at
/// -0.001 and at rest, a forward pass.
pub(super) fn place_handle_box(s: &mut Sawyer, v: &[f64]) {
    let b = s.named[0];
    s.model_mut().body_pos_mut(b).copy_from_slice(&v[..3]);
    s.reset_hand();
    s.obj_init_pos = [v[0], v[1], v[2]];
    s.data.qpos_mut()[9] = -0.001;
    s.data.qvel_mut()[9] = 0.0;
    s.data.forward();
    s.target = s.site(s.named[2]);
    s.reset_point = s.site(s.named[1]);
}

/// The handle's start site and a zero quaternion.
pub(super) fn handle_start(s: &Sawyer) -> ([f64; 3], [f64; 4]) {
    (s.site(s.named[1]), [0.0; 4])
}

/// The handle-press scenes' reward.
pub(super) fn handle_press_evaluation(s: &Sawyer) -> Evaluation {
    let obj = s.site(s.named[1]);
    let (t, init) = (s.target, s.reset_point);
    // np.linalg.norm of a scalar: the square root of its square.
    let target_to_obj = norm(&[obj[2] - t[2]]);
    let target_to_obj_init = norm(&[init[2] - t[2]]);
    let in_place = tolerance_long_tail(
        target_to_obj,
        0.0,
        TARGET_RADIUS,
        (target_to_obj_init - TARGET_RADIUS).abs(),
    );
    let handle_radius = 0.02;
    let tcp_to_obj = dist(obj, s.tcp_center());
    let tcp_to_obj_init = dist(init, s.init_tcp);
    let reach = tolerance_long_tail(
        tcp_to_obj,
        0.0,
        handle_radius,
        (tcp_to_obj_init - handle_radius).abs(),
    );
    let reward = if target_to_obj <= TARGET_RADIUS {
        1.0
    } else {
        hamacher_product(reach, in_place)
    } * 10.0;
    Evaluation {
        reward,
        success: target_to_obj <= TARGET_RADIUS,
        info: Info {
            near_object: if tcp_to_obj <= 0.05 { 1.0 } else { 0.0 },
            grasp_success: 1.0,
            grasp_reward: reach,
            in_place_reward: in_place,
            obj_to_target: target_to_obj,
            unscaled_reward: reward,
        },
    }
}

impl TaskClass for HandlePress {
    fn name(&self) -> &'static str {
        "handle-press-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_handle_press.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.8, -0.001], &[0.1, 0.9, 0.001])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        HANDLE_PRESS
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        place_handle_box(s, v);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(handle_start(s))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], _obs: &[f64; 39]) -> Evaluation {
        handle_press_evaluation(s)
    }
}
