//! `door-open-v3` (`SawyerDoorEnvV3`): swing a door open by its handle. The task
//! vector places the door; the goal is fixed relative to it. Reward: twice the
//! Hamacher product of "hand ready at the handle, above the funnel floor" and the
//! gripper effort, plus 8 times the opening progress; 10 and success once the handle
//! is within 8 cm of the goal in x.

use super::reward::{dist, hamacher_product, norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};
use std::f64::consts::PI;

pub struct DoorOpen;

/// Objects of the door scene (door-open, door-close): the handle geom, the hinge, the
/// door body and the goal site.
pub(super) const DOOR: &[(Obj, &str)] = &[
    (Obj::Geom, "handle"),
    (Obj::Joint, "doorjoint"),
    (Obj::Body, "door"),
    (Obj::Site, "goal"),
];

/// The handle's position and scipy's quaternion of its orientation.
pub(super) fn handle(s: &Sawyer) -> ([f64; 3], [f64; 4]) {
    (s.geom(s.named[0]), s.geom_quat_xyzw(s.named[0]))
}

/// The door scene's reset after the hand reset: the door at `door`, the goal site at
/// the target, the hinge at `angle` and at rest.
pub(super) fn place_door(s: &mut Sawyer, door: [f64; 3], angle: f64) {
    let (body, site, joint) = (s.named[2], s.named[3], s.named[1]);
    let target = s.target;
    s.model_mut().body_pos_mut(body).copy_from_slice(&door);
    s.model_mut().site_pos_mut(site).copy_from_slice(&target);
    let (qa, va) = (
        s.data.model().jnt_qposadr(joint),
        s.data.model().jnt_dofadr(joint),
    );
    s.data.qpos_mut()[qa] = angle;
    s.data.qvel_mut()[va] = 0.0;
    s.data.forward();
}

impl TaskClass for DoorOpen {
    fn name(&self) -> &'static str {
        "door-open-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_door_pull.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[0.0, 0.85, 0.15], &[0.1, 0.95, 0.15])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        DOOR
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.target = [v[0] + -0.3, v[1] + -0.45, v[2] + 0.0];
        place_door(s, s.obj_init_pos, 0.0);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(handle(s))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let theta = s.data.qpos()[s.data.model().jnt_qposadr(s.named[1])];
        // float((clip(a, -1, 1) + 1.0) / 2.0) on a float32 action.
        let grab = ((action[3].clamp(-1.0, 1.0) + 1.0) / 2.0) as f64;
        let hand = [obs[0], obs[1], obs[2]];
        let door = [obs[4] + -0.05, obs[5] + 0.0, obs[6] + 0.0];
        // A funnel around the handle whose floor the hand must stay above.
        let threshold = 0.12;
        let radius = norm(&[hand[0] - door[0], hand[1] - door[1]]);
        let floor = if radius <= threshold {
            0.0
        } else {
            0.04 * (radius - threshold).ln() + 0.4
        };
        let above_floor = if hand[2] >= floor {
            1.0
        } else {
            tolerance_long_tail(floor - hand[2], 0.0, 0.01, floor / 2.0)
        };
        let offset = [hand[0] - door[0], hand[1] - door[1], hand[2] - door[2]];
        let in_place =
            tolerance_long_tail(dist(offset, [0.05, 0.03, -0.01]), 0.0, threshold / 2.0, 0.5);
        let ready_to_open = hamacher_product(above_floor, in_place);
        let door_angle = -theta;
        let tried = if theta < -PI / 90.0 { 1.0 } else { 0.0 };
        let opened = 0.2 * tried
            + 0.8 * tolerance_long_tail(PI / 2.0 + PI / 6.0 - door_angle, 0.0, 0.5, PI / 3.0);
        let at_goal = (obs[4] - s.target[0]).abs() <= 0.08;
        let reward = if at_goal {
            10.0
        } else {
            2.0 * hamacher_product(ready_to_open, grab) + 8.0 * opened
        };
        Evaluation {
            reward,
            success: at_goal,
            info: Info {
                near_object: ready_to_open,
                grasp_success: flag(grab >= 0.5),
                grasp_reward: grab,
                in_place_reward: opened,
                obj_to_target: 0.0,
                unscaled_reward: reward,
            },
        }
    }
}
