//! `button-press-topdown-v3` (`SawyerButtonPressTopdownEnvV3`): press a button down
//! from above. The task vector places the button box. Reward: 5 times the Hamacher
//! product of the gripper's closedness and its closeness to the button, plus 5 times
//! the press depth once the gripper is within 3 cm; success when the button is
//! within 2.4 cm of fully pressed.

use super::reward::{dist, hamacher_product, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct ButtonPressTopdown;

/// Objects of the button scenes: the button, its box, the hole site (the goal) and
/// the button's start site.
pub(super) const BUTTON: &[(Obj, &str)] = &[
    (Obj::Body, "button"),
    (Obj::Body, "box"),
    (Obj::Site, "hole"),
    (Obj::Site, "buttonStart"),
];

/// `hand_init_pos` of the button classes (a float32 array).
pub(super) fn button_hand_init() -> [f64; 3] {
    [0.0, 0.4f32 as f64, 0.2f32 as f64]
}

/// The button scenes' reset: the box at `v` (also placed before the hand reset, where
/// MetaWorld's first call of the reset left it for the second), the button's joint
/// released when `release` (`_set_obj_xyz(0)`), a forward pass; the goal is the hole,
/// and [`Sawyer::reset_value`] the press depth to go along `axis`.
pub(super) fn place_button(s: &mut Sawyer, v: &[f64], axis: usize, release: bool) {
    let b = s.named[1];
    s.model_mut().body_pos_mut(b).copy_from_slice(&v[..3]);
    s.reset_hand();
    s.obj_init_pos = [v[0], v[1], v[2]];
    s.model_mut().body_pos_mut(b).copy_from_slice(&v[..3]);
    if release {
        s.data.qpos_mut()[9] = 0.0;
        s.data.qvel_mut()[9] = 0.0;
    }
    s.data.forward();
    s.target = s.site(s.named[2]);
    // `_obj_to_target_init`.
    s.reset_value = (s.target[axis] - s.site(s.named[3])[axis]).abs();
}

/// The observed button: its body moved by `offset` along `axis`, and its quaternion.
pub(super) fn button_object(s: &Sawyer, axis: usize, offset: f64) -> ([f64; 3], [f64; 4]) {
    let p = s.body(s.named[0]);
    let mut d = [0.0; 3];
    d[axis] = offset;
    (
        [p[0] + d[0], p[1] + d[1], p[2] + d[2]],
        s.body_quat(s.named[0]),
    )
}

/// The button rewards' terms: (tcp_to_obj, obj_to_target along `axis`, near_button
/// within `near`, button_pressed).
pub(super) fn button_terms(s: &Sawyer, obs: &[f64; 39], axis: usize, near: f64) -> [f64; 4] {
    let obj = [obs[4], obs[5], obs[6]];
    let tcp_to_obj = dist(obj, s.tcp_center());
    let tcp_to_obj_init = dist(obj, s.init_tcp);
    let obj_to_target = (s.target[axis] - obj[axis]).abs();
    let near_button = tolerance_long_tail(tcp_to_obj, 0.0, near, tcp_to_obj_init);
    let button_pressed = tolerance_long_tail(obj_to_target, 0.0, 0.005, s.reset_value);
    [tcp_to_obj, obj_to_target, near_button, button_pressed]
}

/// The info of the button classes.
pub(super) fn button_evaluation(
    reward: f64,
    success: bool,
    obs: &[f64; 39],
    t: [f64; 4],
) -> Evaluation {
    let [tcp_to_obj, obj_to_target, near_button, button_pressed] = t;
    Evaluation {
        reward,
        success,
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

impl TaskClass for ButtonPressTopdown {
    fn name(&self) -> &'static str {
        "button-press-topdown-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_button_press_topdown.xml"
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
        let tcp_closed = 1.0 - obs[3];
        let mut reward = 5.0 * hamacher_product(tcp_closed, near_button);
        if tcp_to_obj <= 0.03 {
            reward += 5.0 * button_pressed;
        }
        button_evaluation(reward, obj_to_target <= 0.024, obs, t)
    }
}
