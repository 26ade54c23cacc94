//! The native MuJoCo simulators (src/env/mujoco/) against the Python bridge they
//! replace: the same float32 observations, rewards and termination flags, bit for
//! bit, as the bridge's own simulator code (gymnasium v5 on the same MuJoCo 3.3.0)
//! over 1,000 random actions crossing several episode ends, from the same reset states
//! (tests/python/native_reference.py); the same tasks and reset seeds as the bridge;
//! results independent of the thread count; exact resume; the backend errors.
//!
//! Needs `pip install -r python/requirements.txt`; without the packages each test
//! prints a notice and returns.
#![allow(clippy::needless_range_loop)]

use bamdp::env::mujoco::batch::RowSim;
use bamdp::env::mujoco::locomotion::{Kind, LocomotionFamily};
use bamdp::env::mujoco::Backend;
use bamdp::env::{BatchEnv, EnvOptions, Split, StepOut};
use bamdp::rng::Rng;
use std::io::Write;
use std::process::{Command, Stdio};
mod python_support;
use python_support::{can_import, python};

/// Whether the Python packages and the MuJoCo library are there; prints why not.
fn available() -> bool {
    if !can_import("mujoco, gymnasium", "native MuJoCo test") {
        return false;
    }
    if let Err(e) = bamdp::env::mujoco::lib::library() {
        panic!("the mujoco package is installed but its library does not load: {e}");
    }
    true
}

fn options(backend: Backend, threads: usize) -> EnvOptions {
    EnvOptions {
        backend,
        threads,
        ..EnvOptions::default()
    }
}

struct Reader<'a>(&'a [u8]);
impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn u32(&mut self) -> usize {
        u32::from_le_bytes(self.take(4).try_into().unwrap()) as usize
    }
    fn f64s(&mut self, n: usize) -> Vec<f64> {
        self.take(8 * n)
            .chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
    fn f32s(&mut self, n: usize) -> Vec<f32> {
        self.take(4 * n)
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// Plays `steps` random actions on `env` with `task` through the bridge's simulator
/// code and the native port from the same reset states; every value must be equal.
fn assert_port_equals_bridge(env: &str, task: f64, steps: usize) {
    let family = LocomotionFamily::new(Kind::parse(env).unwrap()).unwrap();
    let mut row = family.new_row().unwrap();
    row.set_task(task);
    let ad = if env == "ant-dir" { 8 } else { 6 };
    let mut rng = Rng::new(17);
    let actions: Vec<f32> = (0..steps * ad)
        .map(|_| 2.0 * rng.uniform_f32() - 1.0)
        .collect();
    let seeds: Vec<u64> = (0..steps).map(|e| 1000 + e as u64).collect();
    let hex: String = actions
        .iter()
        .flat_map(|a| a.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect();
    let input = serde_json::json!({
        "env": env, "task": task, "seeds": seeds, "episode_len": 200, "act_dim": ad,
        "actions": hex,
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/native_reference.py"
    );
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "reference script failed");
    let mut r = Reader(&out.stdout);
    let (nq, nv, od) = (r.u32(), r.u32(), r.u32());
    let mut obs = vec![0f32; od];
    let (mut t, mut episodes, mut terminations) = (0, 0, 0);
    while t < steps {
        let n = r.u32();
        let (qpos, qvel) = (r.f64s(nq), r.f64s(nv));
        let first = r.f32s(od);
        row.reset_to(&qpos, &qvel, &mut obs);
        assert_eq!(
            bits(&obs),
            bits(&first),
            "{env}: first obs of episode {episodes}"
        );
        for k in 0..n {
            let want_obs = r.f32s(od);
            let want_reward = r.f32s(1)[0];
            let want_flags = r.take(1)[0];
            let o = row.step(&actions[t * ad..(t + 1) * ad], &mut obs);
            let at = format!("{env}: episode {episodes} step {k} (action {t})");
            assert_eq!(bits(&obs), bits(&want_obs), "{at}: observation");
            assert_eq!(
                o.reward.to_bits(),
                want_reward.to_bits(),
                "{at}: reward {} vs {want_reward}",
                o.reward
            );
            assert_eq!(o.terminated, want_flags & 1 != 0, "{at}: terminated");
            terminations += o.terminated as usize;
            t += 1;
        }
        episodes += 1;
    }
    assert!(r.0.is_empty(), "{env}: unread reference output");
    assert!(episodes >= 5, "{env}: only {episodes} episodes");
    eprintln!(
        "{env}: {steps} steps, {episodes} episodes ({terminations} terminated), bit-identical"
    );
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn cheetah_vel_is_bit_identical_to_the_bridge() {
    if available() {
        assert_port_equals_bridge("cheetah-vel", 1.7, 1000);
    }
}

#[test]
fn cheetah_dir_is_bit_identical_to_the_bridge() {
    if available() {
        assert_port_equals_bridge("cheetah-dir", -1.0, 1000);
    }
}

#[test]
fn ant_dir_is_bit_identical_to_the_bridge() {
    if available() {
        assert_port_equals_bridge("ant-dir", 1.0, 1000);
    }
}

/// Steps a batch with fixed actions, recording every output.
fn trace(env: &mut dyn BatchEnv, steps: usize) -> Vec<StepOut> {
    let n = env.num_envs();
    let od = env.spec().obs_dim;
    let ad = env.spec().action.width();
    let mut obs = vec![0.0; n * od];
    env.reset(&mut obs);
    let mut rng = Rng::new(5);
    let mut all = Vec::new();
    for _ in 0..steps {
        // Out-of-box values too: the batch clips them.
        let a: Vec<f32> = (0..n * ad).map(|_| 2.4 * rng.uniform_f32() - 1.2).collect();
        let mut out = StepOut::new(n, od);
        env.step(&a, &mut out);
        all.push(out);
    }
    all
}

fn same(a: &[StepOut], b: &[StepOut]) -> bool {
    a.iter().zip(b).all(|(x, y)| {
        bits(&x.obs) == bits(&y.obs)
            && bits(&x.final_obs) == bits(&y.final_obs)
            && bits(&x.reward) == bits(&y.reward)
            && x.terminated == y.terminated
            && x.truncated == y.truncated
            && x.trial_end == y.trial_end
            && x.episode_index == y.episode_index
    }) && a.len() == b.len()
}

#[test]
fn results_do_not_depend_on_the_thread_count_and_trials_end_on_time() {
    if !available() {
        return;
    }
    let make = |threads| {
        bamdp::env::make(
            "cheetah-vel",
            5,
            Split::Train,
            9,
            &options(Backend::Native, threads),
        )
        .unwrap()
    };
    let one = trace(make(1).as_mut(), 410);
    let two = trace(make(2).as_mut(), 410);
    let three = trace(make(3).as_mut(), 410);
    assert!(same(&one, &two) && same(&one, &three));
    // 200-step episodes, 2 per trial: truncation at steps 200 and 400, trial end at 400.
    for (t, out) in one.iter().enumerate() {
        for r in 0..5 {
            assert_eq!(out.truncated[r], t == 199 || t == 399, "step {t}");
            assert_eq!(out.trial_end[r], t == 399, "step {t}");
            assert_eq!(
                out.episode_index[r],
                (200..400).contains(&t) as u32,
                "step {t}"
            );
        }
    }
}

#[test]
fn an_ml10_mix_does_not_depend_on_the_thread_count() {
    // Rows of different classes cost different amounts, so the pool's threads claim
    // them in a different order at every step; past step 500 every row starts its
    // next episode (a reset drawn on whichever thread stepped the row).
    if !available() {
        return;
    }
    let make = |threads| {
        bamdp::env::make(
            "ml10",
            8,
            Split::Train,
            4,
            &options(Backend::Native, threads),
        )
        .unwrap()
    };
    let one = trace(make(1).as_mut(), 510);
    for threads in [2, 3] {
        let other = trace(make(threads).as_mut(), 510);
        assert!(same(&one, &other), "{threads} threads");
        assert!(one.iter().zip(&other).all(|(x, y)| x.success == y.success));
    }
    assert!(one[499].truncated.iter().all(|&t| t), "500-step episodes");
}

#[test]
fn native_rows_play_the_bridges_tasks_and_reset_seeds() {
    if !available() {
        return;
    }
    let opts = bamdp::env::python::Options {
        python: python(),
        workers: 1,
        step_timeout: std::time::Duration::from_secs(60),
        parts: 1,
        spin: bamdp::env::python::DEFAULT_SPIN,
    };
    for name in ["cheetah-vel", "ant-dir"] {
        let mut py =
            bamdp::env::python::PyBatchEnv::new(name, 3, Split::Test, 11, None, opts.clone())
                .unwrap();
        let mut native = bamdp::env::mujoco::batch::NativeBatch::new(
            std::sync::Arc::new(LocomotionFamily::new(Kind::parse(name).unwrap()).unwrap()),
            3,
            Split::Test,
            11,
            None,
            1,
        )
        .unwrap();
        // Zero actions: the ant stays healthy, so both batches end episodes on time.
        let ad = py.spec().action.width();
        let od = py.spec().obs_dim;
        let a = vec![0.0f32; 3 * ad];
        let (mut o1, mut o2) = (StepOut::new(3, od), StepOut::new(3, od));
        for t in 0..=400 {
            for r in 0..3 {
                assert_eq!(py.task(r), native.task(r), "{name} step {t} row {r}: task");
                assert_eq!(
                    py.episode_seed(r),
                    native.episode_seed(r),
                    "{name} step {t}"
                );
            }
            py.step(&a, &mut o1);
            native.step(&a, &mut o2);
            assert_eq!(o1.trial_end, o2.trial_end);
        }
    }
}

#[test]
fn a_resumed_batch_continues_exactly() {
    if !available() {
        return;
    }
    let opts = options(Backend::Native, 2);
    // (env, the resumed batch's own seed): a MetaWorld batch's task list comes from the
    // run's seed, so a resumed run is built with the same seed.
    let mut cases = vec![("ant-dir", 99)];
    if metaworld_available() {
        cases.push(("ml10", 4));
    }
    for (env, seed_b) in cases {
        let mut a = bamdp::env::make(env, 3, Split::Train, 4, &opts).unwrap();
        let _ = trace(a.as_mut(), 130);
        let state = a.save_state();
        let mut b = bamdp::env::make(env, 3, Split::Train, seed_b, &opts).unwrap();
        b.load_state(&state).unwrap();
        let mut rng = Rng::new(8);
        let (n, od, ad) = (3, a.spec().obs_dim, a.spec().action.width());
        for t in 0..150 {
            let act: Vec<f32> = (0..n * ad).map(|_| 2.0 * rng.uniform_f32() - 1.0).collect();
            let (mut x, mut y) = (StepOut::new(n, od), StepOut::new(n, od));
            a.step(&act, &mut x);
            b.step(&act, &mut y);
            assert!(same(&[x], &[y]), "{env}: step {t} after the resume");
        }
    }
}

#[test]
fn native_backend_names_the_ported_envs_for_an_unported_one() {
    // Every MetaWorld v3 class is ported: an ML1 name that is not one has no port.
    let err = bamdp::env::make(
        "ml1-hammer-v2",
        1,
        Split::Train,
        0,
        &options(Backend::Native, 1),
    )
    .err()
    .expect("ml1-hammer-v2 has no native port")
    .to_string();
    assert!(
        err.contains("cheetah-vel") && err.contains("env_backend = \"python\""),
        "{err}"
    );
}

/// Every model bamdp loads skips MuJoCo's viewer-only bounding-volume marks (one byte
/// cleared per BVH node in every collision pass: 133,936 nodes for MetaWorld's Sawyer),
/// while metaworld keeps MuJoCo's default; the bit-identity tests in this file therefore
/// also show that the flag leaves the physics alone.
#[test]
fn loaded_models_skip_the_viewers_bounding_volume_marks() {
    use bamdp::env::mujoco::lib::Model;
    use bamdp::env::mujoco::metaworld::CLASSES;
    if !metaworld_available() {
        return;
    }
    let dir =
        bamdp::env::mujoco::assets_dir("BAMDP_METAWORLD_ASSETS", "metaworld", "assets").unwrap();
    let model = Model::from_xml(&dir.join(CLASSES[0].xml())).unwrap();
    assert!(!model.marks_bounding_volumes());
    assert!(!model.try_clone().unwrap().marks_bounding_volumes());
}

#[test]
fn a_missing_mujoco_library_is_a_user_error_with_the_install_command() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "method = \"rl2\"\nenv = \"cheetah-vel\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bamdp"))
        .args(["bench", "--config"])
        .arg(&cfg)
        .args(["--seconds", "1"])
        .env("BAMDP_MUJOCO_LIB", "/nonexistent/libmujoco.so.3.3.0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/libmujoco.so.3.3.0")
            && err.contains("pip install mujoco==3.3.0"),
        "{err}"
    );
}

fn metaworld_available() -> bool {
    can_import("metaworld", "MetaWorld equality")
}

/// Starts tests/python/native_metaworld_reference.py on `input`.
fn start_metaworld_reference(input: &serde_json::Value) -> std::process::Child {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/native_metaworld_reference.py"
    );
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    child
}

/// One split's task list as the reference wrote it: (class name, vector).
fn read_task_list(r: &mut Reader) -> Vec<(String, Vec<f64>)> {
    let n = r.u32();
    (0..n)
        .map(|_| {
            let len = r.u32();
            let name = String::from_utf8(r.take(len).to_vec()).unwrap();
            let len = r.u32();
            (name, r.f64s(len))
        })
        .collect()
}

fn f64_bits(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// A native MetaWorld row whose last step's `info` can be read.
trait WithInfo: RowSim {
    fn evaluation(&self) -> Option<bamdp::env::mujoco::metaworld::Evaluation>;
    /// The info entries in the reference's order (INFO_KEYS).
    fn info(&self) -> [f64; 6] {
        let i = self.evaluation().unwrap().info;
        [
            i.near_object,
            i.grasp_success,
            i.grasp_reward,
            i.in_place_reward,
            i.obj_to_target,
            i.unscaled_reward,
        ]
    }
}
impl WithInfo for bamdp::env::mujoco::metaworld::Sawyer {
    fn evaluation(&self) -> Option<bamdp::env::mujoco::metaworld::Evaluation> {
        self.last_evaluation()
    }
}
impl WithInfo for bamdp::env::mujoco::metaworld::benchmark::BenchmarkRow {
    fn evaluation(&self) -> Option<bamdp::env::mujoco::metaworld::Evaluation> {
        self.last_evaluation()
    }
}

const INFO_KEYS: [&str; 6] = [
    "near_object",
    "grasp_success",
    "grasp_reward",
    "in_place_reward",
    "obj_to_target",
    "unscaled_reward",
];

/// How far a float64 `info` entry may be from MetaWorld's, relative to
/// max(|a|, |b|, 1) (the entries are sums and products of O(1) terms). MetaWorld's own
/// values depend on the CPU: `np.linalg.norm` is a BLAS dot product whose rounding
/// depends on the kernel OpenBLAS picks, and the reward shaping amplifies a last-bit
/// difference of a distance. Measured: door-open's `radius` (the norm of a 2-vector)
/// is computed with a fused multiply-add by the port, as NumPy did on the AVX-512
/// machines the port was written on; on the AVX2-only machines of 2026-12 (AMD EPYC)
/// NumPy rounds it 1 ulp higher, and `log(radius - 0.12)` turns that into 1.6e-14 of
/// `near_object` and 1.9e-14 of `unscaled_reward`. 1e-11 leaves a wide margin over that
/// while a porting error moves an entry by far more. The observation and reward, which
/// the agent sees, stay bit-identical.
const INFO_TOLERANCE: f64 = 1e-11;

/// What a replay compared: steps, successful steps, and the largest scaled `info`
/// difference (see INFO_TOLERANCE).
struct Replayed {
    steps: usize,
    successes: usize,
    info_diff: f64,
}

/// Replays the reference's episodes on one row (which keeps its simulation from
/// episode to episode, as the bridge's does), resetting to each episode's task index.
/// Every observation, reward and success flag must be bit-identical and every `info`
/// entry within INFO_TOLERANCE.
fn assert_episodes_equal(
    what: &str,
    r: &mut Reader,
    episodes: &serde_json::Value,
    row: &mut impl WithInfo,
) -> Replayed {
    let mut obs = vec![0f32; 39];
    let (mut successes, mut steps, mut info_diff) = (0, 0, 0f64);
    for (e, ep) in episodes.as_array().unwrap().iter().enumerate() {
        let task = ep["task_index"].as_u64().unwrap() as u32;
        let k = r.u32();
        let first = r.f32s(39);
        row.reset(task, 0.0, 0, &mut obs);
        assert_eq!(bits(&obs), bits(&first), "{what}: first obs of episode {e}");
        for t in 0..k {
            let a = r.f32s(4);
            let want_obs = r.f32s(39);
            let want_reward = r.f32s(1)[0];
            let want_flags = r.take(1)[0];
            let o = row.step(&a, &mut obs);
            let at = format!("{what}: episode {e} step {t}");
            assert_eq!(
                bits(&obs),
                bits(&want_obs),
                "{at}: observation {obs:?} vs {want_obs:?}"
            );
            assert_eq!(
                o.reward.to_bits(),
                want_reward.to_bits(),
                "{at}: reward {} vs {want_reward}",
                o.reward
            );
            assert_eq!(o.success, want_flags & 2 != 0, "{at}: success");
            let want_info = r.f64s(6);
            let info = row.info();
            for (j, key) in INFO_KEYS.iter().enumerate() {
                let (a, b) = (info[j], want_info[j]);
                let diff = (a - b).abs() / a.abs().max(b.abs()).max(1.0);
                assert!(
                    diff <= INFO_TOLERANCE,
                    "{at}: info[{key}] {a} vs {b} (scaled difference {diff:.1e})"
                );
                info_diff = info_diff.max(diff);
            }
            successes += o.success as usize;
            steps += 1;
        }
    }
    Replayed {
        steps,
        successes,
        info_diff,
    }
}

/// The ported MetaWorld classes under test: (class, ML1 env, split played, where the
/// steered episodes aim: the goal or the observed object).
const METAWORLD: &[(&str, &str, Split, &str)] = &[
    ("reach-v3", "ml1-reach", Split::Train, "goal"),
    ("push-v3", "ml1-push", Split::Test, "object"),
    ("pick-place-v3", "ml1-pick-place", Split::Train, "object"),
    ("door-open-v3", "ml1-door-open", Split::Test, "object"),
    (
        "drawer-close-v3",
        "ml1-drawer-close",
        Split::Train,
        "object",
    ),
    (
        "button-press-topdown-v3",
        "ml1-button-press-topdown",
        Split::Test,
        "object",
    ),
    (
        "peg-insert-side-v3",
        "ml1-peg-insert-side",
        Split::Train,
        "object",
    ),
    ("window-open-v3", "ml1-window-open", Split::Test, "object"),
    ("sweep-v3", "ml1-sweep", Split::Train, "object"),
    ("basketball-v3", "ml1-basketball", Split::Test, "object"),
    ("drawer-open-v3", "ml1-drawer-open", Split::Train, "object"),
    ("door-close-v3", "ml1-door-close", Split::Test, "object"),
    ("shelf-place-v3", "ml1-shelf-place", Split::Train, "object"),
    ("sweep-into-v3", "ml1-sweep-into", Split::Test, "object"),
    ("lever-pull-v3", "ml1-lever-pull", Split::Train, "object"),
    ("bin-picking-v3", "ml1-bin-picking", Split::Test, "object"),
    ("box-close-v3", "ml1-box-close", Split::Train, "object"),
    ("hand-insert-v3", "ml1-hand-insert", Split::Test, "object"),
    ("door-lock-v3", "ml1-door-lock", Split::Train, "object"),
    ("door-unlock-v3", "ml1-door-unlock", Split::Test, "object"),
    ("assembly-v3", "ml1-assembly", Split::Train, "object"),
    (
        "button-press-topdown-wall-v3",
        "ml1-button-press-topdown-wall",
        Split::Test,
        "object",
    ),
    (
        "button-press-v3",
        "ml1-button-press",
        Split::Train,
        "object",
    ),
    (
        "button-press-wall-v3",
        "ml1-button-press-wall",
        Split::Test,
        "object",
    ),
    (
        "coffee-button-v3",
        "ml1-coffee-button",
        Split::Train,
        "object",
    ),
    ("coffee-pull-v3", "ml1-coffee-pull", Split::Test, "object"),
    ("coffee-push-v3", "ml1-coffee-push", Split::Train, "object"),
    ("dial-turn-v3", "ml1-dial-turn", Split::Test, "object"),
    ("faucet-open-v3", "ml1-faucet-open", Split::Train, "object"),
    ("faucet-close-v3", "ml1-faucet-close", Split::Test, "object"),
    ("disassemble-v3", "ml1-disassemble", Split::Test, "object"),
    (
        "handle-press-side-v3",
        "ml1-handle-press-side",
        Split::Train,
        "object",
    ),
    ("handle-press-v3", "ml1-handle-press", Split::Test, "object"),
    ("window-close-v3", "ml1-window-close", Split::Test, "object"),
    ("reach-wall-v3", "ml1-reach-wall", Split::Train, "goal"),
    ("push-wall-v3", "ml1-push-wall", Split::Test, "object"),
    (
        "pick-place-wall-v3",
        "ml1-pick-place-wall",
        Split::Train,
        "object",
    ),
    ("push-back-v3", "ml1-push-back", Split::Test, "object"),
    ("soccer-v3", "ml1-soccer", Split::Train, "object"),
    ("plate-slide-v3", "ml1-plate-slide", Split::Test, "object"),
    (
        "plate-slide-side-v3",
        "ml1-plate-slide-side",
        Split::Train,
        "object",
    ),
    (
        "plate-slide-back-v3",
        "ml1-plate-slide-back",
        Split::Test,
        "object",
    ),
    (
        "plate-slide-back-side-v3",
        "ml1-plate-slide-back-side",
        Split::Train,
        "object",
    ),
    ("handle-pull-v3", "ml1-handle-pull", Split::Train, "object"),
    (
        "handle-pull-side-v3",
        "ml1-handle-pull-side",
        Split::Test,
        "object",
    ),
    (
        "peg-unplug-side-v3",
        "ml1-peg-unplug-side",
        Split::Train,
        "object",
    ),
    (
        "pick-out-of-hole-v3",
        "ml1-pick-out-of-hole",
        Split::Test,
        "object",
    ),
    ("hammer-v3", "ml1-hammer", Split::Train, "object"),
    ("stick-push-v3", "ml1-stick-push", Split::Test, "object"),
    ("stick-pull-v3", "ml1-stick-pull", Split::Train, "object"),
];

/// Each ported class, as `metaworld.ML1(class, 7)`: both splits' 50 task vectors and
/// 1,000 steps over four episodes on different tasks (three episode ends), two of
/// them steered, are bit-identical to the bridge's.
#[test]
fn metaworld_classes_are_bit_identical_to_the_bridge() {
    use bamdp::env::mujoco::metaworld::{class, SawyerFamily};
    if !available() || !metaworld_available() {
        return;
    }
    let bench_seed = 7u32;
    // The reference processes run a few at a time while earlier ones are checked.
    let start = |&(task, _, split, aim): &(&str, &str, Split, &str)| {
        let episodes = serde_json::json!([
            {"task_index": 3, "steps": 300, "directed": null},
            {"task_index": 41, "steps": 200, "directed": aim},
            {"task_index": 3, "steps": 250, "directed": null},
            {"task_index": 17, "steps": 250, "directed": aim},
        ]);
        let input = serde_json::json!({
            "benchmark": "ML1", "task": task, "split": split.as_str(),
            "bench_seed": bench_seed, "episodes": episodes, "seed": 5,
        });
        (start_metaworld_reference(&input), episodes)
    };
    // BAMDP_TEST_METAWORLD=door-lock-v3,... checks only those classes (for porting).
    let only = std::env::var("BAMDP_TEST_METAWORLD").ok();
    let classes: Vec<_> = METAWORLD
        .iter()
        .filter(|m| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|c| c == m.0))
        })
        .collect();
    let mut running: std::collections::VecDeque<_> =
        classes.iter().take(3).map(|m| start(m)).collect();
    let mut failed = Vec::new();
    for (i, &&(task, env, split, _)) in classes.iter().enumerate() {
        let (child, episodes) = running.pop_front().unwrap();
        if let Some(next) = classes.get(i + 3) {
            running.push_back(start(next));
        }
        let out = child.wait_with_output().unwrap();
        // Check every class, then report all that differ.
        let check = std::panic::AssertUnwindSafe(|| {
            assert!(out.status.success(), "{task}: reference script failed");
            let mut r = Reader(&out.stdout);
            let c = class(task).unwrap();
            for (s, list) in [
                (Split::Train, read_task_list(&mut r)),
                (Split::Test, read_task_list(&mut r)),
            ] {
                let family = SawyerFamily::ml1(env, c, s, bench_seed).unwrap();
                assert_eq!(list.len(), family.tasks().len(), "{task}: number of tasks");
                for (k, (name, v)) in list.iter().enumerate() {
                    assert_eq!(name, task);
                    assert_eq!(
                        f64_bits(&family.tasks()[k]),
                        f64_bits(v),
                        "{task} {}: task vector {k}",
                        s.as_str()
                    );
                }
            }
            let family = SawyerFamily::ml1(env, c, split, bench_seed).unwrap();
            let mut row = family.new_row().unwrap();
            let what = format!("{task} {}", split.as_str());
            let Replayed {
                steps,
                successes,
                info_diff,
            } = assert_episodes_equal(&what, &mut r, &episodes, &mut row);
            assert!(r.0.is_empty(), "{task}: unread reference output");
            assert_eq!(steps, 1000);
            if task == "reach-v3" {
                assert!(
                    successes > 0,
                    "{task}: the steered episodes never succeeded"
                );
            }
            eprintln!(
                "{what}: 2 x 50 task vectors and {steps} steps ({successes} successful) bit-identical, info within {info_diff:.1e}"
            );
        });
        if std::panic::catch_unwind(check).is_err() {
            failed.push(task);
        }
    }
    assert!(failed.is_empty(), "differs from metaworld: {failed:?}");
}

/// A benchmark's task lists (class and vector of each task of both splits) are
/// bit-identical to metaworld's for seed 7, and a one-row native batch row of its
/// training split plays the `episodes` (200 steps each, on several classes, returning
/// to one) bit-identically to the bridge's row.
fn assert_benchmark_equals_the_bridge(
    bench: &'static bamdp::env::mujoco::metaworld::benchmark::Benchmark,
    python_name: &str,
    episodes: serde_json::Value,
) {
    use bamdp::env::mujoco::metaworld::benchmark::BenchmarkFamily;
    if !available() || !metaworld_available() {
        return;
    }
    let bench_seed = 7u32;
    let input = serde_json::json!({
        "benchmark": python_name, "split": "train", "bench_seed": bench_seed,
        "episodes": episodes, "seed": 3,
    });
    let out = start_metaworld_reference(&input)
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "reference script failed");
    let mut r = Reader(&out.stdout);
    let mut vectors = 0;
    for split in [Split::Train, Split::Test] {
        let want = read_task_list(&mut r);
        let family = BenchmarkFamily::new(bench, split, bench_seed).unwrap();
        assert_eq!(want.len(), family.task_names().len(), "{split:?}: tasks");
        let got: Vec<&Vec<f64>> = family.classes().iter().flat_map(|c| c.tasks()).collect();
        for (k, (name, v)) in want.iter().enumerate() {
            assert_eq!(name, family.task_names()[k], "{split:?} task {k}: class");
            assert_eq!(f64_bits(got[k]), f64_bits(v), "{split:?} task {k}");
        }
        vectors += want.len();
    }
    let family = BenchmarkFamily::new(bench, Split::Train, bench_seed).unwrap();
    let mut row = family.new_row().unwrap();
    let what = format!("{} train", bench.env);
    let Replayed {
        steps,
        successes,
        info_diff,
    } = assert_episodes_equal(&what, &mut r, &episodes, &mut row);
    assert!(r.0.is_empty(), "unread reference output");
    assert_eq!(steps, 200 * episodes.as_array().unwrap().len());
    eprintln!(
        "{}: {vectors} task vectors and {steps} steps ({successes} successful) bit-identical, info within {info_diff:.1e}",
        bench.env
    );
}

/// `metaworld.ML10(7)`: 500 + 250 task vectors; 1,000 steps over five episodes on four
/// classes, returning to two of them.
#[test]
fn ml10_task_lists_and_class_switching_rows_equal_the_bridge() {
    let episodes = serde_json::json!([
        {"task_index": 10, "steps": 200, "directed": "goal"},
        {"task_index": 160, "steps": 200, "directed": "object"},
        {"task_index": 470, "steps": 200, "directed": "object"},
        {"task_index": 12, "steps": 200, "directed": null},
        {"task_index": 480, "steps": 200, "directed": "object"},
    ]);
    use bamdp::env::mujoco::metaworld::benchmark::ML10;
    assert_benchmark_equals_the_bridge(&ML10, "ML10", episodes);
}

/// `metaworld.ML45(7)`: 2,250 + 250 task vectors; 1,000 steps over five episodes on
/// four classes (hammer, stick-pull, plate-slide-back-side, assembly), returning to
/// hammer.
#[test]
fn ml45_task_lists_and_class_switching_rows_equal_the_bridge() {
    let episodes = serde_json::json!([
        {"task_index": 17 * 50 + 3, "steps": 200, "directed": "object"},
        {"task_index": 35 * 50 + 10, "steps": 200, "directed": "object"},
        {"task_index": 30 * 50 + 44, "steps": 200, "directed": null},
        {"task_index": 17 * 50 + 20, "steps": 200, "directed": null},
        {"task_index": 7, "steps": 200, "directed": "object"},
    ]);
    use bamdp::env::mujoco::metaworld::benchmark::ML45;
    assert_eq!(ML45.train[17], "hammer-v3");
    assert_eq!(ML45.train[35], "stick-pull-v3");
    assert_eq!(ML45.train[30], "plate-slide-back-side-v3");
    assert_benchmark_equals_the_bridge(&ML45, "ML45", episodes);
}

#[test]
fn every_ported_metaworld_class_is_an_ml1_env() {
    use bamdp::env::mujoco::{metaworld::CLASSES, PORTED};
    let classes: Vec<String> = CLASSES
        .iter()
        .map(|c| format!("ml1-{}", c.name().strip_suffix("-v3").unwrap()))
        .collect();
    let ported: Vec<&str> = PORTED
        .iter()
        .copied()
        .filter(|p| p.starts_with("ml1-"))
        .collect();
    assert_eq!(classes, ported);
    // Every ported class is in the bit-identity test's table.
    let tested: Vec<&str> = METAWORLD.iter().map(|m| m.0).collect();
    let names: Vec<&str> = CLASSES.iter().map(|c| c.name()).collect();
    assert_eq!(tested, names);
}

/// One episode of `steps` fixed actions on `row` from a reset to task `task`: its
/// observations, rewards and successes, as bits.
fn play(row: &mut dyn RowSim, task: u32, steps: usize) -> Vec<u32> {
    let mut obs = vec![0.0f32; 39];
    row.reset(task, 0.0, 0, &mut obs);
    let mut trace = bits(&obs);
    for t in 0..steps {
        // Sweeps every action in [-1, 1], the gripper opening and closing.
        let action: Vec<f32> = (0..4)
            .map(|d| ((t * 7 + d * 3) as f32 * 0.37 + task as f32).sin())
            .collect();
        let out = row.step(&action, &mut obs);
        trace.extend(bits(&obs));
        trace.extend([out.reward.to_bits(), out.success as u32]);
    }
    trace
}

/// A Sawyer row keeps nothing of a task into the next (so a benchmark row may drop a
/// class's simulator and build a fresh one when it comes back to the class): in every
/// class, a row playing tasks 3, 41, 3 plays the second as a fresh row and the third
/// as it played the first.
#[test]
fn a_metaworld_row_keeps_no_state_across_tasks() {
    use bamdp::env::mujoco::metaworld::{SawyerFamily, CLASSES};
    if !metaworld_available() {
        return;
    }
    for &class in CLASSES {
        let family = SawyerFamily::ml1("state", class, Split::Train, 7).unwrap();
        let mut row = family.new_row().unwrap();
        let first = play(&mut row, 3, 40);
        let second = play(&mut row, 41, 40);
        let third = play(&mut row, 3, 40);
        let fresh = play(&mut family.new_row().unwrap(), 41, 40);
        let name = class.name();
        assert!(
            second == fresh,
            "{name}: task 41 after task 3 differs from a fresh row"
        );
        assert!(
            third == first,
            "{name}: task 3 after task 41 differs from its first play"
        );
    }
}

/// A benchmark row switching classes and coming back (A, B, A, A, C, A, including
/// classes that reset twice) plays each task exactly as a fresh row does.
#[test]
fn a_benchmark_row_switching_classes_plays_each_task_as_a_fresh_row() {
    use bamdp::env::mujoco::metaworld::benchmark::{BenchmarkFamily, ML10};
    if !metaworld_available() {
        return;
    }
    // Train: window-open (resets twice), reach, window-open twice, door-open,
    // window-open. Test: drawer-open (resets twice), lever-pull (resets twice),
    // drawer-open twice.
    for (split, tasks) in [
        (Split::Train, &[360, 10, 375, 380, 160, 360][..]),
        (Split::Test, &[0, 200, 30, 31][..]),
    ] {
        let family = BenchmarkFamily::new(&ML10, split, 7).unwrap();
        let mut row = family.new_row().unwrap();
        for (e, &task) in tasks.iter().enumerate() {
            let switched = play(&mut row, task, 100);
            let fresh = play(&mut family.new_row().unwrap(), task, 100);
            assert!(
                switched == fresh,
                "ML10 {split:?} episode {e} (task {task}): the switching row differs from a fresh row"
            );
        }
    }
}
