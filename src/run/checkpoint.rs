//! Checkpoints: the complete training state of a [`Trainer`], so a resumed run continues
//! bit-identically, in a run folder's `checkpoint/`:
//!
//! - `tensors-<update>.safetensors`: the policy's and the learner's weights and Adam
//!   moments (f32, safetensors);
//! - `state-<update>.bin`: everything else (acting state, env and belief state, random
//!   streams, normalisers, the learner's trial buffer), encoded by [`crate::codec`] and
//!   compressed with LZ4 (the trial buffer repeats itself a lot);
//! - `meta.json`: format version, update, frames, method, env, and the size and CRC-32
//!   of both files. It is written last, atomically, and is the commit point: a
//!   checkpoint is the files its `meta.json` names, so a crash mid-write leaves the
//!   previous checkpoint intact. Files of older checkpoints are removed after it.
//!
//! Loading verifies every size and checksum before decoding anything; checkpoints of
//! the JSON format of bamdp 0.1 (`checkpoint/state.json`) are refused by name.

use super::actor::{plan_streams, ActorState};
use super::files;
use super::trainer::Trainer;
use crate::belief::learner::LearnerState;
use crate::codec::{self, Blob};
use crate::error::{StateError, UserError};
use crate::improve::normalize::{RewardScaler, RunningMeanStd};
use crate::nn::{Adam, Params};
use crate::rng::{streams, Rng};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Version of the on-disk format written by this bamdp.
pub const CHECKPOINT_FORMAT: u32 = 2;
/// `meta.json`'s `format` field.
const FORMAT_NAME: &str = "bamdp-checkpoint";
/// The file of the JSON checkpoints of format 1.
const JSON_FORMAT_FILE: &str = "state.json";

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
    pub obs_rms: Option<RunningMeanStd>,
    pub reward_scaler: Option<RewardScaler>,
    pub learner: Option<LearnerState>,
}

/// Why a checkpoint cannot be read.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{0}: no checkpoint (the run has not written one yet)")]
    Missing(PathBuf),
    #[error("{0}: a checkpoint of the JSON format 1 (bamdp 0.1); this bamdp reads format {CHECKPOINT_FORMAT} only: train the run again, or evaluate it with the bamdp that wrote it")]
    JsonFormat(PathBuf),
    #[error("{path}: cannot read checkpoint: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: corrupt checkpoint: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    State { path: PathBuf, source: StateError },
}

impl From<CheckpointError> for UserError {
    fn from(e: CheckpointError) -> Self {
        UserError::Other(e.to_string())
    }
}

/// `meta.json`: what the checkpoint is, for people and for the loader.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    pub version: u32,
    pub update: u64,
    pub frames: u64,
    pub method: String,
    pub improver: String,
    pub env: String,
    pub seed: u64,
    pub files: Vec<FileEntry>,
}

/// One file of a checkpoint with its size and CRC-32.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub crc32: u32,
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
    learner: Option<(Layout, Blob)>,
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
    learner: Option<(Layout, Bytes<'a>)>,
}

/// Borrowed bytes encoded like [`Blob`]: one length-prefixed block.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// The checkpoint folder of a run folder.
pub fn checkpoint_dir(run: &Path) -> PathBuf {
    run.join(files::CHECKPOINT)
}

/// The file that names a checkpoint's parts (its commit point).
pub fn meta_path(run: &Path) -> PathBuf {
    checkpoint_dir(run).join("meta.json")
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn tensor_f32(st: &SafeTensors<'_>, name: &str, len: usize) -> Result<Vec<f32>, String> {
    let t = st.tensor(name).map_err(|e| format!("tensor {name}: {e}"))?;
    if t.dtype() != Dtype::F32 || t.data().len() != len * 4 {
        return Err(format!(
            "tensor {name}: {:?} of {} bytes, expected F32 of {len} values",
            t.dtype(),
            t.data().len()
        ));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Writes `ck` as the checkpoint of the run folder `run` (see the module doc).
pub fn save(run: &Path, ck: &Checkpoint, trainer: &Trainer) -> Result<(), UserError> {
    let dir = checkpoint_dir(run);
    std::fs::create_dir_all(&dir)
        .map_err(|e| UserError::file(&dir, format!("cannot create checkpoint folder: {e}")))?;
    let mut tensors: Vec<(String, Vec<u8>)> = vec![
        ("policy.weights".into(), f32_bytes(&ck.params.data)),
        ("policy.adam_m".into(), f32_bytes(&ck.adam.m)),
        ("policy.adam_v".into(), f32_bytes(&ck.adam.v)),
    ];
    if let Some(l) = &ck.learner {
        tensors.push(("learner.weights".into(), f32_bytes(&l.params.data)));
        tensors.push(("learner.adam_m".into(), f32_bytes(&l.adam.m)));
        tensors.push(("learner.adam_v".into(), f32_bytes(&l.adam.v)));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, b)| {
            let view = TensorView::new(Dtype::F32, vec![b.len() / 4], b)
                .expect("a tensor of whole f32 values");
            (n.clone(), view)
        })
        .collect();
    let tensor_bytes = safetensors::serialize(views, None)
        .map_err(|e| UserError::Other(format!("serialising checkpoint tensors: {e}")))?;
    // Encoded from borrows (same bytes as `State`): the trial buffer is copied once,
    // into a buffer sized up front, not cloned and regrown.
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
        learner: ck
            .learner
            .as_ref()
            .map(|l| (Layout::of(&l.params, &l.adam), Bytes(&l.rest))),
    };
    let encoded = codec::encode_with_capacity(&state, blobs + (1 << 16));
    let state_bytes = lz4_flex::compress_prepend_size(&encoded);
    drop(encoded);
    let mut entries = Vec::new();
    for (name, bytes) in [
        (format!("tensors-{}.safetensors", ck.update), &tensor_bytes),
        (format!("state-{}.bin", ck.update), &state_bytes),
    ] {
        files::atomic_write(&dir.join(&name), bytes)?;
        entries.push(FileEntry {
            name,
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        });
    }
    let cfg = &trainer.cfg;
    let meta = Meta {
        format: FORMAT_NAME.into(),
        version: CHECKPOINT_FORMAT,
        update: ck.update,
        frames: ck.frames,
        method: trainer.method.name().into(),
        improver: cfg.improver.to_string(),
        env: cfg.env.clone(),
        seed: cfg.seed,
        files: entries,
    };
    let text = serde_json::to_vec_pretty(&meta).expect("meta serialises");
    files::atomic_write(&meta_path(run), &text)?;
    // The new checkpoint is committed: drop the files no longer named.
    let keep: Vec<&str> = meta.files.iter().map(|f| f.name.as_str()).collect();
    if let Ok(list) = std::fs::read_dir(&dir) {
        for entry in list.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            // Also temporary files of writes a killed process left behind.
            let base = name.strip_prefix('.').unwrap_or(&name);
            let ours = base.starts_with("tensors-") || base.starts_with("state-");
            if ours && !keep.contains(&name.as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// Reads `meta.json` of a run's checkpoint.
pub fn load_meta(run: &Path) -> Result<Meta, CheckpointError> {
    let path = meta_path(run);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let json = checkpoint_dir(run).join(JSON_FORMAT_FILE);
            return Err(if json.exists() {
                CheckpointError::JsonFormat(json)
            } else {
                CheckpointError::Missing(checkpoint_dir(run))
            });
        }
        Err(e) => {
            return Err(CheckpointError::Io {
                path,
                message: e.to_string(),
            })
        }
    };
    let corrupt = |message: String| CheckpointError::Corrupt {
        path: path.clone(),
        message,
    };
    let meta: Meta = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
    if meta.format != FORMAT_NAME || meta.version != CHECKPOINT_FORMAT {
        return Err(corrupt(format!(
            "format {:?} version {}, this bamdp reads {FORMAT_NAME:?} version {CHECKPOINT_FORMAT}",
            meta.format, meta.version
        )));
    }
    if meta.files.len() != 2 {
        return Err(corrupt(format!(
            "{} files listed, expected 2",
            meta.files.len()
        )));
    }
    Ok(meta)
}

/// Reads and verifies a run's checkpoint.
pub fn load(run: &Path) -> Result<Checkpoint, CheckpointError> {
    let meta = load_meta(run)?;
    let dir = checkpoint_dir(run);
    let mut contents = Vec::new();
    for f in &meta.files {
        let path = dir.join(&f.name);
        let bytes = std::fs::read(&path).map_err(|e| CheckpointError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if bytes.len() as u64 != f.bytes || crc32fast::hash(&bytes) != f.crc32 {
            return Err(CheckpointError::Corrupt {
                path,
                message: format!(
                    "{} bytes with CRC-32 {:08x}, meta.json says {} bytes with {:08x} (truncated or changed)",
                    bytes.len(),
                    crc32fast::hash(&bytes),
                    f.bytes,
                    f.crc32
                ),
            });
        }
        contents.push((path, bytes));
    }
    let (tensor_path, tensor_bytes) = &contents[0];
    let (state_path, state_bytes) = &contents[1];
    let state_err = |path: &Path, message: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        message,
    };
    let raw = lz4_flex::decompress_size_prepended(state_bytes)
        .map_err(|e| state_err(state_path, e.to_string()))?;
    let state: State = codec::decode(&raw, "state").map_err(|e| CheckpointError::State {
        path: state_path.clone(),
        source: e,
    })?;
    let st = SafeTensors::deserialize(tensor_bytes)
        .map_err(|e| state_err(tensor_path, e.to_string()))?;
    let read = |layout: Layout, prefix: &str| -> Result<(Params, Adam), CheckpointError> {
        let n = layout
            .slots
            .iter()
            .map(|s| s.offset + s.len())
            .max()
            .unwrap_or(0);
        let get = |name: &str| {
            tensor_f32(&st, &format!("{prefix}.{name}"), n).map_err(|m| state_err(tensor_path, m))
        };
        let (data, m, v) = (get("weights")?, get("adam_m")?, get("adam_v")?);
        Ok(layout.with(data, m, v))
    };
    let (params, adam) = read(state.policy, "policy")?;
    let learner = match state.learner {
        Some((layout, rest)) => {
            let (params, adam) = read(layout, "learner")?;
            Some(LearnerState {
                params,
                adam,
                rest: rest.0,
            })
        }
        None => None,
    };
    let env = serde_json::from_str(&state.env)
        .map_err(|e| state_err(state_path, format!("env state: {e}")))?;
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
            obs_rms: self.obs_rms.clone(),
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
        self.env.load_state(&ck.env)?;
        let mut ck = ck;
        // States saved before planning existed lack the planner's per-row state.
        if ck.actor.trial_step.len() != rows {
            ck.actor.trial_step = vec![0; rows];
        }
        if ck.actor.plan_rngs.len() != rows {
            ck.actor.plan_rngs = plan_streams(self.cfg.seed, streams::ACTIONS, rows);
        }
        match (self.actor.belief.as_mut(), &ck.belief) {
            (Some(b), Some(bytes)) => b.load_state(bytes)?,
            (None, None) => {}
            _ => return mismatch("checkpoint belief state does not match the method"),
        }
        match (self.learner.as_mut(), ck.learner) {
            (Some(l), Some(saved)) => l.load_state(saved)?,
            (None, None) => {}
            _ => return mismatch("checkpoint learner state does not match the method"),
        }
        self.update = ck.update;
        self.frames = ck.frames;
        self.params = ck.params;
        self.adam = ck.adam;
        self.actor.state = ck.actor;
        self.minibatch_rng = ck.minibatch_rng;
        self.obs_rms = ck.obs_rms;
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
