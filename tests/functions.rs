//! Function optimisation: the five families at hand-worked parameters, the rescaling to
//! [0, 1], rewards, episode and trial ends, the time observation, task streams,
//! checkpoint state, allocation-free stepping, options and config errors.

use bamdp::config::Config;
use bamdp::env::functions::{
    grid_coord, Bump, Family, Functions, NormKind, Options, Shape, Task, Variant, Wave, ENV_NAMES,
    FAMILIES, GRID_1D, GRID_2D,
};
use bamdp::env::{make, make_with, ActionSpace, BatchEnv, EnvOptions, Split, StepOut};
use bamdp::rng::{streams, Rng};
use std::f64::consts::PI;
mod common;
use common::allocs;

const ZERO_WAVE: Wave = Wave {
    amplitude: 0.0,
    freq: [0.0, 0.0],
    phase: 0.0,
};
const NO_BUMP: Bump = Bump {
    weight: 0.0,
    sharpness: 0.0,
    centre: [0.0, 0.0],
};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

fn task(dim: usize, shape: Shape) -> Task {
    Task::new(dim, shape).unwrap_or_else(|e| panic!("{e}"))
}

fn variant(name: &str) -> Variant {
    Variant::parse(name).unwrap()
}

fn batch(name: &str, n: usize, split: Split, seed: u64) -> Functions {
    Functions::new(variant(name), n, split, seed, Options::default()).unwrap()
}

/// The grid points of the rescaling plus the family's candidate optima.
fn grid_and_candidates(t: &Task) -> Vec<[f64; 2]> {
    let mut pts = Vec::new();
    if t.dim() == 1 {
        for k in 0..GRID_1D {
            pts.push([grid_coord(k, GRID_1D), 0.0]);
        }
    } else {
        for k in 0..GRID_2D {
            for l in 0..GRID_2D {
                pts.push([grid_coord(k, GRID_2D), grid_coord(l, GRID_2D)]);
            }
        }
    }
    match t.shape() {
        Shape::Norm { centre, .. } => pts.push(*centre),
        Shape::Rational { bumps } => pts.extend(bumps.iter().map(|b| b.centre)),
        _ => {}
    }
    pts
}

#[test]
fn grid_has_the_corners_and_the_centre() {
    assert_eq!(grid_coord(0, GRID_1D), -1.0);
    assert_eq!(grid_coord(GRID_1D - 1, GRID_1D), 1.0);
    assert_eq!(grid_coord(100, GRID_1D), 0.0);
    assert!(close(grid_coord(1, GRID_1D), -0.99, 1e-15));
    assert_eq!((GRID_1D, GRID_2D), (201, 41));
    assert_eq!(grid_coord(0, GRID_2D), -1.0);
    assert_eq!(grid_coord(20, GRID_2D), 0.0);
    assert_eq!(grid_coord(40, GRID_2D), 1.0);
    assert!(close(grid_coord(1, GRID_2D), -0.95, 1e-15));
}

#[test]
fn fourier_by_hand() {
    // f(x) = sin(pi x) + 0.5 sin(2 pi x + pi/2) = sin(pi x) + 0.5 cos(2 pi x)
    //      = 0.5 + s - s^2 with s = sin(pi x): max 0.75 at s = 1/2 (x = 1/6, 5/6, off the
    // grid), min -1.5 at s = -1 (x = -1/2, on the grid).
    let t = task(
        1,
        Shape::Fourier {
            waves: [
                Wave {
                    amplitude: 1.0,
                    freq: [1.0, 0.0],
                    phase: 0.0,
                },
                Wave {
                    amplitude: 0.5,
                    freq: [2.0, 0.0],
                    phase: PI / 2.0,
                },
                ZERO_WAVE,
            ],
        },
    );
    assert_eq!(t.family(), Family::Fourier);
    for (x, f) in [
        (0.0, 0.5),
        (0.5, 0.5),
        (-0.5, -1.5),
        (0.25, 0.5f64.sqrt()),
        (1.0 / 6.0, 0.75),
        (1.0, 0.5),
    ] {
        assert!(
            close(t.raw([x, 0.0]), f, 1e-12),
            "f({x}) = {}",
            t.raw([x, 0.0])
        );
    }
    let (lo, hi) = t.bounds();
    assert!(close(lo, -1.5, 1e-12), "{lo}");
    // Nearest grid points to 1/6 are 0.16 and 0.17: s = sin(0.17 pi) = 0.5141.
    let s = (0.17 * PI).sin();
    assert!(close(hi, 0.5 + s - s * s, 1e-12), "{hi}");
    assert!(hi < 0.75 && hi > 0.7497, "{hi}");
    assert!(close(t.value([-0.5, 0.0]), 0.0, 1e-12));
    assert!(close(t.value([0.0, 0.0]), 2.0 / (hi + 1.5), 1e-12));
    // Between grid points the rescaled value may exceed 1 by a little.
    let peak = t.value([1.0 / 6.0, 0.0]);
    assert!(peak > 1.0 && peak < 1.0001, "{peak}");
    // In 1-D the second coordinate is ignored.
    assert_eq!(t.raw([0.25, 0.7]), t.raw([0.25, 0.0]));

    // 2-D: f(x, y) = sin(pi (x + y)) + 0.5 sin(2 pi y + pi) = sin(pi (x + y)) - 0.5 sin(2 pi y).
    let t = task(
        2,
        Shape::Fourier {
            waves: [
                Wave {
                    amplitude: 1.0,
                    freq: [1.0, 1.0],
                    phase: 0.0,
                },
                Wave {
                    amplitude: 0.5,
                    freq: [0.0, 2.0],
                    phase: PI,
                },
                ZERO_WAVE,
            ],
        },
    );
    for (x, f) in [
        ([0.25, 0.25], 0.5),
        ([0.5, 0.0], 1.0),
        ([0.0, 0.25], 0.5f64.sqrt() - 0.5),
        ([-0.5, 0.0], -1.0),
        ([0.0, -0.25], -(0.5f64.sqrt()) + 0.5),
    ] {
        assert!(close(t.raw(x), f, 1e-12), "f({x:?}) = {}", t.raw(x));
    }
}

#[test]
fn norm_by_hand() {
    // Centre (0.2, -0.4); at (1, 0.5): |dx| = 0.8, |dy| = 0.9. The farthest point is the
    // corner (-1, 1): |dx| = 1.2, |dy| = 1.4. The maximum 0 is at the centre.
    let c = [0.2, -0.4];
    for (p, at, far) in [
        (NormKind::L1, 1.7, 2.6),
        (NormKind::L2, 1.45f64.sqrt(), 3.4f64.sqrt()),
        (NormKind::Inf, 0.9, 1.4),
    ] {
        let t = task(2, Shape::Norm { p, centre: c });
        assert!(close(t.raw([1.0, 0.5]), -at, 1e-12), "{p:?}");
        assert!(close(t.raw(c), 0.0, 0.0));
        let (lo, hi) = t.bounds();
        assert!(close(lo, -far, 1e-12), "{p:?} {lo}");
        assert_eq!(hi, 0.0, "{p:?}");
        assert!(close(t.value([1.0, 0.5]), (far - at) / far, 1e-12));
        assert_eq!(t.value(c), 1.0);
        assert!(close(t.value([-1.0, 1.0]), 0.0, 1e-12));
    }
    // 1-D, centre 0.3 (off the 1-D grid's exact points): f = -|x - 0.3|.
    let t = task(
        1,
        Shape::Norm {
            p: NormKind::L2,
            centre: [0.3, 0.0],
        },
    );
    assert!(close(t.raw([1.0, 0.0]), -0.7, 1e-12));
    assert!(close(t.raw([-0.45, 0.0]), -0.75, 1e-12));
    let (lo, hi) = t.bounds();
    assert!(close(lo, -1.3, 1e-12) && hi == 0.0, "{lo} {hi}");
    assert!(close(t.value([1.0, 0.0]), 0.6 / 1.3, 1e-12));
}

#[test]
fn rational_by_hand() {
    // f(x) = 1 / (1 + 4 (x - 0.5)^2) + 0.5 / (1 + (x + 0.5)^2).
    let t = task(
        1,
        Shape::Rational {
            bumps: [
                Bump {
                    weight: 1.0,
                    sharpness: 4.0,
                    centre: [0.5, 0.0],
                },
                Bump {
                    weight: 0.5,
                    sharpness: 1.0,
                    centre: [-0.5, 0.0],
                },
            ],
        },
    );
    for (x, f) in [
        (0.5, 1.25),
        (-0.5, 0.7),
        (0.0, 0.9),
        (1.0, 0.5 + 0.5 / 3.25),
    ] {
        assert!(
            close(t.raw([x, 0.0]), f, 1e-12),
            "f({x}) = {}",
            t.raw([x, 0.0])
        );
    }
    // 2-D single bump (the second has weight 0): 2 / (1 + 10 * 0.05) at (0.1, 0.2).
    let t = task(
        2,
        Shape::Rational {
            bumps: [
                Bump {
                    weight: 2.0,
                    sharpness: 10.0,
                    centre: [0.03, -0.01],
                },
                NO_BUMP,
            ],
        },
    );
    assert!(close(t.raw([0.13, 0.19]), 2.0 / 1.5, 1e-12));
    // The centre is off the 41 x 41 grid; it is a candidate, so the maximum is exact.
    let (lo, hi) = t.bounds();
    assert_eq!(hi, 2.0);
    // Minimum at the farthest corner (-1, 1): distance^2 = 1.03^2 + 1.01^2.
    assert!(close(
        lo,
        2.0 / (1.0 + 10.0 * (1.03f64.powi(2) + 1.01f64.powi(2))),
        1e-12
    ));
    assert_eq!(t.value([0.03, -0.01]), 1.0);
}

#[test]
fn polynomial_by_hand() {
    // 1-D: f(x) = x - 2 x^2 + 0.5 x^4; the x y term is ignored in 1-D (y = 0).
    let mut coef = [[0.0; 5]; 5];
    coef[1][0] = 1.0;
    coef[2][0] = -2.0;
    coef[4][0] = 0.5;
    coef[1][1] = 9.0;
    let t = task(1, Shape::Polynomial { coef });
    for (x, f) in [(1.0, -0.5), (-1.0, -2.5), (0.5, 0.03125), (0.0, 0.0)] {
        assert!(close(t.raw([x, 0.0]), f, 1e-12), "f({x})");
    }
    // f' = 1 - 4x + 2x^3 = 0 at x = 0.2586..: the maximum, between grid points; the
    // nearest grid point 0.26 gives 0.26 - 0.1352 + 0.00228488.
    let (lo, hi) = t.bounds();
    assert_eq!(lo, -2.5);
    assert!(close(hi, 0.12708488, 1e-12), "{hi}");
    assert!(hi < t.raw([0.2586, 0.0]));

    // 2-D: f(x, y) = y + 3 x y - y^2 + 0.5 x^2 y^2.
    let mut coef = [[0.0; 5]; 5];
    coef[0][1] = 1.0;
    coef[1][1] = 3.0;
    coef[0][2] = -1.0;
    coef[2][2] = 0.5;
    let t = task(2, Shape::Polynomial { coef });
    for (x, f) in [
        ([0.5, -1.0], -1.0 - 1.5 - 1.0 + 0.125),
        ([1.0, 1.0], 1.0 + 3.0 - 1.0 + 0.5),
        ([-1.0, 0.5], 0.5 - 1.5 - 0.25 + 0.125),
        ([0.7, 0.0], 0.0),
    ] {
        assert!(close(t.raw(x), f, 1e-12), "f({x:?}) = {}", t.raw(x));
    }
    // Degree above 4 is rejected.
    let mut coef = [[0.0; 5]; 5];
    coef[3][2] = 1.0;
    let err = Task::new(2, Shape::Polynomial { coef }).unwrap_err();
    assert!(
        err.contains("x^3 y^2") && err.contains("at most 4"),
        "{err}"
    );
}

#[test]
fn slope_by_hand() {
    // f = 2x - y: min -3 at (-1, 1), max 3 at (1, -1).
    let t = task(2, Shape::Slope { w: [2.0, -1.0] });
    assert_eq!(t.raw([0.5, 0.5]), 0.5);
    assert_eq!(t.bounds(), (-3.0, 3.0));
    assert_eq!(t.value([0.5, 0.5]), 3.5 / 6.0);
    assert_eq!(t.value([1.0, -1.0]), 1.0);
    assert_eq!(t.value([-1.0, 1.0]), 0.0);
    // 1-D, w = -1.5: the optimum is the left end.
    let t = task(1, Shape::Slope { w: [-1.5, 0.0] });
    assert_eq!(t.bounds(), (-1.5, 1.5));
    assert_eq!(t.value([-1.0, 0.0]), 1.0);
    assert_eq!(t.value([1.0, 0.0]), 0.0);
    assert_eq!(t.value([0.0, 0.0]), 0.5);
}

#[test]
fn bad_tasks_are_errors() {
    let slope = Shape::Slope { w: [1.0, 0.0] };
    assert!(Task::new(3, slope).unwrap_err().contains("dimension 3"));
    assert!(Task::new(0, slope).is_err());
    // Flat over the box: in 1-D a slope along y only is constant.
    let err = Task::new(1, Shape::Slope { w: [0.0, 1.0] }).unwrap_err();
    assert!(err.contains("too flat"), "{err}");
    assert!(Task::new(2, Shape::Slope { w: [0.0, 0.0] }).is_err());
    for bad in [
        Shape::Slope { w: [f64::NAN, 1.0] },
        Shape::Norm {
            p: NormKind::L1,
            centre: [f64::INFINITY, 0.0],
        },
        Shape::Rational {
            bumps: [
                Bump {
                    weight: 1.0,
                    sharpness: -1.0,
                    centre: [0.0, 0.0],
                },
                NO_BUMP,
            ],
        },
    ] {
        assert!(Task::new(2, bad).is_err(), "{bad:?}");
    }
}

/// `count` tasks of `family` in `dim` dimensions drawn from one stream.
fn random_tasks(dim: usize, family: Family, count: usize) -> Vec<Task> {
    let mut rng = Rng::stream(42, streams::TRAIN_TASKS, dim as u64);
    (0..count)
        .map(|_| Task::sample(dim, Some(family), &mut rng))
        .collect()
}

#[test]
fn random_tasks_span_zero_to_one() {
    for dim in [1, 2] {
        for family in FAMILIES {
            let mut worst_over = 0.0f64;
            let mut worst_under = 0.0f64;
            for t in random_tasks(dim, family, 40) {
                assert_eq!(t.family(), family);
                assert_eq!(t.dim(), dim);
                let values: Vec<f64> = grid_and_candidates(&t)
                    .iter()
                    .map(|&x| t.value(x))
                    .collect();
                let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
                let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                assert!(
                    lo.abs() < 1e-12 && (hi - 1.0).abs() < 1e-12,
                    "{t:?}: {lo} {hi}"
                );
                // A 4x finer grid: the coarse one must not miss much.
                let n = if dim == 1 { 801 } else { 161 };
                let ny = if dim == 1 { 1 } else { n };
                for k in 0..n {
                    for l in 0..ny {
                        let y = if dim == 1 { 0.0 } else { grid_coord(l, n) };
                        let v = t.value([grid_coord(k, n), y]);
                        worst_over = worst_over.max(v - 1.0);
                        worst_under = worst_under.max(-v);
                    }
                }
            }
            // Small for every family; none for norm and slope, whose optima are exact
            // (the centre, a corner).
            assert!(
                worst_over < 0.01,
                "{dim}-D {family:?}: overshoot {worst_over}"
            );
            assert!(
                worst_under < 0.01,
                "{dim}-D {family:?}: undershoot {worst_under}"
            );
            if matches!(family, Family::Norm | Family::Slope) {
                assert!(worst_over < 1e-12, "{dim}-D {family:?}: {worst_over}");
            }
        }
    }
}

#[test]
fn random_tasks_vary_within_each_family() {
    for dim in [1, 2] {
        for family in FAMILIES {
            let tasks = random_tasks(dim, family, 50);
            // The argmax over the grid spreads over the box.
            let mut left = 0;
            for t in &tasks {
                let best = grid_and_candidates(t)
                    .into_iter()
                    .max_by(|a, b| t.value(*a).total_cmp(&t.value(*b)))
                    .unwrap();
                left += usize::from(best[0] < 0.0);
            }
            assert!(
                (10..=40).contains(&left),
                "{dim}-D {family:?}: {left}/50 left"
            );
            for w in tasks.windows(2) {
                assert_ne!(w[0], w[1]);
            }
        }
    }
    // Norm: all three p; rational: one and two bumps; polynomial: degrees 2..4.
    let tasks = random_tasks(2, Family::Norm, 60);
    for p in [NormKind::L1, NormKind::L2, NormKind::Inf] {
        assert!(tasks
            .iter()
            .any(|t| matches!(t.shape(), Shape::Norm { p: q, .. } if *q == p)));
    }
    let tasks = random_tasks(2, Family::Rational, 40);
    let two = tasks
        .iter()
        .filter(|t| matches!(t.shape(), Shape::Rational { bumps } if bumps[1].weight > 0.0))
        .count();
    assert!((8..=32).contains(&two), "{two}");
    let tasks = random_tasks(2, Family::Polynomial, 60);
    for degree in 2..=4 {
        assert!(tasks.iter().any(|t| match t.shape() {
            Shape::Polynomial { coef } => {
                let top = (0..5)
                    .flat_map(|i| (0..5).map(move |j| (i, j)))
                    .filter(|&(i, j)| coef[i][j] != 0.0)
                    .map(|(i, j)| i + j)
                    .max();
                top == Some(degree)
            }
            _ => false,
        }));
    }
    // 1-D parameters have a zero second component.
    for t in random_tasks(1, Family::Fourier, 5) {
        if let Shape::Fourier { waves } = t.shape() {
            assert!(waves.iter().all(|w| w.freq[1] == 0.0 && w.freq[0] >= 0.5));
        }
    }
}

#[test]
fn names_specs_and_defaults() {
    assert_eq!(ENV_NAMES.len(), 12);
    for name in ENV_NAMES {
        let v = variant(name);
        assert_eq!(v.name(), name);
        assert!(bamdp::env::is_known(name));
        let env = make(name, 3, Split::Train, 1, &EnvOptions::default()).unwrap();
        let s = env.spec();
        assert_eq!(s.name, name);
        assert_eq!(s.obs_dim, 1);
        assert_eq!(
            s.action,
            ActionSpace::Continuous {
                dim: v.dim,
                low: -1.0,
                high: 1.0
            }
        );
        let len = if v.dim == 1 { 10 } else { 20 };
        assert_eq!((s.episode_len, s.episodes_per_trial), (len, 2), "{name}");
        assert!(s.has_success);
        assert_eq!(env.num_envs(), 3);
    }
    assert_eq!(
        variant("functions-2d-rational"),
        Variant {
            dim: 2,
            family: Some(Family::Rational)
        }
    );
    assert_eq!(
        variant("functions-1d"),
        Variant {
            dim: 1,
            family: None
        }
    );
    for family in FAMILIES {
        assert_eq!(Family::parse(family.name()), Some(family));
    }
}

#[test]
fn unknown_names_list_the_allowed_ones() {
    for bad in [
        "functions-1d-gauss",
        "functions-3d",
        "functions",
        "functions-2d-",
    ] {
        assert!(Variant::parse(bad).is_none());
        let err = match make(bad, 2, Split::Train, 1, &EnvOptions::default()) {
            Ok(_) => panic!("{bad}: built"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(bad), "{err}");
        for name in ENV_NAMES {
            assert!(err.contains(name), "{err}");
        }
        let err = config_err(&format!("env = \"{bad}\"\n"), &[]);
        assert!(
            err.contains("`env`") && err.contains("functions-2d-polynomial"),
            "{err}"
        );
    }
    // Other envs' names are not this module's business.
    assert!(Variant::from_env_name("gridnavi").unwrap().is_none());
}

#[test]
fn mixed_variants_draw_every_family_uniformly() {
    for name in ["functions-1d", "functions-2d"] {
        let n = 1000;
        let env = batch(name, n, Split::Train, 3);
        let mut counts = [0usize; 5];
        for i in 0..n {
            let f = env.task(i).family();
            counts[FAMILIES.iter().position(|&g| g == f).unwrap()] += 1;
        }
        // 200 each, standard deviation ~12.6.
        for c in counts {
            assert!((150..=250).contains(&c), "{name}: {counts:?}");
        }
    }
    for name in &ENV_NAMES[1..6] {
        let v = variant(name);
        let env = batch(name, 20, Split::Test, 3);
        for i in 0..20 {
            assert_eq!(Some(env.task(i).family()), v.family);
            assert_eq!(env.task(i).dim(), 1);
        }
    }
}

/// A one-row batch of `name` with `t` as its task.
fn one_row(name: &str, t: Task) -> (Functions, StepOut) {
    let mut env = batch(name, 1, Split::Train, 0);
    let mut obs = [9.0];
    env.reset(&mut obs);
    assert_eq!(obs, [0.0]);
    env.set_task(0, t);
    (env, StepOut::new(1, 1))
}

#[test]
fn reward_is_the_value_at_the_clipped_query() {
    // value(x) = (x + 1) / 2 for the 1-D slope w = 1.
    let t = task(1, Shape::Slope { w: [1.0, 0.0] });
    let (mut env, mut out) = one_row("functions-1d", t);
    for (a, r, success) in [
        (0.3f32, (0.3f32 as f64 + 1.0) / 2.0, false),
        (5.0, 1.0, true),
        (f32::NEG_INFINITY, 0.0, false),
        (-0.2, (-0.2f32 as f64 + 1.0) / 2.0, false),
        (0.92, (0.92f32 as f64 + 1.0) / 2.0, true),
        (0.88, (0.88f32 as f64 + 1.0) / 2.0, false),
        (f32::INFINITY, 1.0, true),
    ] {
        env.step(&[a], &mut out);
        assert_eq!(out.reward[0], r as f32, "a = {a}");
        let x = a.clamp(-1.0, 1.0) as f64;
        assert_eq!(out.reward[0], t.value([x, 0.0]) as f32);
        assert_eq!(out.success[0], success, "a = {a}");
        assert!(!out.terminated[0]);
    }
    // 2-D: each coordinate is clipped on its own.
    let t = task(2, Shape::Slope { w: [2.0, -1.0] });
    let (mut env, mut out) = one_row("functions-2d-slope", t);
    env.step(&[0.5, 3.0], &mut out);
    assert_eq!(out.reward[0], t.value([0.5, 1.0]) as f32);
    assert_eq!(out.reward[0], 0.5); // (2 * 0.5 - 1 + 3) / 6
                                    // The state does not change: the same query pays the same.
    env.step(&[0.25, -0.5], &mut out);
    let r = out.reward[0];
    env.step(&[0.25, -0.5], &mut out);
    assert_eq!(out.reward[0], r);
    assert_eq!(r, t.value([0.25, -0.5]) as f32);
}

#[test]
fn episode_and_trial_ends_with_the_time_feature() {
    let seed = 17;
    for (name, split, label, len) in [
        ("functions-1d", Split::Train, streams::TRAIN_TASKS, 10u32),
        ("functions-2d-fourier", Split::Test, streams::TEST_TASKS, 20),
    ] {
        let v = variant(name);
        let n = 3;
        let mut env = batch(name, n, split, seed);
        let mut rngs: Vec<Rng> = (0..n as u64).map(|i| Rng::stream(seed, label, i)).collect();
        let mut expected: Vec<Task> = rngs
            .iter_mut()
            .map(|r| Task::sample(v.dim, v.family, r))
            .collect();
        let mut out = StepOut::new(n, 1);
        let actions = vec![0.1f32; n * v.dim];
        for _trial in 0..3 {
            for (i, task) in expected.iter().enumerate() {
                assert_eq!(env.task(i), task);
            }
            for t in 1..=2 * len {
                env.step(&actions, &mut out);
                for (i, task) in expected.iter().enumerate() {
                    assert_eq!(out.truncated[i], t % len == 0, "t={t}");
                    assert_eq!(out.trial_end[i], t == 2 * len, "t={t}");
                    assert!(!out.terminated[i]);
                    assert_eq!(out.episode_index[i], (t - 1) / len);
                    // Step index within the episode over its length.
                    let within = (t - 1) % len + 1;
                    assert_eq!(out.final_obs[i], within as f32 / len as f32);
                    assert_eq!(out.obs[i], (t % len) as f32 / len as f32);
                    if t % len != 0 {
                        assert_eq!(out.obs[i], out.final_obs[i]);
                    } else {
                        assert_eq!((out.final_obs[i], out.obs[i]), (1.0, 0.0));
                    }
                    let x = [0.1f32 as f64, if v.dim == 2 { 0.1f32 as f64 } else { 0.0 }];
                    assert_eq!(out.reward[i], task.value(x) as f32);
                    if t < 2 * len {
                        assert_eq!(env.task(i), task, "t={t}");
                        assert_eq!(env.trial_step(i), t as usize);
                    }
                }
            }
            for i in 0..n {
                expected[i] = Task::sample(v.dim, v.family, &mut rngs[i]);
                assert_eq!(env.trial_step(i), 0);
            }
        }
    }
}

#[test]
fn options_set_the_horizon() {
    let opts = EnvOptions {
        functions: Options {
            episode_len: Some(3),
            episodes_per_trial: Some(4),
        },
        ..Default::default()
    };
    let mut env = make("functions-2d", 2, Split::Train, 1, &opts).unwrap();
    assert_eq!(
        (env.spec().episode_len, env.spec().episodes_per_trial),
        (3, 4)
    );
    let mut out = StepOut::new(2, 1);
    for t in 1..=24u32 {
        env.step(&[0.0; 4], &mut out);
        assert_eq!(out.truncated[0], t % 3 == 0, "t={t}");
        assert_eq!(out.trial_end[0], t % 12 == 0, "t={t}");
        assert_eq!(out.final_obs[0], ((t - 1) % 3 + 1) as f32 / 3.0);
    }
    // Only one key set: the other keeps its default.
    let one = EnvOptions {
        functions: Options {
            episode_len: Some(7),
            episodes_per_trial: None,
        },
        ..Default::default()
    };
    let env = make("functions-1d", 2, Split::Train, 1, &one).unwrap();
    assert_eq!(
        (env.spec().episode_len, env.spec().episodes_per_trial),
        (7, 2)
    );
    // make_with's episode count wins over the options; tasks are the same as make's.
    let env = make_with("functions-1d-norm", 2, Split::Test, 5, Some(5), &one).unwrap();
    assert_eq!(
        (env.spec().episode_len, env.spec().episodes_per_trial),
        (7, 5)
    );
    let made = make("functions-1d-norm", 2, Split::Test, 5, &one).unwrap();
    assert_eq!(env.save_state(), made.save_state());
    let env = make_with("functions-1d-norm", 2, Split::Test, 5, None, &one).unwrap();
    assert_eq!(env.spec().episodes_per_trial, 2);
    for k in [0, 101] {
        let err = match make_with("functions-1d", 2, Split::Test, 5, Some(k), &one) {
            Ok(_) => panic!("{k} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("--episodes-per-task") && err.contains("1..=100"),
            "{err}"
        );
    }
    // Out-of-range options are errors naming the key, never panics.
    for (opts, key, value) in [
        (
            Options {
                episode_len: Some(0),
                episodes_per_trial: None,
            },
            "functions.episode_len",
            "0",
        ),
        (
            Options {
                episode_len: Some(1001),
                episodes_per_trial: None,
            },
            "functions.episode_len",
            "1001",
        ),
        (
            Options {
                episode_len: None,
                episodes_per_trial: Some(0),
            },
            "functions.episodes_per_trial",
            "0",
        ),
        (
            Options {
                episode_len: None,
                episodes_per_trial: Some(101),
            },
            "functions.episodes_per_trial",
            "101",
        ),
    ] {
        let err = match make(
            "functions-2d",
            1,
            Split::Train,
            1,
            &EnvOptions {
                functions: opts,
                ..Default::default()
            },
        ) {
            Ok(_) => panic!("{opts:?} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(key) && err.contains(&format!("\"{value}\"")),
            "{err}"
        );
    }
    // Bounds themselves are allowed.
    let edge = Options {
        episode_len: Some(1000),
        episodes_per_trial: Some(100),
    };
    assert!(Functions::new(variant("functions-1d"), 1, Split::Train, 1, edge).is_ok());
    let edge = Options {
        episode_len: Some(1),
        episodes_per_trial: Some(1),
    };
    let mut env = Functions::new(variant("functions-1d"), 1, Split::Train, 1, edge).unwrap();
    let mut out = StepOut::new(1, 1);
    env.step(&[0.0], &mut out);
    assert!(out.truncated[0] && out.trial_end[0]);
    assert_eq!((out.final_obs[0], out.obs[0]), (1.0, 0.0));
}

/// Uniform queries in [-1.5, 1.5] (some clipped) for `n` rows of width `dim`, row `i`'s
/// from its own stream (independent of the batch size).
struct Queries {
    dim: usize,
    rngs: Vec<Rng>,
    buf: Vec<f32>,
}

impl Queries {
    fn new(n: usize, dim: usize) -> Self {
        Queries {
            dim,
            rngs: (0..n as u64)
                .map(|i| Rng::stream(99, streams::ACTIONS, i))
                .collect(),
            buf: vec![0.0; n * dim],
        }
    }
    fn next(&mut self) -> &[f32] {
        for (i, r) in self.rngs.iter_mut().enumerate() {
            for d in 0..self.dim {
                self.buf[self.dim * i + d] = (3.0 * r.uniform() - 1.5) as f32;
            }
        }
        &self.buf
    }
}

/// Tasks, rewards, observations and ends of every row for `steps` steps, as bit strings.
fn record(env: &mut Functions, q: &mut Queries, steps: usize) -> Vec<String> {
    let n = env.num_envs();
    let mut out = StepOut::new(n, 1);
    let mut log = Vec::new();
    for _ in 0..steps {
        env.step(q.next(), &mut out);
        for i in 0..n {
            log.push(format!(
                "{i} {:x} {:x} {:x} {} {} {} {} {:?}",
                out.reward[i].to_bits(),
                out.obs[i].to_bits(),
                out.final_obs[i].to_bits(),
                out.truncated[i],
                out.trial_end[i],
                out.success[i],
                out.episode_index[i],
                env.task(i),
            ));
        }
    }
    log
}

fn row_log(log: &[String], row: usize) -> Vec<&str> {
    let prefix = format!("{row} ");
    log.iter()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| &l[prefix.len()..])
        .collect()
}

#[test]
fn deterministic_and_independent_of_batch_size() {
    for name in ["functions-1d", "functions-2d", "functions-2d-rational"] {
        let dim = variant(name).dim;
        let run = |n: usize, split: Split, seed: u64| {
            record(
                &mut batch(name, n, split, seed),
                &mut Queries::new(n, dim),
                130,
            )
        };
        let a = run(2, Split::Train, 8);
        assert_eq!(a, run(2, Split::Train, 8));
        let c = run(5, Split::Train, 8);
        for row in 0..2 {
            assert_eq!(row_log(&a, row), row_log(&c, row), "{name} row {row}");
        }
        // Rows differ, seeds differ, splits differ.
        assert_ne!(row_log(&c, 0), row_log(&c, 1));
        assert_ne!(a, run(2, Split::Train, 9));
        let test = run(2, Split::Test, 8);
        for row in 0..2 {
            assert_ne!(row_log(&a, row), row_log(&test, row), "{name} row {row}");
        }
    }
}

#[test]
fn train_and_test_tasks_differ() {
    let n = 16;
    let train = batch("functions-2d", n, Split::Train, 4);
    let test = batch("functions-2d", n, Split::Test, 4);
    assert_eq!((train.split(), test.split()), (Split::Train, Split::Test));
    for i in 0..n {
        assert_ne!(train.task(i), test.task(i), "row {i}");
    }
}

#[test]
fn save_load_continues_bit_identically() {
    for name in ["functions-1d", "functions-2d", "functions-2d-polynomial"] {
        let dim = variant(name).dim;
        let n = 4;
        let mut env = batch(name, n, Split::Test, 21);
        let mut q = Queries::new(n, dim);
        // Mid-episode, mid-trial, after trial ends.
        record(&mut env, &mut q, 97);
        let text = serde_json::to_string(&env.save_state()).unwrap();
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut q2 = Queries {
            dim,
            rngs: q.rngs.clone(),
            buf: q.buf.clone(),
        };
        let expected = record(&mut env, &mut q, 300);
        // Another seed: everything comes from the state.
        let mut resumed = batch(name, n, Split::Test, 1234);
        resumed.load_state(&state).unwrap();
        assert_eq!(resumed.save_state(), state);
        let len = 2 * if dim == 1 { 10 } else { 20 };
        for i in 0..n {
            assert_eq!(resumed.trial_step(i), 97 % len);
        }
        assert_eq!(record(&mut resumed, &mut q2, 300), expected, "{name}");
    }
}

#[test]
fn load_state_rejects_malformed_input() {
    let mut env = batch("functions-2d-slope", 2, Split::Train, 1);
    let mut out = StepOut::new(2, 1);
    for _ in 0..5 {
        env.step(&[0.5, 0.5, -0.5, 0.5], &mut out);
    }
    let good = env.save_state();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut s = good.clone();
        f(&mut s);
        s
    };
    let norm = serde_json::json!({"family": "norm", "p": "l1", "centre": [0.0, 0.0]});
    let bad: Vec<(&str, serde_json::Value)> = vec![
        ("not an object", serde_json::json!(3)),
        ("empty", serde_json::json!({})),
        (
            "unknown field",
            edit(&|s| s["extra"] = serde_json::json!(1)),
        ),
        (
            "other env",
            edit(&|s| s["env"] = serde_json::json!("functions-2d")),
        ),
        (
            "other split",
            edit(&|s| s["split"] = serde_json::json!("test")),
        ),
        (
            "short shape",
            edit(&|s| s["shape"] = serde_json::json!([s["shape"][0]])),
        ),
        ("other family", edit(&|s| s["shape"][1] = norm.clone())),
        (
            "unknown family",
            edit(&|s| s["shape"][1]["family"] = serde_json::json!("gauss")),
        ),
        (
            "flat slope",
            edit(&|s| s["shape"][0]["w"] = serde_json::json!([0.0, 0.0])),
        ),
        (
            "null weight",
            edit(&|s| s["shape"][0]["w"] = serde_json::json!([null, 1.0])),
        ),
        (
            "huge weight",
            edit(&|s| s["shape"][0]["w"] = serde_json::json!([1e308, -1e308])),
        ),
        (
            "t at trial length",
            edit(&|s| s["t"] = serde_json::json!([0, 40])),
        ),
        ("short t", edit(&|s| s["t"] = serde_json::json!([1]))),
        ("short rng", edit(&|s| s["rng"] = serde_json::json!([]))),
    ];
    let before = env.save_state();
    for (what, state) in bad {
        let err = env.load_state(&state);
        assert!(err.is_err(), "{what}: accepted");
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("functions-2d-slope state"),
            "{what}"
        );
        assert_eq!(env.save_state(), before, "{what}: state changed");
    }
    env.load_state(&good).unwrap();
    // The mixed batch accepts any family.
    let mut mixed = batch("functions-2d", 2, Split::Train, 1);
    let mut s = mixed.save_state();
    s["shape"][1] = norm;
    mixed.load_state(&s).unwrap();
    assert_eq!(mixed.task(1).family(), Family::Norm);
}

#[test]
#[should_panic(expected = "NaN")]
fn nan_action_panics() {
    let (mut env, mut out) = one_row("functions-1d", task(1, Shape::Slope { w: [1.0, 0.0] }));
    env.step(&[f32::NAN], &mut out);
}

#[test]
#[should_panic(expected = "actions length")]
fn wrong_action_width_panics() {
    let mut env = batch("functions-2d", 1, Split::Train, 0);
    env.step(&[0.0], &mut StepOut::new(1, 1));
}

#[test]
fn step_does_not_allocate() {
    for name in ["functions-1d", "functions-2d"] {
        let n = 8;
        let dim = variant(name).dim;
        let mut env = batch(name, n, Split::Train, 2);
        let mut out = StepOut::new(n, 1);
        let mut q = Queries::new(n, dim);
        let mut buf = vec![0.0; n * dim];
        // Many trial ends, so every family is drawn inside step.
        let before = allocs();
        for _ in 0..600 {
            buf.copy_from_slice(q.next());
            env.step(&buf, &mut out);
        }
        assert_eq!(allocs(), before, "{name}");
    }
}

fn config_err(text: &str, overrides: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg.toml");
    std::fs::write(&path, text).unwrap();
    let sets: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    match Config::load(&path, &sets) {
        Ok(c) => panic!("expected an error, loaded {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn config_ok(text: &str, overrides: &[&str]) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg.toml");
    std::fs::write(&path, text).unwrap();
    let sets: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Config::load(&path, &sets).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn config_section_sets_and_checks_the_horizon() {
    let base = "env = \"functions-1d\"\n";
    let c = config_ok(base, &[]);
    assert_eq!(c.env_options().functions, EnvOptions::default().functions);
    let c = config_ok(
        &format!("{base}[functions]\nepisode_len = 5\nepisodes_per_trial = 3\n"),
        &[],
    );
    assert_eq!(
        c.env_options().functions,
        Options {
            episode_len: Some(5),
            episodes_per_trial: Some(3)
        }
    );
    // Round trip through a run folder's config.toml, with and without the keys.
    let back = Config::from_toml_str(&c.to_toml_string(), "config.toml").unwrap();
    assert_eq!(back, c);
    let plain = config_ok(base, &[]);
    assert_eq!(
        Config::from_toml_str(&plain.to_toml_string(), "config.toml").unwrap(),
        plain
    );
    // --set, also when the file has no [functions] section, and when extending a run.
    let c = config_ok(base, &["functions.episode_len=12"]);
    assert_eq!(c.functions.episode_len, Some(12));
    assert_eq!(c.functions.episodes_per_trial, None);
    let c = c
        .with_overrides(&["functions.episodes_per_trial=4".to_string()])
        .unwrap();
    assert_eq!(c.functions.episodes_per_trial, Some(4));

    for (file, sets, key, value, source) in [
        (
            "[functions]\nepisode_len = 0\n",
            &[][..],
            "functions.episode_len",
            "0",
            "cfg.toml: ",
        ),
        (
            "",
            &["functions.episode_len=1001"][..],
            "functions.episode_len",
            "1001",
            "--set: ",
        ),
        (
            "[functions]\nepisodes_per_trial = 0\n",
            &[][..],
            "functions.episodes_per_trial",
            "0",
            "cfg.toml: ",
        ),
        (
            "",
            &["functions.episodes_per_trial=101"][..],
            "functions.episodes_per_trial",
            "101",
            "--set: ",
        ),
    ] {
        let err = config_err(&format!("{base}{file}"), sets);
        assert!(err.contains(source), "{err}");
        assert!(
            err.contains(&format!("`{key}`")) && err.contains(&format!("\"{value}\"")),
            "{err}"
        );
        assert!(err.contains("1..="), "{err}");
    }
    let err = config_err(base, &["functions.episode_len=-1"]);
    assert!(err.contains("functions.episode_len"), "{err}");
    let err = config_err(base, &["functions.episode_len=ten"]);
    assert!(err.contains("expected an integer"), "{err}");
    let err = config_err(&format!("{base}[functions]\nhorizon = 3\n"), &[]);
    assert!(err.contains("horizon"), "{err}");
    let err = config_err(base, &["functions.horizon=3"]);
    assert!(
        err.contains("episode_len") && err.contains("episodes_per_trial"),
        "{err}"
    );
    // The section only makes sense for functions-* envs.
    let err = config_err("env = \"gridnavi\"\n[functions]\nepisode_len = 5\n", &[]);
    assert!(
        err.contains("functions.episode_len") && err.contains("gridnavi"),
        "{err}"
    );
}

#[test]
fn every_method_trains_on_functions() {
    use bamdp::run::trainer::Trainer;
    for (method, env) in [
        ("rl2", "functions-1d"),
        ("memoryless", "functions-2d"),
        ("varibad", "functions-2d"),
        ("glibrl", "functions-1d"),
    ] {
        let text = format!(
            "method = \"{method}\"\nenv = \"{env}\"\n[run]\nnum_envs = 4\nsteps_per_update = 25\n\
             [ppo]\nminibatches = 2\n[policy]\nhidden = [16]\n\
             [varibad]\nreward_decoder = \"mlp\"\naction_embed = 4\nreward_input_action = true\nbatch_trials = 2\n\
             [glibrl]\nfeatures = 4\nbasis_hidden = [8]\nbatch_trials = 2\n\
             [functions]\nepisode_len = 5\n"
        );
        let cfg = config_ok(&text, &[]);
        let mut trainer = Trainer::new(&cfg).unwrap_or_else(|e| panic!("{method}: {e}"));
        let mut trials = 0;
        for _ in 0..4 {
            let r = trainer.train_update();
            assert!(r.stats.policy_loss.is_finite(), "{method}");
            for t in &r.finished {
                assert_eq!(t.returns.len(), 2);
                // Rewards lie in [0, 1] up to grid error, 5 per episode.
                for &g in &t.returns {
                    assert!((-0.01..=5.2).contains(&g), "{method}: {g}");
                }
                trials += 1;
            }
        }
        assert!(trials >= 4 * 4 * 25 / 10 - 4, "{method}: {trials} trials");
    }
}
