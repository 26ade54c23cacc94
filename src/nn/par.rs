//! A fixed list of work items on up to `threads` threads.
//!
//! Training splits work into a number of items that never depends on the thread count
//! (chunks of trials, the actor and the critic, ...), computes each item alone and
//! combines the results in item order, so the thread count changes only the wall time,
//! never a result.
//!
//! ```
//! use bamdp::nn::par;
//! let squares = par::map(2, 5, |i| i * i);
//! assert_eq!(squares, vec![0, 1, 4, 9, 16]);
//! assert_eq!(par::map(1, 5, |i| i * i), squares);
//! ```

/// `f(0), ..., f(items - 1)`, in item order, computed on `min(threads, items)` threads
/// (the calling thread is one of them).
pub fn map<T: Send>(threads: usize, items: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = threads.clamp(1, items.max(1));
    if workers == 1 {
        return (0..items).map(f).collect();
    }
    let f = &f;
    let mut parts: Vec<Vec<(usize, T)>> = std::thread::scope(|s| {
        let spawned: Vec<_> = (1..workers)
            .map(|w| s.spawn(move || (w..items).step_by(workers).map(|i| (i, f(i))).collect()))
            .collect();
        let mut parts = vec![(0..items).step_by(workers).map(|i| (i, f(i))).collect()];
        parts.extend(
            spawned
                .into_iter()
                .map(|h| h.join().expect("worker thread panicked")),
        );
        parts
    });
    let mut out: Vec<Option<T>> = (0..items).map(|_| None).collect();
    for (i, v) in parts.drain(..).flatten() {
        out[i] = Some(v);
    }
    out.into_iter()
        .map(|v| v.expect("every item computed"))
        .collect()
}

/// Item bounds: `0..total` cut into `items` consecutive ranges of near-equal length
/// (the first ones one longer), independent of any thread count.
pub fn ranges(total: usize, items: usize) -> Vec<std::ops::Range<usize>> {
    let items = items.clamp(1, total.max(1));
    let (base, extra) = (total / items, total % items);
    let mut start = 0;
    (0..items)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_back_in_order_for_any_thread_count() {
        for threads in 1..6 {
            assert_eq!(
                map(threads, 7, |i| 10 * i),
                (0..7).map(|i| 10 * i).collect::<Vec<_>>()
            );
        }
        assert!(map(3, 0, |i| i).is_empty());
    }

    #[test]
    fn ranges_cover_the_total_once() {
        assert_eq!(ranges(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(ranges(2, 5), vec![0..1, 1..2]);
        assert_eq!(ranges(0, 2), vec![0..0]);
    }
}
