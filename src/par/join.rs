//! Two independent pieces of work side by side.
//!
//! Where a job splits into exactly two parts that read shared inputs and write disjoint
//! outputs (the actor and the critic, a GRU's input and recurrent weight gradients),
//! the second runs on a scoped thread while the calling thread runs the first. Each part
//! computes exactly what it would alone, so the thread count changes only the wall time.
//!
//! ```
//! use bamdp::par;
//! let data = [1.0, 2.0, 3.0];
//! let sum = || data.iter().sum::<f64>();
//! let max = || data.iter().fold(f64::MIN, |m, &x| m.max(x));
//! assert_eq!(par::join(2, sum, max), (6.0, 3.0));
//! assert_eq!(par::join(1, || 1, || 2), (1, 2));
//! ```

/// `(a(), b())`: with `threads > 1`, `b` runs on a scoped thread while the calling
/// thread runs `a`; otherwise `a` then `b` on the calling thread. A panic in either
/// reaches the caller unchanged.
pub fn join<RA, RB: Send>(
    threads: usize,
    a: impl FnOnce() -> RA,
    b: impl FnOnce() -> RB + Send,
) -> (RA, RB) {
    if threads <= 1 {
        let ra = a();
        return (ra, b());
    }
    std::thread::scope(|s| {
        let hb = s.spawn(b);
        let ra = a();
        let rb = hb.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (ra, rb)
    })
}

#[cfg(test)]
mod tests {
    use super::join;
    use std::thread;

    #[test]
    fn the_second_part_runs_on_another_thread_only_with_threads() {
        let id = || thread::current().id();
        let (a, b) = join(2, id, id);
        assert_ne!(a, b);
        assert_eq!(a, id());
        let (a, b) = join(1, id, id);
        assert_eq!((a, b), (id(), id()));
    }

    #[test]
    #[should_panic(expected = "second part")]
    fn a_panic_on_the_scoped_thread_reaches_the_caller() {
        join(2, || (), || panic!("second part"));
    }
}
