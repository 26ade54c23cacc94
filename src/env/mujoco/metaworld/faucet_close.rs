//! `faucet-close-v3` (`SawyerFaucetCloseEnvV3`): turn a faucet's handle closed. The
//! task vector places the faucet; the goal is the handle's end turned 17.5 cm to -x.
//! Reward as faucet-open's ([`super::faucet_open`]); success within 7 cm.

use super::faucet_open::{
    faucet_evaluation, faucet_handle, FAUCET_HAND, FAUCET_MOCAP_BOX, HANDLE_LENGTH,
};
use super::{Evaluation, Obj, Observed, Sawyer, TaskClass};

pub struct FaucetClose;

impl TaskClass for FaucetClose {
    fn name(&self) -> &'static str {
        "faucet-close-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_faucet.xml"
    }
    fn mocap_box(&self) -> ([f64; 3], [f64; 3]) {
        FAUCET_MOCAP_BOX
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        FAUCET_HAND
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (&[-0.1, 0.8, 0.0], &[0.1, 0.85, 0.0])
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[(Obj::Body, "faucetBase"), (Obj::Site, "handleStartClose")]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        let base = s.named[0];
        s.model_mut().body_pos_mut(base).copy_from_slice(&v[..3]);
        s.target = [v[0] + -HANDLE_LENGTH, v[1] + 0.0, v[2] + 0.125];
        s.data.forward();
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one(faucet_handle(s))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        faucet_evaluation(s, [obs[4], obs[5], obs[6]])
    }
}
