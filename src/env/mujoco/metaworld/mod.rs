//! MetaWorld v3 (metaworld 3.1.1, reward version "v2"), ported: the Sawyer base
//! ([`sawyer`]), the reward utilities ([`reward`]) and one small file per task class,
//! each a [`TaskClass`] in the table [`CLASSES`], with MetaWorld's benchmark task lists
//! rebuilt from its own random draws ([`task_vectors`]).
//!
//! A class says which model it loads, where the hand starts and may move, how its
//! random reset vector is drawn (MetaWorld's `_random_reset_space` and the rejection
//! loop of its `reset_model`), how it places its objects at reset, what it shows as
//! the observed object, and its reward and success. Everything else (stepping the
//! arm, the observation layout, the hand reset) is the shared [`sawyer::Sawyer`].
//!
//! ```
//! use bamdp::env::mujoco::metaworld::{class, CLASSES};
//! assert_eq!(class("reach-v3").unwrap().name(), "reach-v3");
//! assert!(class("reach-v2").is_none());
//! assert!(CLASSES.iter().all(|c| c.name().ends_with("-v3")));
//! ```

pub mod assembly;
pub mod basketball;
pub mod benchmark;
pub mod bin_picking;
pub mod box_close;
pub mod button_press;
pub mod button_press_topdown;
pub mod button_press_topdown_wall;
pub mod button_press_wall;
pub mod coffee_button;
pub mod coffee_pull;
pub mod coffee_push;
pub mod dial_turn;
pub mod disassemble;
pub mod door_close;
pub mod door_lock;
pub mod door_open;
pub mod door_unlock;
pub mod drawer_close;
pub mod drawer_open;
pub mod faucet_close;
pub mod faucet_open;
pub mod hammer;
pub mod hand_insert;
pub mod handle_press;
pub mod handle_press_side;
pub mod handle_pull;
pub mod lever_pull;
pub mod peg_insert_side;
pub mod peg_unplug_side;
pub mod pick_out_of_hole;
pub mod pick_place;
pub mod plate_slide;
pub mod push;
pub mod push_back;
pub mod reach;
pub mod reach_wall;
pub mod reward;
pub mod sawyer;
pub mod shelf_place;
pub mod soccer;
pub mod stick;
pub mod sweep;
pub mod sweep_into;
pub mod window_close;
pub mod window_open;

pub use sawyer::{Sawyer, SawyerFamily};

use super::mt19937::Mt19937;

/// MetaWorld's `_N_GOALS`: tasks per class and split.
pub const GOALS: usize = 50;
/// `max_path_length`.
pub const HORIZON: usize = 500;

/// Kinds of named MuJoCo objects a class reads (`mjOBJ_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obj {
    Body,
    Geom,
    Site,
    Joint,
}

/// What a class reports after a step: MetaWorld's reward, `info["success"]` and the
/// rest of its `info` dict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub reward: f64,
    pub success: bool,
    pub info: Info,
}

/// MetaWorld's `info` entries besides `success`, each as Python's `float()` of the
/// value (a float32 value widened exactly; a flag as 0 or 1). Their meaning varies
/// by class, as in MetaWorld (e.g. door-open's `near_object` is its "ready to open"
/// reward, reach's its distance to the goal).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Info {
    pub near_object: f64,
    pub grasp_success: f64,
    pub grasp_reward: f64,
    pub in_place_reward: f64,
    pub obj_to_target: f64,
    pub unscaled_reward: f64,
}

/// An observed object's position and orientation quaternion (in the order the class
/// gives it: MuJoCo's w first, or scipy's w last).
pub type Pose = ([f64; 3], [f64; 4]);

/// What a class shows of its objects (`_get_pos_objects`, `_get_quat_objects`): one
/// pose, or two (hammer and nail, stick and the thing it moves). MetaWorld writes each
/// object's position then quaternion into the observation's 14 object values, padding
/// with zeros, so two objects fill them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observed {
    poses: [Pose; 2],
    count: usize,
}

impl Observed {
    pub fn one(pose: Pose) -> Observed {
        Observed {
            poses: [pose, ([0.0; 3], [0.0; 4])],
            count: 1,
        }
    }
    pub fn two(first: Pose, second: Pose) -> Observed {
        Observed {
            poses: [first, second],
            count: 2,
        }
    }
    /// The observed poses.
    pub fn poses(&self) -> &[Pose] {
        &self.poses[..self.count]
    }
    /// The observation's 14 object values: each pose's position and quaternion, then
    /// zeros.
    pub fn values(&self) -> [f64; 14] {
        let mut out = [0.0; 14];
        for (k, (pos, quat)) in self.poses().iter().enumerate() {
            out[7 * k..7 * k + 3].copy_from_slice(pos);
            out[7 * k + 3..7 * k + 7].copy_from_slice(quat);
        }
        out
    }
}

/// A flag as MetaWorld's `float(condition)`.
pub(crate) fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// One MetaWorld task class (`Sawyer...EnvV3`): its constants, reset and reward.
/// Methods taking a [`Sawyer`] read the row's simulation; `reset_model` also moves it.
pub trait TaskClass: Sync {
    /// The MetaWorld env name (`reach-v3`).
    fn name(&self) -> &'static str;
    /// The model file under metaworld's `assets/` folder.
    fn xml(&self) -> &'static str;
    /// `hand_low`, `hand_high`: the box the mocap (the hand's target) is clipped to.
    fn mocap_box(&self) -> ([f64; 3], [f64; 3]) {
        ([-0.5, 0.40, 0.05], [0.5, 1.0, 0.5])
    }
    /// `hand_init_pos` as the values the mocap receives (a float32 array in some
    /// classes, widened to f64 by the assignment).
    fn hand_init_pos(&self) -> [f64; 3] {
        [0.0, 0.6, 0.2]
    }
    /// `_random_reset_space` (low, high).
    fn reset_space(&self) -> (&'static [f64], &'static [f64]);
    /// The rejection test of `reset_model`'s drawing loop: it draws until a vector
    /// passes.
    fn accepts(&self, _v: &[f64]) -> bool {
        true
    }
    /// The named objects the class reads, resolved once into [`Sawyer::named`] in
    /// this order.
    fn names(&self) -> &'static [(Obj, &'static str)];
    /// `reset_model` from freshly reset data, with the task's vector `v`.
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]);
    /// Whether `reset_model` reads back model values it wrote in an earlier call, so
    /// that MetaWorld's first call of a reset (before `mj_resetData`) must be repeated.
    fn resets_twice(&self) -> bool {
        false
    }
    /// `_get_pos_objects` and `_get_quat_objects`: the observed objects.
    fn objects(&self, s: &Sawyer) -> Observed;
    /// `evaluate_state`: reward and success at the current state, `obs` being the
    /// clipped observation.
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation;
}

/// The ported classes.
pub static CLASSES: &[&dyn TaskClass] = &[
    &reach::Reach,
    &push::PUSH,
    &pick_place::PICK_PLACE,
    &door_open::DoorOpen,
    &drawer_close::DrawerClose,
    &button_press_topdown::ButtonPressTopdown,
    &peg_insert_side::PegInsertSide,
    &window_open::WindowOpen,
    &sweep::Sweep,
    &basketball::Basketball,
    &drawer_open::DrawerOpen,
    &door_close::DoorClose,
    &shelf_place::ShelfPlace,
    &sweep_into::SweepInto,
    &lever_pull::LeverPull,
    &bin_picking::BinPicking,
    &box_close::BoxClose,
    &hand_insert::HandInsert,
    &door_lock::DoorLock,
    &door_unlock::DoorUnlock,
    &assembly::Assembly,
    &button_press_topdown_wall::ButtonPressTopdownWall,
    &button_press::ButtonPress,
    &button_press_wall::ButtonPressWall,
    &coffee_button::CoffeeButton,
    &coffee_pull::CoffeePull,
    &coffee_push::CoffeePush,
    &dial_turn::DialTurn,
    &faucet_open::FaucetOpen,
    &faucet_close::FaucetClose,
    &disassemble::Disassemble,
    &handle_press_side::HandlePressSide,
    &handle_press::HandlePress,
    &window_close::WindowClose,
    &reach_wall::ReachWall,
    &push::PUSH_WALL,
    &pick_place::PICK_PLACE_WALL,
    &push_back::PushBack,
    &soccer::Soccer,
    &plate_slide::PLATE_SLIDE,
    &plate_slide::PLATE_SLIDE_SIDE,
    &plate_slide::PLATE_SLIDE_BACK,
    &plate_slide::PLATE_SLIDE_BACK_SIDE,
    &handle_pull::HANDLE_PULL,
    &handle_pull::HANDLE_PULL_SIDE,
    &peg_unplug_side::PegUnplugSide,
    &pick_out_of_hole::PickOutOfHole,
    &hammer::Hammer,
    &stick::StickPush,
    &stick::StickPull,
];

/// The ported class named `name` (`reach-v3`).
pub fn class(name: &str) -> Option<&'static dyn TaskClass> {
    CLASSES.iter().copied().find(|c| c.name() == name)
}

/// The random vectors of MetaWorld's task list for `class` built with `seed`:
/// `metaworld.ML1(name, seed).train_tasks` for `seed`, `test_tasks` for `seed + 1`.
///
/// metaworld builds 50 vectors per split by resetting an env 50 times under NumPy's
/// legacy global generator seeded with the seed; each reset runs `reset_model` twice,
/// each drawing until the class's rejection test passes.
pub fn task_vectors(class: &dyn TaskClass, seed: u32) -> Vec<Vec<f64>> {
    let mut mt = Mt19937::new(seed);
    let mut out = Vec::with_capacity(GOALS);
    for _ in 0..GOALS {
        out.push(draw_reset_vector(class, &mut mt));
    }
    out
}

/// One env reset's draws (two `reset_model` calls) from `mt`: the kept vector.
pub fn draw_reset_vector(class: &dyn TaskClass, mt: &mut Mt19937) -> Vec<f64> {
    let (low, high) = class.reset_space();
    let mut v = vec![0.0; low.len()];
    for _reset_model_call in 0..2 {
        loop {
            mt.uniform(low, high, &mut v);
            if class.accepts(&v) {
                break;
            }
        }
    }
    v
}
