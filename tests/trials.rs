//! Trial records, the ring buffer of recent trials and the collector that assembles
//! trials from batched transitions.

use bamdp::belief::trials::{TrialBuffer, TrialCollector, TrialRecord};
use bamdp::belief::Transition;
use bamdp::rng::Rng;

/// A one-step trial tagged `k` everywhere.
fn tagged(k: u32) -> TrialRecord {
    let mut t = TrialRecord::default();
    t.push_step(&[k as f32, 0.0], &[k as f32], k as f32, &[k as f32, 1.0]);
    t
}

#[test]
fn trial_buffer_is_a_ring_and_round_trips() {
    let mut buf = TrialBuffer::new(3, 2, 1);
    assert!(buf.is_empty());
    for k in 0..5u32 {
        buf.push(tagged(k));
        assert_eq!(buf.len(), (k as usize + 1).min(3));
    }
    let ages: Vec<f32> = buf.iter_oldest_first().map(|t| t.actions[0]).collect();
    assert_eq!(ages, vec![2.0, 3.0, 4.0]);
    // The two oldest slots were overwritten in place.
    assert_eq!(buf.get(0).actions, vec![3.0]);
    assert_eq!(buf.get(1).actions, vec![4.0]);
    assert_eq!(buf.get(2).actions, vec![2.0]);

    let mut rng = Rng::new(1);
    for _ in 0..50 {
        let mut s = buf.sample(2, &mut rng);
        assert_eq!(s.len(), 2);
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 2, "sampled without replacement");
        assert!(s.iter().all(|&i| i < 3));
    }
    let mut all = buf.sample(10, &mut rng);
    all.sort();
    assert_eq!(all, vec![0, 1, 2]);
    assert_eq!(buf.gather(&[2, 0])[0].actions, vec![2.0]);

    let json = serde_json::to_string(&buf).unwrap();
    let mut back: TrialBuffer = serde_json::from_str(&json).unwrap();
    assert_eq!(back, buf);
    back.push(tagged(9));
    buf.push(tagged(9));
    assert_eq!(back, buf, "the write position survives the round trip");
    assert_eq!(
        back.iter_oldest_first()
            .map(|t| t.actions[0])
            .collect::<Vec<_>>(),
        vec![3.0, 4.0, 9.0]
    );
}

#[test]
fn trial_buffer_columns_round_trip_a_wrapped_ring_of_unequal_trials() {
    let mut buf = TrialBuffer::new(4, 2, 1);
    for k in 0..6u32 {
        let mut t = TrialRecord::default();
        // Trial k has k + 1 steps with values that tell the fields apart.
        for s in 0..=k {
            let v = (10 * k + s) as f32;
            t.push_step(&[v, -v], &[v + 0.5], v * 0.1, &[v + 1.0, 7.0]);
        }
        buf.push(t);
        let c = buf.to_columns();
        assert_eq!(c.lengths.len(), buf.len());
        assert_eq!(c.rewards.len(), c.lengths.iter().sum::<u32>() as usize);
        assert_eq!(TrialBuffer::from_columns(&c).unwrap(), buf, "after {k}");
    }
    // Slot order and write position survive: the next push lands in the same slot.
    let mut back = TrialBuffer::from_columns(&buf.to_columns()).unwrap();
    back.push(tagged(9));
    buf.push(tagged(9));
    assert_eq!(back, buf);
    // Columns that do not add up are an error, not a panic.
    let mut c = buf.to_columns();
    c.obs.pop();
    let e = TrialBuffer::from_columns(&c).unwrap_err();
    assert!(e.contains("do not hold"), "{e}");
    let mut c = buf.to_columns();
    c.next = c.capacity;
    assert!(TrialBuffer::from_columns(&c).is_err());
}

#[test]
#[should_panic(expected = "trial actions")]
fn trial_buffer_rejects_a_trial_of_the_wrong_action_width() {
    let mut buf = TrialBuffer::new(3, 2, 2);
    buf.push(tagged(1));
}

#[test]
fn trial_collector_feeds_complete_trials_to_the_buffer() {
    // Two rows, 2-D observations, 2-D continuous actions.
    let mut col = TrialCollector::new(2, 2, 2);
    let mut buf = TrialBuffer::new(10, 2, 2);
    for t in 0..5 {
        let tf = t as f32;
        let obs = [tf, 0.0, tf, 10.0];
        let next = [tf, 1.0, tf, 2.0];
        col.record(&Transition {
            obs: &obs,
            action: &[1.0, -1.0, tf, -tf],
            reward: &[-0.1, tf],
            next_obs: &next,
            episode_end: &[false, false],
        });
        // Row 1's trial ends after 3 steps; row 0's after 5.
        col.finish(&[t == 4, t == 2], &mut buf);
    }
    assert_eq!(buf.len(), 2);
    let first = buf.get(0);
    assert_eq!(first.obs, vec![0.0, 10.0, 1.0, 10.0, 2.0, 10.0]);
    assert_eq!(first.actions, vec![0.0, -0.0, 1.0, -1.0, 2.0, -2.0]);
    assert_eq!(first.rewards, vec![0.0, 1.0, 2.0]);
    assert_eq!(first.next_obs, vec![0.0, 2.0, 1.0, 2.0, 2.0, 2.0]);
    let second = buf.get(1);
    assert_eq!(second.len(), 5);
    assert_eq!(second.actions[8..], [1.0, -1.0]);
    assert_eq!(second.obs[8..], [4.0, 0.0]);
    assert_eq!(col.running[1].len(), 2);
    let back: TrialCollector = serde_json::from_str(&serde_json::to_string(&col).unwrap()).unwrap();
    assert_eq!(back, col);
}
