//! GLiBRL belief: streaming posteriors against batch refits, the training loss against
//! the GLM library on the host design, gradients against finite differences, the
//! prior projection, particle gathering and config errors.

mod run_support;
use bamdp::belief::glibrl::{GlibrlConfig, GlibrlModel, GlibrlSpec, GlibrlState, PolicyInput};
use bamdp::belief::glm::{self, MniwPrior, Stats};
use bamdp::belief::trials::TrialRecord;
use bamdp::belief::{Belief, Transition};
use bamdp::config::Config;
use bamdp::env::probes::RewardProbes;
use bamdp::rng::Rng;
use run_support::metrics;

fn spec(discrete: bool) -> GlibrlSpec {
    GlibrlSpec {
        obs_dim: 2,
        action_dim: if discrete { 5 } else { 2 },
        discrete_actions: discrete,
        config: GlibrlConfig {
            basis_hidden: vec![8, 7],
            features: 6,
            reward_head: true,
            transition_dims: vec![1, 0],
            init_lambda0: 2.0,
            init_psi0: 0.5,
            init_nu0: 3.5,
            noise_floor: 0.01,
            ..GlibrlConfig::default()
        },
        probes: Some(probes(discrete)),
    }
}

/// Four reward probes at scattered transitions (read only with `policy_input = probes`).
fn probes(discrete: bool) -> RewardProbes {
    let mut rng = Rng::new(77);
    let mut normals = |n: usize| (0..n).map(|_| rng.normal() as f32).collect::<Vec<f32>>();
    RewardProbes {
        count: 4,
        obs: normals(8),
        actions: if discrete {
            vec![0.0, 3.0, 1.0, 4.0]
        } else {
            normals(8)
        },
        next_obs: normals(8),
    }
}

/// A model with every parameter (biases and priors included) randomised.
fn model(discrete: bool, seed: u64) -> GlibrlModel {
    let mut rng = Rng::new(seed);
    let mut m = GlibrlModel::new(spec(discrete), &mut rng);
    for v in m.params.data.iter_mut() {
        *v += 0.2 * rng.normal() as f32;
    }
    m
}

fn random_trial(steps: usize, discrete: bool, rng: &mut Rng) -> TrialRecord {
    let mut t = TrialRecord::default();
    let mut s = [rng.normal() as f32, rng.normal() as f32];
    for _ in 0..steps {
        let a: Vec<f32> = if discrete {
            vec![rng.below(5) as f32]
        } else {
            vec![rng.normal() as f32, rng.normal() as f32]
        };
        let s2 = [
            s[0] + 0.3 * rng.normal() as f32,
            s[1] + 0.3 * rng.normal() as f32,
        ];
        let r = (s2[0] - 0.5).abs() + 0.1 * rng.normal() as f32;
        t.push_step(&s, &a, r, &s2);
        s = s2;
    }
    t
}

fn prior_of(m: &GlibrlModel, h: usize) -> MniwPrior {
    m.heads[h].prior(&m.params, m.spec.config.features).unwrap()
}

/// The inverse of a small SPD matrix (Gauss-Jordan, f64), row-major.
fn inverse(a: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    for col in 0..n {
        let p = m[col * n + col];
        for j in 0..n {
            m[col * n + j] /= p;
            inv[col * n + j] /= p;
        }
        for row in 0..n {
            if row != col {
                let f = m[row * n + col];
                for j in 0..n {
                    m[row * n + j] -= f * m[col * n + j];
                    inv[row * n + j] -= f * inv[col * n + j];
                }
            }
        }
    }
    inv
}

/// The policy features of one row, recomputed from batch posteriors of the prefix.
fn batch_features(m: &GlibrlModel, trial: &TrialRecord, n: usize) -> Vec<f64> {
    let d = m.spec.config.features;
    let mut out = Vec::new();
    for (h, head) in m.heads.iter().enumerate() {
        let (c, y) = m.design(h, trial);
        let stats = Stats::from_rows(d, head.m, &c[..n * d], &y[..n * head.m], n).unwrap();
        let post = glm::posterior(&prior_of(m, h), &stats).unwrap();
        out.extend(&post.m_n);
        let cov = inverse(&post.lambda_n, d);
        out.extend((0..d).map(|i| cov[i * d + i].ln()));
        let denom = (post.nu_n - head.m as f64 - 1.0).max(1.0).ln();
        for i in 0..head.m {
            out.push(post.psi_n[i * head.m + i].ln() - denom);
        }
        if m.spec.config.policy_input == PolicyInput::Correlations {
            for i in 0..d {
                for j in i + 1..d {
                    out.push(cov[i * d + j] / (cov[i * d + i] * cov[j * d + j]).sqrt());
                }
            }
        }
        if m.spec.config.policy_input == PolicyInput::Probes && h == 0 {
            // The probes as a trial of their own: the same host design as the data.
            let p = m.spec.probes.as_ref().unwrap();
            let probe_trial = TrialRecord {
                obs: p.obs.clone(),
                actions: p.actions.clone(),
                rewards: vec![0.0; p.count],
                next_obs: p.next_obs.clone(),
            };
            let (cp, _) = m.design(h, &probe_trial);
            for c in cp.chunks(d) {
                out.push((0..d).map(|i| c[i] * post.m_n[i]).sum());
                let spread: f64 = (0..d)
                    .flat_map(|i| (0..d).map(move |j| (i, j)))
                    .map(|(i, j)| c[i] * cov[i * d + j] * c[j])
                    .sum();
                out.push(spread.ln());
            }
        }
    }
    out
}

fn feed(m: &GlibrlModel, state: &mut GlibrlState, trials: &[TrialRecord], t: usize) {
    let (od, aw) = (2, trials[0].actions.len() / trials[0].len());
    let cat = |f: &dyn Fn(&TrialRecord) -> &[f32], w: usize| -> Vec<f32> {
        trials
            .iter()
            .flat_map(|tr| f(tr)[t * w..(t + 1) * w].to_vec())
            .collect()
    };
    let obs = cat(&|tr| &tr.obs, od);
    let action = cat(&|tr| &tr.actions, aw);
    let reward: Vec<f32> = trials.iter().map(|tr| tr.rewards[t]).collect();
    let next = cat(&|tr| &tr.next_obs, od);
    m.update(
        state,
        &Transition {
            obs: &obs,
            action: &action,
            reward: &reward,
            next_obs: &next,
            episode_end: &vec![false; trials.len()],
        },
    );
}

#[test]
fn streaming_features_equal_batch_posteriors_after_every_step() {
    for (discrete, input) in [
        (true, PolicyInput::Diagonal),
        (false, PolicyInput::Diagonal),
        (true, PolicyInput::Correlations),
        (true, PolicyInput::Probes),
        (false, PolicyInput::Probes),
    ] {
        let mut m = model(discrete, 3);
        m.spec.config.policy_input = input;
        let mut rng = Rng::new(9);
        let trials: Vec<TrialRecord> = (0..3)
            .map(|_| random_trial(12, discrete, &mut rng))
            .collect();
        let mut state = m.init(3);
        m.reset(&mut state, &[true; 3]);
        let fd = m.feature_dim();
        let mut feats = vec![0.0f32; 3 * fd];
        for t in 0..=12 {
            if t > 0 {
                feed(&m, &mut state, &trials, t - 1);
            }
            m.features(&state, &mut feats);
            for (r, tr) in trials.iter().enumerate() {
                let want = batch_features(&m, tr, t);
                assert_eq!(want.len(), fd);
                for (i, (&got, &w)) in feats[r * fd..(r + 1) * fd].iter().zip(&want).enumerate() {
                    assert!(
                        (got as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "discrete {discrete}, step {t}, row {r}, feature {i}: {got} vs {w}"
                    );
                }
            }
        }
        // A trial start puts a row back to the prior.
        m.reset(&mut state, &[false, true, false]);
        m.features(&state, &mut feats);
        let prior = batch_features(&m, &trials[1], 0);
        for (&got, &w) in feats[fd..2 * fd].iter().zip(&prior) {
            assert!((got as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()));
        }
        let full = batch_features(&m, &trials[2], 12);
        assert!((feats[2 * fd] as f64 - full[0]).abs() <= 1e-4 * (1.0 + full[0].abs()));
    }
}

/// The loss through burn's basis graph equals the library's log marginal on the host
/// design: mean over trials and prefixes of -log p(Y_{1..n}) / n, summed over heads.
#[test]
fn training_loss_equals_the_glm_library_on_the_host_design() {
    let m = model(true, 4);
    let mut rng = Rng::new(5);
    let trials: Vec<TrialRecord> = (0..4).map(|_| random_trial(10, true, &mut rng)).collect();
    let refs: Vec<&TrialRecord> = trials.iter().collect();
    let prefixes = vec![3, 10, 1, 10, 7, 10, 10, 10];
    let (stats, grad) = m.loss_and_grad(&refs, &prefixes, 2).unwrap();
    let d = m.spec.config.features;
    let mut want = 0.0;
    for (h, head) in m.heads.iter().enumerate() {
        let prior = prior_of(&m, h);
        let mut sum = 0.0;
        for (b, tr) in trials.iter().enumerate() {
            let (c, y) = m.design(h, tr);
            for &n in &prefixes[2 * b..2 * b + 2] {
                let s = Stats::from_rows(d, head.m, &c[..n * d], &y[..n * head.m], n).unwrap();
                sum += -glm::log_marginal(&prior, &s).unwrap() / n as f64;
            }
        }
        want += sum / prefixes.len() as f64;
    }
    assert!(
        (stats.loss - want).abs() <= 1e-5 * want.abs().max(1.0),
        "{} vs {want}",
        stats.loss
    );
    assert!(grad.iter().all(|g| g.is_finite()));
    assert!(grad.iter().any(|&g| g != 0.0));
}

/// The basis networks run in fixed chunks of trials: the loss and gradient are the same
/// bits on one thread or several.
#[test]
fn training_gradient_does_not_depend_on_the_thread_count() {
    let m = model(true, 4);
    let mut rng = Rng::new(11);
    let trials: Vec<TrialRecord> = (0..5).map(|_| random_trial(9, true, &mut rng)).collect();
    let refs: Vec<&TrialRecord> = trials.iter().collect();
    let prefixes = vec![9, 4, 9, 9, 2, 9, 9, 7, 1, 9];
    let (s1, g1) = m.loss_and_grad_on(&refs, &prefixes, 2, 1).unwrap();
    for threads in [2, 3] {
        let (s, g) = m.loss_and_grad_on(&refs, &prefixes, 2, threads).unwrap();
        assert_eq!(s.loss.to_bits(), s1.loss.to_bits(), "{threads} threads");
        assert_eq!(g, g1, "{threads} threads");
    }
    assert!(g1.iter().any(|&g| g != 0.0));
}

/// The surrogate gradient of the basis weights and the chained prior gradients equal
/// central finite differences of the loss.
#[test]
fn training_gradient_matches_finite_differences() {
    let m = model(false, 6);
    let mut rng = Rng::new(7);
    let trials: Vec<TrialRecord> = (0..3).map(|_| random_trial(8, false, &mut rng)).collect();
    let refs: Vec<&TrialRecord> = trials.iter().collect();
    let prefixes = vec![4, 8, 2, 8, 8, 8];
    let (_, grad) = m.loss_and_grad(&refs, &prefixes, 2).unwrap();
    let loss_at = |p: &GlibrlModel| p.loss_and_grad(&refs, &prefixes, 2).unwrap().0.loss;
    let mut checked = 0;
    for (name, slot) in m.params.names.iter().zip(&m.params.slots) {
        // Up to three entries of every tensor.
        for k in [0, slot.len() / 2, slot.len() - 1] {
            let i = slot.offset + k;
            let h = 1e-2f32;
            let mut plus = m.clone();
            plus.params.data[i] += h;
            let mut minus = m.clone();
            minus.params.data[i] -= h;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * h as f64);
            let g = grad[i] as f64;
            assert!(
                (fd - g).abs() <= 2e-3 + 2e-2 * g.abs(),
                "{name}[{k}]: finite difference {fd} vs gradient {g}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30);
}

#[test]
fn projection_keeps_the_prior_noise_above_the_floor() {
    let mut m = model(true, 8);
    for head in m.heads.clone() {
        m.params.data[head.psi0_log_diag.range()]
            .iter_mut()
            .for_each(|v| *v = -60.0);
        m.params.data[head.nu0_raw.range()][0] = 50.0;
    }
    m.project_prior();
    for (h, head) in m.heads.iter().enumerate() {
        let p = prior_of(&m, h);
        assert!(p.nu0 <= bamdp::belief::glibrl::NU0_MAX * (1.0 + 1e-6));
        for i in 0..head.m {
            let var = p.psi0_log_diag[i].exp() / p.nu0;
            assert!(var >= 0.01f64.powi(2) * 0.999, "head {h}: {var}");
        }
    }
}

#[test]
fn gather_copies_particle_rows() {
    let m = model(true, 10);
    let mut rng = Rng::new(11);
    let trials: Vec<TrialRecord> = (0..3).map(|_| random_trial(5, true, &mut rng)).collect();
    let mut state = m.init(3);
    m.reset(&mut state, &[true; 3]);
    for t in 0..5 {
        feed(&m, &mut state, &trials, t);
    }
    let mut into = m.init(1);
    m.gather(&state, &[2, 2, 0, 1], &mut into);
    let fd = m.feature_dim();
    let (mut a, mut b) = (vec![0.0; 3 * fd], vec![0.0; 4 * fd]);
    m.features(&state, &mut a);
    m.features(&into, &mut b);
    for (dst, src) in [(0, 2), (1, 2), (2, 0), (3, 1)] {
        assert_eq!(b[dst * fd..(dst + 1) * fd], a[src * fd..(src + 1) * fd]);
    }
}

#[test]
fn glibrl_config_errors_name_the_key_and_what_is_allowed() {
    let base = Config {
        method: bamdp::method::MethodId::Glibrl,
        ..Config::default()
    };
    let cases: [(&str, &str); 5] = [
        ("glibrl.init_nu0=0.0", "glibrl.init_nu0"),
        ("glibrl.features=1", "glibrl.features"),
        ("glibrl.transition_dims=[0, 0]", "glibrl.transition_dims"),
        ("glibrl.noise_floor=-1.0", "glibrl.noise_floor"),
        ("glibrl.basis_hidden=[8, 0]", "glibrl.basis_hidden"),
    ];
    for (set, key) in cases {
        let err = base
            .with_overrides(&[set.to_string()])
            .and_then(|c| c.validate("--set"))
            .expect_err(set)
            .to_string();
        assert!(err.contains(key), "{set}: {err}");
    }
    // nu0 must exceed m - 1 of the widest head: 2 transition targets need nu0 > 1.
    let err = base
        .with_overrides(&[
            "glibrl.transition_dims=[0, 1]".to_string(),
            "glibrl.init_nu0=1.0".to_string(),
        ])
        .and_then(|c| c.validate("--set"))
        .expect_err("nu0 = m - 1")
        .to_string();
    assert!(err.contains("> m - 1 = 1"), "{err}");
    // Errors caught when the env is known, building the trainer.
    let trainer_error = |sets: &[&str]| {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let cfg = base.with_overrides(&sets).unwrap();
        bamdp::run::trainer::Trainer::new(&cfg)
            .err()
            .unwrap_or_else(|| panic!("{sets:?} must be rejected"))
            .to_string()
    };
    // Out-of-range state dimensions (gridnavi has 2).
    let err = trainer_error(&["glibrl.transition_dims=[2]"]);
    assert!(
        err.contains("glibrl.transition_dims") && err.contains("below 2"),
        "{err}"
    );
    // The probes input needs an env with reward probes.
    let err = trainer_error(&["env=functions-1d", "glibrl.policy_input=probes"]);
    assert!(
        err.contains("glibrl.policy_input")
            && err.contains("gridnavi, point_robot, point_robot_sparse"),
        "{err}"
    );
}

/// Checkpoints carry the basis networks and priors, their optimiser, the trial buffer
/// and the trials being recorded, and the streaming posteriors; the split falls
/// mid-trial after the first marginal-likelihood updates.
#[test]
fn resumed_glibrl_run_equals_uninterrupted_run() {
    use bamdp::run::train::{self, TrainArgs};
    let preset =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/gridnavi/glibrl.toml");
    let dir = tempfile::tempdir().unwrap();
    let per_update = 8 * 45;
    let overrides = |updates: usize, threads: usize| {
        vec![
            format!("run.total_frames={}", updates * per_update),
            "run.num_envs=8".into(),
            "ppo.minibatches=2".into(),
            "run.checkpoint_every=3".into(),
            "run.steps_per_update=45".into(),
            "glibrl.batch_trials=6".into(),
            format!("run.threads={threads}"),
        ]
    };
    let go = |out: &std::path::Path, o: Vec<String>, resume: bool| {
        train::train(&TrainArgs {
            config: (!resume).then(|| preset.clone()),
            overrides: o,
            out: Some(out.to_path_buf()),
            resume,
            force: false,
            quiet: true,
        })
        .unwrap();
    };
    let whole = dir.path().join("whole");
    go(&whole, overrides(9, 2), false);
    let split = dir.path().join("split");
    go(&split, overrides(5, 2), false);
    go(
        &split,
        vec![format!("run.total_frames={}", 9 * per_update)],
        true,
    );
    let one_thread = dir.path().join("one_thread");
    go(&one_thread, overrides(9, 1), false);
    let (a, b, c) = (metrics(&whole), metrics(&split), metrics(&one_thread));
    assert_eq!(a.len(), 9);
    let last = a.last().unwrap();
    assert!(
        last.iter().rev().take(2).all(|v| v != "NaN"),
        "no GLiBRL update happened: {last:?}"
    );
    assert_eq!(a, b, "resumed run differs from the uninterrupted one");
    assert_eq!(a, c, "the thread count changed the results");
}
