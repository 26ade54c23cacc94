//! `dial-turn-v3` (`SawyerDialTurnEnvV3`): turn a dial by pushing its rim. The task
//! vector places the dial; the goal is 3 cm behind and above it. Reward: 10 times the
//! Hamacher product of "gripper closed at the push point" (Gaussian) and the rim's
//! closeness to the goal; success within 7 cm.
//!
//! The observed point is on the dial's rim, 5 cm from its centre at the knob's angle;
//! the push point is the rim point moved by (5, 2, 9) cm, and its position after the
//! reset is [`Sawyer::reset_point`].

use super::reward::{dist, hamacher_product, hamacher_product_f32, tolerance, Sigmoid};
use super::{Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct DialTurn;

/// The class's own `TARGET_RADIUS`.
const TARGET_RADIUS: f64 = 0.07;

/// The rim point: the dial's centre plus `0.05 (sin a, -cos a, 0)`.
fn rim(s: &Sawyer) -> [f64; 3] {
    let c = s.body(s.named[0]);
    let a = s.data.qpos()[s.data.model().jnt_qposadr(s.named[1])];
    let offset = [a.sin() * 0.05, -a.cos() * 0.05, 0.0 * 0.05];
    [c[0] + offset[0], c[1] + offset[1], c[2] + offset[2]]
}

fn push_point(rim: [f64; 3]) -> [f64; 3] {
    [rim[0] + 0.05, rim[1] + 0.02, rim[2] + 0.09]
}

impl TaskClass for DialTurn {
    fn name(&self) -> &'static str {
        "dial-turn-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_dial.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.6f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.7, 0.0], &[0.1, 0.8, 0.0])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[(Obj::Body, "dial"), (Obj::Joint, "knob_Joint_1")]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        // The dial placed before the hand reset, where MetaWorld's first call of the
        // reset left it for the second (MetaWorld reads the push point before any
        // forward pass after moving it).
        let dial = s.named[0];
        s.model_mut().body_pos_mut(dial).copy_from_slice(&v[..3]);
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.target = [v[0] + 0.0, v[1] + 0.03, v[2] + 0.03];
        s.reset_point = push_point(rim(s));
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((rim(s), s.body_quat(s.named[0])))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], _obs: &[f64; 39]) -> Evaluation {
        let obj = rim(s);
        let push = push_point(obj);
        let t = s.target;
        let target_to_obj = dist(obj, t);
        let target_to_obj_init = dist(s.reset_point, t);
        let in_place = tolerance(
            target_to_obj,
            0.0,
            TARGET_RADIUS,
            (target_to_obj_init - TARGET_RADIUS).abs(),
            Sigmoid::LongTail,
        );
        let reach_radius = 0.005;
        let tcp_to_obj = dist(push, s.tcp_center());
        let tcp_to_obj_init = dist(s.reset_point, s.init_tcp);
        let reach = tolerance(
            tcp_to_obj,
            0.0,
            reach_radius,
            (tcp_to_obj_init - reach_radius).abs(),
            Sigmoid::Gaussian,
        );
        // min(max(0, a), 1): the float32 action when 0 < a <= 1 (then the products
        // are float32), else 0 or 1.
        let a = action[3];
        let (grasped, reward) = if a > 0.0 && a <= 1.0 {
            let r = hamacher_product_f32(reach as f32, a);
            (
                r as f64,
                (10.0 * hamacher_product_f32(r, in_place as f32)) as f64,
            )
        } else {
            let r = hamacher_product(reach, if a > 1.0 { 1.0 } else { 0.0 });
            (r, 10.0 * hamacher_product(r, in_place))
        };
        Evaluation {
            reward,
            success: target_to_obj <= TARGET_RADIUS,
            info: Info {
                near_object: if tcp_to_obj <= 0.01 { 1.0 } else { 0.0 },
                grasp_success: 1.0,
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target: target_to_obj,
                unscaled_reward: reward,
            },
        }
    }
}
