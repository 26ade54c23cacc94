//! `oracle`: the policy reads the environment's exact belief next to the observation
//! (the ceiling for learned beliefs). Envs with an exact belief: GridNavi
//! ([`GridNaviBelief`], the posterior over the goal cell).

use super::Method;
use crate::belief::oracle::GridNaviBelief;
use crate::belief::{Batched, BatchedBelief};
use crate::config::Config;
use crate::env::{EnvSpec, KnownDynamics};
use crate::error::UserError;
use crate::improve::smc::{NetPlanner, PlanStep, SmcSettings};

pub struct Oracle;

/// The env whose exact belief the oracle reads.
const GRIDNAVI: &str = "gridnavi";

impl Method for Oracle {
    fn name(&self) -> &'static str {
        "oracle"
    }
    fn about(&self) -> &'static str {
        "the policy is fed the environment's exact belief (an upper reference for learned beliefs)"
    }
    fn belief(
        &self,
        _cfg: &Config,
        spec: &EnvSpec,
        rows: usize,
    ) -> Result<Option<Box<dyn BatchedBelief>>, UserError> {
        match spec.name {
            GRIDNAVI => Ok(Some(Box::new(Batched::new(GridNaviBelief, rows)))),
            other => Err(UserError::invalid(
                "method",
                "oracle",
                &format!(
                    "a method other than `oracle` for env {other:?}, which exposes no exact belief"
                ),
            )),
        }
    }
    fn planner(
        &self,
        spec: &EnvSpec,
        settings: SmcSettings,
        dynamics: Box<dyn KnownDynamics>,
        rows: usize,
        threads: usize,
    ) -> Option<Box<dyn PlanStep>> {
        (spec.name == GRIDNAVI).then(|| {
            Box::new(NetPlanner::<GridNaviBelief>::new(
                settings, dynamics, rows, threads,
            )) as Box<dyn PlanStep>
        })
    }
}
