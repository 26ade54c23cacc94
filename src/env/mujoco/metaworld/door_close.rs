//! `door-close-v3` (`SawyerDoorCloseEnvV3`): swing an open door shut. The task vector
//! places the door (which starts open at -90 degrees); the goal is fixed relative to
//! it. Reward: 3 times the hand's closeness to the goal plus 6 times the handle's
//! (Gaussian tolerances); 10 once the handle is within 5 cm, success within 8 cm.

use super::door_open::{handle, place_door, DOOR};
use super::reward::{dist, tolerance, Sigmoid};
use super::{Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct DoorClose;

const TARGET_RADIUS: f64 = 0.05;

impl TaskClass for DoorClose {
    fn name(&self) -> &'static str {
        "door-close-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_door_pull.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [-0.5, 0.6f32 as f64, 0.2f32 as f64]
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
        s.target = [v[0] + 0.2, v[1] + -0.2, v[2] + 0.0];
        // The door kept open after the reset, at MetaWorld's literal angle (not -pi/2).
        #[allow(clippy::approx_constant)]
        let open = -1.5708;
        place_door(s, s.obj_init_pos, open);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(handle(s))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let t = s.target;
        let tcp_to_target = dist(s.tcp_center(), t);
        let obj_to_target = dist(obj, t);
        let in_place_margin = dist(s.obj_init_pos, t);
        let in_place = tolerance(
            obj_to_target,
            0.0,
            TARGET_RADIUS,
            in_place_margin,
            Sigmoid::Gaussian,
        );
        let hand_margin = dist(self.hand_init_pos(), obj) + 0.1;
        let hand_in_place = tolerance(
            tcp_to_target,
            0.0,
            0.25 * TARGET_RADIUS,
            hand_margin,
            Sigmoid::Gaussian,
        );
        let reward = if obj_to_target < TARGET_RADIUS {
            10.0
        } else {
            3.0 * hand_in_place + 6.0 * in_place
        };
        Evaluation {
            reward,
            success: obj_to_target <= 0.08,
            info: Info {
                near_object: 0.0,
                grasp_success: 1.0,
                grasp_reward: 1.0,
                // MetaWorld reports the hand's term under this key.
                in_place_reward: hand_in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
