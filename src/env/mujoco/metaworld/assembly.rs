//! `assembly-v3` (`SawyerNutAssemblyEnvV3`): put a round nut, held by its wrench
//! handle, over a peg. The task vector holds the nut's (fixed) start and the goal on
//! the peg, at least 10 cm apart in x-y; the peg stands 5 cm below the goal. Reward:
//! twice the caging reward (medium density) on the handle plus 6 times the nut's
//! placement progress, scaled by how level the nut is; 10 and success once the nut's
//! centre is within 2 cm of the peg in x-y and below its top.

use super::reward::{norm, tolerance_long_tail};
use super::sawyer::{Caging, Density};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct Assembly;

/// `WRENCH_HANDLE_LENGTH`.
const HANDLE_LENGTH: f64 = 0.02;

/// The level nut's quaternion (observed as w, x, y, z), approximately.
pub(super) const IDEAL_QUAT: [f64; 4] = [0.707, 0.0, 0.0, 0.707];

/// Objects of the nut scenes (assembly, disassemble): the observed handle site, the
/// nut body, the nut's centre site and the peg.
pub(super) const NUT: &[(Obj, &str)] = &[
    (Obj::Site, "RoundNut-8"),
    (Obj::Body, "RoundNut"),
    (Obj::Site, "RoundNut"),
    (Obj::Body, "peg"),
];

/// The handle site's position and the nut body's quaternion.
pub(super) fn nut(s: &Sawyer) -> ([f64; 3], [f64; 4]) {
    (s.site(s.named[0]), s.body_quat(s.named[1]))
}

/// `max(1 - |q - ideal| / scale, 0)` for the observed quaternion.
pub(super) fn level(obs: &[f64; 39], scale: f64) -> f64 {
    let q = [0, 1, 2, 3].map(|i| obs[7 + i] - IDEAL_QUAT[i]);
    let r = 1.0 - norm(&q) / scale;
    if 0.0 > r {
        0.0
    } else {
        r
    }
}

/// The caging reward on the handle, its x moved to the hand's when within half a
/// handle length of it.
pub(super) fn handle_caging(
    s: &Sawyer,
    action: &[f32],
    obs: &[f64; 39],
    pad: f64,
    density: Density,
) -> (f64, bool) {
    let mut wrench = [obs[4], obs[5], obs[6]];
    if (wrench[0] - obs[0]).abs() < HANDLE_LENGTH / 2.0 {
        wrench[0] = obs[0];
    }
    let caging = Caging {
        obj_radius: 0.015,
        pad_success_thresh: pad,
        object_reach_radius: 0.01,
        xz_thresh: 0.01,
        desired_effort: 1.0,
        density,
    };
    s.gripper_caging_with(action, wrench, &caging)
}

/// The rejection test of the nut classes: nut and goal 10 cm apart in x-y.
pub(super) fn nut_and_peg_apart(v: &[f64]) -> bool {
    norm(&[v[0] - v[3], v[1] - v[4]]) >= 0.1
}

/// `_reward_pos`: the nut's placement progress and success.
fn placement(center: [f64; 3], target: [f64; 3]) -> (f64, bool) {
    let mut error = [0, 1, 2].map(|i| target[i] - center[i]);
    let radius = norm(&error[..2]);
    let success = radius < 0.02 && error[2] > 0.0;
    let threshold = if success { 0.02 } else { 0.01 };
    let height = if radius > threshold {
        0.02 * (radius - threshold).ln() + 0.2
    } else {
        0.0
    };
    error[2] = height - center[2];
    let scaled = [error[0] * 1.0, error[1] * 1.0, error[2] * 3.0];
    let lifted = center[2] > 0.02 || radius < threshold;
    let in_place = 0.1 * flag(lifted) + 0.9 * tolerance_long_tail(norm(&scaled), 0.0, 0.02, 0.4);
    (in_place, success)
}

impl TaskClass for Assembly {
    fn name(&self) -> &'static str {
        "assembly-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_assembly_peg.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.6f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[0.0, 0.6, 0.02, -0.1, 0.75, 0.1],
            &[0.0, 0.6, 0.02, 0.1, 0.85, 0.1],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        nut_and_peg_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        NUT
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        // The peg placed before the hand reset, where MetaWorld's first call of the
        // reset left it for the second.
        let peg = [v[3] - 0.0, v[4] - 0.0, v[5] - 0.05];
        let peg_body = s.named[3];
        s.model_mut().body_pos_mut(peg_body).copy_from_slice(&peg);
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.target = [v[3], v[4], v[5]];
        s.set_obj_xyz(s.obj_init_pos);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(nut(s))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let quat = level(obs, 0.4);
        let (grab, float32) = handle_caging(s, action, obs, 0.02, Density::Medium);
        let (in_place, success) = placement(s.site(s.named[2]), s.target);
        let mut reward = if float32 {
            ((2.0 * grab as f32 + (6.0 * in_place) as f32) * quat as f32) as f64
        } else {
            (2.0 * grab + 6.0 * in_place) * quat
        };
        if success {
            reward = 10.0;
        }
        Evaluation {
            reward,
            success,
            info: Info {
                near_object: quat,
                grasp_success: flag(grab >= 0.5),
                grasp_reward: grab,
                in_place_reward: in_place,
                obj_to_target: 0.0,
                unscaled_reward: reward,
            },
        }
    }
}
