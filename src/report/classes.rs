//! Training success per task class over frames, from the runs' `classes.csv`
//! (src/run/class_metrics.rs): one grid per method, classes by frame bins, pooled over
//! seeds, drawn as a heat map. On ML45 a row plays about one trial of each class per
//! update, so single updates say little; bins of many updates show which classes a
//! change in the overall training success comes from.

use super::runs::{Run, Table};

/// Frame bins of a grid.
pub const BINS: usize = 30;

/// A method's training success per class (rows) and frame bin (columns).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassGrid {
    /// Classes in the order of the first run's file (the task list's order).
    pub classes: Vec<String>,
    /// The bins' frame edges, from the start of the earliest logged update (0 for runs
    /// logged from the start) to the longest run's last frame.
    pub edges: Vec<f64>,
    /// Per class, per bin: the share of successful episodes of the bin's trials of the
    /// class over all runs (each update's share weighted by its trials), `None` where
    /// no trial of the class ended.
    pub cells: Vec<Vec<Option<f64>>>,
}

/// The classes of a `classes.csv` table, in its column order.
fn classes_of(t: &Table) -> Vec<String> {
    t.columns
        .iter()
        .filter_map(|c| c.strip_prefix("success/").map(str::to_string))
        .collect()
}

/// The grid of `runs` (those with a `classes.csv`) in `bins` frame bins (fewer when
/// the longest run has fewer updates); `None` when no run has one.
pub fn grid(runs: &[&Run], bins: usize) -> Option<ClassGrid> {
    let tables: Vec<&Table> = runs.iter().filter_map(|r| r.classes.as_ref()).collect();
    let classes = classes_of(tables.first()?);
    let last_frame = tables
        .iter()
        .filter_map(|t| t.column("frames")?.last().copied())
        .fold(0.0f64, f64::max);
    // A run resumed by a binary from before classes.csv logs from that update on: the
    // grid starts where the earliest file does (the start of its first update), so
    // frames nobody logged are not drawn as classes without trials.
    let start = tables
        .iter()
        .filter_map(|t| {
            let f = t.column("frames")?;
            let first = *f.first()?;
            let update = f.get(1).map_or(first, |second| second - first);
            Some((first - update).max(0.0))
        })
        .fold(f64::INFINITY, f64::min);
    // No more bins than the longest run has updates: a bin without an update would
    // read as a class without trials.
    let bins = bins.min(tables.iter().map(|t| t.rows.len()).max().unwrap_or(0));
    if classes.is_empty() || last_frame <= start || bins == 0 {
        return None;
    }
    let width = (last_frame - start) / bins as f64;
    // (successful-episode share x trials, trials) per class and bin.
    let mut sums = vec![vec![(0.0f64, 0.0f64); bins]; classes.len()];
    for t in tables {
        let Some(frames) = t.column("frames") else {
            continue;
        };
        for (c, class) in classes.iter().enumerate() {
            let (Some(n), Some(s)) = (
                t.column(&format!("trials/{class}")),
                t.column(&format!("success/{class}")),
            ) else {
                continue;
            };
            for ((f, n), s) in frames.iter().zip(n).zip(s) {
                if !(n > 0.0 && s.is_finite() && f.is_finite()) {
                    continue;
                }
                // An update's row is logged at its last frame: (start, start + w] is
                // bin 0.
                let b = (((f - start) / width).ceil() as usize).clamp(1, bins) - 1;
                sums[c][b].0 += s * n;
                sums[c][b].1 += n;
            }
        }
    }
    let cells = sums
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|(sn, n)| (n > 0.0).then(|| sn / n))
                .collect()
        })
        .collect();
    Some(ClassGrid {
        classes,
        edges: (0..=bins).map(|i| start + i as f64 * width).collect(),
        cells,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rows: Vec<Vec<f64>>) -> Run {
        let mut r = Run::of_metrics("m", &["frames"], vec![]);
        r.classes = Some(Table {
            columns: [
                "update",
                "frames",
                "trials/a",
                "success/a",
                "trials/b",
                "success/b",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        });
        r
    }

    #[test]
    fn bins_pool_updates_and_seeds_weighted_by_trials() {
        let nan = f64::NAN;
        // Updates end at frames 100..400; two bins: (0, 200] and (200, 400].
        let one = run(vec![
            vec![1.0, 100.0, 1.0, 1.0, 0.0, nan],
            vec![2.0, 200.0, 3.0, 0.0, 2.0, 0.5],
            vec![3.0, 300.0, 0.0, nan, 1.0, 1.0],
            vec![4.0, 400.0, 0.0, nan, 0.0, nan],
        ]);
        let two = run(vec![vec![1.0, 100.0, 2.0, 0.5, 0.0, nan]]);
        let g = grid(&[&one, &two], 2).unwrap();
        assert_eq!(g.classes, ["a", "b"]);
        assert_eq!(g.edges, [0.0, 200.0, 400.0]);
        // Class a, bin 0: (1 x 1.0 + 3 x 0.0 + 2 x 0.5) / 6 trials.
        assert_eq!(g.cells[0], [Some(2.0 / 6.0), None]);
        // Class b: bin 0 has one update's 2 trials, bin 1 one trial.
        assert_eq!(g.cells[1], [Some(0.5), Some(1.0)]);
    }

    #[test]
    fn no_more_bins_than_updates() {
        let one = run(vec![vec![1.0, 100.0, 1.0, 1.0, 1.0, 0.0]]);
        let g = grid(&[&one], 30).unwrap();
        assert_eq!(g.edges, [0.0, 100.0]);
        assert_eq!(g.cells, [[Some(1.0)], [Some(0.0)]]);
    }

    #[test]
    fn a_file_begun_mid_run_starts_the_grid_at_its_first_update() {
        // Logged from update 3 (frames 300) on, 100 frames per update.
        let late = run(vec![
            vec![3.0, 300.0, 1.0, 1.0, 1.0, 0.0],
            vec![4.0, 400.0, 1.0, 0.0, 1.0, 1.0],
        ]);
        let g = grid(&[&late], 30).unwrap();
        assert_eq!(g.edges, [200.0, 300.0, 400.0]);
        assert_eq!(g.cells[0], [Some(1.0), Some(0.0)]);
    }

    #[test]
    fn runs_without_classes_make_no_grid() {
        let r = Run::of_metrics("m", &["frames"], vec![vec![1.0]]);
        assert_eq!(grid(&[&r], 4), None);
    }
}
