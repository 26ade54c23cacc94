//! `lever-pull-v3` (`SawyerLeverPullEnvV3`): lift a lever to point straight up. The
//! task vector places the lever. Reward: 10 times the Hamacher product of "shoulder
//! under the lever" (x and z weighted 4 times) and the lever tip's closeness to the
//! goal above its axis; success once the lever is within 7.5 degrees of vertical.
//!
//! `reset_model` moves the lever without a forward pass, so the first observation
//! shows where the model's lever was during the hand reset; MetaWorld's first call of
//! a reset put it there, so the port repeats that call ([`TaskClass::resets_twice`]).

use super::reward::{dist, hamacher_product, norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};
use std::f64::consts::PI;

pub struct LeverPull;

/// `LEVER_RADIUS`.
const LEVER_RADIUS: f64 = 0.2;

impl TaskClass for LeverPull {
    fn name(&self) -> &'static str {
        "lever-pull-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_lever_pull.xml"
    }
    fn mocap_box(&self) -> ([f64; 3], [f64; 3]) {
        ([-0.5, 0.40, -0.15], [0.5, 1.0, 0.5])
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.4f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.7, 0.0], &[0.1, 0.8, 0.0])
    }
    fn resets_twice(&self) -> bool {
        true
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[
            (Obj::Site, "leverStart"),
            (Obj::Geom, "objGeom"),
            (Obj::Body, "lever"),
            (Obj::Site, "goal"),
            (Obj::Joint, "LeverAxis"),
        ]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        let (lever, goal) = (s.named[2], s.named[3]);
        s.model_mut().body_pos_mut(lever).copy_from_slice(&v[..3]);
        // `_lever_pos_init`: the lever tip lying down.
        s.reset_point = [v[0] + 0.12, v[1] + -LEVER_RADIUS, v[2] + 0.25];
        s.target = [v[0] + 0.12, v[1] + 0.0, v[2] + (0.25 + LEVER_RADIUS)];
        let target = s.target;
        s.model_mut().site_pos_mut(goal).copy_from_slice(&target);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.site(s.named[0]), s.geom_quat_xyzw(s.named[1])))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let gripper = [obs[0], obs[1], obs[2]];
        let lever = [obs[4], obs[5], obs[6]];
        let scale = [4.0, 1.0, 4.0];
        let offset = [0.0, 0.055, 0.07];
        let shoulder =
            |p: [f64; 3], to: [f64; 3]| [0, 1, 2].map(|i| (p[i] + offset[i] - to[i]) * scale[i]);
        let shoulder_to_lever = norm(&shoulder(gripper, lever));
        let ready_to_lift = tolerance_long_tail(
            shoulder_to_lever,
            0.0,
            0.02,
            norm(&shoulder(s.init_tcp, s.reset_point)),
        );
        let obj_to_target = dist(lever, s.target);
        let in_place_margin = dist(s.reset_point, s.target);
        let in_place = tolerance_long_tail(obj_to_target, 0.0, 0.04, in_place_margin);
        let q = s.data.qpos()[s.data.model().jnt_qposadr(s.named[4])];
        let lever_error = (-q - PI / 2.0).abs();
        let lever_engagement =
            tolerance_long_tail(lever_error, 0.0, PI / 48.0, PI / 2.0 - PI / 12.0);
        let reward = 10.0 * hamacher_product(ready_to_lift, in_place);
        Evaluation {
            reward,
            success: lever_error <= PI / 24.0,
            info: Info {
                near_object: flag(shoulder_to_lever < 0.03),
                grasp_success: flag(ready_to_lift > 0.9),
                grasp_reward: ready_to_lift,
                in_place_reward: lever_engagement,
                obj_to_target: shoulder_to_lever,
                unscaled_reward: reward,
            },
        }
    }
}
