//! `reach-wall-v3` (`SawyerReachWallEnvV3`): reach ([`super::reach`]) with a wall
//! between the start and the goals, which lie in a narrower box behind it. Reset and
//! reward are reach's; MetaWorld's `info` reports no distance as `near_object` or
//! `grasp_reward` and no grasp here.

use super::reach::Reach;
use super::{Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

pub struct ReachWall;

impl TaskClass for ReachWall {
    fn name(&self) -> &'static str {
        "reach-wall-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_reach_wall_v3.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.05, 0.6, 0.015, -0.05, 0.85, 0.05],
            &[0.05, 0.65, 0.015, 0.05, 0.9, 0.3],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        Reach.accepts(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        Reach.names()
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        Reach.reset_model(s, v);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Reach.objects(s)
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let e = Reach.evaluate(s, action, obs);
        Evaluation {
            info: Info {
                near_object: 0.0,
                grasp_success: 0.0,
                grasp_reward: 0.0,
                ..e.info
            },
            ..e
        }
    }
}
