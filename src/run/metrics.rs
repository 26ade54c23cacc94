//! `metrics.csv`: one row of numbers per logged update, first column `update`.
//!
//! Values are written so they read back exactly (shortest round-trip form of f64;
//! `update` and `frames` as plain integers). On resume, rows logged after the
//! checkpoint are dropped so the file continues without duplicates.

use crate::error::UserError;
use crate::run::files::atomic_write;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An open `metrics.csv`, appended to one row at a time.
#[derive(Debug)]
pub struct MetricsCsv {
    path: PathBuf,
    columns: Vec<String>,
    file: File,
}

impl MetricsCsv {
    /// Create (or truncate) `path` and write the header `columns` (the first must be `update`).
    pub fn create(path: &Path, columns: &[String]) -> Result<MetricsCsv, UserError> {
        let header = header_line(path, columns)?;
        let mut file = File::create(path)
            .map_err(|e| UserError::file(path, format!("cannot create metrics file: {e}")))?;
        file.write_all(header.as_bytes())
            .map_err(|e| UserError::file(path, format!("cannot write: {e}")))?;
        Ok(MetricsCsv {
            path: path.to_path_buf(),
            columns: columns.to_vec(),
            file,
        })
    }

    /// Continue `path` after a checkpoint at update `last_update`: keep the header and
    /// the rows whose `update` is `<= last_update` (rewritten atomically), then append.
    /// A missing file is created. A resume may add columns (a setting that logs more,
    /// given with `--set`): the kept rows are rewritten in `columns`' order with `NaN`
    /// in the new ones. A column of the file missing from `columns` is an error, since
    /// resuming would drop what it logged.
    pub fn resume(
        path: &Path,
        columns: &[String],
        last_update: u64,
    ) -> Result<MetricsCsv, UserError> {
        let header = header_line(path, columns)?;
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return MetricsCsv::create(path, columns)
            }
            Err(e) => return Err(UserError::file(path, format!("cannot read: {e}"))),
        };
        let mut lines = text.lines();
        let found: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
        // For each of this run's columns, where the file has it (None: added now).
        let source: Vec<Option<usize>> = columns
            .iter()
            .map(|c| found.iter().position(|f| f == c))
            .collect();
        let dropped: Vec<&str> = found
            .iter()
            .filter(|f| !columns.iter().any(|c| c == *f))
            .copied()
            .collect();
        if !dropped.is_empty() || source[0] != Some(0) {
            return Err(UserError::file(
                path,
                format!(
                    "columns {:?} differ from this run's {:?} (it would not log {dropped:?}); \
                     cannot resume into it: resume with the settings the run was trained with",
                    found.join(","),
                    header.trim_end()
                ),
            ));
        }
        let mut kept = header;
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            let update = fields[0].parse::<f64>().ok();
            // A torn last line (crash mid-write) has too few fields: drop it too.
            if fields.len() == found.len() && update.is_some_and(|u| u <= last_update as f64) {
                let row: Vec<&str> = source
                    .iter()
                    .map(|s| s.map_or("NaN", |i| fields[i]))
                    .collect();
                kept.push_str(&row.join(","));
                kept.push('\n');
            }
        }
        atomic_write(path, kept.as_bytes())?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| UserError::file(path, format!("cannot open for appending: {e}")))?;
        Ok(MetricsCsv {
            path: path.to_path_buf(),
            columns: columns.to_vec(),
            file,
        })
    }

    /// The column names, `update` first.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Append one row (one value per column) and flush it to the OS.
    pub fn append(&mut self, values: &[f64]) -> Result<(), UserError> {
        if values.len() != self.columns.len() {
            return Err(UserError::file(
                &self.path,
                format!(
                    "row has {} values for {} columns",
                    values.len(),
                    self.columns.len()
                ),
            ));
        }
        let mut line = String::new();
        for (i, (column, &value)) in self.columns.iter().zip(values).enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&format_value(column, value));
        }
        line.push('\n');
        // One write per row: unbuffered, so the row is with the OS once this returns.
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| UserError::file(&self.path, format!("cannot write: {e}")))
    }
}

impl Drop for MetricsCsv {
    fn drop(&mut self) {
        let _ = self.file.sync_data();
    }
}

/// `update`/`frames` as integers when integral; everything else in `{}` (shortest
/// representation that parses back to the same f64).
fn format_value(column: &str, value: f64) -> String {
    let counter = column == "update" || column == "frames";
    if counter && value.fract() == 0.0 && value.abs() < 9.007_199_254_740_992e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

fn header_line(path: &Path, columns: &[String]) -> Result<String, UserError> {
    if columns.first().map(String::as_str) != Some("update") {
        return Err(UserError::file(
            path,
            "the first metrics column must be `update`",
        ));
    }
    if let Some(bad) = columns
        .iter()
        .find(|c| c.is_empty() || c.contains([',', '\n', '\r', '"']))
    {
        return Err(UserError::file(
            path,
            format!("invalid metrics column name {bad:?}"),
        ));
    }
    Ok(format!("{}\n", columns.join(",")))
}
