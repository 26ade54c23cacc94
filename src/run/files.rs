//! TEMPORARY stand-in; replaced by branch `cfg`.
use crate::error::UserError;
use std::path::Path;
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), UserError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| UserError::file(path, e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| UserError::file(path, e.to_string()))
}
pub enum RunMode {
    Fresh,
    Force,
    Resume,
}
pub fn prepare_run_dir(dir: &Path, mode: RunMode) -> Result<(), UserError> {
    if let RunMode::Force = mode {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::fs::create_dir_all(dir).map_err(|e| UserError::file(dir, e.to_string()))
}
pub struct Provenance;
impl Provenance {
    pub fn collect(_seed: u64, _threads: usize) -> Self {
        Provenance
    }
}
pub fn write_run_json(dir: &Path, _p: &Provenance) -> Result<(), UserError> {
    atomic_write(&dir.join("run.json"), b"{}")
}
