//! `disassemble-v3` (`SawyerNutDisassembleEnvV3`): lift a round nut off a peg. The
//! task vector places the nut and peg (its goal part only passes the rejection test);
//! the goal is 15 cm above the nut. Reward: twice the caging reward (high density) on
//! the handle plus 6 times the nut's closeness to 10 cm above the goal, scaled by how
//! level the nut is; 10 and success once the handle is above the goal.

use super::assembly::{handle_caging, level, nut, nut_and_peg_apart, NUT};
use super::reward::{norm, tolerance_long_tail};
use super::sawyer::Density;
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct Disassemble;

impl TaskClass for Disassemble {
    fn name(&self) -> &'static str {
        "disassemble-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_assembly_peg.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.4f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[0.0, 0.6, 0.025, -0.1, 0.6, 0.1699],
            &[0.1, 0.75, 0.02501, 0.1, 0.75, 0.1701],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        nut_and_peg_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        NUT
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        let peg = [v[0] + 0.0, v[1] + 0.0, v[2] + 0.03];
        let peg_body = s.named[3];
        // Placed before the hand reset too, where MetaWorld's first call of the reset
        // left it for the second.
        s.model_mut().body_pos_mut(peg_body).copy_from_slice(&peg);
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.target = [v[0] + 0.0, v[1] + 0.0, v[2] + 0.15];
        s.data.forward();
        s.set_obj_xyz(s.obj_init_pos);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(nut(s))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let quat = level(obs, 0.4);
        let (grab, float32) = handle_caging(s, action, obs, 0.02, Density::High);
        let center = s.site(s.named[2]);
        let t = s.target;
        let error = [
            t[0] + 0.0 - center[0],
            t[1] + 0.0 - center[1],
            t[2] + 0.1 - center[2],
        ];
        let lifted = center[2] > 0.02;
        let in_place = 0.1 * flag(lifted) + 0.9 * tolerance_long_tail(norm(&error), 0.0, 0.02, 0.2);
        let success = obs[6] > t[2];
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
