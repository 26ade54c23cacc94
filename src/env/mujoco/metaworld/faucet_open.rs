//! `faucet-open-v3` (`SawyerFaucetOpenEnvV3`): turn a faucet's handle open. The task
//! vector places the faucet; the goal is the handle's end turned 17.5 cm to +x.
//! Reward: twice (2 x the gripper's Gaussian closeness to the handle + 3 x the
//! handle's closeness to the goal); 10 and success within 7 cm.

use super::reward::{dist, tolerance, Sigmoid};
use super::{Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct FaucetOpen;

/// `_handle_length`, `_target_radius`.
pub(super) const HANDLE_LENGTH: f64 = 0.175;
const TARGET_RADIUS: f64 = 0.07;

/// Hand box, hand start and reset space of the faucet classes are set per class; the
/// hand starts at (0, 0.4, 0.2).
pub(super) const FAUCET_HAND: [f64; 3] = [0.0, 0.4, 0.2];
pub(super) const FAUCET_MOCAP_BOX: ([f64; 3], [f64; 3]) = ([-0.5, 0.40, -0.15], [0.5, 1.0, 0.5]);

/// The faucet's observed handle start (site, 1 cm lower) and the base's quaternion.
pub(super) fn faucet_handle(s: &Sawyer) -> ([f64; 3], [f64; 4]) {
    let p = s.site(s.named[1]);
    (
        [p[0] + 0.0, p[1] + 0.0, p[2] + -0.01],
        s.body_quat(s.named[0]),
    )
}

/// The faucet classes' reward from the handle point `obj`.
pub(super) fn faucet_evaluation(s: &Sawyer, obj: [f64; 3]) -> Evaluation {
    let t = s.target;
    let target_to_obj = dist(obj, t);
    let target_to_obj_init = dist(s.obj_init_pos, t);
    let in_place = tolerance(
        target_to_obj,
        0.0,
        TARGET_RADIUS,
        (target_to_obj_init - TARGET_RADIUS).abs(),
        Sigmoid::LongTail,
    );
    let reach_radius = 0.01;
    let tcp_to_obj = dist(obj, s.tcp_center());
    let tcp_to_obj_init = dist(s.obj_init_pos, s.init_tcp);
    let reach = tolerance(
        tcp_to_obj,
        0.0,
        reach_radius,
        (tcp_to_obj_init - reach_radius).abs(),
        Sigmoid::Gaussian,
    );
    let reward = if target_to_obj <= TARGET_RADIUS {
        10.0
    } else {
        (2.0 * reach + 3.0 * in_place) * 2.0
    };
    Evaluation {
        reward,
        success: target_to_obj <= 0.07,
        info: Info {
            near_object: if tcp_to_obj <= 0.01 { 1.0 } else { 0.0 },
            grasp_success: 1.0,
            grasp_reward: reach,
            in_place_reward: in_place,
            obj_to_target: target_to_obj,
            unscaled_reward: reward,
        },
    }
}

impl TaskClass for FaucetOpen {
    fn name(&self) -> &'static str {
        "faucet-open-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_faucet.xml"
    }
    fn mocap_box(&self) -> ([f64; 3], [f64; 3]) {
        FAUCET_MOCAP_BOX
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        FAUCET_HAND
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.05, 0.8, 0.0], &[0.05, 0.85, 0.0])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[(Obj::Body, "faucetBase"), (Obj::Site, "handleStartOpen")]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        // The faucet placed before the hand reset, where MetaWorld's first call of the
        // reset left it for the second (it is moved without a forward pass).
        let base = s.named[0];
        s.model_mut().body_pos_mut(base).copy_from_slice(&v[..3]);
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.target = [v[0] + HANDLE_LENGTH, v[1] + 0.0, v[2] + 0.125];
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(faucet_handle(s))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        faucet_evaluation(s, [obs[4] + -0.04, obs[5] + 0.0, obs[6] + 0.03])
    }
}
