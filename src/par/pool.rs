//! A fixed set of worker threads that run one job together, again and again: made once
//! per batch and parked on a condition variable between steps, so a step costs a
//! wake-up instead of a thread spawn.
//!
//! [`Pool::run`] hands the job to every worker, runs it on the calling thread too, and
//! returns once all have finished it; a panic in any of them is re-raised in the
//! caller after all have finished. The job decides how the work is shared (the batch
//! hands out rows one at a time from an atomic counter). Dropping the pool stops and
//! joins its workers.
//!
//! ```
//! use bamdp::par::Pool;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! let pool = Pool::new(2); // the caller and one worker
//! let next = AtomicUsize::new(0);
//! let done = AtomicUsize::new(0);
//! pool.run(&|| {
//!     while next.fetch_add(1, Ordering::Relaxed) < 100 {
//!         done.fetch_add(1, Ordering::Relaxed);
//!     }
//! });
//! assert_eq!(done.into_inner(), 100);
//! ```

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

type Job = dyn Fn() + Sync;

/// The job in flight, its lifetime erased; only dereferenced between the `run` that
/// set it and that `run`'s wait for every worker, while the borrow it came from lives.
#[derive(Clone, Copy)]
struct JobPtr(*const Job);
// SAFETY: the pointee is `Sync`, and `run` keeps it alive until every worker is done.
unsafe impl Send for JobPtr {}

struct State {
    job: Option<JobPtr>,
    /// Bumped by every `run`; a worker runs each generation once.
    generation: u64,
    /// Workers still running the current job.
    running: usize,
    /// The first panic a worker raised in the current job.
    panic: Option<Box<dyn Any + Send>>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    start: Condvar,
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is never held while a job runs, so it cannot be poisoned by one.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Worker threads parked between jobs (see the module doc).
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool running each job on `threads` threads: the caller and `threads - 1`
    /// workers (none for 0 or 1).
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                generation: 0,
                running: 0,
                panic: None,
                shutdown: false,
            }),
            start: Condvar::new(),
            done: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("bamdp-mujoco-{i}"))
                    .spawn(move || work(&shared))
                    .expect("spawn a MuJoCo batch worker thread")
            })
            .collect();
        Pool { shared, workers }
    }

    /// Threads a job runs on, the caller's included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `job` once on every thread; returns when all have finished; re-raises the
    /// first panic (the caller's before a worker's).
    pub fn run(&self, job: &(dyn Fn() + Sync + '_)) {
        if self.workers.is_empty() {
            job();
            return;
        }
        // SAFETY: only the lifetime is erased; the workers stop using the pointer
        // before this function returns or unwinds (it waits for `running == 0`).
        let borrowed: *const (dyn Fn() + Sync + '_) = job;
        let ptr = JobPtr(unsafe {
            std::mem::transmute::<*const (dyn Fn() + Sync + '_), *const Job>(borrowed)
        });
        {
            let mut s = self.shared.lock();
            s.job = Some(ptr);
            s.generation += 1;
            s.running = self.workers.len();
            self.shared.start.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(job));
        let theirs = {
            let mut s = self.shared.lock();
            while s.running > 0 {
                s = self.shared.done.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            s.job = None;
            s.panic.take()
        };
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if let Some(p) = theirs {
            resume_unwind(p);
        }
    }
}

fn work(shared: &Shared) {
    let mut seen = 0;
    loop {
        let job = {
            let mut s = shared.lock();
            while s.generation == seen && !s.shutdown {
                s = shared.start.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            if s.shutdown {
                return;
            }
            seen = s.generation;
            s.job.expect("a job is set while its generation runs")
        };
        // SAFETY: `run` keeps the job alive until `running` drops to 0 below.
        let result = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)() }));
        let mut s = shared.lock();
        if let Err(p) = result {
            s.panic.get_or_insert(p);
        }
        s.running -= 1;
        if s.running == 0 {
            shared.done.notify_all();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.start.notify_all();
        for w in self.workers.drain(..) {
            // A worker's panics are caught inside its loop, so joining cannot fail.
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_thread_runs_every_job_once() {
        for threads in 1..4 {
            let pool = Pool::new(threads);
            let runs = AtomicUsize::new(0);
            for job in 1..=50 {
                pool.run(&|| {
                    runs.fetch_add(1, Ordering::Relaxed);
                });
                assert_eq!(runs.load(Ordering::Relaxed), job * threads);
            }
        }
    }

    #[test]
    fn a_workers_panic_reaches_the_caller_and_the_pool_goes_on() {
        let pool = Pool::new(3);
        let caller = std::thread::current().id();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|| {
                if std::thread::current().id() != caller {
                    panic!("worker failed");
                }
            })
        }));
        let msg = r.unwrap_err();
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"worker failed"));
        let runs = AtomicUsize::new(0);
        pool.run(&|| {
            runs.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(runs.into_inner(), 3);
        drop(pool); // joins the workers; a hang here fails the test by timeout
    }
}
