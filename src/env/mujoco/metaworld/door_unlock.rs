//! `door-unlock-v3` (`SawyerDoorUnlockEnvV3`): turn a door's locked lock open. The
//! task vector places the door (its lock starts turned, at MetaWorld's literal 1.5708);
//! the goal is 10 cm from the lock's start in x. Reward: twice the hand's
//! "shoulder" closeness to the lock plus 8 times the lock's progress in x; success
//! within 2 cm.
//!
//! MetaWorld's `obj_init_pos` is a view of the lock body's live position, so the
//! margin of the shoulder reward moves with the lock.

use super::door_lock::{
    lock, lock_hand_init, lock_scene, LOCK_LENGTH, LOCK_MOCAP_BOX, LOCK_RESET_HIGH, LOCK_RESET_LOW,
};
use super::reward::{norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct DoorUnlock;

static NAMES: [(Obj, &str); 4] = lock_scene("lockStartUnlock");

/// The hand's "shoulder", tracked instead of the fingers.
const SHOULDER: [f64; 3] = [0.0, 0.055, 0.07];
const SCALE: [f64; 3] = [0.25, 1.0, 0.5];

/// `(hand + SHOULDER - lock) * SCALE`.
fn shoulder_to(hand: [f64; 3], lock: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| (hand[i] + SHOULDER[i] - lock[i]) * SCALE[i])
}

impl TaskClass for DoorUnlock {
    fn name(&self) -> &'static str {
        "door-unlock-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_door_lock.xml"
    }
    fn mocap_box(&self) -> ([f64; 3], [f64; 3]) {
        LOCK_MOCAP_BOX
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        lock_hand_init()
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&LOCK_RESET_LOW, &LOCK_RESET_HIGH)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &NAMES
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        // As in door-lock, the door placed before the hand reset (where MetaWorld's
        // first call of the reset left it).
        let door = s.named[0];
        s.model_mut().body_pos_mut(door).copy_from_slice(&v[..3]);
        s.reset_hand();
        // _set_obj_xyz: the lock joint (qpos[9]) turned, at rest, then a forward pass.
        // MetaWorld's literal angle, not pi/2.
        #[allow(clippy::approx_constant)]
        let turned = 1.5708;
        s.data.qpos_mut()[9] = turned;
        s.data.qvel_mut()[9] = 0.0;
        s.data.forward();
        let start = s.body(s.named[1]);
        s.target = [start[0] + 0.1, start[1] + -0.04, start[2] + 0.0];
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(lock(s))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let gripper = [obs[0], obs[1], obs[2]];
        let lock = [obs[4], obs[5], obs[6]];
        let shoulder_to_lock = norm(&shoulder_to(gripper, lock));
        // obj_init_pos is the lock body's live position.
        let shoulder_to_lock_init = norm(&shoulder_to(s.init_tcp, s.body(s.named[1])));
        let ready_to_push = tolerance_long_tail(shoulder_to_lock, 0.0, 0.02, shoulder_to_lock_init);
        let obj_to_target = (s.target[0] - lock[0]).abs();
        let pushed = tolerance_long_tail(obj_to_target, 0.0, 0.005, LOCK_LENGTH);
        let reward = 2.0 * ready_to_push + 8.0 * pushed;
        Evaluation {
            reward,
            success: obj_to_target <= 0.02,
            info: Info {
                near_object: flag(shoulder_to_lock <= 0.05),
                grasp_success: flag(obs[3] > 0.0),
                grasp_reward: ready_to_push,
                in_place_reward: pushed,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
