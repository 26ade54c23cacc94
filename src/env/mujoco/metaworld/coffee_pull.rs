//! `coffee-pull-v3` (`SawyerCoffeePullEnvV3`): pull a mug out from under a coffee
//! machine to a goal. The task vector places the mug (the machine stands behind it)
//! and the goal, at least 15 cm apart in x-y. Reward: [`mug_evaluation`]; success
//! within 7 cm.

use super::coffee_button::{place_machine, set_mug, COFFEE, COFFEE_HAND};
use super::reach::puck_and_goal_apart;
use super::reward::{dist, hamacher_product, hamacher_product_f32, norm, tolerance_long_tail};
use super::sawyer::{Caging, Density};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct CoffeePull;

/// The mug's position and scipy's quaternion of its geom.
pub(super) fn mug(s: &Sawyer) -> ([f64; 3], [f64; 4]) {
    (s.body(s.named[1]), s.geom_quat_xyzw(s.named[2]))
}

/// The mug classes' reset: the machine at `machine`, the mug at the vector's start
/// (`obj_init_pos`), the goal at its end.
pub(super) fn place_mug(s: &mut Sawyer, v: &[f64], machine: [f64; 3]) {
    place_machine(s, machine);
    s.reset_hand();
    let start = [v[0], v[1], v[2]];
    set_mug(s, start);
    s.obj_init_pos = start;
    s.target = [v[3], v[4], v[5]];
}

/// The mug classes' reward: the Hamacher product of the caging reward (medium density,
/// desired effort 0.7) and the mug's closeness to the goal (x-y weighted twice), plus
/// a bonus once the open gripper is at the mug; 10 within 5 cm (weighted).
pub(super) fn mug_evaluation(s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
    let obj = [obs[4], obs[5], obs[6]];
    let t = s.target;
    let oi = s.obj_init_pos;
    let scale = [2.0, 2.0, 1.0];
    let target_to_obj = norm(&[0, 1, 2].map(|i| (obj[i] - t[i]) * scale[i]));
    let target_to_obj_init = norm(&[0, 1, 2].map(|i| (oi[i] - t[i]) * scale[i]));
    let in_place = tolerance_long_tail(target_to_obj, 0.0, 0.05, target_to_obj_init);
    let tcp_opened = obs[3];
    let tcp_to_obj = dist(obj, s.tcp_center());
    let caging = Caging {
        obj_radius: 0.02,
        pad_success_thresh: 0.05,
        object_reach_radius: 0.04,
        xz_thresh: 0.05,
        desired_effort: 0.7,
        density: Density::Medium,
    };
    let (grasped, float32) = s.gripper_caging_with(action, obj, &caging);
    let bonus = tcp_to_obj < 0.04 && tcp_opened > 0.0;
    let mut reward = if float32 {
        let mut r = hamacher_product_f32(grasped as f32, in_place as f32);
        if bonus {
            r += (1.0 + 5.0 * in_place) as f32;
        }
        r as f64
    } else {
        let mut r = hamacher_product(grasped, in_place);
        if bonus {
            r += 1.0 + 5.0 * in_place;
        }
        r
    };
    if target_to_obj < 0.05 {
        reward = 10.0;
    }
    let obj_to_target = dist(obj, t);
    Evaluation {
        reward,
        success: obj_to_target <= 0.07,
        info: Info {
            near_object: flag(tcp_to_obj <= 0.03),
            grasp_success: flag(s.touching(s.named[2]) && tcp_opened > 0.0),
            grasp_reward: grasped,
            in_place_reward: in_place,
            obj_to_target,
            unscaled_reward: reward,
        },
    }
}

impl TaskClass for CoffeePull {
    fn name(&self) -> &'static str {
        "coffee-pull-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_coffee.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        COFFEE_HAND
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.05, 0.7, -0.001, -0.1, 0.55, -0.001],
            &[0.05, 0.75, 0.001, 0.1, 0.65, 0.001],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        puck_and_goal_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        COFFEE
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        place_mug(s, v, [v[0] + 0.0, v[1] + 0.22, v[2] + 0.0]);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(mug(s))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        mug_evaluation(s, action, obs)
    }
}
