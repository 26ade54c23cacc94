//! `door-lock-v3` (`SawyerDoorLockEnvV3`): turn a door's lock down. The task vector
//! places the door; the goal is 10 cm below the lock's starting point. Reward: twice
//! the Hamacher product of the gripper opening and the left pad's closeness to the
//! lock, plus 8 times the lock's closeness to the goal height; success within 2 cm.
//!
//! MetaWorld reads the lock's start (`obj_init_pos`) after five bare `mj_step`s, and
//! its "initial" left pad is a view of the live body, i.e. the current one.

use super::reward::{hamacher_product, norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct DoorLock;

/// Objects of the lock scene (door-lock, door-unlock): the door, the lock body and the
/// door's moving link; the lock's observed site follows.
pub(super) const fn lock_scene(observed_site: &'static str) -> [(Obj, &'static str); 4] {
    [
        (Obj::Body, "door"),
        (Obj::Body, "lock_link"),
        (Obj::Body, "door_link"),
        (Obj::Site, observed_site),
    ]
}

static NAMES: [(Obj, &str); 4] = lock_scene("lockStartLock");

/// Hand box, hand start and reset space of the lock scene.
pub(super) const LOCK_MOCAP_BOX: ([f64; 3], [f64; 3]) = ([-0.5, 0.40, -0.15], [0.5, 1.0, 0.5]);
pub(super) const LOCK_RESET_LOW: [f64; 3] = [-0.1, 0.8, 0.15];
pub(super) const LOCK_RESET_HIGH: [f64; 3] = [0.1, 0.85, 0.15];

/// `hand_init_pos`, a float32 array in the lock classes.
pub(super) fn lock_hand_init() -> [f64; 3] {
    [0.0, 0.6f32 as f64, 0.2f32 as f64]
}

/// The observed lock site and the door link's quaternion.
pub(super) fn lock(s: &Sawyer) -> ([f64; 3], [f64; 4]) {
    (s.site(s.named[3]), s.body_quat(s.named[2]))
}

/// The lock's length, the margin of its progress reward (`_lock_length`).
pub(super) const LOCK_LENGTH: f64 = 0.1;

impl TaskClass for DoorLock {
    fn name(&self) -> &'static str {
        "door-lock-v3"
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
        // MetaWorld's second call of a reset finds the door where its first call put
        // it: placing it before the hand reset gives the same state.
        let door = s.named[0];
        s.model_mut().body_pos_mut(door).copy_from_slice(&v[..3]);
        s.reset_hand();
        s.data.step(5);
        let lock = s.body(s.named[1]);
        s.obj_init_pos = lock;
        s.target = [lock[0] + 0.0, lock[1] + -0.04, lock[2] + -0.1];
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(lock(s))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let pad = s.left_pad();
        let scale = [0.25, 1.0, 0.5];
        let scaled = [0, 1, 2].map(|i| (obj[i] - pad[i]) * scale[i]);
        let tcp_to_obj = norm(&scaled);
        // The "initial" left pad is the current one.
        let tcp_to_obj_init = tcp_to_obj;
        let obj_to_target = (s.target[2] - obj[2]).abs();
        let tcp_opened = obs[3].max(0.0);
        let near_lock = tolerance_long_tail(tcp_to_obj, 0.0, 0.01, tcp_to_obj_init);
        let lock_pressed = tolerance_long_tail(obj_to_target, 0.0, 0.005, LOCK_LENGTH);
        let reward = 2.0 * hamacher_product(tcp_opened, near_lock) + 8.0 * lock_pressed;
        Evaluation {
            reward,
            success: obj_to_target <= 0.02,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.05),
                grasp_success: flag(obs[3] > 0.0),
                grasp_reward: near_lock,
                in_place_reward: lock_pressed,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
