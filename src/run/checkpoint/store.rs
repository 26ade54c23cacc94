//! A checkpoint folder on disk, whatever trained it: one safetensors file of tensors,
//! one file of everything else ([`crate::codec`] bytes, LZ4-compressed) and
//! `meta.json`, the commit point, naming both with their sizes and CRC-32s.
//!
//! Writing syncs each file once and renames it into place; `meta.json` is written
//! last, atomically, so a crash at any instant leaves the previous checkpoint whole.
//! Reading checks `meta.json`'s format and version and every size and checksum before
//! anything is decoded.
//!
//! Trial buffers are large (100,000 GridNavi trials are 36 million values) and mostly
//! small whole numbers (cells, action indices): [`Column::narrowest`] stores such a
//! column as `U8` when that is exact for every value, and as `F32` otherwise, so no
//! compression pass is needed to keep the file small.
//!
//! ```
//! use bamdp::run::checkpoint::store::{read_f32, Column};
//! let cells = Column::narrowest(&[0.0, 4.0, 2.0], vec![3]);
//! let rewards = Column::narrowest(&[-0.1, 1.0], vec![2]);
//! let bytes = safetensors::serialize(
//!     [("cells", cells.view()), ("rewards", rewards.view())],
//!     None,
//! )
//! .unwrap();
//! let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
//! assert_eq!(st.tensor("cells").unwrap().dtype(), safetensors::Dtype::U8);
//! assert_eq!(read_f32(&st, "cells", Some(3)).unwrap(), vec![0.0, 4.0, 2.0]);
//! assert_eq!(read_f32(&st, "rewards", Some(2)).unwrap(), vec![-0.1, 1.0]);
//! ```

use crate::error::{StateError, UserError};
use crate::run::files;
use safetensors::tensor::{Metadata, TensorInfo, TensorView};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Version of the on-disk format written by this bamdp.
pub const CHECKPOINT_FORMAT: u32 = 3;
/// `meta.json`'s `format` field.
const FORMAT_NAME: &str = "bamdp-checkpoint";
/// The file of the JSON checkpoints of format 1.
const JSON_FORMAT_FILE: &str = "state.json";

/// Why a checkpoint cannot be read.
#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{0}: no checkpoint (the run has not written one yet)")]
    Missing(PathBuf),
    #[error("{0}: a checkpoint of the JSON format 1 (bamdp 0.1); this bamdp reads format {CHECKPOINT_FORMAT} only: train the run again, or evaluate it with the bamdp that wrote it")]
    JsonFormat(PathBuf),
    #[error("{0}: a MAML checkpoint of the former JSON format (theta as JSON numbers); this bamdp reads format {CHECKPOINT_FORMAT} only: train the run again, or evaluate it with the bamdp that wrote it")]
    MamlJson(PathBuf),
    #[error("{path}: a checkpoint of format {found}; this bamdp reads format {CHECKPOINT_FORMAT} only: train the run again, or evaluate it with the bamdp that wrote it")]
    Version { path: PathBuf, found: u64 },
    #[error("{path}: a checkpoint of method {method:?}, which this run's config does not train")]
    OtherMethod { path: PathBuf, method: String },
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

/// What a checkpoint is of: `meta.json` without its list of files.
#[derive(Clone, Debug)]
pub struct Header {
    pub update: u64,
    pub frames: u64,
    pub method: String,
    pub improver: String,
    pub env: String,
    pub seed: u64,
}

/// One tensor to write: its little-endian bytes, dtype and shape.
pub struct Column {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Column {
    /// `values` as `F32`.
    pub fn f32(values: &[f32], shape: Vec<usize>) -> Column {
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for x in values {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        Column {
            dtype: Dtype::F32,
            shape,
            bytes,
        }
    }

    /// `values` as `F64`.
    pub fn f64(values: &[f64], shape: Vec<usize>) -> Column {
        let mut bytes = Vec::with_capacity(values.len() * 8);
        for x in values {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        Column {
            dtype: Dtype::F64,
            shape,
            bytes,
        }
    }

    /// `values` as `U32`.
    pub fn u32(values: &[u32], shape: Vec<usize>) -> Column {
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for x in values {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        Column {
            dtype: Dtype::U32,
            shape,
            bytes,
        }
    }

    /// `values` as `U8` if every value is a whole number in 0..=255 (bit for bit: not
    /// -0.0), else as `F32`; [`read_f32`] gives the same `f32` values back.
    pub fn narrowest(values: &[f32], shape: Vec<usize>) -> Column {
        // Blocks without a branch per value (they vectorise); the first block with a
        // value that is not a byte stops the attempt.
        const BLOCK: usize = 256;
        let mut bytes = vec![0u8; values.len()];
        for (out, block) in bytes.chunks_mut(BLOCK).zip(values.chunks(BLOCK)) {
            let mut exact = true;
            for (o, &x) in out.iter_mut().zip(block) {
                *o = x as u8;
                exact &= (*o as f32).to_bits() == x.to_bits();
            }
            if !exact {
                return Column::f32(values, shape);
            }
        }
        Column {
            dtype: Dtype::U8,
            shape,
            bytes,
        }
    }

    /// The tensor as safetensors sees it.
    pub fn view(&self) -> TensorView<'_> {
        TensorView::new(self.dtype, self.shape.clone(), &self.bytes)
            .expect("a column's bytes match its dtype and shape")
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

/// A safetensors file as pieces (its header, then each tensor's bytes), so it is
/// written and checksummed without first being copied into one buffer. The header is
/// the library's [`Metadata`] and the tensors are in the order [`safetensors::serialize`]
/// puts them (alignment, then name): the same bytes as that function's.
pub struct TensorFile<'a> {
    header: Vec<u8>,
    data: Vec<&'a [u8]>,
}

impl<'a> TensorFile<'a> {
    pub fn new(tensors: &'a [(&str, Column)]) -> Result<TensorFile<'a>, UserError> {
        let mut order: Vec<&(&str, Column)> = tensors.iter().collect();
        order.sort_by(|(ln, l), (rn, r)| r.dtype.cmp(&l.dtype).then(ln.cmp(rn)));
        let mut infos = Vec::with_capacity(order.len());
        let mut offset = 0;
        for (name, c) in &order {
            infos.push((
                name.to_string(),
                TensorInfo {
                    dtype: c.dtype,
                    shape: c.shape.clone(),
                    data_offsets: (offset, offset + c.bytes.len()),
                },
            ));
            offset += c.bytes.len();
        }
        let fail = |e: String| UserError::Other(format!("serialising checkpoint tensors: {e}"));
        let metadata = Metadata::new(None, infos).map_err(|e| fail(e.to_string()))?;
        let mut json = serde_json::to_vec(&metadata).map_err(|e| fail(e.to_string()))?;
        json.resize(json.len().next_multiple_of(8), b' ');
        let mut header = (json.len() as u64).to_le_bytes().to_vec();
        header.extend_from_slice(&json);
        let data = order.iter().map(|(_, c)| c.bytes.as_slice()).collect();
        Ok(TensorFile { header, data })
    }

    /// The file's bytes, piece by piece.
    pub fn pieces(&self) -> Vec<&[u8]> {
        let mut p = vec![self.header.as_slice()];
        p.extend_from_slice(&self.data);
        p
    }
}

/// Writes `pieces` one after the other to a temporary file beside `path`, syncs it and
/// renames it to `path` (the folder is synced once, by the caller, for all files).
/// Returns the CRC-32 and the length of the bytes written.
fn write_synced(path: &Path, pieces: &[&[u8]]) -> Result<(u32, u64), UserError> {
    let fail = |what: &str, e: std::io::Error| UserError::file(path, format!("{what}: {e}"));
    let name = path.file_name().expect("checkpoint files have names");
    let temp = path.with_file_name(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp).map_err(|e| fail("cannot write", e))?;
        let mut crc = crc32fast::Hasher::new();
        let mut len = 0;
        for piece in pieces {
            file.write_all(piece).map_err(|e| fail("cannot write", e))?;
            crc.update(piece);
            len += piece.len() as u64;
        }
        file.sync_all()
            .map_err(|e| fail("cannot sync to disk", e))?;
        drop(file);
        std::fs::rename(&temp, path).map_err(|e| fail("cannot replace", e))?;
        Ok((crc.finalize(), len))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Writes a checkpoint of `header` with `tensors` (by name) and `state` (codec bytes)
/// into the run folder `run`, and commits it (see the module doc).
pub fn write(
    run: &Path,
    header: Header,
    tensors: &[(&str, Column)],
    state: &[u8],
) -> Result<(), UserError> {
    let dir = checkpoint_dir(run);
    std::fs::create_dir_all(&dir)
        .map_err(|e| UserError::file(&dir, format!("cannot create checkpoint folder: {e}")))?;
    let tensor_file = TensorFile::new(tensors)?;
    let state_bytes = lz4_flex::compress_prepend_size(state);
    let mut entries = Vec::new();
    for (name, pieces) in [
        (
            format!("tensors-{}.safetensors", header.update),
            tensor_file.pieces(),
        ),
        (
            format!("state-{}.bin", header.update),
            vec![&state_bytes[..]],
        ),
    ] {
        let (crc32, bytes) = write_synced(&dir.join(&name), &pieces)?;
        entries.push(FileEntry { name, bytes, crc32 });
    }
    // The renames above are durable before meta.json can name them (best effort: not
    // every platform can open a directory).
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    let meta = Meta {
        format: FORMAT_NAME.into(),
        version: CHECKPOINT_FORMAT,
        update: header.update,
        frames: header.frames,
        method: header.method,
        improver: header.improver,
        env: header.env,
        seed: header.seed,
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

/// Reads `meta.json` of a run's checkpoint; refuses other formats and versions by name.
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
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
    if value.get("format").is_none() && value.get("kind").and_then(|k| k.as_str()) == Some("maml") {
        return Err(CheckpointError::MamlJson(path));
    }
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_NAME) {
        return Err(corrupt(format!(
            "format {}, this bamdp reads {FORMAT_NAME:?}",
            value.get("format").unwrap_or(&serde_json::Value::Null)
        )));
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == CHECKPOINT_FORMAT as u64 => {}
        Some(found) => return Err(CheckpointError::Version { path, found }),
        None => return Err(corrupt("no version".into())),
    }
    let meta: Meta = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
    if meta.files.len() != 2 {
        return Err(corrupt(format!(
            "{} files listed, expected 2",
            meta.files.len()
        )));
    }
    Ok(meta)
}

/// A verified checkpoint's files: the tensors file's bytes and the decompressed state.
pub struct Files {
    pub meta: Meta,
    pub tensor_path: PathBuf,
    pub tensor_bytes: Vec<u8>,
    pub state_path: PathBuf,
    pub state: Vec<u8>,
}

impl Files {
    /// The tensors (a view into [`Files::tensor_bytes`]).
    pub fn tensors(&self) -> Result<SafeTensors<'_>, CheckpointError> {
        SafeTensors::deserialize(&self.tensor_bytes).map_err(|e| CheckpointError::Corrupt {
            path: self.tensor_path.clone(),
            message: e.to_string(),
        })
    }

    /// An error about the tensors file.
    pub fn tensor_error(&self, message: String) -> CheckpointError {
        CheckpointError::Corrupt {
            path: self.tensor_path.clone(),
            message,
        }
    }

    /// Decodes the state file as `T`.
    pub fn decode_state<T: serde::de::DeserializeOwned>(&self) -> Result<T, CheckpointError> {
        crate::codec::decode(&self.state, "state").map_err(|e| CheckpointError::State {
            path: self.state_path.clone(),
            source: e,
        })
    }

    /// An error about the state file.
    pub fn state_error(&self, message: String) -> CheckpointError {
        CheckpointError::Corrupt {
            path: self.state_path.clone(),
            message,
        }
    }
}

/// Reads and verifies a run's checkpoint files.
pub fn read(run: &Path) -> Result<Files, CheckpointError> {
    let meta = load_meta(run)?;
    let dir = checkpoint_dir(run);
    let mut contents = Vec::new();
    for f in &meta.files {
        let path = dir.join(&f.name);
        let bytes = std::fs::read(&path).map_err(|e| CheckpointError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let crc = crc32fast::hash(&bytes);
        if bytes.len() as u64 != f.bytes || crc != f.crc32 {
            return Err(CheckpointError::Corrupt {
                path,
                message: format!(
                    "{} bytes with CRC-32 {crc:08x}, meta.json says {} bytes with {:08x} (truncated or changed)",
                    bytes.len(),
                    f.bytes,
                    f.crc32
                ),
            });
        }
        contents.push((path, bytes));
    }
    let (state_path, state_bytes) = contents.pop().expect("two files");
    let (tensor_path, tensor_bytes) = contents.pop().expect("two files");
    let state = lz4_flex::decompress_size_prepended(&state_bytes).map_err(|e| {
        CheckpointError::Corrupt {
            path: state_path.clone(),
            message: e.to_string(),
        }
    })?;
    Ok(Files {
        meta,
        tensor_path,
        tensor_bytes,
        state_path,
        state,
    })
}

fn tensor<'a>(
    st: &'a SafeTensors<'_>,
    name: &str,
) -> Result<safetensors::tensor::TensorView<'a>, String> {
    st.tensor(name).map_err(|e| format!("tensor {name}: {e}"))
}

fn wrong(name: &str, t: &TensorView<'_>, expected: &str) -> String {
    format!(
        "tensor {name}: {:?} of {} bytes, expected {expected}",
        t.dtype(),
        t.data().len()
    )
}

/// The `f32` values of tensor `name`, stored as `F32` or (see [`Column::narrowest`])
/// `U8`; with `len`, exactly that many.
pub fn read_f32(st: &SafeTensors<'_>, name: &str, len: Option<usize>) -> Result<Vec<f32>, String> {
    let t = tensor(st, name)?;
    let width = match t.dtype() {
        Dtype::F32 => 4,
        Dtype::U8 => 1,
        _ => 0,
    };
    let n = t.data().len().checked_div(width).unwrap_or(0);
    if width == 0 || len.is_some_and(|len| len != n) {
        let expected = len.map_or("F32 or U8 values".into(), |l| format!("{l} F32 values"));
        return Err(wrong(name, &t, &expected));
    }
    Ok(if width == 4 {
        t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        t.data().iter().map(|&b| b as f32).collect()
    })
}

/// The `f64` values of tensor `name` (exactly `len` of them).
pub fn read_f64(st: &SafeTensors<'_>, name: &str, len: usize) -> Result<Vec<f64>, String> {
    let t = tensor(st, name)?;
    if t.dtype() != Dtype::F64 || t.data().len() != len * 8 {
        return Err(wrong(name, &t, &format!("{len} F64 values")));
    }
    Ok(t.data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

/// The `u32` values of tensor `name`.
pub fn read_u32(st: &SafeTensors<'_>, name: &str) -> Result<Vec<u32>, String> {
    let t = tensor(st, name)?;
    if t.dtype() != Dtype::U32 {
        return Err(wrong(name, &t, "U32 values"));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}
