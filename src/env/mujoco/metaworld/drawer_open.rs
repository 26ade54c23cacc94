//! `drawer-open-v3` (`SawyerDrawerOpenEnvV3`): pull a drawer open by its handle. The
//! task vector places the drawer; the goal is the handle pulled out 20 cm. Reward: 5
//! times the sum of the gripper's closeness to the handle (x-y weighted 3 times) and
//! the handle's closeness to the goal; success within 3 cm.
//!
//! `reset_model` moves the drawer without a forward pass, so the first observation
//! shows where the model's drawer was during the hand reset; MetaWorld's first call of
//! a reset put it there, so the port repeats that call ([`TaskClass::resets_twice`]).

use super::drawer_close::{handle, DRAWER, DRAWER_HAND};
use super::reward::{dist, norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct DrawerOpen;

/// How far the drawer opens (`maxDist`).
const MAX_DIST: f64 = 0.2;

impl TaskClass for DrawerOpen {
    fn name(&self) -> &'static str {
        "drawer-open-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_drawer.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        DRAWER_HAND
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.9, 0.0], &[0.1, 0.9, 0.0])
    }
    fn resets_twice(&self) -> bool {
        true
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        DRAWER
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        let (drawer, goal) = (s.named[1], s.named[2]);
        s.model_mut().body_pos_mut(drawer).copy_from_slice(&v[..3]);
        s.target = [v[0] + 0.0, v[1] + (-0.16 - MAX_DIST), v[2] + 0.09];
        let target = s.target;
        s.model_mut().site_pos_mut(goal).copy_from_slice(&target);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((handle(s, 0.0), s.body_quat(s.named[0])))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let gripper = [obs[0], obs[1], obs[2]];
        let handle = [obs[4], obs[5], obs[6]];
        let t = s.target;
        let handle_error = dist(handle, t);
        let opening = tolerance_long_tail(handle_error, 0.0, 0.02, MAX_DIST);
        let handle_pos_init = [t[0] + 0.0, t[1] + MAX_DIST, t[2] + 0.0];
        let scaled = |a: [f64; 3], b: [f64; 3]| {
            [
                (a[0] - b[0]) * 3.0,
                (a[1] - b[1]) * 3.0,
                (a[2] - b[2]) * 1.0,
            ]
        };
        let gripper_error = norm(&scaled(handle, gripper));
        let gripper_error_init = norm(&scaled(handle_pos_init, s.init_tcp));
        let caging = tolerance_long_tail(gripper_error, 0.0, 0.01, gripper_error_init);
        let reward = (caging + opening) * 5.0;
        Evaluation {
            reward,
            success: handle_error <= 0.03,
            info: Info {
                near_object: flag(dist(handle, gripper) <= 0.03),
                grasp_success: flag(obs[3] > 0.0),
                grasp_reward: caging,
                in_place_reward: opening,
                obj_to_target: handle_error,
                unscaled_reward: reward,
            },
        }
    }
}
