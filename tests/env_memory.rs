//! The bytes a native MuJoCo env row holds (`BatchEnv::row_bytes`, from MuJoCo's own
//! sizes), which the memory guards multiply by the rows a config asks for, against the
//! resident memory a batch really adds per row (`/proc/self/statm`). One test in its
//! own binary, so that no other test allocates while it measures.
//!
//! Needs `pip install -r python/requirements.txt`; without the packages it prints a
//! notice and returns.

use bamdp::env::{self, EnvOptions, Split, StepOut};
mod python_support;

/// Resident bytes of this process.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf only reads a system constant.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// (row_bytes of a one-row batch, resident bytes per row that a `rows`-row batch adds
/// once it has played `trials` trials' first steps: each trial a new task, which for a
/// MetaWorld benchmark row is mostly of another class, whose simulator replaces the
/// last one).
fn measure(name: &str, rows: usize, trials: usize) -> (usize, f64) {
    let options = EnvOptions::default();
    // The one-row batch keeps the family (compiled models) alive, so the big batch
    // shares it and adds only its rows.
    let probe = env::make(name, 1, Split::Train, 0, &options).unwrap();
    let before = resident();
    let mut batch = env::make(name, rows, Split::Train, 0, &options).unwrap();
    // A few steps write the simulation data a run writes (contacts, solver).
    let spec = batch.spec().clone();
    let mut obs = vec![0.0; rows * spec.obs_dim];
    let mut out = StepOut::new(rows, spec.obs_dim);
    let actions = vec![0.5; rows * spec.action.width()];
    for _ in 0..trials {
        batch.reset(&mut obs);
        for _ in 0..20 {
            batch.step(&actions, &mut out);
        }
    }
    let added = resident().saturating_sub(before) as f64 / rows as f64;
    assert_eq!(batch.num_envs(), rows);
    // Stepping uses a little more of each row's arena than the probe's reset did (and
    // a MetaWorld benchmark row's data differs a little by class).
    let (stepped, probed) = (batch.row_bytes() as f64, probe.row_bytes() as f64);
    assert!(
        (0.95 * probed..=1.1 * probed).contains(&stepped),
        "{name}: a stepped row holds {stepped} bytes, a fresh one {probed}"
    );
    (probe.row_bytes(), added)
}

#[test]
fn a_native_row_reports_the_memory_it_holds() {
    if !python_support::can_import("mujoco, gymnasium, metaworld", "env row memory test") {
        return;
    }
    // First, on a heap with little freed memory to reuse (which would hide growth):
    // locomotion rows share their model and hold only their data (~210 KB, most of it
    // the mjData struct's solver statistics, which mj_resetData zeroes), of which the
    // kernel makes resident only the pages MuJoCo writes: the figure bounds the growth
    // from above, within 3x (irrelevant to the guards at this size; what matters is
    // that it does not miss memory).
    let rows = 256;
    let (figure, measured) = measure("cheetah-vel", rows, 1);
    eprintln!(
        "cheetah-vel: row_bytes {figure}, resident growth per row {measured:.0} ({rows} rows)"
    );
    assert!(
        (measured..=3.0 * measured).contains(&(figure as f64)),
        "cheetah-vel: row_bytes {figure} vs {measured:.0} bytes resident per row ({rows} rows)"
    );
    // A MetaWorld row holds one copy of its current class's model (~21 MB, meshes and
    // textures), an ML10 row the largest of its split's, whichever class it plays: the
    // figure is the resident growth within 1.5x, also after the ML10 rows have
    // switched class five times (dropped models must not stay resident). Sizes kept to
    // a few hundred MB in all.
    for (name, rows, trials) in [("ml1-reach", 16, 1), ("ml10", 8, 6)] {
        let (figure, measured) = measure(name, rows, trials);
        eprintln!(
            "{name}: row_bytes {figure}, resident growth per row {measured:.0} ({rows} rows)"
        );
        // One model and its data, not one per class of the split (~210 MB for ML10).
        assert!(figure < 30 << 20, "{name}: row_bytes {figure}");
        let ratio = figure as f64 / measured;
        assert!(
            (1.0 / 1.5..=1.5).contains(&ratio),
            "{name}: row_bytes {figure} vs {measured:.0} bytes resident per row ({rows} rows): ratio {ratio:.2}"
        );
    }
    // Gridnavi's rows are a few numbers, which the guards' per-sample terms cover.
    let grid = env::make("gridnavi", 4, Split::Train, 0, &EnvOptions::default()).unwrap();
    assert_eq!(grid.row_bytes(), 0);
}
