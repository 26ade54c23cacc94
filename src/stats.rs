//! Statistics for comparing methods over few seeds, as rliable defines them
//! (Agarwal et al., "Deep RL at the edge of the statistical precipice", 2021).
//!
//! Scores are a `runs x tasks` matrix per method ([`Scores`]); a single-task env has
//! one column. Aggregates pool all runs and tasks:
//! - [`iqm`]: the interquartile mean, scipy's `trim_mean(x, 0.25)` over the flattened
//!   scores: sort, drop `floor(n / 4)` values at each end, average the rest. With 1, 2
//!   or 3 values nothing is dropped (the plain mean).
//! - [`probability_of_improvement`]: P(X > Y) per task (ties count one half, the
//!   Mann-Whitney U statistic over `n_x * n_y`), averaged over tasks.
//! - [`performance_profile`]: the fraction of scores strictly above each threshold.
//!
//! [`Bootstrap`] gives percentile confidence intervals by the stratified bootstrap:
//! each resample draws, for every task separately, `runs` runs with replacement (so
//! tasks are never mixed), from a fixed-seed [`Rng`] stream, so a report is identical
//! every time it is built. One run gives a zero-width interval, not an error.
//!
//! ```
//! use bamdp::stats::{iqm, Bootstrap, Scores};
//! // 8 values: the lowest two and the highest two are trimmed.
//! assert_eq!(iqm(&[9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0]), 4.5);
//! let scores = Scores::new(4, 1, vec![0.2, 0.4, 0.6, 0.8]).unwrap();
//! let ci = Bootstrap::default().interval(&scores, |s| iqm(s.values()));
//! assert!(ci.lo <= 0.5 && 0.5 <= ci.hi);
//! ```

use crate::rng::Rng;
use thiserror::Error;

/// Why a score matrix cannot be built.
#[derive(Debug, Error, PartialEq)]
pub enum StatsError {
    #[error("no scores: a score matrix needs at least one run and one task")]
    Empty,
    #[error("{values} scores do not fill {runs} runs x {tasks} tasks")]
    Shape {
        runs: usize,
        tasks: usize,
        values: usize,
    },
    #[error("score {value} of run {run}, task {task} is not a finite number")]
    NotFinite { run: usize, task: usize, value: f64 },
}

/// One method's scores: `runs x tasks`, row-major (rliable's `(num_runs, num_tasks)`).
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    runs: usize,
    tasks: usize,
    values: Vec<f64>,
}

impl Scores {
    /// `values[run * tasks + task]`; every value finite, at least one of each.
    pub fn new(runs: usize, tasks: usize, values: Vec<f64>) -> Result<Scores, StatsError> {
        if runs == 0 || tasks == 0 {
            return Err(StatsError::Empty);
        }
        if values.len() != runs * tasks {
            return Err(StatsError::Shape {
                runs,
                tasks,
                values: values.len(),
            });
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(StatsError::NotFinite {
                run: i / tasks,
                task: i % tasks,
                value: values[i],
            });
        }
        Ok(Scores {
            runs,
            tasks,
            values,
        })
    }

    /// One score per run of a single-task env.
    pub fn single_task(values: Vec<f64>) -> Result<Scores, StatsError> {
        Scores::new(values.len(), 1, values)
    }

    pub fn runs(&self) -> usize {
        self.runs
    }

    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// All scores, row-major.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    pub fn get(&self, run: usize, task: usize) -> f64 {
        self.values[run * self.tasks + task]
    }
}

/// Arithmetic mean (NaN for no values).
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Interquartile mean: scipy's `trim_mean(values, 0.25)`. Sorts, drops
/// `floor(n / 4)` values at each end and averages the rest (NaN for no values).
pub fn iqm(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let cut = sorted.len() / 4;
    mean(&sorted[cut..sorted.len() - cut])
}

/// P(X > Y), averaged over tasks: for each task the fraction of run pairs where X's
/// score is higher, ties counting one half. `x` and `y` may have different numbers of
/// runs, but must have the same tasks.
pub fn probability_of_improvement(x: &Scores, y: &Scores) -> f64 {
    assert_eq!(
        x.tasks, y.tasks,
        "probability of improvement over different tasks"
    );
    let mut total = 0.0;
    for task in 0..x.tasks {
        let mut wins = 0.0;
        for i in 0..x.runs {
            for j in 0..y.runs {
                let (a, b) = (x.get(i, task), y.get(j, task));
                wins += if a > b {
                    1.0
                } else if a == b {
                    0.5
                } else {
                    0.0
                };
            }
        }
        total += wins / (x.runs * y.runs) as f64;
    }
    total / x.tasks as f64
}

/// Score distribution: for each threshold `tau`, the fraction of all runs x tasks
/// scores strictly above it (rliable's `create_performance_profile` default).
pub fn performance_profile(scores: &Scores, taus: &[f64]) -> Vec<f64> {
    let n = scores.values.len() as f64;
    taus.iter()
        .map(|&tau| scores.values.iter().filter(|&&v| v > tau).count() as f64 / n)
        .collect()
}

/// The `q`-quantile (`q` in [0, 1]) of sorted values by linear interpolation between
/// order statistics (numpy's default `percentile` method).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// A confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

/// Stratified-bootstrap percentile intervals with a fixed-seed generator.
#[derive(Clone, Copy, Debug)]
pub struct Bootstrap {
    /// Number of resamples.
    pub reps: usize,
    /// Coverage, e.g. 0.95.
    pub level: f64,
    /// Seed of the resampling stream: the same seed gives the same intervals.
    pub seed: u64,
}

impl Default for Bootstrap {
    /// 2000 resamples (rliable's default for profiles), 95% coverage, seed 0.
    fn default() -> Self {
        Bootstrap {
            reps: 2000,
            level: 0.95,
            seed: 0,
        }
    }
}

/// Stream label of the bootstrap's generator (apart from the training streams).
const BOOTSTRAP_STREAM: u64 = 0xB007;

impl Bootstrap {
    fn rng(&self, index: u64) -> Rng {
        Rng::stream(self.seed, BOOTSTRAP_STREAM, index)
    }

    /// The statistic on `reps` stratified resamples of `scores`, in resample order.
    pub fn distribution(&self, scores: &Scores, stat: impl Fn(&Scores) -> f64) -> Vec<f64> {
        let mut rng = self.rng(0);
        let mut sample = scores.clone();
        (0..self.reps)
            .map(|_| {
                resample_into(scores, &mut sample, &mut rng);
                stat(&sample)
            })
            .collect()
    }

    /// Percentile interval of `stat` over stratified resamples of `scores`.
    pub fn interval(&self, scores: &Scores, stat: impl Fn(&Scores) -> f64) -> Interval {
        self.percentiles(self.distribution(scores, stat))
    }

    /// One interval per component of a vector statistic (e.g. a performance profile
    /// at several thresholds), all from the same resamples.
    pub fn intervals(&self, scores: &Scores, stat: impl Fn(&Scores) -> Vec<f64>) -> Vec<Interval> {
        let mut rng = self.rng(0);
        let mut sample = scores.clone();
        let draws: Vec<Vec<f64>> = (0..self.reps)
            .map(|_| {
                resample_into(scores, &mut sample, &mut rng);
                stat(&sample)
            })
            .collect();
        let width = draws.first().map_or(0, Vec::len);
        (0..width)
            .map(|i| self.percentiles(draws.iter().map(|d| d[i]).collect()))
            .collect()
    }

    /// Interval of a two-sample statistic (e.g. probability of improvement), each
    /// sample resampled independently and stratified by task.
    pub fn interval_pair(
        &self,
        x: &Scores,
        y: &Scores,
        stat: impl Fn(&Scores, &Scores) -> f64,
    ) -> Interval {
        let mut rng = self.rng(1);
        let (mut sx, mut sy) = (x.clone(), y.clone());
        let draws = (0..self.reps)
            .map(|_| {
                resample_into(x, &mut sx, &mut rng);
                resample_into(y, &mut sy, &mut rng);
                stat(&sx, &sy)
            })
            .collect();
        self.percentiles(draws)
    }

    fn percentiles(&self, mut draws: Vec<f64>) -> Interval {
        draws.sort_by(f64::total_cmp);
        let alpha = (1.0 - self.level) / 2.0;
        Interval {
            lo: quantile_sorted(&draws, alpha),
            hi: quantile_sorted(&draws, 1.0 - alpha),
        }
    }
}

/// Fill `sample` with a stratified resample of `scores`: every cell (run, task) takes
/// the task's score of a uniformly drawn run.
fn resample_into(scores: &Scores, sample: &mut Scores, rng: &mut Rng) {
    for run in 0..scores.runs {
        for task in 0..scores.tasks {
            let from = rng.below(scores.runs as u64) as usize;
            sample.values[run * scores.tasks + task] = scores.get(from, task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iqm_by_hand() {
        // n < 4: nothing trimmed.
        assert_eq!(iqm(&[3.0]), 3.0);
        assert_eq!(iqm(&[1.0, 4.0]), 2.5);
        assert_eq!(iqm(&[1.0, 2.0, 9.0]), 4.0);
        // n = 4: one trimmed at each end.
        assert_eq!(iqm(&[10.0, 1.0, 2.0, 3.0]), 2.5);
        // n = 5: floor(5/4) = 1 at each end -> mean of the middle three.
        assert_eq!(iqm(&[5.0, 1.0, 4.0, 2.0, 3.0]), 3.0);
        // n = 10: 2 at each end -> mean of 6 values.
        let xs = [0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 7.0, 9.0];
        assert_eq!(iqm(&xs), 9.0 / 6.0);
        // Ties across the cut do not matter: the values are what they are.
        assert_eq!(iqm(&[1.0, 1.0, 1.0, 1.0]), 1.0);
        assert!(iqm(&[]).is_nan());
    }

    #[test]
    fn one_seed_gives_a_zero_width_interval() {
        let s = Scores::single_task(vec![0.7]).unwrap();
        let ci = Bootstrap::default().interval(&s, |s| iqm(s.values()));
        assert_eq!(ci, Interval { lo: 0.7, hi: 0.7 });
    }

    #[test]
    fn two_and_three_seeds_cover_the_range() {
        for xs in [vec![0.0, 1.0], vec![0.0, 0.5, 1.0]] {
            let s = Scores::single_task(xs).unwrap();
            let ci = Bootstrap::default().interval(&s, |s| iqm(s.values()));
            assert!(ci.lo >= 0.0 && ci.hi <= 1.0 && ci.lo < ci.hi, "{ci:?}");
        }
    }

    #[test]
    fn stratified_resamples_never_mix_tasks() {
        // Task 0 scores are all < 1, task 1 all > 10: every resample keeps that.
        let s = Scores::new(3, 2, vec![0.1, 11.0, 0.2, 12.0, 0.3, 13.0]).unwrap();
        let d = Bootstrap::default().distribution(&s, |r| {
            assert!((0..r.runs()).all(|i| r.get(i, 0) < 1.0 && r.get(i, 1) > 10.0));
            0.0
        });
        assert_eq!(d.len(), 2000);
    }

    #[test]
    fn probability_of_improvement_with_ties() {
        let x = Scores::single_task(vec![1.0, 2.0]).unwrap();
        let y = Scores::single_task(vec![1.0, 3.0, 0.0]).unwrap();
        // Pairs: (1,1)=.5 (1,3)=0 (1,0)=1 (2,1)=1 (2,3)=0 (2,0)=1 -> 3.5 / 6.
        assert_eq!(probability_of_improvement(&x, &y), 3.5 / 6.0);
        assert_eq!(probability_of_improvement(&x, &x), 0.5);
        let a = probability_of_improvement(&x, &y) + probability_of_improvement(&y, &x);
        assert!((a - 1.0).abs() < 1e-15);
    }

    #[test]
    fn profile_is_strictly_above() {
        let s = Scores::single_task(vec![0.0, 0.5, 0.5, 1.0]).unwrap();
        assert_eq!(
            performance_profile(&s, &[-1.0, 0.0, 0.5, 1.0]),
            vec![1.0, 0.75, 0.25, 0.0]
        );
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let xs = [1.0, 2.0, 4.0, 8.0];
        assert_eq!(quantile_sorted(&xs, 0.0), 1.0);
        assert_eq!(quantile_sorted(&xs, 1.0), 8.0);
        // h = 3 * 0.5 = 1.5 -> 2 + 0.5 * (4 - 2).
        assert_eq!(quantile_sorted(&xs, 0.5), 3.0);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert_eq!(Scores::new(0, 1, vec![]), Err(StatsError::Empty));
        assert!(matches!(
            Scores::new(2, 2, vec![1.0; 3]),
            Err(StatsError::Shape { .. })
        ));
        assert!(matches!(
            Scores::new(1, 2, vec![1.0, f64::NAN]),
            Err(StatsError::NotFinite { task: 1, .. })
        ));
    }
}
