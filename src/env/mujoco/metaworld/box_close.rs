//! `box-close-v3` (`SawyerBoxCloseEnvV3`): lift a lid by its handle and put it on a
//! box. The task vector places the lid and the box (at least 25 cm apart in x-y); the
//! goal is on the box. Reward: twice the Hamacher product of the grip effort and "hand
//! ready at the handle, above the funnel floor", plus 8 times the lift-and-place
//! progress, all scaled by how upright the lid is; 10 (scaled) and success within 8 cm.

use super::reward::{dist, hamacher_product, norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct BoxClose;

/// The upright lid's quaternion (observed as w, x, y, z), approximately.
const IDEAL_QUAT: [f64; 4] = [0.707, 0.0, 0.0, 0.707];

impl TaskClass for BoxClose {
    fn name(&self) -> &'static str {
        "box-close-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_box.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.6f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.05, 0.5, 0.02, -0.1, 0.7, 0.133],
            &[0.05, 0.55, 0.02, 0.1, 0.8, 0.133],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        norm(&[v[0] - v[3], v[1] - v[4]]) >= 0.25
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[(Obj::Body, "top_link"), (Obj::Body, "boxbody")]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        // MetaWorld's second call of a reset finds the box where its first call put
        // it (at the same height): placing it before the hand reset is the same.
        let boxbody = s.named[1];
        let z = s.data.model().body_pos(boxbody)[2];
        s.model_mut()
            .body_pos_mut(boxbody)
            .copy_from_slice(&[v[3], v[4], z]);
        s.reset_hand();
        let box_height = s.body(boxbody)[2];
        s.obj_init_pos = [v[0], v[1], 0.02f32 as f64];
        s.target = [v[3], v[4], v[5]];
        s.model_mut()
            .body_pos_mut(boxbody)
            .copy_from_slice(&[v[3], v[4], box_height]);
        s.data.step(5);
        s.set_obj_xyz(s.obj_init_pos);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.body(s.named[0]), s.body_quat(s.named[0])))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        // float(clip((clip(a, -1, 1) + 1.0) / 2.0, 0, 1)) on a float32 action.
        let grab = ((action[3].clamp(-1.0, 1.0) + 1.0) / 2.0).clamp(0.0, 1.0) as f64;
        let q = [0, 1, 2, 3].map(|i| obs[7 + i] - IDEAL_QUAT[i]);
        let upright = 1.0 - norm(&q) / 0.2;
        let upright = if 0.0 > upright { 0.0 } else { upright };
        let hand = [obs[0], obs[1], obs[2]];
        let lid = [obs[4] + 0.0, obs[5] + 0.0, obs[6] + 0.02];
        // A funnel around the handle whose floor the hand must stay above.
        let threshold = 0.02;
        let radius = norm(&[hand[0] - lid[0], hand[1] - lid[1]]);
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
        let in_place = tolerance_long_tail(dist(hand, lid), 0.0, 0.02, 0.5);
        let ready_to_lift = hamacher_product(above_floor, in_place);
        let t = s.target;
        let error = [t[0] - lid[0], t[1] - lid[1], (t[2] - lid[2]) * 3.0];
        let error = [error[0] * 1.0, error[1] * 1.0, error[2]];
        let lifted =
            0.2 * flag(lid[2] > 0.04) + 0.8 * tolerance_long_tail(norm(&error), 0.0, 0.05, 0.25);
        let success = dist([obs[4], obs[5], obs[6]], t) < 0.08;
        let mut reward = 2.0 * hamacher_product(grab, ready_to_lift) + 8.0 * lifted;
        if success {
            reward = 10.0;
        }
        reward *= upright;
        Evaluation {
            reward,
            success,
            info: Info {
                near_object: ready_to_lift,
                grasp_success: flag(grab >= 0.5),
                grasp_reward: grab,
                in_place_reward: lifted,
                obj_to_target: 0.0,
                unscaled_reward: reward,
            },
        }
    }
}
