//! `pick-place-wall-v3` (`SawyerPickPlaceWallEnvV3`): lift a puck over a wall to a
//! goal in the air behind it. The observed object is the puck's geom. Reward: the
//! Hamacher product of the caging reward and the puck's closeness to a midpoint above
//! the wall; once lifted, bonuses as push-wall's ([`super::push_wall`]); 10 within
//! 5 cm, success within 7 cm.

use super::push_wall::{past_wall_bonus, puck_geom, wall_in_place};
use super::reach::{puck_and_goal_apart, PUCK};
use super::reward::{dist, hamacher_product, hamacher_product_f32};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct PickPlaceWall;

impl TaskClass for PickPlaceWall {
    fn name(&self) -> &'static str {
        "pick-place-wall-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_pick_place_wall_v3.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.05, 0.6, 0.015, -0.05, 0.85, 0.05],
            &[0.05, 0.65, 0.015, 0.05, 0.9, 0.3],
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
        puck_geom(s)
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_opened = obs[3];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let midpoint = [s.target[0], 0.77, 0.25];
        let (part1, part2, obj_to_target) = wall_in_place(s, obj, midpoint, [1.0, 1.0, 3.0]);
        let (grasped, float32) = s.gripper_caging(action, obj, 0.015, 0.05, 0.005, false);
        let held = if float32 {
            hamacher_product_f32(grasped as f32, part1 as f32) as f64
        } else {
            hamacher_product(grasped, part1)
        };
        let mut reward = held;
        if tcp_to_obj < 0.02 && tcp_opened > 0.0 && obj[2] - 0.015 > s.obj_init_pos[2] {
            reward = past_wall_bonus(held, float32, obj, part1, part2);
        }
        if obj_to_target < 0.05 {
            reward = 10.0;
        }
        let gripping = s.touching(s.named[1]) && tcp_opened > 0.0;
        Evaluation {
            reward,
            success: obj_to_target <= 0.07,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(gripping && obj[2] - 0.02 > s.obj_init_pos[2]),
                grasp_reward: grasped,
                in_place_reward: part2,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
