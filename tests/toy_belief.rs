//! A new learned belief needs no edit to `run/`: a toy belief with its own loss,
//! defined here through the public API only ([`Belief`], [`TrialModel`] — trained by
//! the same [`TrialLearner`] as VariBAD and GLiBRL — and [`Method`]), trains through
//! `bamdp::run::train`, names its own metrics columns,
//! survives a checkpoint exactly and evaluates.
//!
//! The toy belief: per row, the running mean of the trial's rewards so far, scaled by a
//! learned weight `w`; the learner fits `w` so that `w * mean(r_{<t})` predicts `r_t`
//! (squared error), from a buffer of complete trials.

mod run_support;
use bamdp::belief::learner::BeliefLearner;
use bamdp::belief::trial_learner::{TrialLearner, TrialModel, TrialSettings};
use bamdp::belief::trials::TrialRecord;
use bamdp::belief::{Batched, BatchedBelief, Belief, Transition};
use bamdp::config::Config;
use bamdp::env::EnvSpec;
use bamdp::error::UserError;
use bamdp::method::Method;
use bamdp::nn::Params;
use bamdp::rng::Rng;
use bamdp::run::train::{self, TrainArgs};
use serde::{Deserialize, Serialize};
use std::path::Path;

struct MeanReward {
    params: Params,
}

impl MeanReward {
    fn new() -> Self {
        let mut params = Params::new();
        params.bias("toy.w", 1, 0.5);
        MeanReward { params }
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct MeanState {
    sum: Vec<f32>,
    count: Vec<f32>,
}

impl Belief for MeanReward {
    type State = MeanState;
    fn feature_dim(&self) -> usize {
        2
    }
    fn init(&self, rows: usize) -> MeanState {
        MeanState {
            sum: vec![0.0; rows],
            count: vec![0.0; rows],
        }
    }
    fn reset(&self, s: &mut MeanState, mask: &[bool]) {
        for (r, &m) in mask.iter().enumerate() {
            if m {
                s.sum[r] = 0.0;
                s.count[r] = 0.0;
            }
        }
    }
    fn update(&self, s: &mut MeanState, tr: &Transition<'_>) {
        for (r, &x) in tr.reward.iter().enumerate() {
            s.sum[r] += x;
            s.count[r] += 1.0;
        }
    }
    fn features(&self, s: &MeanState, out: &mut [f32]) {
        let w = self.params.data[0];
        for r in 0..s.sum.len() {
            out[2 * r] = w * s.sum[r] / s.count[r].max(1.0);
            out[2 * r + 1] = s.count[r] / 60.0;
        }
    }
    fn gather(&self, from: &MeanState, src: &[usize], into: &mut MeanState) {
        for (i, &j) in src.iter().enumerate() {
            into.sum[i] = from.sum[j];
            into.count[i] = from.count[j];
        }
    }
    fn params_mut(&mut self) -> Option<&mut Params> {
        Some(&mut self.params)
    }
}

/// The toy's loss for [`TrialLearner`]: squared error of `w * mean(r_{<t})` against
/// `r_t`.
struct MeanLoss {
    model: MeanReward,
    /// Test of the non-finite guard: the update after which `w` becomes NaN.
    diverge_after: Option<usize>,
    updates: usize,
}

impl TrialModel for MeanLoss {
    fn columns(&self) -> &'static [&'static str] {
        &["toy_loss", "toy_w"]
    }
    fn params(&self) -> &Params {
        &self.model.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.model.params
    }
    fn loss_and_grad(
        &self,
        batch: &[&TrialRecord],
        _rng: &mut Rng,
        _threads: usize,
        stats: &mut [f64],
        steps: usize,
    ) -> Vec<f32> {
        let w = self.model.params.data[0] as f64;
        let (mut loss, mut grad, mut n) = (0.0, 0.0, 0.0);
        for trial in batch {
            let mut sum = 0.0;
            for (t, &r) in trial.rewards.iter().enumerate() {
                let mean = if t == 0 { 0.0 } else { sum / t as f64 };
                let err = w * mean - r as f64;
                loss += err * err;
                grad += 2.0 * err * mean;
                n += 1.0;
                sum += r as f64;
            }
        }
        stats[0] += loss / n / steps as f64;
        stats[1] = w;
        vec![(grad / n) as f32]
    }
    fn after_step(&mut self) {
        self.updates += 1;
        if self.diverge_after == Some(self.updates) {
            self.model.params.data[0] = f32::NAN;
        }
    }
}

struct Toy {
    diverge_after: Option<usize>,
}

impl Method for Toy {
    fn name(&self) -> &'static str {
        "toy-mean-reward"
    }
    fn about(&self) -> &'static str {
        "a test belief: the trial's mean reward, scaled by a learned weight"
    }
    fn belief(
        &self,
        _cfg: &Config,
        _spec: &EnvSpec,
        rows: usize,
    ) -> Result<Option<Box<dyn BatchedBelief>>, UserError> {
        Ok(Some(Box::new(Batched::new(MeanReward::new(), rows))))
    }
    fn learner(
        &self,
        cfg: &Config,
        spec: &EnvSpec,
        rows: usize,
    ) -> Result<Option<Box<dyn BeliefLearner>>, UserError> {
        let settings = TrialSettings {
            lr: 1e-2,
            num_updates: 1,
            batch_trials: 4,
            buffer_trials: 100,
        };
        let loss = MeanLoss {
            model: MeanReward::new(),
            diverge_after: self.diverge_after,
            updates: 0,
        };
        Ok(Some(Box::new(TrialLearner::for_env(
            loss,
            settings,
            spec,
            rows,
            Rng::stream(cfg.seed, 77, 0),
            "toy",
        ))))
    }
}

static TOY: Toy = Toy {
    diverge_after: None,
};

fn run(out: &Path, frames: u64, resume: bool) {
    run_method(out, frames, resume, &TOY).unwrap();
}

fn run_method(
    out: &Path,
    frames: u64,
    resume: bool,
    method: &'static Toy,
) -> Result<std::path::PathBuf, UserError> {
    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/gridnavi/memoryless.toml");
    train::train_with(
        &TrainArgs {
            config: (!resume).then_some(preset),
            overrides: vec![
                format!("run.total_frames={frames}"),
                "run.num_envs=8".into(),
                "run.steps_per_update=45".into(),
                "ppo.minibatches=2".into(),
                "run.checkpoint_every=3".into(),
            ],
            out: Some(out.to_path_buf()),
            resume,
            force: false,
            quiet: true,
        },
        Some(method),
    )
}

#[test]
fn a_belief_defined_outside_bamdp_trains_resumes_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let per_update = 8 * 45;
    let whole = dir.path().join("whole");
    run(&whole, 8 * per_update, false);
    let split = dir.path().join("split");
    run(&split, 4 * per_update, false);
    run(&split, 8 * per_update, true);

    let text = std::fs::read_to_string(whole.join("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(&header[header.len() - 2..], &["toy_loss", "toy_w"]);
    let last: Vec<f64> = text
        .lines()
        .last()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let w = last[last.len() - 1];
    assert!(
        w.is_finite() && w != 0.5,
        "the toy learner never updated w: {w}"
    );
    assert_eq!(
        run_support::metrics(&whole),
        run_support::metrics(&split),
        "resumed toy-belief run differs from the uninterrupted one"
    );

    let report = bamdp::run::eval::evaluate_with(
        &TOY,
        &bamdp::run::eval::EvalArgs {
            run: &whole,
            split: bamdp::env::Split::Test,
            episodes_per_task: None,
            num_tasks: Some(8),
            greedy: false,
            summary_episodes: None,
            protocol: Default::default(),
            overrides: &[],
        },
    )
    .unwrap();
    assert_eq!(report.method, "toy-mean-reward");
    assert_eq!(report.scores.episode_returns.len(), 4);
}

/// The non-finite guard: a learner whose weight turns NaN after its 3rd update stops
/// the run with exit code 3 at that update, naming the quantity, and the checkpoint
/// stays at the last good update.
#[test]
fn a_non_finite_weight_stops_training_and_keeps_the_last_good_checkpoint() {
    static DIVERGING: Toy = Toy {
        diverge_after: Some(3),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let err = run_method(&out, 20 * 8 * 45, false, &DIVERGING).unwrap_err();
    assert_eq!(err.exit_code(), 3, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("belief parameter toy.w is NaN") && msg.contains("diverged at update"),
        "{msg}"
    );
    let failed: u64 = msg
        .split("diverged at update ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    // Checkpoints every 3 updates: the last one before the failure is intact and loads.
    let ck = bamdp::run::checkpoint::load(&out).unwrap();
    assert_eq!(ck.update, (failed - 1) / 3 * 3, "{msg}");
    assert!(ck.learner.unwrap().params.data[0].is_finite());
    let rows = run_support::metrics(&out);
    assert_eq!(
        rows.len() as u64,
        failed - 1,
        "the diverged update is not in metrics.csv"
    );
}
