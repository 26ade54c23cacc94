//! The pick-place classes (`SawyerPickPlaceEnvV3`, `SawyerPickPlaceWallEnvV3`): pick
//! a puck up and hold it at a goal in the air, in the open or behind a wall. One
//! parameterised [`PickPlace`] covers both: they differ in the scene, the reset space,
//! the observed object, the caging reward and what the puck must be close to. Reward:
//! the Hamacher product of the caging reward and the puck's closeness to the goal
//! (pick-place) or to a midpoint above the wall (pick-place-wall); once lifted, a bonus
//! for the closeness to the goal (pick-place) or as push-wall's
//! ([`super::push::past_wall_bonus`]); 10 within 5 cm, success within 7 cm.

use super::push::{goal_closeness, midpoint_closeness, past_wall_bonus, puck_geom};
use super::reach::{puck, puck_and_goal_apart, PUCK};
use super::reward::{dist, hamacher_product, hamacher_product_f32, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

/// One pick-place class.
pub struct PickPlace {
    pub name: &'static str,
    pub xml: &'static str,
    pub low: &'static [f64],
    pub high: &'static [f64],
    /// A wall between the puck and the goal (pick-place-wall).
    pub wall: bool,
}

pub static PICK_PLACE: PickPlace = PickPlace {
    name: "pick-place-v3",
    xml: "sawyer_xyz/sawyer_pick_place_v3.xml",
    low: &[-0.1, 0.6, 0.02, -0.1, 0.8, 0.05],
    high: &[0.1, 0.7, 0.02, 0.1, 0.9, 0.3],
    wall: false,
};
pub static PICK_PLACE_WALL: PickPlace = PickPlace {
    name: "pick-place-wall-v3",
    xml: "sawyer_xyz/sawyer_pick_place_wall_v3.xml",
    low: &[-0.05, 0.6, 0.015, -0.05, 0.85, 0.05],
    high: &[0.05, 0.65, 0.015, 0.05, 0.9, 0.3],
    wall: true,
};

/// pick-place's own `_gripper_caging_reward` (both pads caging the object in y, the
/// gripper centre over it in x-z, high density), with NumPy's float32 turns as in
/// [`Sawyer::gripper_caging`]. Shared with the classes that copy it (sweep).
pub(super) fn caging(s: &Sawyer, action: &[f32], obj: [f64; 3], obj_radius: f64) -> (f64, bool) {
    let (pad_margin, xz_margin) = (0.05, 0.005);
    let tcp = s.tcp_center();
    let (left, right) = (s.left_pad(), s.right_pad());
    // MetaWorld's `init_left_pad` / `init_right_pad` are views of the live body
    // positions (`get_body_com` returns `data.body(..).xpos`), not copies: the
    // "initial" pads are the current ones.
    let (init_left, init_right) = (left, right);
    let right_margin = ((obj[1] - init_right[1]).abs() - pad_margin).abs();
    let left_margin = ((obj[1] - init_left[1]).abs() - pad_margin).abs();
    let right_caging = tolerance_long_tail(obj[1] - right[1], obj_radius, pad_margin, right_margin);
    let left_caging = tolerance_long_tail(left[1] - obj[1], obj_radius, pad_margin, left_margin);
    let y_caging = hamacher_product(left_caging, right_caging);
    // The x-z distances with the y entry zeroed (tcp + [0, -tcp_y, 0]).
    let xz = |p: [f64; 3]| [p[0], p[1] + -p[1], p[2]];
    let tcp_obj = dist(xz(tcp), xz(obj));
    let margin = dist(xz(s.obj_init_pos), xz(s.init_tcp)) - xz_margin;
    let x_z_caging = tolerance_long_tail(tcp_obj, 0.0, xz_margin, margin);
    let caging = hamacher_product(y_caging, x_z_caging);
    // min(max(0, a), 1): the float32 action when 0 < a <= 1, else 0 or 1.
    let a = action[3];
    if caging > 0.97 && a > 0.0 && a <= 1.0 {
        let c = caging as f32;
        let cg = hamacher_product_f32(c, a);
        (((cg + c) / 2.0) as f64, true)
    } else {
        let g = if caging > 0.97 && a > 1.0 { 1.0 } else { 0.0 };
        ((hamacher_product(caging, g) + caging) / 2.0, false)
    }
}

impl TaskClass for PickPlace {
    fn name(&self) -> &'static str {
        self.name
    }
    fn xml(&self) -> &'static str {
        self.xml
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (self.low, self.high)
    }
    fn accepts(&self, v: &[f64]) -> bool {
        puck_and_goal_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        PUCK
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.target = [v[3], v[4], v[5]];
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.set_obj_xyz(s.obj_init_pos);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        if self.wall {
            puck_geom(s)
        } else {
            Observed::one(puck(s))
        }
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_opened = obs[3];
        let oi = s.obj_init_pos;
        let obj_to_target = dist(obj, s.target);
        let tcp_to_obj = dist(obj, s.tcp_center());
        let in_place = goal_closeness(s, obj_to_target);
        let (mut reward, grasped) = if self.wall {
            let midpoint = [s.target[0], 0.77, 0.25];
            let part1 = midpoint_closeness(s, obj, midpoint, [1.0, 1.0, 3.0]);
            let (grasped, float32) = s.gripper_caging(action, obj, 0.015, 0.05, 0.005, false);
            let held = if float32 {
                hamacher_product_f32(grasped as f32, part1 as f32) as f64
            } else {
                hamacher_product(grasped, part1)
            };
            let lifted = tcp_to_obj < 0.02 && tcp_opened > 0.0 && obj[2] - 0.015 > oi[2];
            let reward = if lifted {
                past_wall_bonus(held, float32, obj, part1, in_place)
            } else {
                held
            };
            (reward, grasped)
        } else {
            let (grasped, float32) = caging(s, action, obj, 0.015);
            let lifted = tcp_to_obj < 0.02 && tcp_opened > 0.0 && obj[2] - 0.01 > oi[2];
            let reward = if float32 {
                // hamacher_product(float32, float) and `+=` stay float32.
                let mut r = hamacher_product_f32(grasped as f32, in_place as f32);
                if lifted {
                    r += (1.0 + 5.0 * in_place) as f32;
                }
                r as f64
            } else {
                let mut r = hamacher_product(grasped, in_place);
                if lifted {
                    r += 1.0 + 5.0 * in_place;
                }
                r
            };
            (reward, grasped)
        };
        if obj_to_target < 0.05 {
            reward = 10.0;
        }
        let gripping = s.touching(s.named[1]) && tcp_opened > 0.0;
        Evaluation {
            reward,
            success: obj_to_target <= 0.07,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(gripping && obj[2] - 0.02 > oi[2]),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
