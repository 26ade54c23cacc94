//! The push classes (`SawyerPushEnvV3`, `SawyerPushWallEnvV3`): push a puck on the
//! table to a goal, straight or around a wall to a goal behind it. One parameterised
//! [`Push`] covers both: they differ in the scene, the reset space, the height the
//! puck is placed at, the observed object, and the bonus once the open gripper is at
//! the puck. Reward: twice the gripper caging; at the puck, a bonus for the puck's
//! closeness to the goal (push), or to a midpoint beside the wall and, past the wall
//! (y > 0.75), to the goal (push-wall); 10 within 5 cm. Success within 5 cm (push) or
//! 7 cm (push-wall).
//!
//! The wall classes' shared terms live here too: the puck geom as observed object,
//! the reset on the table, the closeness to a midpoint and the bonus past the wall
//! (push-wall, pick-place-wall, push-back).

use super::reach::{puck, puck_and_goal_apart, PUCK};
use super::reward::{dist, norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

/// `_TARGET_RADIUS`.
const TARGET_RADIUS: f64 = 0.05;

/// The puck geom's position and quaternion (push-wall, pick-place-wall, push-back).
pub(super) fn puck_geom(s: &Sawyer) -> Observed {
    Observed::one((s.geom(s.named[1]), s.geom_quat_xyzw(s.named[1])))
}

/// The hand, then the puck and the goal at the task's x-y on the table, at the height
/// `rest` reads after the hand's reset.
fn reset_on_table(s: &mut Sawyer, v: &[f64], rest: fn(&Sawyer) -> f64) {
    s.reset_hand();
    let z = rest(s);
    s.target = [v[3], v[4], z];
    s.obj_init_pos = [v[0], v[1], z];
    s.set_obj_xyz(s.obj_init_pos);
}

/// The reset of push-wall and push-back: [`reset_on_table`] at the height the puck
/// geom rests at (`adjust_initObjPos`).
pub(super) fn reset_puck_on_table(s: &mut Sawyer, v: &[f64]) {
    reset_on_table(s, v, |s| s.geom(s.named[1])[2]);
}

/// The object's closeness to the goal (`in_place`, the wall classes'
/// `in_place_part2`), the start's distance as margin.
pub(super) fn goal_closeness(s: &Sawyer, obj_to_target: f64) -> f64 {
    tolerance_long_tail(
        obj_to_target,
        0.0,
        TARGET_RADIUS,
        dist(s.obj_init_pos, s.target),
    )
}

/// The wall classes' closeness of the object to `midpoint` with the axes weighted by
/// `scaling` (`in_place_part1`), the start's distance as margin.
pub(super) fn midpoint_closeness(
    s: &Sawyer,
    obj: [f64; 3],
    midpoint: [f64; 3],
    scaling: [f64; 3],
) -> f64 {
    let scaled = |p: [f64; 3]| {
        norm(&[
            (p[0] - midpoint[0]) * scaling[0],
            (p[1] - midpoint[1]) * scaling[1],
            (p[2] - midpoint[2]) * scaling[2],
        ])
    };
    tolerance_long_tail(scaled(obj), 0.0, TARGET_RADIUS, scaled(s.obj_init_pos))
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

/// One push class.
pub struct Push {
    pub name: &'static str,
    pub xml: &'static str,
    pub low: &'static [f64],
    pub high: &'static [f64],
    /// A wall between the puck and the goal (push-wall).
    pub wall: bool,
}

pub static PUSH: Push = Push {
    name: "push-v3",
    xml: "sawyer_xyz/sawyer_push_v3.xml",
    low: &[-0.1, 0.6, 0.02, -0.1, 0.8, 0.01],
    high: &[0.1, 0.7, 0.02, 0.1, 0.9, 0.02],
    wall: false,
};
pub static PUSH_WALL: Push = Push {
    name: "push-wall-v3",
    xml: "sawyer_xyz/sawyer_push_wall_v3.xml",
    low: &[-0.05, 0.6, 0.015, -0.05, 0.85, 0.01],
    high: &[0.05, 0.65, 0.015, 0.05, 0.9, 0.02],
    wall: true,
};

impl TaskClass for Push {
    fn name(&self) -> &'static str {
        self.name
    }
    fn xml(&self) -> &'static str {
        self.xml
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (self.low, self.high)
    }
    fn accepts(&self, v: &[f64]) -> bool {
        puck_and_goal_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        PUCK
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        if self.wall {
            reset_puck_on_table(s, v);
        } else {
            // fix_extreme_obj_pos keeps the object's resting height.
            reset_on_table(s, v, |s| s.body(s.named[0])[2]);
        }
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        if self.wall {
            puck_geom(s)
        } else {
            Observed::one(puck(s))
        }
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_opened = obs[3];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let obj_to_target = dist(obj, s.target);
        let in_place = goal_closeness(s, obj_to_target);
        let (grasped, float32) = s.gripper_caging(action, obj, 0.015, 0.05, 0.005, true);
        let mut reward = 2.0 * grasped;
        if tcp_to_obj < 0.02 && tcp_opened > 0.0 {
            reward = if self.wall {
                let part1 = midpoint_closeness(s, obj, [-0.05, 0.77, obj[2]], [3.0, 1.0, 1.0]);
                past_wall_bonus(reward, float32, obj, part1, in_place)
            } else if float32 {
                let r = reward as f32;
                (r + (1.0f32 + r + (5.0 * in_place) as f32)) as f64
            } else {
                reward + (1.0 + reward + 5.0 * in_place)
            };
        }
        if obj_to_target < TARGET_RADIUS {
            reward = 10.0;
        }
        let gripping = s.touching(s.named[1]) && tcp_opened > 0.0;
        Evaluation {
            reward,
            success: obj_to_target <= if self.wall { 0.07 } else { 0.05 },
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(gripping && obj[2] - 0.02 > s.obj_init_pos[2]),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
