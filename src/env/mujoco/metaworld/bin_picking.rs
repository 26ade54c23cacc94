//! `bin-picking-v3` (`SawyerBinPickingEnvV3`): pick a cube out of one bin and drop it
//! into the other. The task vector places the cube (its goal part is unused: the goal
//! is the target bin's fixed centre). Reward: the Hamacher product of the caging
//! reward (desired gripper effort 0.7) and the cube's closeness to the goal, plus a
//! bonus once the cube is held up, in which the hand must stay above two funnels
//! around the start and the goal; 10 and success within 5 cm.
//!
//! The margin of the closeness term is the cube's distance to the goal at the first
//! step of the episode (MetaWorld sets it lazily): [`Sawyer::first_step_value`].

use super::reward::{dist, hamacher_product, hamacher_product_f32, norm, tolerance_long_tail};
use super::sawyer::{Caging, Density};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct BinPicking;

const TARGET_RADIUS: f64 = 0.05;

impl TaskClass for BinPicking {
    fn name(&self) -> &'static str {
        "bin-picking-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_bin_picking.xml"
    }
    fn mocap_box(&self) -> ([f64; 3], [f64; 3]) {
        ([-0.5, 0.40, 0.07], [0.5, 1.0, 0.5])
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.21, 0.65, 0.02, 0.1199, 0.699, -0.001],
            &[-0.03, 0.75, 0.02, 0.1201, 0.701, 0.001],
        )
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[(Obj::Body, "obj"), (Obj::Body, "bin_goal")]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        let height = s.body(s.named[0])[2];
        s.obj_init_pos = [v[0], v[1], height];
        s.set_obj_xyz(s.obj_init_pos);
        // `_target_pos` is a view of the goal body's position, which never moves.
        s.target = s.body(s.named[1]);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.body(s.named[0]), s.body_quat(s.named[0])))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let hand = [obs[0], obs[1], obs[2]];
        let obj = [obs[4], obs[5], obs[6]];
        let (t, oi) = (s.target, s.obj_init_pos);
        let target_to_obj = dist(obj, t);
        let margin = match s.first_step_value.get() {
            Some(m) => m,
            None => {
                s.first_step_value.set(Some(target_to_obj));
                target_to_obj
            }
        };
        let in_place = tolerance_long_tail(target_to_obj, 0.0, TARGET_RADIUS, margin);
        // The floor: a pair of funnels around the start and the goal.
        let threshold = 0.03;
        let funnel = |radius: f64| {
            if radius > threshold {
                0.02 * (radius - threshold).ln() + 0.2
            } else {
                0.0
            }
        };
        let radii = [
            norm(&[hand[0] - oi[0], hand[1] - oi[1]]),
            norm(&[hand[0] - t[0], hand[1] - t[1]]),
        ];
        let (f0, f1) = (funnel(radii[0]), funnel(radii[1]));
        // Python's min keeps the first of equal values.
        let floor = if f1 < f0 { f1 } else { f0 };
        let above_floor = if hand[2] >= floor {
            1.0
        } else {
            tolerance_long_tail((floor - hand[2]).max(0.0), 0.0, 0.01, 0.05)
        };
        let caging = Caging {
            obj_radius: 0.015,
            pad_success_thresh: 0.05,
            object_reach_radius: 0.01,
            xz_thresh: 0.01,
            desired_effort: 0.7,
            density: Density::High,
        };
        let (grasped, float32) = s.gripper_caging_with(action, obj, &caging);
        let near_object = dist(obj, hand) < 0.04;
        let pinched_without_obj = obs[3] < 0.43;
        let lifted = obj[2] - 0.02 > oi[2];
        let grasp_success = near_object && lifted && !pinched_without_obj;
        let bonus = 1.0 + 5.0 * hamacher_product(above_floor, in_place);
        let mut reward = if float32 {
            // hamacher_product(float32, float) and `+=` stay float32.
            let mut r = hamacher_product_f32(grasped as f32, in_place as f32);
            if grasp_success {
                r += bonus as f32;
            }
            r as f64
        } else {
            let mut r = hamacher_product(grasped, in_place);
            if grasp_success {
                r += bonus;
            }
            r
        };
        if target_to_obj < TARGET_RADIUS {
            reward = 10.0;
        }
        Evaluation {
            reward,
            success: target_to_obj <= 0.05,
            info: Info {
                near_object: flag(near_object),
                grasp_success: flag(grasp_success),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target: target_to_obj,
                unscaled_reward: reward,
            },
        }
    }
}
