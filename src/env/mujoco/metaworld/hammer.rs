//! `hammer-v3` (`SawyerHammerEnvV3`): pick up a hammer and drive a nail into a box.
//! The task vector places the hammer; the box and nail stay put. Both the hammer and
//! the nail are observed ([`Observed::two`]). Reward: twice the caging of the handle
//! plus 6 times the head's closeness to the nail, scaled by how flat the hammer lies;
//! 10 once the nail is in (and the reward above 5), which is success.

use super::reward::{norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct Hammer;

/// `HAMMER_HANDLE_LENGTH`.
const HANDLE_LENGTH: f64 = 0.14;
/// Where the class puts the box every reset.
const BOX: [f64; 3] = [0.24, 0.85, 0.0];

/// Moves the box to its place.
fn place_box(s: &mut Sawyer) {
    let b = s.named[2];
    s.model_mut().body_pos_mut(b).copy_from_slice(&BOX);
}

impl TaskClass for Hammer {
    fn name(&self) -> &'static str {
        "hammer-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_hammer.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.4, 0.2]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.4, 0.0], &[0.1, 0.5, 0.0])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[
            (Obj::Body, "hammer"),
            (Obj::Body, "nail_link"),
            (Obj::Body, "box"),
            (Obj::Site, "goal"),
            (Obj::Joint, "NailSlideJoint"),
        ]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        // MetaWorld's first call of the reset already moved the box.
        place_box(s);
        s.reset_hand();
        place_box(s);
        // The goal site as the last forward pass left it (the box did not move).
        s.target = s.site(s.named[3]);
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.set_obj_xyz(s.obj_init_pos);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        let (hammer, nail) = (s.named[0], s.named[1]);
        Observed::two(
            (s.body(hammer), s.body_quat(hammer)),
            (s.body(nail), s.body_quat(nail)),
        )
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let hand = [obs[0], obs[1], obs[2]];
        let hammer = [obs[4], obs[5], obs[6]];
        let head = [hammer[0] + 0.16, hammer[1] + 0.06, hammer[2] + 0.0];
        // The caging reward takes the handle as a sphere: its x follows the hand's
        // while the hand is over the handle.
        let mut threshed = hammer;
        if (hammer[0] - hand[0]).abs() < HANDLE_LENGTH / 2.0 {
            threshed[0] = hand[0];
        }
        // How flat the hammer lies: its quaternion's distance to (1, 0, 0, 0).
        let error = norm(&[obs[7] - 1.0, obs[8] - 0.0, obs[9] - 0.0, obs[10] - 0.0]);
        let reward_quat = (1.0 - error / 0.4).max(0.0);
        let (grab, float32) = s.gripper_caging(action, threshed, 0.015, 0.02, 0.01, true);
        let t = s.target;
        let pos_error = norm(&[t[0] - head[0], t[1] - head[1], t[2] - head[2]]);
        let lifted = head[2] > 0.02;
        let in_place = 0.1 * flag(lifted) + 0.9 * tolerance_long_tail(pos_error, 0.0, 0.02, 0.2);
        let mut reward = if float32 {
            ((2.0 * grab as f32 + (6.0 * in_place) as f32) * reward_quat as f32) as f64
        } else {
            (2.0 * grab + 6.0 * in_place) * reward_quat
        };
        let q = s.data.model().jnt_qposadr(s.named[4]);
        let success = s.data.qpos()[q] > 0.09;
        if success && reward > 5.0 {
            reward = 10.0;
        }
        Evaluation {
            reward,
            success,
            info: Info {
                near_object: reward_quat,
                grasp_success: flag(grab >= 0.5),
                grasp_reward: grab,
                in_place_reward: in_place,
                obj_to_target: 0.0,
                unscaled_reward: reward,
            },
        }
    }
}
