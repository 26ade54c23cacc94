//! `maml`: MAML-TRPO. The policy is memoryless and adapts through its weights, not a
//! belief, so the method builds none of the run loop's parts; its own training loop and
//! evaluation live in [`crate::improve::maml`] (improver `maml`).

use super::Method;

pub struct Maml;

impl Method for Maml {
    fn name(&self) -> &'static str {
        "maml"
    }
    fn about(&self) -> &'static str {
        "MAML-TRPO: a memoryless policy adapted to each task by policy-gradient step(s) on its adaptation episodes; meta-trained by TRPO (improver = \"maml\", [maml])"
    }
}
