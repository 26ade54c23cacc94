//! `push-v3` (`SawyerPushEnvV3`): push a puck on the table to a goal. Reward: twice
//! the gripper caging, plus a bonus once the open gripper is at the puck, growing
//! with the puck's closeness to the goal; 10 and success within 5 cm.

use super::reach::{puck, puck_and_goal_apart, PUCK};
use super::reward::{dist, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct Push;

impl TaskClass for Push {
    fn name(&self) -> &'static str {
        "push-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_push_v3.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.6, 0.02, -0.1, 0.8, 0.01],
            &[0.1, 0.7, 0.02, 0.1, 0.9, 0.02],
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
        // fix_extreme_obj_pos keeps the object's resting height.
        let z = s.body(s.named[0])[2];
        s.target = [v[3], v[4], z];
        s.obj_init_pos = [v[0], v[1], z];
        s.set_obj_xyz(s.obj_init_pos);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(puck(s))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_opened = obs[3];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let target_to_obj = dist(obj, s.target);
        let target_to_obj_init = dist(s.obj_init_pos, s.target);
        let in_place = tolerance_long_tail(target_to_obj, 0.0, 0.05, target_to_obj_init);
        let (grasped, float32) = s.gripper_caging(action, obj, 0.015, 0.05, 0.005, true);
        let mut reward = 2.0 * grasped;
        if tcp_to_obj < 0.02 && tcp_opened > 0.0 {
            reward = if float32 {
                let r = reward as f32;
                (r + (1.0f32 + r + (5.0 * in_place) as f32)) as f64
            } else {
                reward + (1.0 + reward + 5.0 * in_place)
            };
        }
        if target_to_obj < 0.05 {
            reward = 10.0;
        }
        let gripping = s.touching(s.named[1]) && tcp_opened > 0.0;
        Evaluation {
            reward,
            success: target_to_obj <= 0.05,
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
