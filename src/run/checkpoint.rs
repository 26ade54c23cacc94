//! Checkpoints: the complete training state of a [`Trainer`], so a resumed run continues
//! bit-identically, in a run folder's `checkpoint/` (the files are [`store`]'s, shared
//! with MAML's checkpoints):
//!
//! - `tensors-<update>.safetensors`: the policy's and the learner's weights and Adam
//!   moments (`F32`) and the learner's trial buffer as columns (`learner.trials.*`:
//!   steps per trial `U32`; observations, actions, rewards, next observations each as
//!   `U8` when that is exact for all values, else `F32`);
//! - `state-<update>.bin`: everything else (acting state, env and belief state, random
//!   streams, normalisers, the trials being recorded), encoded by [`crate::codec`] and
//!   LZ4-compressed;
//! - `meta.json`: format version, update, frames, method, env, and the size and CRC-32
//!   of both files. It is written last, atomically, and is the commit point: a
//!   checkpoint is the files its `meta.json` names, so a crash mid-write leaves the
//!   previous checkpoint intact. Files of older checkpoints are removed after it.
//!
//! Loading verifies every size and checksum before decoding anything; checkpoints of
//! the JSON format of bamdp 0.1 (`checkpoint/state.json`) and of format 2 (the trial
//! buffer inside the state file) are refused by name.

pub mod store;

pub use store::{checkpoint_dir, load_meta, meta_path, CheckpointError, Meta, CHECKPOINT_FORMAT};

use super::actor::{plan_streams, ActorState};
use super::trainer::Trainer;
use crate::belief::learner::LearnerState;
use crate::belief::trials::TrialColumns;
use crate::codec::{self, Blob};
use crate::error::{StateError, UserError};
use crate::improve::normalize::{InputNorm, RewardScaler, RunningMeanStd};
use crate::nn::{Adam, Params};
use crate::par;
use crate::rng::{streams, Rng};
use serde::{Deserialize, Serialize};
use std::path::Path;
use store::{read_f32, read_u32, Column, Header};

/// The full training state.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub update: u64,
    pub frames: u64,
    /// Wall-clock seconds of training before this checkpoint (for metrics continuity).
    pub wall_s: f64,
    pub params: Params,
    pub adam: Adam,
    pub actor: ActorState,
    /// The acting belief's batched state ([`crate::codec`] bytes).
    pub belief: Option<Vec<u8>>,
    pub env: serde_json::Value,
    pub minibatch_rng: Rng,
    /// The statistics of the policy input's normaliser (named for what it covered
    /// first: the observations; with `ppo.norm_belief` it covers the belief's features
    /// too, [`crate::improve::normalize::InputNorm`]).
    pub obs_rms: Option<RunningMeanStd>,
    pub reward_scaler: Option<RewardScaler>,
    pub learner: Option<LearnerState>,
}

/// The parameter layout and optimiser scalars; the vectors live in the tensors file.
#[derive(Serialize, Deserialize)]
struct Layout {
    names: Vec<String>,
    slots: Vec<crate::nn::Slot>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    t: u64,
}

impl Layout {
    fn of(p: &Params, a: &Adam) -> Self {
        Layout {
            names: p.names.clone(),
            slots: p.slots.clone(),
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            t: a.t,
        }
    }
    fn len(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.offset + s.len())
            .max()
            .unwrap_or(0)
    }
    fn with(self, data: Vec<f32>, m: Vec<f32>, v: Vec<f32>) -> (Params, Adam) {
        let params = Params {
            names: self.names,
            slots: self.slots,
            data,
        };
        let adam = Adam {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            t: self.t,
            m,
            v,
        };
        (params, adam)
    }
}

/// The trial buffer's scalars; its columns live in the tensors file.
#[derive(Serialize, Deserialize)]
struct BufferShape {
    capacity: u64,
    obs_dim: u64,
    action_width: u64,
    next: u64,
}

/// The learner's part of [`State`].
#[derive(Serialize, Deserialize)]
struct LearnerRest {
    layout: Layout,
    buffer: BufferShape,
    rest: Blob,
}

/// Everything but the tensors, as stored in `state-<update>.bin`.
#[derive(Serialize, Deserialize)]
struct State {
    update: u64,
    frames: u64,
    wall_s: f64,
    policy: Layout,
    actor: ActorState,
    belief: Option<Blob>,
    /// The env's own (JSON) state, as text.
    env: String,
    minibatch_rng: Rng,
    obs_rms: Option<RunningMeanStd>,
    reward_scaler: Option<RewardScaler>,
    learner: Option<LearnerRest>,
}

/// [`State`] as borrows, for writing: the same fields in the same order, so the same
/// bytes.
#[derive(Serialize)]
struct StateRef<'a> {
    update: u64,
    frames: u64,
    wall_s: f64,
    policy: Layout,
    actor: &'a ActorState,
    belief: Option<Bytes<'a>>,
    env: String,
    minibatch_rng: &'a Rng,
    obs_rms: &'a Option<RunningMeanStd>,
    reward_scaler: &'a Option<RewardScaler>,
    learner: Option<LearnerRestRef<'a>>,
}

/// [`LearnerRest`] as borrows.
#[derive(Serialize)]
struct LearnerRestRef<'a> {
    layout: Layout,
    buffer: BufferShape,
    rest: Bytes<'a>,
}

/// Borrowed bytes encoded like [`Blob`]: one length-prefixed block.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// The tensors of a checkpoint, by name.
/// `threads` > 1 narrows the trial columns on two threads.
fn tensors(ck: &Checkpoint, threads: usize) -> Vec<(&'static str, Column)> {
    let vector = |v: &[f32]| Column::f32(v, vec![v.len()]);
    let mut t = vec![
        ("policy.weights", vector(&ck.params.data)),
        ("policy.adam_m", vector(&ck.adam.m)),
        ("policy.adam_v", vector(&ck.adam.v)),
    ];
    if let Some(l) = &ck.learner {
        let b = &l.buffer;
        let steps = b.rewards.len();
        t.push(("learner.weights", vector(&l.params.data)));
        t.push(("learner.adam_m", vector(&l.adam.m)));
        t.push(("learner.adam_v", vector(&l.adam.v)));
        t.push((
            "learner.trials.lengths",
            Column::u32(&b.lengths, vec![b.lengths.len()]),
        ));
        // The columns are independent: the observations on a second thread.
        let observations = || {
            [
                Column::narrowest(&b.obs, vec![steps, b.obs_dim]),
                Column::narrowest(&b.next_obs, vec![steps, b.obs_dim]),
            ]
        };
        let others = || {
            [
                Column::narrowest(&b.actions, vec![steps, b.action_width]),
                Column::narrowest(&b.rewards, vec![steps]),
            ]
        };
        let (rest, obs) = par::join(threads, others, observations);
        let [obs, next_obs] = obs;
        let [actions, rewards] = rest;
        t.push(("learner.trials.obs", obs));
        t.push(("learner.trials.actions", actions));
        t.push(("learner.trials.rewards", rewards));
        t.push(("learner.trials.next_obs", next_obs));
    }
    t
}

/// Writes `ck` as the checkpoint of the run folder `run` (see the module doc).
pub fn save(run: &Path, ck: &Checkpoint, trainer: &Trainer) -> Result<(), UserError> {
    // Encoded from borrows (same bytes as `State`), into a buffer sized up front.
    let blobs =
        ck.belief.as_ref().map_or(0, Vec::len) + ck.learner.as_ref().map_or(0, |l| l.rest.len());
    let state = StateRef {
        update: ck.update,
        frames: ck.frames,
        wall_s: ck.wall_s,
        policy: Layout::of(&ck.params, &ck.adam),
        actor: &ck.actor,
        belief: ck.belief.as_deref().map(Bytes),
        env: ck.env.to_string(),
        minibatch_rng: &ck.minibatch_rng,
        obs_rms: &ck.obs_rms,
        reward_scaler: &ck.reward_scaler,
        learner: ck.learner.as_ref().map(|l| LearnerRestRef {
            layout: Layout::of(&l.params, &l.adam),
            buffer: BufferShape {
                capacity: l.buffer.capacity as u64,
                obs_dim: l.buffer.obs_dim as u64,
                action_width: l.buffer.action_width as u64,
                next: l.buffer.next as u64,
            },
            rest: Bytes(&l.rest),
        }),
    };
    let encoded = codec::encode_with_capacity(&state, blobs + (1 << 16));
    let cfg = &trainer.cfg;
    let header = Header {
        update: ck.update,
        frames: ck.frames,
        method: trainer.method.name().into(),
        improver: cfg.improver.to_string(),
        env: cfg.env.clone(),
        seed: cfg.seed,
    };
    store::write(run, header, &tensors(ck, cfg.run.threads), &encoded)
}

/// Reads and verifies a run's checkpoint.
pub fn load(run: &Path) -> Result<Checkpoint, CheckpointError> {
    let files = store::read(run)?;
    if files.meta.method == "maml" {
        return Err(CheckpointError::OtherMethod {
            path: meta_path(run),
            method: files.meta.method,
        });
    }
    let state: State = files.decode_state()?;
    let st = files.tensors()?;
    let bad = |m: String| files.tensor_error(m);
    let read = |layout: Layout, prefix: &str| -> Result<(Params, Adam), CheckpointError> {
        let n = Some(layout.len());
        let get = |name: &str| read_f32(&st, &format!("{prefix}.{name}"), n).map_err(bad);
        let (data, m, v) = (get("weights")?, get("adam_m")?, get("adam_v")?);
        Ok(layout.with(data, m, v))
    };
    let (params, adam) = read(state.policy, "policy")?;
    let learner = match state.learner {
        Some(l) => {
            let (params, adam) = read(l.layout, "learner")?;
            let col = |name: &str| read_f32(&st, &format!("learner.trials.{name}"), None);
            let columns = (|| -> Result<TrialColumns, String> {
                Ok(TrialColumns {
                    capacity: l.buffer.capacity as usize,
                    obs_dim: l.buffer.obs_dim as usize,
                    action_width: l.buffer.action_width as usize,
                    next: l.buffer.next as usize,
                    lengths: read_u32(&st, "learner.trials.lengths")?,
                    obs: col("obs")?,
                    actions: col("actions")?,
                    rewards: col("rewards")?,
                    next_obs: col("next_obs")?,
                })
            })()
            .map_err(bad)?;
            Some(LearnerState {
                params,
                adam,
                buffer: columns,
                rest: l.rest.0,
            })
        }
        None => None,
    };
    let env = serde_json::from_str(&state.env)
        .map_err(|e| files.state_error(format!("env state: {e}")))?;
    Ok(Checkpoint {
        update: state.update,
        frames: state.frames,
        wall_s: state.wall_s,
        params,
        adam,
        actor: state.actor,
        belief: state.belief.map(|b| b.0),
        env,
        minibatch_rng: state.minibatch_rng,
        obs_rms: state.obs_rms,
        reward_scaler: state.reward_scaler,
        learner,
    })
}

impl Trainer {
    /// The complete training state.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            update: self.update,
            frames: self.frames,
            wall_s: 0.0,
            params: self.params.clone(),
            adam: self.adam.clone(),
            actor: self.actor.state.clone(),
            belief: self.actor.belief.as_ref().map(|b| b.save_state()),
            env: self.env.save_state(),
            minibatch_rng: self.minibatch_rng.clone(),
            obs_rms: self.input_norm.as_ref().map(|n| n.rms.clone()),
            reward_scaler: self.reward_scaler.clone(),
            learner: self.learner.as_ref().map(|l| l.save_state()),
        }
    }

    /// Restores a checkpoint taken from a trainer built with the same config.
    pub fn restore(&mut self, ck: Checkpoint) -> Result<(), StateError> {
        let mismatch = |what: &str| Err(StateError::Mismatch(what.to_string()));
        if ck.params.slots != self.params.slots
            || ck.params.data.len() != self.params.len()
            || ck.adam.m.len() != self.params.len()
        {
            return mismatch("checkpoint parameters do not match the network the config describes");
        }
        let rows = self.cfg.run.num_envs;
        let st = &ck.actor;
        if st.obs.len() != self.actor.state.obs.len()
            || st.h.len() != self.actor.state.h.len()
            || st.action_rngs.len() != rows
        {
            return mismatch("checkpoint acting state does not match run.num_envs / the network");
        }
        if self.actor.belief.is_some() != ck.belief.is_some() {
            return mismatch("checkpoint belief state does not match the method");
        }
        if self.learner.is_some() != ck.learner.is_some() {
            return mismatch("checkpoint learner state does not match the method");
        }
        // Nothing is changed above this line; below, a malformed saved state can still
        // fail part-way, leaving a trainer its caller must discard.
        let mut ck = ck;
        if let Err(e) = InputNorm::install_saved(self.input_norm.as_mut(), ck.obs_rms.take()) {
            return mismatch(&e.to_string());
        }
        self.env.load_state(&ck.env)?;
        // States saved before planning existed lack the planner's per-row state.
        if ck.actor.trial_step.len() != rows {
            ck.actor.trial_step = vec![0; rows];
        }
        if ck.actor.plan_rngs.len() != rows {
            ck.actor.plan_rngs = plan_streams(self.cfg.seed, streams::ACTIONS, rows);
        }
        if let (Some(b), Some(bytes)) = (self.actor.belief.as_mut(), &ck.belief) {
            b.load_state(bytes)?;
        }
        if let (Some(l), Some(saved)) = (self.learner.as_mut(), ck.learner) {
            l.load_state(saved)?;
        }
        self.update = ck.update;
        self.frames = ck.frames;
        self.params = ck.params;
        self.adam = ck.adam;
        self.actor.state = ck.actor;
        self.minibatch_rng = ck.minibatch_rng;
        self.reward_scaler = ck.reward_scaler;
        if let Some(l) = self.learner.as_ref() {
            super::actor::install_belief_params(&mut self.actor, l.params());
        }
        Ok(())
    }
}

/// The learner's trained weights in a checkpoint, by name, for code that only acts
/// (evaluation).
pub fn learner_params(ck: &Checkpoint) -> Option<&Params> {
    ck.learner.as_ref().map(|l| &l.params)
}
