//! TEMPORARY stand-in; replaced by branch `cfg`.
use crate::error::UserError;
use std::io::Write;
use std::path::Path;
pub struct MetricsCsv {
    f: std::fs::File,
}
impl MetricsCsv {
    pub fn create(path: &Path, columns: &[String]) -> Result<Self, UserError> {
        let mut f =
            std::fs::File::create(path).map_err(|e| UserError::file(path, e.to_string()))?;
        writeln!(f, "{}", columns.join(",")).unwrap();
        Ok(MetricsCsv { f })
    }
    pub fn resume(path: &Path, _columns: &[String], last: u64) -> Result<Self, UserError> {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.retain(|l| {
            l.split(',')
                .next()
                .unwrap()
                .parse::<f64>()
                .map_or(true, |u| u <= last as f64)
        });
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
        let f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        Ok(MetricsCsv { f })
    }
    pub fn append(&mut self, v: &[f64]) -> Result<(), UserError> {
        writeln!(
            self.f,
            "{}",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )
        .unwrap();
        Ok(())
    }
}
