//! `coffee-push-v3` (`SawyerCoffeePushEnvV3`): push a mug under a coffee machine. The
//! task vector places the mug and the goal (the machine stands behind the goal), at
//! least 15 cm apart in x-y. Reward as coffee-pull's ([`super::coffee_pull`]); success
//! within 7 cm.

use super::coffee_button::{COFFEE, COFFEE_HAND};
use super::coffee_pull::{mug, mug_evaluation, place_mug};
use super::reach::puck_and_goal_apart;
use super::{Evaluation, Obj, Observed, Sawyer, TaskClass};

pub struct CoffeePush;

impl TaskClass for CoffeePush {
    fn name(&self) -> &'static str {
        "coffee-push-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_coffee.xml"
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        COFFEE_HAND
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.55, -0.001, -0.05, 0.7, -0.001],
            &[0.1, 0.65, 0.001, 0.05, 0.75, 0.001],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        puck_and_goal_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        COFFEE
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        place_mug(s, v, [v[3] + 0.0, v[4] + 0.22, v[5] + 0.0]);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(mug(s))
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        mug_evaluation(s, action, obs)
    }
}
