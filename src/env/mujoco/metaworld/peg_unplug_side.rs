//! `peg-unplug-side-v3` (`SawyerPegUnplugSideEnvV3`): pull a peg sideways out of a
//! box. The task vector places the box; the peg starts plugged in and the goal is
//! 15 cm along x. Reward: twice the gripper caging (desired effort 0.8), or once the
//! open gripper has moved the peg, `1 + 2 caging + 5 closeness to the goal`; 10 and
//! success within 5 and 7 cm.

use super::reward::{dist, tolerance_long_tail};
use super::sawyer::{Caging, Density};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct PegUnplugSide;

/// Moves the box to the task's place.
fn place_box(s: &mut Sawyer, v: &[f64]) {
    let b = s.named[1];
    s.model_mut().body_pos_mut(b).copy_from_slice(&v[..3]);
}

impl TaskClass for PegUnplugSide {
    fn name(&self) -> &'static str {
        "peg-unplug-side-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_peg_unplug_side.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.25, 0.6, -0.001], &[-0.15, 0.8, 0.001])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[
            (Obj::Site, "pegEnd"),
            (Obj::Body, "box"),
            (Obj::Body, "plug1"),
        ]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        // MetaWorld's first call of the reset left the box where the task puts it.
        place_box(s, v);
        s.reset_hand();
        place_box(s, v);
        let plug = [v[0] + 0.044, v[1] + 0.0, v[2] + 0.131];
        // The class's `_set_obj_xyz`: the plug's position, upright, its linear
        // velocity zero.
        s.data.qpos_mut()[9..12].copy_from_slice(&plug);
        s.data.qpos_mut()[12..16].copy_from_slice(&[1.0, 0.0, 0.0, 0.0]);
        s.data.qvel_mut()[9..12].fill(0.0);
        s.data.forward();
        s.obj_init_pos = s.site(s.named[0]);
        s.target = [plug[0] + 0.15, plug[1] + 0.0, plug[2] + 0.0];
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.site(s.named[0]), s.body_quat(s.named[2])))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_opened = obs[3];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let obj_to_target = dist(obj, s.target);
        let caging = Caging {
            obj_radius: 0.025,
            pad_success_thresh: 0.05,
            object_reach_radius: 0.01,
            xz_thresh: 0.005,
            desired_effort: 0.8,
            density: Density::High,
        };
        let (grasped, float32) = s.gripper_caging_with(action, obj, &caging);
        let in_place_margin = dist(s.obj_init_pos, s.target);
        let in_place = tolerance_long_tail(obj_to_target, 0.0, 0.05, in_place_margin);
        let grasp_success = tcp_opened > 0.5 && obj[0] - s.obj_init_pos[0] > 0.015;
        let mut reward = 2.0 * grasped;
        if grasp_success && tcp_to_obj < 0.035 {
            reward = if float32 {
                (1.0 + 2.0 * grasped as f32 + (5.0 * in_place) as f32) as f64
            } else {
                1.0 + 2.0 * grasped + 5.0 * in_place
            };
        }
        if obj_to_target <= 0.05 {
            reward = 10.0;
        }
        Evaluation {
            reward,
            success: obj_to_target <= 0.07,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(grasp_success),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
