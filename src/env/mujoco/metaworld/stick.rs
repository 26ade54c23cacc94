//! `stick-push-v3` and `stick-pull-v3` (`SawyerStick{Push,Pull}EnvV3`): grasp a stick
//! and use it to push a thermos container to a goal, or to hook its handle and pull
//! it. The task vector places the stick and the goal. Both the stick and the
//! container's insertion site are observed ([`Observed::two`]).
//!
//! MetaWorld's `obj_init_pos` is the container's start, which the base's caging reward
//! reads (stick-pull); stick-push's own caging reward is the base's with the stick's
//! start in its place. So stick-pull keeps the stick's start in
//! [`Sawyer::reset_point`], and stick-push swaps the two.

use super::reward::{dist, hamacher_product, hamacher_product_f32, norm, tolerance_long_tail};
use super::{flag, Evaluation, Info, Obj, Observed, Sawyer, TaskClass};

/// The stick scene's objects.
const STICK: &[(Obj, &str)] = &[
    (Obj::Body, "stick"),
    (Obj::Site, "insertion"),
    (Obj::Body, "object"),
    (Obj::Geom, "objGeom"),
    (Obj::Site, "stick_end"),
];
/// The stick's height (`init_config["stick_init_pos"]`).
const STICK_Z: f64 = 0.02;

/// `while norm(goal_pos[:2] - goal_pos[-3:-1]) < 0.1`.
fn stick_and_goal_apart(v: &[f64]) -> bool {
    norm(&[v[0] - v[3], v[1] - v[4]]) >= 0.1
}

/// The stick classes' reset after the hand reset and goal: the stick at its start
/// (`_set_stick_xyz`, kept in `reset_point`), the container's joints at `container`
/// (`_set_obj_xyz`), and the container's start read back into `obj_init_pos`.
fn place_stick_and_container(s: &mut Sawyer, v: &[f64], container: [f64; 2]) {
    s.reset_point = [v[0], v[1], STICK_Z];
    s.set_obj_xyz(s.reset_point);
    s.data.qpos_mut()[16..18].copy_from_slice(&container);
    // `qvel[16:18] = 0` as NumPy slices it: the stick's free joint has one velocity
    // fewer than positions, so this is the container's second velocity only.
    let qvel = s.data.qvel_mut();
    let end = qvel.len().min(18);
    qvel[16..end].fill(0.0);
    s.data.forward();
    s.obj_init_pos = s.body(s.named[2]);
}

/// The stick's pose, and the insertion site moved by `offset` with a zero quaternion.
fn stick_and_insertion(s: &Sawyer, offset: [f64; 3]) -> Observed {
    let stick = s.named[0];
    let i = s.site(s.named[1]);
    Observed::two(
        (s.body(stick), s.body_quat_xyzw(stick)),
        (
            [i[0] + offset[0], i[1] + offset[1], i[2] + offset[2]],
            [0.0; 4],
        ),
    )
}

pub struct StickPush;

impl TaskClass for StickPush {
    fn name(&self) -> &'static str {
        "stick-push-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_stick_obj.xml"
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.08, 0.58, 0.0, 0.399, 0.55, 0.1319],
            &[-0.03, 0.62, 0.001, 0.401, 0.6, 0.1321],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        stick_and_goal_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        STICK
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        // The insertion site's height as the hand reset left it.
        s.target = [v[3], v[4], s.site(s.named[1])[2]];
        place_stick_and_container(s, v, [0.0, 0.0]);
        // The stick's start where this class's caging reward reads it.
        std::mem::swap(&mut s.obj_init_pos, &mut s.reset_point);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        stick_and_insertion(s, [0.0, 0.09, 0.0])
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        const RADIUS: f64 = 0.12;
        let stick = [obs[4] + 0.015, obs[5] + 0.0, obs[6] + 0.0];
        let container = [obs[11], obs[12], obs[13]];
        let tcp_opened = obs[3];
        let (t, stick_init) = (s.target, s.obj_init_pos);
        let tcp_to_stick = dist(stick, s.tcp_center());
        let stick_to_target = dist(stick, t);
        let stick_in_place =
            tolerance_long_tail(stick_to_target, 0.0, RADIUS, dist(stick_init, t) - RADIUS);
        let container_to_target = dist(container, t);
        let container_in_place = tolerance_long_tail(
            container_to_target,
            0.0,
            RADIUS,
            dist(s.reset_point, t) - RADIUS,
        );
        let (mut grasped, _) = s.gripper_caging(action, stick, 0.04, 0.05, 0.01, true);
        let mut reward = grasped;
        if tcp_to_stick < 0.02 && tcp_opened > 0.0 && stick[2] - 0.01 > stick_init[2] {
            grasped = 1.0;
            reward = 2.0 + 5.0 * stick_in_place + 3.0 * container_in_place;
            if container_to_target <= RADIUS {
                reward = 10.0;
            }
        }
        let grasp_success =
            s.touching(s.named[3]) && tcp_opened > 0.0 && obs[6] - 0.01 > stick_init[2];
        Evaluation {
            reward,
            success: grasp_success && dist(container, t) <= RADIUS,
            info: Info {
                near_object: flag(tcp_to_stick <= 0.03),
                grasp_success: flag(grasp_success),
                grasp_reward: grasped,
                in_place_reward: stick_in_place,
                obj_to_target: container_to_target,
                unscaled_reward: reward,
            },
        }
    }
}

pub struct StickPull;

/// `_stick_is_inserted`: the stick's end is past the handle in x and close to it in
/// y and z.
fn inserted(handle: [f64; 3], end: [f64; 3]) -> bool {
    end[0] >= handle[0]
        && (end[1] - handle[1]).abs() <= 0.040
        && (end[2] - handle[2]).abs() <= 0.060
}

impl TaskClass for StickPull {
    fn name(&self) -> &'static str {
        "stick-pull-v3"
    }
    fn xml(&self) -> &'static str {
        "sawyer_xyz/sawyer_stick_obj.xml"
    }
    fn mocap_box(&self) -> ([f64; 3], [f64; 3]) {
        ([-0.5, 0.35, 0.05], [0.5, 1.0, 0.5])
    }
    fn reset_space(&self) -> (&'static [f64], &'static [f64]) {
        (
            &[-0.1, 0.55, 0.0, 0.35, 0.45, 0.0199],
            &[0.0, 0.65, 0.001, 0.45, 0.55, 0.0201],
        )
    }
    fn accepts(&self, v: &[f64]) -> bool {
        stick_and_goal_apart(v)
    }
    fn names(&self) -> &'static [(Obj, &'static str)] {
        STICK
    }
    fn reset_model(&self, s: &mut Sawyer, v: &[f64]) {
        s.reset_hand();
        s.target = [v[3], v[4], STICK_Z];
        place_stick_and_container(s, v, [0.0, 0.09]);
    }
    fn objects(&self, s: &Sawyer) -> Observed {
        stick_and_insertion(s, [0.0; 3])
    }
    fn evaluate(&self, s: &Sawyer, action: &[f32], obs: &[f64; 39]) -> Evaluation {
        const RADIUS: f64 = 0.05;
        let stick = [obs[4], obs[5], obs[6]];
        let end = s.site(s.named[4]);
        let handle = [obs[11], obs[12], obs[13]];
        let container = [handle[0] + 0.05, handle[1] + 0.0, handle[2] + 0.0];
        let ci = s.obj_init_pos;
        let container_init = [ci[0] + 0.05, ci[1] + 0.0, ci[2] + 0.0];
        let tcp_opened = obs[3];
        let (t, stick_init) = (s.target, s.reset_point);
        let tcp_to_stick = dist(stick, s.tcp_center());
        let handle_to_target = dist(handle, t);
        // norm((a - b) * [1, 1, 2]).
        let yz = |a: [f64; 3], b: [f64; 3]| {
            norm(&[
                (a[0] - b[0]) * 1.0,
                (a[1] - b[1]) * 1.0,
                (a[2] - b[2]) * 2.0,
            ])
        };
        let stick_in_place = tolerance_long_tail(
            yz(stick, container),
            0.0,
            RADIUS,
            yz(stick_init, container_init),
        );
        let stick_in_place_2 =
            tolerance_long_tail(dist(stick, t), 0.0, RADIUS, dist(stick_init, t));
        let container_in_place = tolerance_long_tail(dist(container, t), 0.0, RADIUS, dist(ci, t));
        let (caging, float32) = s.gripper_caging(action, stick, 0.014, 0.05, 0.01, true);
        let grasp_success =
            tcp_to_stick < 0.02 && tcp_opened > 0.0 && stick[2] - 0.01 > stick_init[2];
        let grasped = if grasp_success { 1.0 } else { caging };
        let held = if float32 && !grasp_success {
            hamacher_product_f32(caging as f32, stick_in_place as f32) as f64
        } else {
            hamacher_product(grasped, stick_in_place)
        };
        let mut reward = held;
        if grasp_success {
            reward = 1.0 + held + 5.0 * stick_in_place;
            if inserted(handle, end) {
                reward = 1.0 + held + 5.0 + 2.0 * stick_in_place_2 + 1.0 * container_in_place;
                if handle_to_target <= 0.12 {
                    reward = 10.0;
                }
            }
        }
        let touching = s.touching(s.named[3]) && tcp_opened > 0.0 && stick[2] - 0.02 > ci[2];
        Evaluation {
            reward,
            success: handle_to_target <= 0.12 && inserted(handle, end),
            info: Info {
                near_object: flag(tcp_to_stick <= 0.03),
                grasp_success: flag(touching),
                grasp_reward: grasped,
                in_place_reward: stick_in_place,
                obj_to_target: handle_to_target,
                unscaled_reward: reward,
            },
        }
    }
}
