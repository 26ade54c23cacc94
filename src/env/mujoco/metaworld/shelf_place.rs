//! `shelf-place-v3` (`SawyerShelfPlaceEnvV3`): pick up a puck and put it on a shelf.
//! The task vector places the puck and the shelf (at least 10 cm apart in x-y).
//! Reward: the Hamacher product of the gripper caging and the puck's closeness to the
//! goal (cut down while the puck is below and in front of the shelf, zeroed behind
//! it), plus a bonus once the puck is lifted; 10 within 5 cm, success within 7 cm.

use super::reach::puck;
use super::reward::{dist, hamacher_product, hamacher_product_f32, norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct ShelfPlace;

const TARGET_RADIUS: f64 = 0.05;

impl TaskClass for ShelfPlace {
    fn name(&self) -> &'static str {
        "shelf-place-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_shelf_placing.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.6f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.5, 0.019, -0.1, 0.8, 0.299],
            &[0.1, 0.6, 0.021, 0.1, 0.9, 0.301],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        norm(&[v[0] - v[3], v[1] - v[4]]) >= 0.1
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[
            (Obj::Body, "obj"),
            (Obj::Geom, "objGeom"),
            (Obj::Body, "shelf"),
            (Obj::Site, "goal"),
        ]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        // adjust_initObjPos keeps the puck body's resting height.
        let z = s.body(s.named[0])[2];
        let shelf = [v[3] - 0.0, v[4] - 0.0, v[5] - 0.3];
        s.obj_init_pos = [v[0] - 0.0, v[1] - 0.0, z];
        let (shelf_body, goal) = (s.named[2], s.named[3]);
        s.model_mut()
            .body_pos_mut(shelf_body)
            .copy_from_slice(&shelf);
        s.data.forward();
        let model = s.data.model();
        let (site, body) = (model.site_pos(goal), model.body_pos(shelf_body));
        s.target = [site[0] + body[0], site[1] + body[1], site[2] + body[2]];
        s.set_obj_xyz(s.obj_init_pos);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(puck(s))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp_opened = obs[3];
        let t = s.target;
        let obj_to_target = dist(obj, t);
        let tcp_to_obj = dist(obj, s.tcp_center());
        let in_place_margin = dist(s.obj_init_pos, t);
        let mut in_place = tolerance_long_tail(obj_to_target, 0.0, TARGET_RADIUS, in_place_margin);
        let (grasped, float32) = s.gripper_caging(action, obj, 0.02, 0.05, 0.01, false);
        let reward32 = float32.then(|| hamacher_product_f32(grasped as f32, in_place as f32));
        let reward64 = hamacher_product(grasped, in_place);
        let below = 0.0 < obj[2] && obj[2] < 0.24;
        let beside = t[0] - 0.15 < obj[0] && obj[0] < t[0] + 0.15;
        let front = t[1] - 3.0 * TARGET_RADIUS;
        // np.clip makes the value a NumPy float64, which then promotes a float32 sum.
        let mut clipped = false;
        if below && beside && front < obj[1] && obj[1] < t[1] {
            let z_scaling = (0.24 - obj[2]) / 0.24;
            let y_scaling = (obj[1] - front) / (3.0 * TARGET_RADIUS);
            let bound_loss = hamacher_product(y_scaling, z_scaling);
            in_place = (in_place - bound_loss).clamp(0.0, 1.0);
            clipped = true;
        }
        if below && beside && obj[1] > t[1] {
            in_place = 0.0;
            clipped = false;
        }
        let lifted = tcp_to_obj < 0.025 && tcp_opened > 0.0 && obj[2] - 0.01 > s.obj_init_pos[2];
        let bonus = 1.0 + 5.0 * in_place;
        let reward = if obj_to_target < TARGET_RADIUS {
            10.0
        } else {
            match (reward32, lifted) {
                (Some(r), true) if clipped => r as f64 + bonus,
                (Some(r), true) => (r + bonus as f32) as f64,
                (Some(r), false) => r as f64,
                (None, true) => reward64 + bonus,
                (None, false) => reward64,
            }
        };
        let gripping = s.touching(s.named[1]) && tcp_opened > 0.0;
        Evaluation {
            reward,
            success: obj_to_target <= 0.07,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(gripping && obj[2] - 0.02 > s.obj_init_pos[2]),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
