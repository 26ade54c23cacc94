//! `soccer-v3` (`SawyerSoccerEnvV3`): push a ball into a goal. The task vector places
//! the ball and the goal (a body moved at reset). Reward: 3 times sweep's caging reward
//! ([`super::sweep::caging`]) plus 6.5 times the ball's closeness to the goal (x
//! weighted 3 times), cut down when the ball passes the goal line off to the side; 10
//! and success within 7 cm.

use super::reach::puck_and_goal_apart;
use super::reward::{dist, norm, tolerance_long_tail};
use super::sweep::caging;
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct Soccer;

/// `OBJ_RADIUS`.
const OBJ_RADIUS: f64 = 0.013;
/// `TARGET_RADIUS`.
const TARGET_RADIUS: f64 = 0.07;
/// The ball's height (`init_config["obj_init_pos"]`, kept by every reset).
const BALL_Z: f64 = 0.03;

/// Moves the goal body to the task's goal.
fn place_goal(s: &mut Sawyer, v: &[f64]) {
    let goal = s.named[1];
    s.model_mut().body_pos_mut(goal).copy_from_slice(&v[3..6]);
}

impl TaskClass for Soccer {
    fn name(&self) -> &'static str {
        "soccer-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_soccer.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.6, 0.03, -0.1, 0.8, 0.0],
            &[0.1, 0.7, 0.03, 0.1, 0.9, 0.0],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        puck_and_goal_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[
            (Obj::Body, "soccer_ball"),
            (Obj::Body, "goal_whole"),
            (Obj::Geom, "objGeom"),
        ]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        // MetaWorld's first call of the reset left the goal where the task puts it.
        place_goal(s, v);
        s.reset_hand();
        s.target = [v[3], v[4], v[5]];
        s.obj_init_pos = [v[0], v[1], BALL_Z];
        place_goal(s, v);
        s.set_obj_xyz(s.obj_init_pos);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.body(s.named[0]), s.body_quat_xyzw(s.named[0])))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_opened = obs[3];
        let t = s.target;
        let x_scaled = |a: [f64; 3], b: [f64; 3]| {
            norm(&[
                (a[0] - b[0]) * 3.0,
                (a[1] - b[1]) * 1.0,
                (a[2] - b[2]) * 1.0,
            ])
        };
        let tcp_to_obj = dist(obj, s.tcp_center());
        let target_to_obj = x_scaled(obj, t);
        let target_to_obj_init = x_scaled(obj, s.obj_init_pos);
        let mut in_place =
            tolerance_long_tail(target_to_obj, 0.0, TARGET_RADIUS, target_to_obj_init);
        let goal_line = t[1] - 0.1;
        if obj[1] > goal_line && (obj[0] - t[0]).abs() > 0.10 {
            in_place =
                (in_place - 2.0 * ((obj[1] - goal_line) / (1.0 - goal_line))).clamp(0.0, 1.0);
        }
        let grasped = caging(s, obj, OBJ_RADIUS, 0.01, 0.005);
        let mut reward = 3.0 * grasped + 6.5 * in_place;
        if target_to_obj < TARGET_RADIUS {
            reward = 10.0;
        }
        let obj_to_target = dist(obj, t);
        let gripping = s.touching(s.named[2]) && tcp_opened > 0.0;
        Evaluation {
            reward,
            success: obj_to_target <= 0.07,
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
