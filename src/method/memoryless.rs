//! `memoryless`: the policy sees only the current observation (the floor: what an
//! agent without memory gets). Every [`Method`] default: no memory, belief or learner.

use super::Method;

pub struct Memoryless;

impl Method for Memoryless {
    fn name(&self) -> &'static str {
        "memoryless"
    }
    fn about(&self) -> &'static str {
        "the policy sees only the current observation (the floor: what an agent without memory gets)"
    }
}
