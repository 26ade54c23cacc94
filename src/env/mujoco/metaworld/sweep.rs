//! `sweep-v3` (`SawyerSweepEnvV3`): sweep a puck along y to the table's edge. The
//! task vector places the puck; the goal shares its y. Reward: twice sweep's own
//! caging reward plus 6 times its Hamacher product with the puck's closeness to the
//! goal; 10 and success within 5 cm.

use super::reward::{dist, hamacher_product, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct Sweep;

/// `OBJ_RADIUS`.
const OBJ_RADIUS: f64 = 0.02;

/// The puck body, the goal site and the puck geom (sweep).
pub(super) const PUCK_BODY: &[(Obj, &str)] = &[
    (Obj::Body, "obj"),
    (Obj::Site, "goal"),
    (Obj::Geom, "objGeom"),
];

/// The puck's position and quaternion (`xquat`).
pub(super) fn puck(s: &Sawyer) -> ([f64; 3], [f64; 4]) {
    (s.body(s.named[0]), s.body_quat(s.named[0]))
}

/// sweep's own `_gripper_caging_reward` (sweep, sweep-into, with their own grip and
/// x-z margins): the mean of the caging (pads around the object in y, gripper over it
/// in x-z) and, once caged, the pads' grip; the gripper effort does not enter.
pub(super) fn caging(
    s: &Sawyer,
    obj: [f64; 3],
    obj_radius: f64,
    grip_extra: f64,
    x_z_success_margin: f64,
) -> f64 {
    let pad_success_margin = 0.05;
    let grip_success_margin = obj_radius + grip_extra;
    let tcp = s.tcp_center();
    let (left, right) = (s.left_pad(), s.right_pad());
    let delta_left = left[1] - obj[1];
    let delta_right = obj[1] - right[1];
    // `init_left_pad` / `init_right_pad` are views of the live pads (see pick-place).
    let right_margin = ((obj[1] - right[1]).abs() - pad_success_margin).abs();
    let left_margin = ((obj[1] - left[1]).abs() - pad_success_margin).abs();
    let right_caging =
        tolerance_long_tail(delta_right, obj_radius, pad_success_margin, right_margin);
    let left_caging = tolerance_long_tail(delta_left, obj_radius, pad_success_margin, left_margin);
    let right_gripping =
        tolerance_long_tail(delta_right, obj_radius, grip_success_margin, right_margin);
    let left_gripping =
        tolerance_long_tail(delta_left, obj_radius, grip_success_margin, left_margin);
    let y_caging = hamacher_product(right_caging, left_caging);
    let y_gripping = hamacher_product(right_gripping, left_gripping);
    let xz = |p: [f64; 3]| [p[0] + 0.0, p[1] + -p[1], p[2] + 0.0];
    let tcp_obj = dist(xz(tcp), xz(obj));
    let margin = dist(xz(s.obj_init_pos), xz(s.init_tcp)) - x_z_success_margin;
    let x_z_caging = tolerance_long_tail(tcp_obj, 0.0, x_z_success_margin, margin);
    let caging = hamacher_product(y_caging, x_z_caging);
    let gripping = if caging > 0.95 { y_gripping } else { 0.0 };
    (caging + gripping) / 2.0
}

impl TaskClass for Sweep {
    fn name(&self) -> &'static str {
        "sweep-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_sweep_v3.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.6, 0.02], &[0.1, 0.7, 0.02])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        PUCK_BODY
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.target = [0.5, v[1], 0.01];
        s.obj_init_pos = [v[0], v[1], 0.02];
        s.set_obj_xyz(s.obj_init_pos);
        let (goal, target) = (s.named[1], s.target);
        s.model_mut().site_pos_mut(goal).copy_from_slice(&target);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(puck(s))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let obj_to_target = dist(obj, s.target);
        let in_place_margin = dist(s.obj_init_pos, s.target);
        let in_place = tolerance_long_tail(obj_to_target, 0.0, 0.05, in_place_margin);
        let grasped = caging(s, obj, OBJ_RADIUS, 0.01, 0.005);
        let reward = if obj_to_target < 0.05 {
            10.0
        } else {
            2.0 * grasped + 6.0 * hamacher_product(grasped, in_place)
        };
        let tcp_to_obj = dist(obj, s.tcp_center());
        Evaluation {
            reward,
            success: obj_to_target <= 0.05,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(s.touching(s.named[2]) && obs[3] > 0.0),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
