//! `push-back-v3` (`SawyerPushBackEnvV3`): push a puck back towards the robot. The
//! observed object is the puck's geom. Reward: the Hamacher product of sweep's caging
//! reward ([`super::sweep::caging`]) and the puck's closeness to the goal, plus a bonus
//! while the barely open gripper is at the puck and has moved it; 10 within 5 cm,
//! success within 7 cm.

use super::push::{puck_geom, reset_puck_on_table};
use super::reach::{puck_and_goal_apart, PUCK};
use super::reward::{dist, hamacher_product, tolerance_long_tail};
use super::sweep::caging;
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct PushBack;

/// `OBJ_RADIUS`.
const OBJ_RADIUS: f64 = 0.007;
/// `TARGET_RADIUS`.
const TARGET_RADIUS: f64 = 0.05;

impl TaskClass for PushBack {
    fn name(&self) -> &'static str {
        "push-back-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_push_back_v3.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.6f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.8, 0.02, -0.1, 0.6, 0.0199],
            &[0.1, 0.85, 0.02, 0.1, 0.7, 0.0201],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        puck_and_goal_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        PUCK
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        reset_puck_on_table(s, v);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        puck_geom(s)
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_opened = obs[3];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let target_to_obj = dist(obj, s.target);
        let target_to_obj_init = dist(s.obj_init_pos, s.target);
        let in_place = tolerance_long_tail(target_to_obj, 0.0, TARGET_RADIUS, target_to_obj_init);
        let grasped = caging(s, obj, OBJ_RADIUS, 0.003, 0.01);
        let mut reward = hamacher_product(grasped, in_place);
        if tcp_to_obj < 0.01
            && 0.0 < tcp_opened
            && tcp_opened < 0.55
            && target_to_obj_init - target_to_obj > 0.01
        {
            reward += 1.0 + 5.0 * in_place;
        }
        if target_to_obj < TARGET_RADIUS {
            reward = 10.0;
        }
        let gripping = s.touching(s.named[1]) && tcp_opened > 0.0;
        Evaluation {
            reward,
            success: target_to_obj <= 0.07,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(gripping && obj[2] - 0.02 > s.obj_init_pos[2]),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target: target_to_obj,
                unscaled_reward: reward,
            },
        }
    }
}
