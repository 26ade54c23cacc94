//! A fixed list of work items on up to `threads` threads.
//!
//! Training splits work into a number of items that never depends on the thread count
//! (chunks of trials, the actor and the critic, ...), computes each item alone and
//! combines the results in item order, so the thread count changes only the wall time,
//! never a result.
//!
//! ```
//! use bamdp::par;
//! let squares = par::map(2, 5, |i| i * i);
//! assert_eq!(squares, vec![0, 1, 4, 9, 16]);
//! assert_eq!(par::map(1, 5, |i| i * i), squares);
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

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

/// `f` on every item with scratch of any type `S`, one per thread, taken from `pool` (grown
/// to `threads` entries) and left there for the next call: repeated calls (e.g. MAML's many
/// products) reuse their tapes instead of allocating and faulting them in each time.
/// Threads take the next item as they finish one, so a thread the OS runs less (the
/// machine is shared) holds up the others by at most one item; an item's result never
/// depends on which thread or scratch computed it.
pub fn map_with<T: Sync, R: Send, S: Default + Send>(
    items: &[T],
    threads: usize,
    pool: &mut Vec<S>,
    f: impl Fn(&T, &mut S) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if pool.len() < threads {
        pool.resize_with(threads, S::default);
    }
    if threads == 1 {
        let scratch = &mut pool[0];
        return items.iter().map(|x| f(x, scratch)).collect();
    }
    let next = AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = pool[..threads]
            .iter_mut()
            .map(|scratch| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return out;
                        };
                        out.push((i, f(item, scratch)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread panicked"))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
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
