//! `pick-place-v3` (`SawyerPickPlaceEnvV3`): pick a puck up and hold it at a goal in
//! the air. Reward: the Hamacher product of its own caging reward and the puck's
//! closeness to the goal, plus a bonus once the puck is lifted; success within 7 cm.

use super::reach::{puck, puck_and_goal_apart, PUCK};
use super::reward::{dist, hamacher_product, hamacher_product_f32, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct PickPlace;

/// pick-place's own `_gripper_caging_reward` (both pads caging the object in y, the
/// gripper centre over it in x-z, high density), with NumPy's float32 turns as in
/// [`Sawyer::gripper_caging`]. Shared with the classes that copy it (sweep).
pub(super) fn caging(s: &Sawyer, action: &[f32], obj: [f64; 3], obj_radius: f64) -> (f64, bool) {
    let (pad_margin, xz_margin) = (0.05, 0.005);
    let tcp = s.tcp_center();
    let (left, right) = (s.left_pad(), s.right_pad());
    // MetaWorld's `init_left_pad` / `init_right_pad` are views of the live body
    // positions (`get_body_com` returns `data.body(..).xpos`), not copies: the
    // "initial" pads are the current ones.
    let (init_left, init_right) = (left, right);
    let right_margin = ((obj[1] - init_right[1]).abs() - pad_margin).abs();
    let left_margin = ((obj[1] - init_left[1]).abs() - pad_margin).abs();
    let right_caging = tolerance_long_tail(obj[1] - right[1], obj_radius, pad_margin, right_margin);
    let left_caging = tolerance_long_tail(left[1] - obj[1], obj_radius, pad_margin, left_margin);
    let y_caging = hamacher_product(left_caging, right_caging);
    // The x-z distances with the y entry zeroed (tcp + [0, -tcp_y, 0]).
    let xz = |p: [f64; 3]| [p[0], p[1] + -p[1], p[2]];
    let tcp_obj = dist(xz(tcp), xz(obj));
    let margin = dist(xz(s.obj_init_pos), xz(s.init_tcp)) - xz_margin;
    let x_z_caging = tolerance_long_tail(tcp_obj, 0.0, xz_margin, margin);
    let caging = hamacher_product(y_caging, x_z_caging);
    // min(max(0, a), 1): the float32 action when 0 < a <= 1, else 0 or 1.
    let a = action[3];
    if caging > 0.97 && a > 0.0 && a <= 1.0 {
        let c = caging as f32;
        let cg = hamacher_product_f32(c, a);
        (((cg + c) / 2.0) as f64, true)
    } else {
        let g = if caging > 0.97 && a > 1.0 { 1.0 } else { 0.0 };
        ((hamacher_product(caging, g) + caging) / 2.0, false)
    }
}

impl TaskClass for PickPlace {
    fn name(&self) -> &'static str {
        "pick-place-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_pick_place_v3.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.6, 0.02, -0.1, 0.8, 0.05],
            &[0.1, 0.7, 0.02, 0.1, 0.9, 0.3],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        puck_and_goal_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        PUCK
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.target = [v[3], v[4], v[5]];
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.set_obj_xyz(s.obj_init_pos);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(puck(s))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_opened = obs[3];
        let oi = s.obj_init_pos;
        let obj_to_target = dist(obj, s.target);
        let tcp_to_obj = dist(obj, s.tcp_center());
        let margin = dist(oi, s.target);
        let in_place = tolerance_long_tail(obj_to_target, 0.0, 0.05, margin);
        let (grasped, float32) = caging(s, action, obj, 0.015);
        let lifted = tcp_to_obj < 0.02 && tcp_opened > 0.0 && obj[2] - 0.01 > oi[2];
        let mut reward = if float32 {
            // hamacher_product(float32, float) and `+=` stay float32.
            let mut r = hamacher_product_f32(grasped as f32, in_place as f32);
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
        let gripping = s.touching(s.named[1]) && tcp_opened > 0.0;
        Evaluation {
            reward,
            success: obj_to_target <= 0.07,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(gripping && obj[2] - 0.02 > oi[2]),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
