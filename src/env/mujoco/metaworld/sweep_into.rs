//! `sweep-into-v3` (`SawyerSweepIntoGoalEnvV3`): sweep a puck into a hole in the
//! table. The task vector places the puck (at least 15 cm from the hole) and an
//! unused goal. Reward: twice sweep's caging reward plus 6 times its Hamacher product
//! with the puck's closeness to the hole; 10 and success within 5 cm.

use super::reach::puck;
use super::reward::{dist, hamacher_product, norm, tolerance_long_tail};
use super::sweep::caging;
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct SweepInto;

/// `OBJ_RADIUS`.
const OBJ_RADIUS: f64 = 0.02;
/// `goal`: the hole.
const HOLE: [f64; 3] = [0.0, 0.84, 0.02];

impl TaskClass for SweepInto {
    fn name(&self) -> &'static str {
        "sweep-into-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_table_with_hole.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.6, 0.02, -0.001, 0.8399, 0.0199],
            &[0.1, 0.7, 0.02, 0.001, 0.8401, 0.0201],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        norm(&[v[0] - HOLE[0], v[1] - HOLE[1]]) >= 0.15
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[
            (Obj::Body, "obj"),
            (Obj::Geom, "objGeom"),
            (Obj::Site, "goal"),
        ]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.target = HOLE;
        let z = s.body(s.named[0])[2];
        s.obj_init_pos = [v[0], v[1], z];
        s.set_obj_xyz(s.obj_init_pos);
        let goal = s.named[2];
        s.model_mut().site_pos_mut(goal).copy_from_slice(&HOLE);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(puck(s))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let target = [s.target[0], s.target[1], obj[2]];
        let obj_to_target = dist(obj, target);
        let in_place_margin = dist(s.obj_init_pos, target);
        let in_place = tolerance_long_tail(obj_to_target, 0.0, 0.05, in_place_margin);
        let grasped = caging(s, obj, OBJ_RADIUS, 0.005, 0.01);
        let reward = if obj_to_target < 0.05 {
            10.0
        } else {
            2.0 * grasped + 6.0 * hamacher_product(grasped, in_place)
        };
        let tcp_to_obj = dist(obj, s.tcp_center());
        Evaluation {
            reward,
            success: obj_to_target <= 0.05,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: flag(s.touching(s.named[1]) && obs[3] > 0.0),
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
