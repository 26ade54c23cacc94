//! `hand-insert-v3` (`SawyerHandInsertEnvV3`): push a block into a hole in the table.
//! The task vector places the block and the goal in the hole (at least 15 cm apart in
//! x-y). Reward: the Hamacher product of the caging reward and the block's closeness
//! to the goal, plus a bonus once the open gripper is at the block; 10 and success
//! within 5 cm.

use super::reward::{dist, hamacher_product, hamacher_product_f32, tolerance_long_tail};
use super::{flag, reach::puck_and_goal_apart, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct HandInsert;

const TARGET_RADIUS: f64 = 0.05;

impl TaskClass for HandInsert {
    fn name(&self) -> &'static str {
        "hand-insert-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_table_with_hole.xml"
    }
    fn mocap_box(&self) -> ([f64; 3], [f64; 3]) {
        ([-0.5, 0.40, -0.15], [0.5, 1.0, 0.5])
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.6f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.6, 0.05, -0.04, 0.8, -0.0201],
            &[0.1, 0.7, 0.05, 0.04, 0.88, -0.0199],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        puck_and_goal_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[(Obj::Body, "obj"), (Obj::Geom, "objGeom")]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        // The height stays the configured 0.05 (MetaWorld keeps the previous z).
        s.obj_init_pos = [v[0], v[1], 0.05];
        s.target = [v[3], v[4], v[5]];
        s.set_obj_xyz(s.obj_init_pos);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.body(s.named[0]), s.body_quat(s.named[0])))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let target_to_obj = dist(obj, s.target);
        let target_to_obj_init = dist(s.obj_init_pos, s.target);
        let in_place = tolerance_long_tail(target_to_obj, 0.0, TARGET_RADIUS, target_to_obj_init);
        let (grasped, float32) = s.gripper_caging(action, obj, 0.015, 0.05, 0.005, true);
        let tcp_opened = obs[3];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let bonus = tcp_to_obj < 0.02 && tcp_opened > 0.0;
        let mut reward = if float32 {
            let mut r = hamacher_product_f32(grasped as f32, in_place as f32);
            if bonus {
                r += (1.0 + 7.0 * in_place) as f32;
            }
            r as f64
        } else {
            let mut r = hamacher_product(grasped, in_place);
            if bonus {
                r += 1.0 + 7.0 * in_place;
            }
            r
        };
        if target_to_obj < TARGET_RADIUS {
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
