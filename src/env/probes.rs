//! Reward probes: a fixed set of transitions, spread over where an env's tasks hide
//! their reward, at which a belief can be asked what reward it now expects.
//!
//! A belief over a reward model (GLiBRL's GLM) holds the whole answer to "where have I
//! already looked?" only implicitly, in its weights' posterior. Evaluating the posterior
//! predictive at the probes makes it explicit for the policy
//! (`glibrl.policy_input = "probes"`, docs/methods.md#glibrl-features):
//! - GridNavi: staying on each of the 25 cells (the goal pays on arrival and while
//!   staying);
//! - point robot (dense and sparse): standing still at 16 points spread evenly over the
//!   goal semicircle (neighbours 0.196 apart, inside the sparse reward's 0.2 radius).
//!
//! ```
//! use bamdp::env::{make, probes::reward_probes, EnvOptions, Split};
//! let spec = |name| make(name, 1, Split::Train, 0, &EnvOptions::default()).unwrap().spec().clone();
//! let p = reward_probes(&spec("gridnavi")).unwrap();
//! assert_eq!(p.count, 25);
//! assert_eq!(p.obs, p.next_obs); // standing on each cell
//! assert!(reward_probes(&spec("functions-1d")).is_none());
//! ```

use super::{gridnavi, point_robot, EnvSpec};
use serde::{Deserialize, Serialize};

/// `count` transitions `(obs, action, next_obs)`, row-major, actions in their stored
/// width (an index for discrete actions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardProbes {
    pub count: usize,
    pub obs: Vec<f32>,
    pub actions: Vec<f32>,
    pub next_obs: Vec<f32>,
}

/// Points on the point robot's goal semicircle the probes stand on.
pub const POINT_ROBOT_PROBES: usize = 16;

/// The envs that have reward probes (for error messages).
pub const WITH_PROBES: &[&str] = &["gridnavi", "point_robot", "point_robot_sparse"];

/// The probes of `spec`'s env, or `None` for envs without them.
pub fn reward_probes(spec: &EnvSpec) -> Option<RewardProbes> {
    match spec.name {
        "gridnavi" => {
            let cells: Vec<f32> = (0..gridnavi::NUM_CELLS)
                .flat_map(|i| {
                    let (x, y) = gridnavi::cell_of(i);
                    [x as f32, y as f32]
                })
                .collect();
            Some(RewardProbes {
                count: gridnavi::NUM_CELLS,
                obs: cells.clone(),
                // Action 0 stays on the cell.
                actions: vec![0.0; gridnavi::NUM_CELLS],
                next_obs: cells,
            })
        }
        "point_robot" | "point_robot_sparse" => {
            let n = POINT_ROBOT_PROBES;
            let points: Vec<f32> = (0..n)
                .flat_map(|j| {
                    let angle = std::f64::consts::PI * (j as f64 + 0.5) / n as f64;
                    point_robot::goal_at(angle).map(|v| v as f32)
                })
                .collect();
            Some(RewardProbes {
                count: n,
                obs: points.clone(),
                actions: vec![0.0; 2 * n],
                next_obs: points,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{make, EnvOptions, Split};

    fn make_env(name: &str) -> Box<dyn crate::env::BatchEnv> {
        make(name, 1, Split::Train, 0, &EnvOptions::default()).unwrap()
    }

    #[test]
    fn probes_have_the_env_shapes_and_lie_where_goals_are() {
        for name in WITH_PROBES {
            let env = make_env(name);
            let spec = env.spec();
            let p = reward_probes(spec).unwrap();
            assert_eq!(p.obs.len(), p.count * spec.obs_dim, "{name}");
            assert_eq!(p.next_obs.len(), p.count * spec.obs_dim, "{name}");
            assert_eq!(p.actions.len(), p.count * spec.action.width(), "{name}");
        }
        let spec = make_env("point_robot").spec().clone();
        let p = reward_probes(&spec).unwrap();
        for xy in p.next_obs.chunks(2) {
            let r = (xy[0] as f64).hypot(xy[1] as f64);
            assert!((r - point_robot::GOAL_DISTANCE).abs() < 1e-6 && xy[1] > 0.0);
        }
        // Every goal of the semicircle is within the sparse reward's radius of a probe.
        for k in 0..=1000 {
            let g = point_robot::goal_at(std::f64::consts::PI * k as f64 / 1000.0);
            let nearest = p
                .next_obs
                .chunks(2)
                .map(|xy| (xy[0] as f64 - g[0]).hypot(xy[1] as f64 - g[1]))
                .fold(f64::INFINITY, f64::min);
            assert!(nearest < point_robot::GOAL_RADIUS, "goal {g:?}: {nearest}");
        }
    }
}
