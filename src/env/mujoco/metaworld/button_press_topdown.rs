//! `button-press-topdown-v3` (`SawyerButtonPressTopdownEnvV3`): press a button down
//! from above. The task vector places the button box. Reward: 5 times the Hamacher
//! product of the gripper's closedness and its closeness to the button, plus 5 times
//! the press depth once the gripper is within 3 cm; success when the button is
//! within 2.4 cm of fully pressed.

use super::reward::{dist, hamacher_product, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Sawyer, TaskClass};

pub struct ButtonPressTopdown;

impl TaskClass for ButtonPressTopdown {
    fn name(&self) -> &'static str {
        "button-press-topdown-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_button_press_topdown.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.4f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.8, 0.115], &[0.1, 0.9, 0.115])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[
            (Obj::Body, "button"),
            (Obj::Body, "box"),
            (Obj::Site, "hole"),
            (Obj::Site, "buttonStart"),
        ]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        let b = s.named[1];
        s.model_mut().body_pos_mut(b).copy_from_slice(&v[..3]);
        s.data.forward();
        s.target = s.site(s.named[2]);
        // `_obj_to_target_init`: the press depth to go.
        s.reset_value = (s.target[2] - s.site(s.named[3])[2]).abs();
    }
    fn object(&self, s: &Sawyer) -> ([f64; 3], [f64; 4]) {
        let p = s.body(s.named[0]);
        (
            [p[0] + 0.0, p[1] + 0.0, p[2] + 0.193],
            s.body_quat(s.named[0]),
        )
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_to_obj = dist(obj, s.tcp_center());
        let tcp_to_obj_init = dist(obj, s.init_tcp);
        let obj_to_target = (s.target[2] - obj[2]).abs();
        let tcp_closed = 1.0 - obs[3];
        let near_button = tolerance_long_tail(tcp_to_obj, 0.0, 0.01, tcp_to_obj_init);
        let button_pressed = tolerance_long_tail(obj_to_target, 0.0, 0.005, s.reset_value);
        let mut reward = 5.0 * hamacher_product(tcp_closed, near_button);
        if tcp_to_obj <= 0.03 {
            reward += 5.0 * button_pressed;
        }
        Evaluation {
            reward,
            success: obj_to_target <= 0.024,
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
