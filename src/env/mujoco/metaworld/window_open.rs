//! `window-open-v3` (`SawyerWindowOpenEnvV3`): slide a window open by its handle. The
//! task vector places the window; the goal is 20 cm along x. Reward: 10 times the
//! Hamacher product of the gripper's closeness to the handle and the handle's
//! closeness to the goal in x; success within 5 cm.
//!
//! `reset_model` reads the handle's position before any forward pass, i.e. where the
//! model's window was during the hand reset; MetaWorld's first call of a reset put it
//! there, so the port repeats that call ([`TaskClass::resets_twice`]).

use super::reward::{dist, hamacher_product, tolerance, tolerance_long_tail, Sigmoid};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct WindowOpen;

const TARGET_RADIUS: f64 = 0.05;

/// Objects of window-open's scene (window-close observes the other handle site).
pub(super) const WINDOW: &[(Obj, &str)] = &[
    (Obj::Site, "handleOpenStart"),
    (Obj::Body, "window"),
    (Obj::Joint, "window_slide"),
    (Obj::Site, "goal"),
];

impl TaskClass for WindowOpen {
    fn name(&self) -> &'static str {
        "window-open-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_window_horizontal.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.4f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.7, 0.16], &[0.1, 0.9, 0.16])
    }
    fn resets_twice(&self) -> bool {
        true
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        WINDOW
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.target = [v[0] + 0.2, v[1] + 0.0, v[2] + 0.0];
        let (window, slide, goal) = (s.named[1], s.named[2], s.named[3]);
        s.model_mut().body_pos_mut(window).copy_from_slice(&v[..3]);
        // `window_handle_pos_init`.
        s.reset_point = s.site(s.named[0]);
        let q = s.data.model().jnt_qposadr(slide);
        s.data.qpos_mut()[q] = 0.0;
        let target = s.target;
        s.model_mut().site_pos_mut(goal).copy_from_slice(&target);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.site(s.named[0]), [0.0; 4]))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], _obs: &[f64; 39]) -> Evaluation {
        window_evaluation(s, s.obj_init_pos[0], Sigmoid::LongTail)
    }
}

/// The window classes' reward: the handle (observed object 0) to the goal in x, from
/// `init_x` at the start, and the gripper's closeness to the handle, whose start is
/// [`Sawyer::reset_point`] (`reach` with the `reach_sigmoid`).
pub(super) fn window_evaluation(s: &Sawyer, init_x: f64, reach_sigmoid: Sigmoid) -> Evaluation {
    let obj = s.site(s.named[0]);
    let t = s.target;
    // np.linalg.norm of a scalar: sqrt(x * x), as `norm` of one value.
    let target_to_obj = ((obj[0] - t[0]) * (obj[0] - t[0])).sqrt();
    let init = init_x - t[0];
    let target_to_obj_init = (init * init).sqrt();
    let in_place = tolerance_long_tail(
        target_to_obj,
        0.0,
        TARGET_RADIUS,
        (target_to_obj_init - TARGET_RADIUS).abs(),
    );
    let handle_radius = 0.02;
    let tcp_to_obj = dist(obj, s.tcp_center());
    let tcp_to_obj_init = dist(s.reset_point, s.init_tcp);
    let reach = tolerance(
        tcp_to_obj,
        0.0,
        handle_radius,
        (tcp_to_obj_init - handle_radius).abs(),
        reach_sigmoid,
    );
    let reward = 10.0 * hamacher_product(reach, in_place);
    Evaluation {
        reward,
        success: target_to_obj <= TARGET_RADIUS,
        info: Info {
            near_object: flag(tcp_to_obj <= 0.05),
            grasp_success: 1.0,
            grasp_reward: reach,
            in_place_reward: in_place,
            obj_to_target: target_to_obj,
            unscaled_reward: reward,
        },
    }
}
