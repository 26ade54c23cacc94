//! PPO with `ppo.baseline = "linear"` (Meta-World+'s RL2): the critic is never trained,
//! the value-loss column reports the baseline's fit, and a rollout that does not hold
//! whole trials is refused.

use bamdp::config::Config;
use bamdp::run::trainer::Trainer;
use std::path::Path;

fn config(overrides: &[&str]) -> Config {
    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/functions-1d/rl2.toml");
    let mut sets: Vec<String> = [
        "run.num_envs=4",
        "run.steps_per_update=40",
        "ppo.minibatches=2",
        "policy.hidden=[16]",
        "rl2.gru_hidden=16",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    sets.extend(overrides.iter().map(|s| s.to_string()));
    Config::load(&preset, &sets).unwrap()
}

#[test]
fn the_critic_stays_as_initialised_and_the_policy_learns_from_the_fit() {
    let mut trainer = Trainer::new(&config(&["ppo.baseline=linear"])).unwrap();
    let before = trainer.params.clone();
    let critic: Vec<usize> = (0..before.names.len())
        .filter(|&k| before.names[k].starts_with("critic"))
        .collect();
    assert!(!critic.is_empty());
    for _ in 0..3 {
        let r = trainer.train_update();
        assert!(r.stats.value_loss.is_finite() && r.stats.value_loss > 0.0);
        assert!(r.stats.policy_loss.is_finite());
    }
    for k in 0..before.names.len() {
        let slot = before.slots[k].range();
        let same = before.data[slot.clone()] == trainer.params.data[slot];
        if critic.contains(&k) {
            assert!(same, "{} changed without a value loss", before.names[k]);
        } else if before.names[k].starts_with("actor.out") {
            assert!(!same, "{} did not change", before.names[k]);
        }
    }
    // The values GAE used are the baseline's, not the critic's.
    let mut value_head = Trainer::new(&config(&[])).unwrap();
    value_head.train_update();
    assert_ne!(trainer.buf.values, value_head.buf.values);
}

#[test]
fn rollouts_must_hold_whole_trials() {
    // functions-1d: trials of 2 episodes x 10 queries = 20 steps; 30 does not divide.
    let Err(e) = Trainer::new(&config(&["ppo.baseline=linear", "run.steps_per_update=30"])) else {
        panic!("a 30-step rollout was accepted");
    };
    let msg = e.to_string();
    assert!(
        msg.contains("`ppo.baseline`") && msg.contains("(30)") && msg.contains("(20 steps)"),
        "{msg}"
    );
    assert_eq!(e.exit_code(), 2);
}
