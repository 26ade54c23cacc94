//! `pick-out-of-hole-v3` (`SawyerPickOutOfHoleEnvV3`): lift a peg out of a hole in the
//! table to a goal in the air. Reward: the Hamacher product of the gripper caging
//! (desired effort 0.1) and the peg's closeness to the goal, plus a bonus once the
//! peg is lifted in a closed gripper, weighted by the hand staying above a funnel
//! around the hole; 10 within 5 cm, success within 7 cm.

use super::reach::{puck_and_goal_apart, PUCK};
use super::reward::{dist, hamacher_product, norm, tolerance_long_tail};
use super::sawyer::{Caging, Density};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct PickOutOfHole;

impl TaskClass for PickOutOfHole {
    fn name(&self) -> &'static str {
        "pick-out-of-hole-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_pick_out_of_hole.xml"
    }
    fn mocap_box(&self) -> ([f64; 3], [f64; 3]) {
        ([-0.5, 0.40, -0.05], [0.5, 1.0, 0.5])
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[0.0, 0.75, 0.02, -0.1, 0.5, 0.15],
            &[0.0, 0.75, 0.02, 0.1, 0.6, 0.3],
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
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.set_obj_xyz(s.obj_init_pos);
        s.target = [v[3], v[4], v[5]];
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.body(s.named[0]), s.body_quat(s.named[0])))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let gripper = s.tcp_center();
        let oi = s.obj_init_pos;
        let obj_to_target = dist(obj, s.target);
        let tcp_to_obj = dist(obj, gripper);
        let in_place_margin = dist(oi, s.target);
        // The floor: a funnel around the hole that the hand should stay above.
        let threshold = 0.03;
        let radius = norm(&[gripper[0] - oi[0], gripper[1] - oi[1]]);
        let floor = if radius <= threshold {
            0.0
        } else {
            0.015 * (radius - threshold).ln() + 0.15
        };
        let above_floor = if gripper[2] >= floor {
            1.0
        } else {
            tolerance_long_tail((floor - gripper[2]).max(0.0), 0.0, 0.01, 0.02)
        };
        let caging = Caging {
            obj_radius: 0.015,
            pad_success_thresh: 0.02,
            object_reach_radius: 0.01,
            xz_thresh: 0.03,
            desired_effort: 0.1,
            density: Density::High,
        };
        let (grasped, float32) = s.gripper_caging_with(action, obj, &caging);
        let in_place = tolerance_long_tail(obj_to_target, 0.0, 0.02, in_place_margin);
        let near_object = tcp_to_obj < 0.04;
        let pinched_without_obj = obs[3] < 0.33;
        let lifted = obj[2] - 0.02 > oi[2];
        let grasp_success = near_object && lifted && !pinched_without_obj;
        let bonus = 1.0 + 5.0 * hamacher_product(in_place, above_floor);
        let mut reward = if float32 {
            let mut r = super::reward::hamacher_product_f32(grasped as f32, in_place as f32);
            if grasp_success {
                r += bonus as f32;
            }
            r as f64
        } else {
            let mut r = hamacher_product(grasped, in_place);
            if grasp_success {
                r += bonus;
            }
            r
        };
        if obj_to_target < 0.05 {
            reward = 10.0;
        }
        Evaluation {
            reward,
            success: obj_to_target <= 0.07,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(grasp_success),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
