//! MAML's learning test: with a fixed seed and frame budget on the point robot, the
//! meta-trained policy must adapt — on held-out goals its return after one inner step
//! must beat its return before it by more than an inner step achieves from the
//! untrained initial weights.
//!
//! Threshold derivation. Returns are sums over 100 steps of -distance to the goal.
//! Without meta-training, one inner step (policy gradient, step 0.1) on the initial
//! weights already helps a little: the first meta-batch of the same run measures that
//! gap (`return_post - return_pre` of metrics.csv row 1; 8.7 for this seed). MAML
//! must add to it: we require the meta-test gap to exceed the untrained gap by 10, i.e.
//! the adapted policy ends on average 0.1 closer to its goal at every step than the
//! unadapted one beyond what plain fine-tuning gives. Measured with this budget: gap
//! 48.0 (pre -83.1, post -35.1), untrained gap 8.7; see docs/results.md (point robot,
//! MAML-TRPO).

use bamdp::env::Split;
use bamdp::improve::maml::eval::evaluate;
use bamdp::run::eval::EvalArgs;
use bamdp::run::eval_metaworld::Protocol;
use bamdp::run::train::{self, TrainArgs};
use std::path::Path;

const MARGIN_OVER_UNTRAINED: f64 = 10.0;

#[test]
fn maml_adapts_on_the_point_robot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/point_robot/maml.toml");
    // 8 meta-updates of 20 tasks x (10 + 10) episodes x 100 steps = 320k frames.
    let overrides = [
        "run.total_frames=320000",
        "maml.episodes_per_task=10",
        "maml.post_episodes=10",
        "maml.hidden=[32, 32]",
        "seed=3",
    ];
    train::train(&TrainArgs {
        config: Some(config),
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        out: Some(out.clone()),
        resume: false,
        force: false,
        quiet: true,
    })
    .unwrap();
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let first: Vec<f64> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|c| c.parse().unwrap())
        .collect();
    let untrained_gap = first[col("return_post")] - first[col("return_pre")];
    let report = evaluate(&EvalArgs {
        run: &out,
        split: Split::Test,
        num_tasks: Some(100),
        episodes_per_task: Some(10),
        greedy: false,
        summary_episodes: None,
        protocol: Protocol::Trial,
        overrides: &[],
    })
    .unwrap();
    let gap = report.return_post - report.return_pre;
    eprintln!(
        "MAML point robot: pre {:.2} post {:.2} gap {gap:.2}; untrained gap {untrained_gap:.2}",
        report.return_pre, report.return_post
    );
    assert!(
        gap > untrained_gap + MARGIN_OVER_UNTRAINED,
        "meta-test gap {gap:.2} <= untrained gap {untrained_gap:.2} + {MARGIN_OVER_UNTRAINED}"
    );
}
