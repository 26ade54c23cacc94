//! `coffee-button-v3` (`SawyerCoffeeButtonEnvV3`): press the button of a coffee
//! machine. The task vector places the machine (the mug stands in front of it); the
//! goal is the button pressed 3 cm in. Reward: twice the Hamacher product of the
//! gripper's opening and its closeness to the button, plus 8 times the press depth
//! once the gripper is within 5 cm; success within 2 cm.

use super::reward::{dist, hamacher_product, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct CoffeeButton;

/// How far the button goes in (`max_dist`).
const MAX_DIST: f64 = 0.03;

/// Objects of the coffee scenes: the machine, the mug body and geom, the button's
/// start site.
pub(super) const COFFEE: &[(Obj, &str)] = &[
    (Obj::Body, "coffee_machine"),
    (Obj::Body, "obj"),
    (Obj::Geom, "mug"),
    (Obj::Site, "buttonStart"),
];

/// `hand_init_pos` of the coffee classes.
pub(super) const COFFEE_HAND: [f64; 3] = [0.0, 0.4, 0.2];

/// The coffee scenes' `_set_obj_xyz`: the mug's free joint comes first in this model,
/// so `qpos[0:3]` is the mug; `qvel[9:15]` zeroed as MetaWorld does; a forward pass.
pub(super) fn set_mug(s: &mut Sawyer, pos: [f64; 3]) {
    s.data.qpos_mut()[..3].copy_from_slice(&pos);
    s.data.qvel_mut()[9..15].fill(0.0);
    s.data.forward();
}

/// The machine at `pos`, set before the hand reset (where MetaWorld's first call of
/// the reset left it for the second).
pub(super) fn place_machine(s: &mut Sawyer, pos: [f64; 3]) {
    let m = s.named[0];
    s.model_mut().body_pos_mut(m).copy_from_slice(&pos);
}

impl TaskClass for CoffeeButton {
    fn name(&self) -> &'static str {
        "coffee-button-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_coffee.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        COFFEE_HAND
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.8, -0.001], &[0.1, 0.9, 0.001])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        COFFEE
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        let machine = [v[0], v[1], v[2]];
        place_machine(s, machine);
        s.reset_hand();
        s.obj_init_pos = machine;
        set_mug(s, [v[0] + 0.0, v[1] + -0.22, v[2] + 0.0]);
        let button = [v[0] + 0.0, v[1] + -0.22, v[2] + 0.3];
        s.target = [button[0] + 0.0, button[1] + MAX_DIST, button[2] + 0.0];
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.site(s.named[3]), [1.0, 0.0, 0.0, 0.0]))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let tcp_to_obj_init = dist(obj, s.init_tcp);
        let obj_to_target = (s.target[1] - obj[1]).abs();
        let tcp_opened = obs[3].max(0.0);
        let near_button = tolerance_long_tail(tcp_to_obj, 0.0, 0.05, tcp_to_obj_init);
        let button_pressed = tolerance_long_tail(obj_to_target, 0.0, 0.005, MAX_DIST);
        let mut reward = 2.0 * hamacher_product(tcp_opened, near_button);
        if tcp_to_obj <= 0.05 {
            reward += 8.0 * button_pressed;
        }
        Evaluation {
            reward,
            success: obj_to_target <= 0.02,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.05),
                grasp_success: flag(obs[3] > 0.0),
                grasp_reward: near_button,
                in_place_reward: button_pressed,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
