//! `button-press-topdown-wall-v3` (`SawyerButtonPressTopdownWallEnvV3`): press a
//! button down from above, behind a wall. As button-press-topdown, but the reward
//! multiplies the gripper's opening (not its closedness) with its closeness to the
//! button.

use super::button_press_topdown::{
    button_evaluation, button_hand_init, button_object, button_terms, place_button, BUTTON,
};
use super::reward::hamacher_product;
use super::{Evaluation, Obj, Observed, Sawyer, TaskClass};

pub struct ButtonPressTopdownWall;

impl TaskClass for ButtonPressTopdownWall {
    fn name(&self) -> &'static str {
        "button-press-topdown-wall-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_button_press_topdown_wall.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        button_hand_init()
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.8, 0.115], &[0.1, 0.9, 0.115])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        BUTTON
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        place_button(s, v, 2, false);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(button_object(s, 2, 0.193))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let t = button_terms(s, obs, 2, 0.01);
        let [tcp_to_obj, obj_to_target, near_button, button_pressed] = t;
        let tcp_opened = obs[3].max(0.0);
        let mut reward = 5.0 * hamacher_product(tcp_opened, near_button);
        if tcp_to_obj <= 0.03 {
            reward += 5.0 * button_pressed;
        }
        button_evaluation(reward, obj_to_target <= 0.024, obs, t)
    }
}
