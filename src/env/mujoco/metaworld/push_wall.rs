//! `push-wall-v3` (`SawyerPushWallEnvV3`): push a puck around a wall to a goal behind
//! it. The observed object is the puck's geom. Reward: twice the gripper caging; once
//! the open gripper is at the puck, a bonus for the puck's closeness to a midpoint
//! beside the wall, and past the wall (y > 0.75) for its closeness to the goal; 10
//! within 5 cm, success within 7 cm.

use super::reach::{puck_and_goal_apart, PUCK};
use super::reward::{dist, norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct PushWall;

/// `_TARGET_RADIUS`.
const TARGET_RADIUS: f64 = 0.05;

/// The puck geom's position and quaternion (push-wall, pick-place-wall, push-back).
pub(super) fn puck_geom(s: &Sawyer) -> Observed {
    Observed::one((s.geom(s.named[1]), s.geom_quat_xyzw(s.named[1])))
}

/// The reset of push-wall and push-back: the hand, then the puck and the goal at the
/// task's x-y on the table, at the height the puck geom rests at (`adjust_initObjPos`).
pub(super) fn reset_puck_on_table(s: &mut Sawyer, v: &[f64]) {
    s.reset_hand();
    let z = s.geom(s.named[1])[2];
    s.target = [v[3], v[4], z];
    s.obj_init_pos = [v[0], v[1], z];
    s.set_obj_xyz(s.obj_init_pos);
}

/// The wall classes' two closeness terms: of the object to `midpoint` with the axes
/// weighted by `scaling` (`in_place_part1`), and to the goal (`in_place_part2`), each
/// with the start's distance as margin; and the object's distance to the goal.
pub(super) fn wall_in_place(
    s: &Sawyer,
    obj: [f64; 3],
    midpoint: [f64; 3],
    scaling: [f64; 3],
) -> (f64, f64, f64) {
    let scaled = |p: [f64; 3]| {
        norm(&[
            (p[0] - midpoint[0]) * scaling[0],
            (p[1] - midpoint[1]) * scaling[1],
            (p[2] - midpoint[2]) * scaling[2],
        ])
    };
    let obj_to_target = dist(obj, s.target);
    let part1 = tolerance_long_tail(scaled(obj), 0.0, TARGET_RADIUS, scaled(s.obj_init_pos));
    let part2 = tolerance_long_tail(
        obj_to_target,
        0.0,
        TARGET_RADIUS,
        dist(s.obj_init_pos, s.target),
    );
    (part1, part2, obj_to_target)
}

/// The wall classes' reward once the object is at the gripper: `base + 1 + 4 part1`,
/// or `base + 1 + 4 + 3 part2` past the wall, in float32 when `base` is one.
pub(super) fn past_wall_bonus(
    base: f64,
    float32: bool,
    obj: [f64; 3],
    part1: f64,
    part2: f64,
) -> f64 {
    let past = obj[1] > 0.75;
    if float32 {
        let b = base as f32;
        (if past {
            b + 1.0 + 4.0 + (3.0 * part2) as f32
        } else {
            b + 1.0 + (4.0 * part1) as f32
        }) as f64
    } else if past {
        base + 1.0 + 4.0 + 3.0 * part2
    } else {
        base + 1.0 + 4.0 * part1
    }
}

impl TaskClass for PushWall {
    fn name(&self) -> &'static str {
        "push-wall-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_push_wall_v3.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.05, 0.6, 0.015, -0.05, 0.85, 0.01],
            &[0.05, 0.65, 0.015, 0.05, 0.9, 0.02],
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
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_opened = obs[3];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let midpoint = [-0.05, 0.77, obj[2]];
        let (part1, part2, obj_to_target) = wall_in_place(s, obj, midpoint, [3.0, 1.0, 1.0]);
        let (grasped, float32) = s.gripper_caging(action, obj, 0.015, 0.05, 0.005, true);
        let mut reward = 2.0 * grasped;
        if tcp_to_obj < 0.02 && tcp_opened > 0.0 {
            reward = past_wall_bonus(2.0 * grasped, float32, obj, part1, part2);
        }
        if obj_to_target < TARGET_RADIUS {
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
