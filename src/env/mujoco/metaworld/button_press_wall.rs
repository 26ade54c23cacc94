//! `button-press-wall-v3` (`SawyerButtonPressWallEnvV3`): push a button in, from the
//! front, past a wall. The task vector places the button box. Reward: away from the
//! button (over 7 cm), twice the Hamacher product of half the gripper's closedness and
//! its closeness to the button; at it, 2 plus twice one plus the opening plus 4 times
//! the squared press depth; success within 3 cm of fully pressed.

use super::button_press_topdown::{
    button_evaluation, button_hand_init, button_object, button_terms, place_button, BUTTON,
};
use super::reward::hamacher_product;
use super::{Evaluation, Obj, Observed, Sawyer, TaskClass};

pub struct ButtonPressWall;

impl TaskClass for ButtonPressWall {
    fn name(&self) -> &'static str {
        "button-press-wall-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_button_press_wall.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        button_hand_init()
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.05, 0.85, 0.1149], &[0.05, 0.9, 0.1151])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        BUTTON
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        place_button(s, v, 1, true);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(button_object(s, 1, -0.193))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let t = button_terms(s, obs, 1, 0.01);
        let [tcp_to_obj, obj_to_target, near_button, button_pressed] = t;
        let reward = if tcp_to_obj > 0.07 {
            2.0 * hamacher_product((1.0 - obs[3]) / 2.0, near_button)
        } else {
            2.0 + 2.0 * (1.0 + obs[3]) + 4.0 * (button_pressed * button_pressed)
        };
        button_evaluation(reward, obj_to_target <= 0.03, obs, t)
    }
}
