//! `reach-v3` (`SawyerReachEnvV3`): bring the gripper to a goal in the air. The task
//! vector holds the (unused) object position and the goal; the reward is 10 times the
//! long-tail closeness of the gripper to the goal, success within 5 cm.

use super::reward::{dist, norm, tolerance_long_tail};
use super::{Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct Reach;

/// Objects shared by reach, push and pick-place: the puck body and its geom.
pub(super) const PUCK: &[(Obj, &str)] = &[(Obj::Body, "obj"), (Obj::Geom, "objGeom")];

/// The puck's position and its geom's quaternion (reach, push, pick-place).
pub(super) fn puck(s: &Sawyer) -> ([f64; 3], [f64; 4]) {
    (s.body(s.named[0]), s.geom_quat_xyzw(s.named[1]))
}

/// `while norm(goal_pos[:2] - target[:2]) < 0.15`, target = goal_pos[3:] (reach,
/// push, pick-place).
pub(super) fn puck_and_goal_apart(v: &[f64]) -> bool {
    norm(&[v[0] - v[3], v[1] - v[4]]) >= 0.15
}

impl TaskClass for Reach {
    fn name(&self) -> &'static str {
        "reach-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_reach_v3.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.6, 0.02, -0.1, 0.8, 0.05],
            &[0.1, 0.7, 0.02, 0.1, 0.9, 0.3],
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
        Observed::one(puck(s))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], _obs: &[f64; 39]) -> Evaluation {
        let tcp_to_target = dist(s.tcp_center(), s.target);
        let margin = dist(self.hand_init_pos(), s.target);
        let in_place = tolerance_long_tail(tcp_to_target, 0.0, 0.05, margin);
        let reward = 10.0 * in_place;
        Evaluation {
            reward,
            success: tcp_to_target <= 0.05,
            info: Info {
                near_object: tcp_to_target,
                grasp_success: 1.0,
                grasp_reward: tcp_to_target,
                in_place_reward: in_place,
                obj_to_target: tcp_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
