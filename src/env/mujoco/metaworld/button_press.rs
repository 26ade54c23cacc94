//! `button-press-v3` (`SawyerButtonPressEnvV3`): push a button in, from the front. The
//! task vector places the button box. Reward: twice the Hamacher product of the
//! gripper's opening and its closeness to the button, plus 8 times the press depth
//! once the gripper is within 5 cm; success within 2 cm of fully pressed.

use super::button_press_topdown::{
    button_evaluation, button_hand_init, button_object, button_terms, place_button, BUTTON,
};
use super::reward::hamacher_product;
use super::{Evaluation, Obj, Observed, Sawyer, TaskClass};

pub struct ButtonPress;

impl TaskClass for ButtonPress {
    fn name(&self) -> &'static str {
        "button-press-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_button_press.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        button_hand_init()
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.85, 0.115], &[0.1, 0.9, 0.115])
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
        let t = button_terms(s, obs, 1, 0.05);
        let [tcp_to_obj, obj_to_target, near_button, button_pressed] = t;
        let tcp_opened = obs[3].max(0.0);
        let mut reward = 2.0 * hamacher_product(tcp_opened, near_button);
        if tcp_to_obj <= 0.05 {
            reward += 8.0 * button_pressed;
        }
        button_evaluation(reward, obj_to_target <= 0.02, obs, t)
    }
}
