//! `window-close-v3` (`SawyerWindowCloseEnvV3`): slide an open window shut by its
//! handle. The task vector places the window, which starts 20 cm open; the goal is the
//! closed position. Reward as window-open's ([`super::window_open`]), with a Gaussian
//! closeness of the gripper to the handle; success within 5 cm.
//!
//! As window-open, `reset_model` reads the handle before any forward pass, so the port
//! repeats MetaWorld's first call of a reset ([`TaskClass::resets_twice`]).

use super::reward::Sigmoid;
use super::window_open::window_evaluation;
use super::{Evaluation, Obj, Observed, Sawyer, TaskClass};

pub struct WindowClose;

impl TaskClass for WindowClose {
    fn name(&self) -> &'static str {
        "window-close-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_window_horizontal.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.4f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[0.0, 0.75, 0.2], &[0.0, 0.9, 0.2])
    }
    fn resets_twice(&self) -> bool {
        true
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[
            (Obj::Site, "handleCloseStart"),
            (Obj::Body, "window"),
            (Obj::Joint, "window_slide"),
            (Obj::Site, "goal"),
        ]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.target = s.obj_init_pos;
        let (window, slide, goal) = (s.named[1], s.named[2], s.named[3]);
        s.model_mut().body_pos_mut(window).copy_from_slice(&v[..3]);
        // `window_handle_pos_init`: the handle 20 cm along x from where it was.
        let h = s.site(s.named[0]);
        s.reset_point = [h[0] + 0.2, h[1] + 0.0, h[2] + 0.0];
        let q = s.data.model().jnt_qposadr(slide);
        s.data.qpos_mut()[q] = 0.2;
        let target = s.target;
        s.model_mut().site_pos_mut(goal).copy_from_slice(&target);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.site(s.named[0]), [0.0; 4]))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], _obs: &[f64; 39]) -> Evaluation {
        window_evaluation(s, s.reset_point[0], Sigmoid::Gaussian)
    }
}
