//! `handle-press-side-v3` (`SawyerHandlePressSideEnvV3`): press down a handle that
//! points sideways. As handle-press ([`super::handle_press`]), with the box on the
//! left of the table.

use super::handle_press::{handle_press_evaluation, handle_start, place_handle_box, HANDLE_PRESS};
use super::{Evaluation, Obj, Observed, Sawyer, TaskClass};

pub struct HandlePressSide;

impl TaskClass for HandlePressSide {
    fn name(&self) -> &'static str {
        "handle-press-side-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_handle_press_sideways.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.35, 0.65, -0.001], &[-0.25, 0.75, 0.001])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        HANDLE_PRESS
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        place_handle_box(s, v);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(handle_start(s))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], _obs: &[f64; 39]) -> Evaluation {
        handle_press_evaluation(s)
    }
}
