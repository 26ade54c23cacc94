//! `peg-insert-side-v3` (`SawyerPegInsertionSideEnvV3`): pick up a peg and insert it
//! sideways into a hole in a box. The task vector places the peg and the box (at
//! least 10 cm apart in x-y). Reward: the Hamacher product of the gripper caging and
//! the peg head's closeness to the hole (y and z weighted twice, zeroed inside the
//! box's two collision prisms), plus a bonus once the peg is lifted; 10 and success
//! within 7 cm.

use super::reward::{dist, tolerance_long_tail};
use super::reward::{hamacher_product, hamacher_product_f32, norm, rect_prism_tolerance};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct PegInsertSide;

const TARGET_RADIUS: f64 = 0.07;

impl TaskClass for PegInsertSide {
    fn name(&self) -> &'static str {
        "peg-insert-side-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_peg_insertion_side.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[0.0, 0.5, 0.02, -0.35, 0.4, -0.001],
            &[0.2, 0.7, 0.02, -0.25, 0.7, 0.001],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        norm(&[v[0] - v[3], v[1] - v[4]]) >= 0.1
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[
            (Obj::Site, "pegGrasp"),
            (Obj::Site, "pegHead"),
            (Obj::Body, "box"),
            (Obj::Site, "goal"),
            (Obj::Site, "bottom_right_corner_collision_box_1"),
            (Obj::Site, "top_left_corner_collision_box_1"),
            (Obj::Site, "bottom_right_corner_collision_box_2"),
            (Obj::Site, "top_left_corner_collision_box_2"),
        ]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        // `peg_head_pos_init`, read before the peg is moved.
        s.reset_point = s.site(s.named[1]);
        s.set_obj_xyz(s.obj_init_pos);
        let (b, goal) = (s.named[2], s.named[3]);
        s.model_mut().body_pos_mut(b).copy_from_slice(&v[3..6]);
        s.target = [v[3] + 0.03, v[4] + 0.0, v[5] + 0.13];
        let target = s.target;
        s.model_mut().site_pos_mut(goal).copy_from_slice(&target);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.site(s.named[0]), s.site_quat_xyzw(s.named[0])))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let obj_head = s.site(s.named[1]);
        let tcp_opened = obs[3];
        let t = s.target;
        let tcp_to_obj = dist(obj, s.tcp_center());
        let scaled = |p: [f64; 3]| {
            [
                (p[0] - t[0]) * 1.0,
                (p[1] - t[1]) * 2.0,
                (p[2] - t[2]) * 2.0,
            ]
        };
        let obj_to_target = norm(&scaled(obj_head));
        let in_place_margin = norm(&scaled(s.reset_point));
        let in_place = tolerance_long_tail(obj_to_target, 0.0, TARGET_RADIUS, in_place_margin);
        let box_1 = rect_prism_tolerance(obj_head, s.site(s.named[4]), s.site(s.named[5]));
        let box_2 = rect_prism_tolerance(obj_head, s.site(s.named[6]), s.site(s.named[7]));
        let in_place = hamacher_product(in_place, hamacher_product(box_2, box_1));
        let lifted = tcp_to_obj < 0.08 && tcp_opened > 0.0 && obj[2] - 0.01 > s.obj_init_pos[2];
        let (grasped, float32) = s.gripper_caging(action, obj, 0.0075, 0.03, 0.005, true);
        let reward = if obj_to_target <= TARGET_RADIUS {
            10.0
        } else if lifted {
            // object_grasped = 1.0 (a Python float) once lifted.
            hamacher_product(1.0, in_place) + (1.0 + 5.0 * in_place)
        } else if float32 {
            hamacher_product_f32(grasped as f32, in_place as f32) as f64
        } else {
            hamacher_product(grasped, in_place)
        };
        Evaluation {
            reward,
            success: obj_to_target <= TARGET_RADIUS,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(
                    tcp_to_obj < 0.02 && tcp_opened > 0.0 && obj[2] - 0.01 > s.obj_init_pos[2],
                ),
                grasp_reward: if lifted { 1.0 } else { grasped },
                in_place_reward: in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
