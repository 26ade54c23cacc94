//! `basketball-v3` (`SawyerBasketballEnvV3`): pick up a ball and hold it above the
//! hoop. The task vector places the ball and the hoop (at least 15 cm apart in x-y).
//! Reward: the Hamacher product of the gripper caging and the ball's closeness to a
//! point 0.3 m up (z weighted twice), plus a bonus once the ball is lifted; 10 and
//! success within 8 cm.
//!
//! MetaWorld keeps the target as a view of the goal site's live position (a site of
//! the world body, so it stays where `reset_model` writes it) and reads it at every
//! step; the port reads the site's position likewise.

use super::reward::{dist, hamacher_product, hamacher_product_f32, norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct Basketball;

const TARGET_RADIUS: f64 = 0.08;

impl TaskClass for Basketball {
    fn name(&self) -> &'static str {
        "basketball-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_basketball.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.6f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.6, 0.0299, -0.1, 0.85, 0.0],
            &[0.1, 0.7, 0.0301, 0.1, 0.9 + 1e-7, 0.0],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        norm(&[v[0] - v[3], v[1] - v[4]]) >= 0.15
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[
            (Obj::Body, "bsktball"),
            (Obj::Body, "basket_goal"),
            (Obj::Site, "goal"),
        ]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        // The ball's height is the float32 0.03 of `init_config`.
        s.obj_init_pos = [v[0], v[1], 0.03f32 as f64];
        let (hoop, goal) = (s.named[1], s.named[2]);
        s.model_mut().body_pos_mut(hoop).copy_from_slice(&v[3..6]);
        s.set_obj_xyz(s.obj_init_pos);
        let goal_now = s.site(goal);
        s.model_mut().site_pos_mut(goal).copy_from_slice(&goal_now);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.body(s.named[0]), s.body_quat(s.named[0])))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let g = s.site(s.named[2]);
        let target = [g[0], g[1], 0.3];
        let scaled = |p: [f64; 3]| {
            [
                (p[0] - target[0]) * 1.0,
                (p[1] - target[1]) * 1.0,
                (p[2] - target[2]) * 2.0,
            ]
        };
        let target_to_obj = norm(&scaled(obj));
        let target_to_obj_init = norm(&scaled(s.obj_init_pos));
        let in_place = tolerance_long_tail(target_to_obj, 0.0, TARGET_RADIUS, target_to_obj_init);
        let tcp_opened = obs[3];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let lifted = tcp_to_obj < 0.035 && tcp_opened > 0.0 && obj[2] - 0.01 > s.obj_init_pos[2];
        let (grasped, float32) = s.gripper_caging(action, obj, 0.025, 0.06, 0.005, true);
        let reward = if target_to_obj < TARGET_RADIUS {
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
            success: target_to_obj <= TARGET_RADIUS,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.05),
                grasp_success: flag(tcp_opened > 0.0 && obj[2] - 0.03 > s.obj_init_pos[2]),
                grasp_reward: if lifted { 1.0 } else { grasped },
                in_place_reward: in_place,
                obj_to_target: target_to_obj,
                unscaled_reward: reward,
            },
        }
    }
}
