//! MAML's memory estimate (src/improve/maml/memory.rs), which the run's memory guard
//! refuses configs by, against the heap an update really holds at its peak (measured
//! by a global allocator that tracks live bytes; this file is its own test binary so
//! that no other test allocates meanwhile).

use bamdp::config::Config;
use bamdp::improve::maml::memory::{Phase, UpdateMemory};
use bamdp::improve::maml::train::{build_policy, MamlTrainer};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct PeakTracking;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakTracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size(), Ordering::SeqCst) + l.size();
        PEAK.fetch_max(live, Ordering::SeqCst);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::SeqCst);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: PeakTracking = PeakTracking;

/// The peak of live heap bytes while `f` runs, above what was live when it started.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    f();
    PEAK.load(Ordering::SeqCst) - base
}

/// A small MAML config on the point robot: unequal blocks (3 adaptation, 2
/// post-adaptation episodes) and a network wide enough that the tapes dominate, as on
/// the MetaWorld presets.
fn config(threads: usize, matmul: &str) -> Config {
    let preset = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/point_robot/maml.toml");
    let overrides: Vec<String> = [
        "maml.meta_batch=6",
        "maml.episodes_per_task=3",
        "maml.post_episodes=2",
        "maml.hidden=[256, 256]",
        "maml.cg_iters=3",
        "maml.line_search_steps=3",
        &format!("run.threads={threads}"),
        &format!("maml.matmul={matmul}"),
    ]
    .map(String::from)
    .to_vec();
    Config::load(std::path::Path::new(preset), &overrides).unwrap()
}

#[test]
fn the_estimate_matches_the_peak_of_an_update() {
    // faer's matrix products keep a packing buffer per thread (a few MiB whatever the
    // sizes), which the estimate leaves out: the main thread's is made by a first
    // update here, before measuring; worker threads make their own while they run.
    let before = LIVE.load(Ordering::SeqCst);
    MamlTrainer::new(&config(1, "f64")).unwrap().train_update();
    let gemm_scratch = LIVE.load(Ordering::SeqCst) - before;
    assert!(gemm_scratch < 64 << 20, "{gemm_scratch}");
    // f32 products round into per-thread buffers, which the estimate counts for every
    // thread: the main thread's are made by the first f32 update, inside the peak.
    for (threads, matmul) in [(1, "f64"), (2, "f64"), (1, "f32"), (2, "f32")] {
        let cfg = config(threads, matmul);
        let mut trainer = MamlTrainer::new(&cfg).unwrap();
        let spec = trainer.env.spec().clone();
        let estimate = UpdateMemory::new(
            Phase::Training,
            &build_policy(&cfg, &spec),
            cfg.maml.meta_batch,
            &cfg.maml.train_blocks(),
            spec.episode_len,
            threads,
        );
        // The first update sizes every buffer; its peak is in the outer step.
        let peak = peak_during(|| {
            trainer.train_update();
        });
        let workers = if threads > 1 { threads } else { 0 };
        let expected = estimate.total() + (workers * gemm_scratch) as u128;
        let ratio = expected as f64 / peak as f64;
        eprintln!(
            "threads {threads}, {matmul}: {estimate:?}, packing buffers {workers} x {gemm_scratch}, peak {peak}: ratio {ratio:.3}"
        );
        assert!(
            (0.95..=1.05).contains(&ratio),
            "threads {threads}, {matmul}: estimate {expected} bytes, peak {peak} bytes"
        );
        // The tapes are most of it, as on the MetaWorld presets.
        assert!(estimate.tapes > estimate.total() / 3);
    }
}
