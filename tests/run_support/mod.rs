//! Shared support for tests that compare training runs: a run folder's metrics.csv
//! without its wall-clock columns.

use bamdp::run::train::TIMING_COLUMNS;
use std::path::Path;

/// metrics.csv of run folder `dir`, without the wall-clock columns.
pub fn metrics(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !TIMING_COLUMNS.contains(&header[i]))
        .collect();
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            keep.iter().map(|&i| cells[i].to_string()).collect()
        })
        .collect()
}
