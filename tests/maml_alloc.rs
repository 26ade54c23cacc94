//! MAML's rollouts allocate nothing per env step: once a collector's buffers are sized,
//! a meta-batch with twice the episodes (twice the steps) makes the same number of
//! allocations (those per block: advantages, the baseline fit, the inner step).

mod common;
use bamdp::env::{self, Split};
use bamdp::improve::maml::meta::Maml;
use bamdp::improve::maml::policy::{Activation, Head, Policy};
use bamdp::improve::maml::rollout::{AdvantageSettings, Collector};
use bamdp::rng::Rng;
use common::allocs;

fn allocations_of_second_meta_batch(episodes: usize, threads: usize) -> usize {
    let mut env = env::make_with(
        "point_robot",
        3,
        Split::Train,
        1,
        Some(2 * episodes),
        &Default::default(),
    )
    .unwrap();
    let policy = Policy::new(2, &[16, 16], Activation::Tanh, Head::Gaussian { dim: 2 });
    let theta = policy.init(&mut Rng::new(1));
    let mut collector = Collector::new(
        policy.clone(),
        env.as_ref(),
        vec![episodes, episodes],
        vec![false, false],
        AdvantageSettings {
            gamma: 0.99,
            gae_lambda: 1.0,
            normalize: true,
        },
        (0..3).map(|r| Rng::stream(1, 3, r)).collect(),
    );
    let maml = Maml {
        policy: &policy,
        inner_lr: 0.1,
        first_order: false,
        threads,
    };
    collector.collect(env.as_mut(), &theta, &maml);
    let before = allocs();
    let (frames, _) = collector.collect(env.as_mut(), &theta, &maml);
    assert_eq!(frames, 3 * 2 * episodes as u64 * 100);
    allocs() - before
}

#[test]
fn rollouts_do_not_allocate_per_step() {
    // With 2 threads acting is shared with a parked worker thread (no spawn per step).
    for threads in [1, 2] {
        let short = allocations_of_second_meta_batch(2, threads);
        let long = allocations_of_second_meta_batch(4, threads);
        // 1,200 more env steps; a per-step allocation would add at least that many.
        assert!(
            long <= short + 20,
            "threads {threads}: {short} allocations for 2+2 episodes, {long} for 4+4"
        );
    }
}
