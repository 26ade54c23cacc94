//! GridNavi (placeholder until implemented).
use super::{BatchEnv, EnvSpec, Split, StepOut};
pub struct GridNavi;
impl GridNavi {
    pub fn new(_n: usize, _split: Split, _seed: u64) -> Self {
        todo!()
    }
}
impl BatchEnv for GridNavi {
    fn spec(&self) -> &EnvSpec { todo!() }
    fn num_envs(&self) -> usize { todo!() }
    fn reset(&mut self, _obs: &mut [f32]) { todo!() }
    fn step(&mut self, _a: &[f32], _out: &mut StepOut) { todo!() }
    fn save_state(&self) -> serde_json::Value { todo!() }
    fn load_state(&mut self, _s: &serde_json::Value) -> Result<(), String> { todo!() }
}
