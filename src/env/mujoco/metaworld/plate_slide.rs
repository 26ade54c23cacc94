//! The four plate-slide classes (`SawyerPlateSlide[Side|Back|BackSide]EnvV3`): slide
//! a puck (the "plate", on two slide joints) across the table into a cabinet, or out
//! of it. One parameterised [`PlateSlide`] covers them: they differ in the scene, the
//! reset space, where the puck starts on its joints, which body the goal cabinet
//! follows, and the reward's form ([`PlateReward`]). Success within 7 cm.

use super::reward::{dist, hamacher_product, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

/// `_TARGET_RADIUS`.
const TARGET_RADIUS: f64 = 0.05;

/// Where a class puts the `puck_goal` body at reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cabinet {
    /// At the goal (`model.body("puck_goal").pos = _target_pos`).
    AtGoal,
    /// At the puck's start (`model.body("puck_goal").pos = obj_init_pos`).
    AtStart,
    /// Not moved: the class writes `data.body("puck_goal").xpos`, which the next
    /// forward pass overwrites.
    Unmoved,
}

/// The reward's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateReward {
    /// `8 hamacher(grasp, in_place)`, margins the start's distances (plate-slide).
    Hamacher,
    /// `1.5 grasp`, or `2 + 7 in_place` while the low gripper is at the puck, margins
    /// the start's distances less the target radius (the three others).
    Staged,
}

/// One plate-slide class.
pub struct PlateSlide {
    pub name: &'static str,
    pub xml: &'static str,
    pub low: &'static [f64],
    pub high: &'static [f64],
    /// The puck's two slide joints at reset.
    pub puck_start: [f64; 2],
    pub cabinet: Cabinet,
    pub reward: PlateReward,
}

pub static PLATE_SLIDE: PlateSlide = PlateSlide {
    name: "plate-slide-v3",
    xml: "sawyer_xyz/sawyer_plate_slide.xml",
    low: &[0.0, 0.6, 0.0, -0.1, 0.85, 0.0],
    high: &[0.0, 0.6, 0.0, 0.1, 0.9, 0.0],
    puck_start: [0.0, 0.0],
    cabinet: Cabinet::AtGoal,
    reward: PlateReward::Hamacher,
};
pub static PLATE_SLIDE_SIDE: PlateSlide = PlateSlide {
    name: "plate-slide-side-v3",
    xml: "sawyer_xyz/sawyer_plate_slide_sideway.xml",
    low: &[0.0, 0.6, 0.0, -0.3, 0.54, 0.0],
    high: &[0.0, 0.6, 0.0, -0.25, 0.66, 0.0],
    puck_start: [0.0, 0.0],
    cabinet: Cabinet::Unmoved,
    reward: PlateReward::Staged,
};
pub static PLATE_SLIDE_BACK: PlateSlide = PlateSlide {
    name: "plate-slide-back-v3",
    xml: "sawyer_xyz/sawyer_plate_slide.xml",
    low: &[0.0, 0.85, 0.0, -0.1, 0.6, 0.015],
    high: &[0.0, 0.85, 0.0, 0.1, 0.6, 0.015],
    puck_start: [0.0, 0.15],
    cabinet: Cabinet::Unmoved,
    reward: PlateReward::Staged,
};
pub static PLATE_SLIDE_BACK_SIDE: PlateSlide = PlateSlide {
    name: "plate-slide-back-side-v3",
    xml: "sawyer_xyz/sawyer_plate_slide_sideway.xml",
    low: &[-0.25, 0.6, 0.0, -0.05, 0.6, 0.015],
    high: &[-0.25, 0.6, 0.0, 0.15, 0.6, 0.015],
    puck_start: [-0.15, 0.0],
    cabinet: Cabinet::AtStart,
    reward: PlateReward::Staged,
};

impl PlateSlide {
    fn place_cabinet(&self, s: &mut Sawyer, v: &[f64]) {
        let at = match self.cabinet {
            Cabinet::AtGoal => &v[3..6],
            Cabinet::AtStart => &v[..3],
            Cabinet::Unmoved => return,
        };
        let b = s.named[1];
        s.model_mut().body_pos_mut(b).copy_from_slice(at);
    }
}

impl TaskClass for PlateSlide {
    fn name(&self) -> &'static str {
        self.name
    }
    fn xml(&self) -> &'static str {
        self.xml
    }
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.6f32 as f64, 0.2f32 as f64]
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (self.low, self.high)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        &[(Obj::Geom, "puck"), (Obj::Body, "puck_goal")]
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        // MetaWorld's first call of the reset left the cabinet where the task puts it.
        self.place_cabinet(s, v);
        s.reset_hand();
        s.obj_init_pos = [v[0], v[1], v[2]];
        s.target = [v[3], v[4], v[5]];
        self.place_cabinet(s, v);
        // The class's `_set_obj_xyz`: the slide joints only, velocities kept.
        s.data.qpos_mut()[9..11].copy_from_slice(&self.puck_start);
        s.data.forward();
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        Observed::one((s.geom(s.named[0]), s.geom_quat_xyzw(s.named[0])))
    }
    fn evaluate(&self, s: &Sawyer, _action: &[f32], obs: &[f64; 39]) -> Evaluation {
        let obj = [obs[4], obs[5], obs[6]];
        let tcp = s.tcp_center();
        let less = if self.reward == PlateReward::Staged {
            TARGET_RADIUS
        } else {
            0.0
        };
        let obj_to_target = dist(obj, s.target);
        let in_place_margin = dist(s.obj_init_pos, s.target);
        let in_place =
            tolerance_long_tail(obj_to_target, 0.0, TARGET_RADIUS, in_place_margin - less);
        let tcp_to_obj = dist(tcp, obj);
        let grasp_margin = dist(s.init_tcp, s.obj_init_pos);
        let grasped = tolerance_long_tail(tcp_to_obj, 0.0, TARGET_RADIUS, grasp_margin - less);
        let mut reward = match self.reward {
            PlateReward::Hamacher => 8.0 * hamacher_product(grasped, in_place),
            PlateReward::Staged => {
                if tcp[2] <= 0.03 && tcp_to_obj < 0.07 {
                    2.0 + 7.0 * in_place
                } else {
                    1.5 * grasped
                }
            }
        };
        if obj_to_target < TARGET_RADIUS {
            reward = 10.0;
        }
        Evaluation {
            reward,
            success: obj_to_target <= 0.07,
            info: Info {
                near_object: flag(tcp_to_obj <= 0.03),
                grasp_success: 0.0,
                grasp_reward: grasped,
                in_place_reward: in_place,
                obj_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
