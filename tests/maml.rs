//! MAML's derivatives and solvers against independent computations: gradients and
//! Hessian-vector products vs finite differences, the exact meta-gradient vs finite
//! differences of the post-adaptation objective through the inner steps, Fisher-vector
//! products vs explicitly built Fisher matrices, the linear baseline vs faer's
//! least squares; plus config errors and exact resume of a MAML run.

use bamdp::improve::baseline::{feature_dim, features, LinearBaseline, RIDGE};
use bamdp::improve::maml::meta::{AdaptBatch, Maml, PostBatch, TaskBatch};
use bamdp::improve::maml::policy::{Activation, Head, Policy, Tape};
use bamdp::rng::Rng;

fn tiny(head: Head, act: Activation) -> Policy {
    Policy::new(3, &[5, 4], act, head)
}

fn random_theta(p: &Policy, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..p.len()).map(|_| rng.normal() * scale).collect()
}

fn random_batch(p: &Policy, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let obs: Vec<f64> = (0..n * p.obs_dim).map(|_| rng.normal()).collect();
    let actions: Vec<f64> = match p.head {
        Head::Gaussian { dim } => (0..n * dim).map(|_| rng.normal()).collect(),
        Head::Categorical { n: k } => (0..n).map(|_| rng.below(k as u64) as f64).collect(),
    };
    let w: Vec<f64> = (0..n).map(|_| rng.normal() / n as f64).collect();
    (obs, actions, w)
}

fn weighted_logp(p: &Policy, theta: &[f64], obs: &[f64], actions: &[f64], w: &[f64]) -> f64 {
    let mut tape = Tape::default();
    p.forward(theta, obs, w.len(), &mut tape);
    let mut lp = vec![0.0; w.len()];
    p.log_probs(theta, &tape, actions, &mut lp);
    lp.iter().zip(w).map(|(a, b)| a * b).sum()
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-3f64, |m, x| m.max(x.abs()));
    for i in 0..a.len() {
        assert!(
            (a[i] - b[i]).abs() <= tol * scale,
            "{what}[{i}]: {} vs {} (scale {scale})",
            a[i],
            b[i]
        );
    }
}

fn fd_grad(theta: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let eps = 1e-5;
    let mut t = theta.to_vec();
    (0..theta.len())
        .map(|i| {
            t[i] = theta[i] + eps;
            let up = f(&t);
            t[i] = theta[i] - eps;
            let down = f(&t);
            t[i] = theta[i];
            (up - down) / (2.0 * eps)
        })
        .collect()
}

fn heads() -> Vec<(Head, Activation)> {
    vec![
        (Head::Gaussian { dim: 2 }, Activation::Tanh),
        (Head::Categorical { n: 3 }, Activation::Tanh),
        (Head::Gaussian { dim: 2 }, Activation::Relu),
    ]
}

#[test]
fn inner_gradient_matches_finite_differences() {
    for (head, act) in heads() {
        let p = tiny(head, act);
        let theta = random_theta(&p, 1, 0.5);
        let (obs, actions, w) = random_batch(&p, 7, 2);
        let mut grad = vec![0.0; p.len()];
        let value = p.grad_logp(&theta, &obs, &actions, &w, &mut Tape::default(), &mut grad);
        assert!((value - weighted_logp(&p, &theta, &obs, &actions, &w)).abs() < 1e-12);
        let fd = fd_grad(&theta, |t| weighted_logp(&p, t, &obs, &actions, &w));
        close(&grad, &fd, 1e-6, &format!("grad {head:?} {act:?}"));
    }
}

#[test]
fn hessian_vector_products_match_finite_differences_of_the_gradient() {
    for (head, act) in heads() {
        let p = tiny(head, act);
        let theta = random_theta(&p, 3, 0.5);
        let v = random_theta(&p, 4, 1.0);
        let (obs, actions, w) = random_batch(&p, 6, 5);
        let mut tape = Tape::default();
        let (mut g, mut hv) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        p.hvp_logp(&theta, &obs, &actions, &w, &v, &mut tape, &mut g, &mut hv);
        let eps = 1e-5;
        let grad_at = |s: f64| {
            let t: Vec<f64> = theta.iter().zip(&v).map(|(a, b)| a + s * b).collect();
            let mut g = vec![0.0; p.len()];
            p.grad_logp(&t, &obs, &actions, &w, &mut Tape::default(), &mut g);
            g
        };
        let (up, down) = (grad_at(eps), grad_at(-eps));
        let fd: Vec<f64> = up
            .iter()
            .zip(&down)
            .map(|(a, b)| (a - b) / (2.0 * eps))
            .collect();
        close(&hv, &fd, 1e-5, &format!("hvp {head:?} {act:?}"));
    }
}

#[test]
fn f32_products_give_the_f64_derivatives_within_f32_rounding() {
    use bamdp::nn::gemm_mixed::Precision;
    // MetaWorld-like widths (39 inputs, a 4-d Gaussian head) on a smaller hidden layer.
    for (head, act) in [
        (Head::Gaussian { dim: 4 }, Activation::Tanh),
        (Head::Categorical { n: 5 }, Activation::Relu),
    ] {
        let exact = Policy::new(39, &[96, 64], act, head);
        let rounded = exact.clone().with_precision(Precision::F32);
        assert_eq!(rounded.precision(), Precision::F32);
        let theta = random_theta(&exact, 41, 0.15);
        let v = random_theta(&exact, 42, 1.0);
        let (obs, actions, w) = random_batch(&exact, 300, 43);
        let n = w.len();
        let run = |p: &Policy| {
            let (mut g, mut hv, mut fv) =
                (vec![0.0; p.len()], vec![0.0; p.len()], vec![0.0; p.len()]);
            p.hvp_logp(
                &theta,
                &obs,
                &actions,
                &w,
                &v,
                &mut Tape::default(),
                &mut g,
                &mut hv,
            );
            p.fisher_vp(&theta, &obs, n, &v, &mut Tape::default(), &mut fv);
            let mut tape = Tape::default();
            p.forward(&theta, &obs, n, &mut tape);
            (g, hv, fv, p.out(&tape).to_vec())
        };
        let (g64, hv64, fv64, out64) = run(&exact);
        let (g32, hv32, fv32, out32) = run(&rounded);
        // f32 keeps ~7 digits; sums over 300 rows and 96 units lose a few more.
        let what = format!("{head:?} {act:?}");
        close(&out32, &out64, 1e-5, &format!("outputs {what}"));
        close(&g32, &g64, 1e-4, &format!("gradient {what}"));
        close(
            &hv32,
            &hv64,
            1e-4,
            &format!("Hessian-vector product {what}"),
        );
        close(&fv32, &fv64, 1e-4, &format!("Fisher-vector product {what}"));
        // And the rounding is real: not every value is the f64 one to the bit.
        assert!(g32.iter().zip(&g64).any(|(a, b)| a != b), "{what}");
    }
}

/// The outer step keeps its passes for many products (`keep_for_products`: with f32
/// products their operands are rounded once, in advance); every product on a kept pass
/// is the one on a pass not kept, to the bit, in both precisions.
#[test]
fn a_pass_kept_for_products_changes_no_bit() {
    use bamdp::improve::maml::policy::{Frozen, Scratch};
    use bamdp::nn::gemm_mixed::Precision;
    for precision in [Precision::F64, Precision::F32] {
        let p = Policy::new(39, &[96, 64], Activation::Tanh, Head::Gaussian { dim: 4 })
            .with_precision(precision);
        let theta = random_theta(&p, 51, 0.15);
        let v = random_theta(&p, 52, 1.0);
        let (obs, actions, w) = random_batch(&p, 300, 53);
        let n = w.len();
        let products = |keep: bool| {
            let (mut f, mut s) = (Frozen::default(), Scratch::default());
            p.freeze(&theta, &obs, n, &mut f);
            if keep {
                p.keep_for_products(&mut f);
            }
            let zeros = || vec![0.0; p.len()];
            let (mut g, mut hv, mut fv, mut g2) = (zeros(), zeros(), zeros(), zeros());
            p.backward_deltas(&theta, &mut f, &actions, &w, &mut s, Some(&mut g));
            // Twice, as the conjugate gradient does: the second reuses the first's scratch.
            for _ in 0..2 {
                hv.iter_mut().for_each(|x| *x = 0.0);
                p.hvp_frozen(&theta, &f, &actions, &w, &v, &mut s, &mut hv);
            }
            p.fisher_vp_frozen(&theta, &f, &v, &mut s, &mut fv);
            p.grad_frozen(&theta, &f, &actions, &w, &mut s, &mut g2);
            (g, hv, fv, g2)
        };
        let (kept, fresh) = (products(true), products(false));
        assert!(kept == fresh, "{precision:?}");
        // And the products are not trivially equal (nonzero).
        assert!(kept.1.iter().any(|x| *x != 0.0) && kept.2.iter().any(|x| *x != 0.0));
    }
}

/// A meta-batch of two tasks with `steps` inner steps each on a tiny network, with
/// post-adaptation behaviour outputs taken from the adapted policies (as collected).
fn tasks(p: &Policy, theta: &[f64], steps: usize, maml: &Maml) -> Vec<TaskBatch> {
    (0..2u64)
        .map(|i| {
            let adapt: Vec<AdaptBatch> = (0..steps as u64)
                .map(|k| {
                    let (obs, actions, w) = random_batch(p, 6, 10 + 7 * i + k);
                    AdaptBatch {
                        obs,
                        actions,
                        advantages: w.iter().map(|x| x * 2.0).collect(),
                    }
                })
                .collect();
            let mut tape = Tape::default();
            let thetas = maml.adapt(theta, &adapt, &mut tape);
            let last = thetas.last().unwrap();
            let (obs, actions, w) = random_batch(p, 8, 50 + i);
            p.forward(last, &obs, 8, &mut tape);
            let mut old_log_probs = vec![0.0; 8];
            p.log_probs(last, &tape, &actions, &mut old_log_probs);
            // Behaviour outputs slightly off the adapted policy, so ratios differ from 1.
            let old_out: Vec<f64> = p.out(&tape).iter().map(|x| x + 0.05).collect();
            let old_log_std = p.log_std(last).iter().map(|x| x - 0.1).collect();
            TaskBatch {
                adapt,
                post: PostBatch {
                    obs,
                    actions,
                    advantages: w.iter().map(|x| x * 8.0).collect(),
                    old_log_probs: old_log_probs.iter().map(|x| x - 0.02).collect(),
                    old_out,
                    old_log_std,
                },
            }
        })
        .collect()
}

#[test]
fn second_order_meta_gradient_matches_finite_differences_through_the_inner_steps() {
    for (head, act) in heads() {
        for steps in [1, 2] {
            let p = tiny(head, act);
            let theta = random_theta(&p, 7, 0.5);
            let maml = Maml {
                policy: &p,
                inner_lr: 0.1,
                first_order: false,
                threads: 2,
            };
            let tasks = tasks(&p, &theta, steps, &maml);
            let thetas: Vec<_> = tasks
                .iter()
                .map(|t| maml.adapt(&theta, &t.adapt, &mut Tape::default()))
                .collect();
            let (objective, grad) = maml.meta_gradient(&thetas, &tasks);
            assert!((objective - maml.meta_objective_kl(&theta, &tasks).0).abs() < 1e-12);
            let fd = fd_grad(&theta, |t| maml.meta_objective_kl(t, &tasks).0);
            // ReLU's kinks cost finite differences some accuracy.
            let tol = if act == Activation::Relu { 1e-4 } else { 1e-5 };
            close(
                &grad,
                &fd,
                tol,
                &format!("meta-gradient {head:?} {act:?} K={steps}"),
            );
            // The first-order approximation drops a term that matters here.
            let fo = Maml {
                first_order: true,
                ..maml.clone()
            };
            let (_, g1) = fo.meta_gradient(&thetas, &tasks);
            let diff: f64 = g1.iter().zip(&grad).map(|(a, b)| (a - b).abs()).sum();
            assert!(diff > 1e-3, "first-order equals second-order ({diff})");
        }
    }
}

/// Explicit Hessian of `f` at `theta` by second-order central differences.
fn fd_hessian(theta: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let n = theta.len();
    let eps = 1e-4;
    let mut h = vec![0.0; n * n];
    let mut t = theta.to_vec();
    for i in 0..n {
        for j in 0..n {
            let mut at = |si: f64, sj: f64| {
                t.copy_from_slice(theta);
                t[i] += si * eps;
                t[j] += sj * eps;
                f(&t)
            };
            h[i * n + j] =
                (at(1.0, 1.0) - at(1.0, -1.0) - at(-1.0, 1.0) + at(-1.0, -1.0)) / (4.0 * eps * eps);
        }
    }
    h
}

fn columns(n: usize, mut avp: impl FnMut(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for j in 0..n {
        let mut e = vec![0.0; n];
        e[j] = 1.0;
        let col = avp(&e);
        for i in 0..n {
            m[i * n + j] = col[i];
        }
    }
    m
}

#[test]
fn fisher_vector_products_match_an_explicit_fisher() {
    // Categorical: the Fisher is E_{a ~ pi}[score score'], summed exactly over actions.
    let p = Policy::new(2, &[3], Activation::Tanh, Head::Categorical { n: 3 });
    let theta = random_theta(&p, 11, 0.8);
    let n = 4;
    let (obs, _, _) = random_batch(&p, n, 12);
    let mut explicit = vec![0.0; p.len() * p.len()];
    let mut tape = Tape::default();
    for t in 0..n {
        p.forward(&theta, &obs[t * 2..(t + 1) * 2], 1, &mut tape);
        let logits = p.out(&tape).to_vec();
        let mut probs = vec![0.0; 3];
        bamdp::improve::maml::policy::softmax(&logits, &mut probs);
        for (a, &prob) in probs.iter().enumerate() {
            let mut score = vec![0.0; p.len()];
            p.grad_logp(
                &theta,
                &obs[t * 2..(t + 1) * 2],
                &[a as f64],
                &[1.0],
                &mut tape,
                &mut score,
            );
            for i in 0..p.len() {
                for j in 0..p.len() {
                    explicit[i * p.len() + j] += prob * score[i] * score[j] / n as f64;
                }
            }
        }
    }
    let fvp = columns(p.len(), |v| {
        let mut out = vec![0.0; p.len()];
        p.fisher_vp(&theta, &obs, n, v, &mut Tape::default(), &mut out);
        out
    });
    close(&fvp, &explicit, 1e-10, "categorical Fisher");

    // Gaussian: the Fisher is the Hessian of the mean KL(pi_old || pi_theta) at theta_old.
    let p = Policy::new(2, &[3], Activation::Tanh, Head::Gaussian { dim: 2 });
    let theta = random_theta(&p, 13, 0.8);
    let (obs, _, _) = random_batch(&p, n, 14);
    let mut tape = Tape::default();
    p.forward(&theta, &obs, n, &mut tape);
    let old_out = p.out(&tape).to_vec();
    let old_ls = p.log_std(&theta).to_vec();
    let kl = |t: &[f64]| {
        let mut tape = Tape::default();
        p.forward(t, &obs, n, &mut tape);
        p.mean_kl(t, &tape, &old_out, &old_ls)
    };
    assert!(kl(&theta).abs() < 1e-15);
    let explicit = fd_hessian(&theta, kl);
    let fvp = columns(p.len(), |v| {
        let mut out = vec![0.0; p.len()];
        p.fisher_vp(&theta, &obs, n, v, &mut Tape::default(), &mut out);
        out
    });
    close(&fvp, &explicit, 1e-5, "Gaussian Fisher");
}

#[test]
fn meta_fisher_vector_products_are_the_hessian_of_the_kl_through_the_inner_step() {
    let p = Policy::new(2, &[3], Activation::Tanh, Head::Gaussian { dim: 1 });
    let theta = random_theta(&p, 21, 0.7);
    let maml = Maml {
        policy: &p,
        inner_lr: 0.3,
        first_order: false,
        threads: 1,
    };
    let mut tasks = tasks(&p, &theta, 1, &maml);
    // Behaviour = the adapted policies themselves, so the KL is 0 at theta and its
    // Hessian is exactly J' F J.
    for t in tasks.iter_mut() {
        let th = maml.adapt(&theta, &t.adapt, &mut Tape::default());
        let last = th.last().unwrap();
        let mut tape = Tape::default();
        let n = t.post.obs.len() / 2;
        p.forward(last, &t.post.obs, n, &mut tape);
        t.post.old_out = p.out(&tape).to_vec();
        t.post.old_log_std = p.log_std(last).to_vec();
    }
    let thetas: Vec<_> = tasks
        .iter()
        .map(|t| maml.adapt(&theta, &t.adapt, &mut Tape::default()))
        .collect();
    let explicit = fd_hessian(&theta, |t| maml.meta_objective_kl(t, &tasks).1);
    let fvp = columns(p.len(), |v| maml.meta_fisher_vp(&thetas, &tasks, v));
    close(&fvp, &explicit, 1e-4, "meta Fisher");
}

#[test]
fn linear_baseline_is_the_ridge_least_squares_fit() {
    use faer::prelude::*;
    let (od, n) = (3, 40);
    let mut rng = Rng::new(31);
    let obs: Vec<f64> = (0..n * od).map(|_| 3.0 * rng.normal()).collect();
    let steps: Vec<usize> = (0..n).map(|t| t % 20).collect();
    let targets: Vec<f64> = (0..n).map(|_| rng.normal() * 5.0).collect();
    let fit = LinearBaseline::fit(&obs, &steps, &targets, od);
    // Ridge regression as ordinary least squares on [Phi; sqrt(reg) I] vs [y; 0].
    let f = feature_dim(od);
    let mut phi = vec![0.0; f];
    let a = Mat::<f64>::from_fn(n + f, f, |i, j| {
        if i < n {
            features(&obs[i * od..(i + 1) * od], steps[i], &mut phi);
            phi[j]
        } else if i - n == j {
            RIDGE.sqrt()
        } else {
            0.0
        }
    });
    let b = Mat::<f64>::from_fn(n + f, 1, |i, _| if i < n { targets[i] } else { 0.0 });
    let x = a.qr().solve_lstsq(&b);
    let want: Vec<f64> = (0..f).map(|i| x[(i, 0)]).collect();
    close(&fit.coeffs, &want, 1e-7, "baseline coefficients");
    // Observations are clipped to [-10, 10] inside the features.
    features(&[20.0, -30.0, 1.0], 150, &mut phi);
    assert_eq!(&phi[..6], &[10.0, -10.0, 1.0, 100.0, 100.0, 1.0]);
    assert!((phi[6] - 1.5).abs() < 1e-15 && (phi[9] - 1.0).abs() < 1e-15);
}

mod run_support;

fn point_robot_preset() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/point_robot/maml.toml")
}

/// A small MAML run on the point robot: 6 tasks x (2 + 2) episodes of 100 steps.
fn small(updates: u64, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        format!("run.total_frames={}", updates * 6 * 4 * 100),
        "maml.meta_batch=6".into(),
        "maml.episodes_per_task=2".into(),
        "maml.post_episodes=2".into(),
        "maml.hidden=[16]".into(),
        "run.checkpoint_every=2".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn train_run(out: &std::path::Path, overrides: Vec<String>, resume: bool) {
    bamdp::run::train::train(&bamdp::run::train::TrainArgs {
        config: (!resume).then(point_robot_preset),
        overrides,
        out: Some(out.to_path_buf()),
        resume,
        force: false,
        quiet: true,
    })
    .unwrap();
}

#[test]
fn resumed_maml_run_equals_uninterrupted_run_and_threads_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    train_run(&whole, small(5, &[]), false);
    let split = dir.path().join("split");
    train_run(&split, small(2, &[]), false);
    train_run(
        &split,
        vec![format!("run.total_frames={}", 5 * 6 * 4 * 100)],
        true,
    );
    let (a, b) = (run_support::metrics(&whole), run_support::metrics(&split));
    assert_eq!(a.len(), 5);
    assert_eq!(
        a, b,
        "resumed MAML metrics differ from the uninterrupted run"
    );
    // At least one outer step was accepted, so theta moved and resume had work to do.
    // (columns without timing: update, frames, return_pre, return_post, success_pre,
    // success_post, tasks, objective_before, objective_after, kl, accepted, ...)
    assert!(
        a.iter().any(|row| row[10].parse::<f64>().unwrap() == 1.0),
        "{a:?}"
    );
    let one = dir.path().join("one-thread");
    train_run(&one, small(5, &["run.threads=1"]), false);
    assert_eq!(
        run_support::metrics(&one),
        a,
        "thread count changed MAML results"
    );
    // The first-order variant is selectable and differs.
    let fo = dir.path().join("first-order");
    train_run(&fo, small(5, &["maml.first_order=true"]), false);
    assert_ne!(run_support::metrics(&fo), a);
}

#[test]
fn bad_maml_configs_are_user_errors_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let preset = point_robot_preset().display().to_string();
    for (set, needles) in [
        (
            vec!["method=varibad"],
            vec!["`method`", "varibad", "\"maml\" with improver = \"maml\""],
        ),
        (
            vec!["maml.inner_lr=-0.1"],
            vec!["`maml.inner_lr`", "-0.1", ">= 0"],
        ),
        (
            vec!["maml.meta_batch=0"],
            vec!["`maml.meta_batch`", "\"0\"", "> 0"],
        ),
        (
            vec!["improver=ppo"],
            vec!["`improver`", "ppo", "\"maml\" for method \"maml\""],
        ),
        (vec!["maml.max_kl=0"], vec!["`maml.max_kl`", "> 0"]),
        (
            vec!["maml.inner_steps=1000000000000000"],
            vec!["`maml.inner_steps`", "1..=64"],
        ),
        (
            vec!["maml.matmul=f16"],
            vec!["maml.matmul", "f16", "f64", "f32"],
        ),
    ] {
        let mut args = vec!["train", "--config", &preset];
        for s in &set {
            args.extend(["--set", s]);
        }
        let out = dir.path().join("run");
        let out = out.display().to_string();
        args.extend(["--out", &out]);
        let o = bamdp(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{set:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        for n in needles {
            assert!(
                err.contains(n),
                "{set:?}: message should mention {n:?}: {err}"
            );
        }
    }
}

#[test]
fn report_draws_maml_learning_curve_before_and_after_adaptation() {
    // MAML's metrics have no trial return; its curve is the pre- and post-adaptation
    // return, drawn on a chart of its own.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("runs/maml");
    train_run(&run, small(3, &[]), false);
    let eval = bamdp(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--num-tasks",
        "3",
        "--json",
    ]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    std::fs::write(run.join("eval.json"), &eval.stdout).unwrap();
    let out = dir.path().join("report");
    let o = bamdp(&[
        "report",
        dir.path().join("runs").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg =
        std::fs::read_to_string(out.join("figures/point_robot-train-adaptation-return-frames.svg"))
            .expect("the MAML learning curve");
    for series in ["maml, before adaptation", "maml, after adaptation"] {
        assert!(svg.contains(series), "no series {series:?} in the figure");
    }
    let page = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(page.contains("figures/point_robot-train-adaptation-return-frames.svg"));
}

#[test]
fn eval_of_a_maml_run_reports_pre_and_post_adaptation() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_run(&run, small(1, &[]), false);
    let o = bamdp(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--num-tasks",
        "5",
        "--episodes-per-task",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["method"], "maml");
    assert_eq!(v["adaptation_episodes"], 2);
    assert_eq!(v["evaluation_episodes"], 3);
    assert_eq!(v["num_tasks"], 5);
    for key in ["return_pre", "return_post", "success_pre", "success_post"] {
        assert!(v[key].as_f64().unwrap().is_finite(), "{key}: {v}");
    }
    // Options MAML's meta-test cannot honour are refused, not ignored: its summary is
    // always the adapted episodes; 0 adaptation episodes leave the inner step no data;
    // the trial protocol's episode count is not MetaWorld's.
    let run = run.to_str().unwrap();
    for (extra, needles) in [
        (
            &["--summary-episodes", "1-2"][..],
            &["--summary-episodes", "1-2", "MAML"][..],
        ),
        (&["--episodes-per-task", "0"], &["--episodes-per-task", "0"]),
        (&["--evaluation-episodes", "2"], &["--protocol", "trial"]),
    ] {
        let mut args = vec!["eval", "--run", run, "--num-tasks", "2"];
        args.extend(extra);
        assert_one_line_user_error(&bamdp(&args), needles);
    }
}

/// `bamdp sweep` trains and meta-tests MAML runs like any other: their eval.json has
/// MAML's pre/post figures and the keys every method's evaluation has. (It once handed
/// them to the belief methods' evaluation, which cannot load a MAML checkpoint.)
#[test]
fn sweeps_train_and_meta_test_maml_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let preset = point_robot_preset();
    let mut args = vec![
        "sweep".to_string(),
        "--config".into(),
        preset.display().to_string(),
        "--seeds".into(),
        "1".into(),
        "--jobs".into(),
        "1".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    for set in small(1, &["eval.num_tasks=4", "maml.eval_adapt_episodes=2"]) {
        args.extend(["--set".into(), set]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = bamdp(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json = std::fs::read(out.join("point_robot/maml/seed-1/eval.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["method"], "maml");
    assert_eq!(v["num_tasks"], 4);
    // 2 adaptation episodes, then the preset's 3 with the adapted weights.
    let returns = v["episode_returns"].as_array().unwrap();
    assert_eq!(returns.len(), 5);
    let f = |x: &serde_json::Value| x.as_f64().unwrap();
    let post = returns[2..].iter().map(f).sum::<f64>() / 3.0;
    assert!((post - f(&v["return_post"])).abs() < 1e-9, "{v}");
    assert!((f(&v["trial_return"]) - returns.iter().map(f).sum::<f64>()).abs() < 1e-9);
    // Rerunning finds it done.
    let o = bamdp(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("done (skipped)"));
}

mod cli_support;
use cli_support::{assert_one_line_user_error, bamdp};

#[test]
fn maml_checkpoints_are_binary_and_corrupt_or_json_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_run(&run, small(2, &[]), false);
    let run_s = run.display().to_string();
    let meta_path = run.join("checkpoint/meta.json");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["format"], "bamdp-checkpoint");
    assert_eq!(meta["version"], 3);
    assert_eq!(meta["method"], "maml");
    assert_eq!(meta["update"], 2);
    let total = format!("run.total_frames={}", 3 * 6 * 4 * 100);
    let resume = ["train", "--resume", "--out", &run_s, "--set", &total];
    let eval = ["eval", "--run", &run_s, "--num-tasks", "2"];
    // Every byte counts: a changed or truncated file is named, never decoded.
    for f in meta["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let path = run.join("checkpoint").join(name);
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x10;
        for bad in [flipped, good[..good.len() - 1].to_vec()] {
            std::fs::write(&path, &bad).unwrap();
            for args in [&resume[..], &eval[..]] {
                assert_one_line_user_error(&bamdp(args), &[name, "corrupt checkpoint"]);
            }
        }
        std::fs::write(&path, &good).unwrap();
    }
    // A MAML checkpoint of the former JSON format is refused by name.
    let good_meta = std::fs::read(&meta_path).unwrap();
    let old = serde_json::json!({
        "kind": "maml", "theta": [0.5, -0.25], "update": 2, "frames": 4800,
        "env": {}, "action_rngs": [], "needs_reset": true, "wall_s": 1.0,
    });
    std::fs::write(&meta_path, serde_json::to_vec(&old).unwrap()).unwrap();
    for args in [&resume[..], &eval[..]] {
        assert_one_line_user_error(
            &bamdp(args),
            &["meta.json", "MAML checkpoint of the former JSON format"],
        );
    }
    // The intact checkpoint still resumes.
    std::fs::write(&meta_path, good_meta).unwrap();
    let o = bamdp(&resume);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(run_support::metrics(&run).len(), 3);
}

#[test]
fn bench_times_maml_updates() {
    let preset = point_robot_preset().display().to_string();
    let mut args = vec!["bench", "--config", &preset, "--seconds", "0.2"];
    let sets = small(1, &[]);
    for s in &sets {
        args.extend(["--set", s]);
    }
    let o = bamdp(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["method"], "maml");
    assert_eq!(v["num_envs"], 6);
    assert_eq!(v["steps_per_update"], 4 * 100);
    assert_eq!(
        v["frames"].as_u64().unwrap(),
        v["updates"].as_u64().unwrap() * 6 * 4 * 100
    );
    assert!(v["fps"].as_f64().unwrap() > 0.0, "{v}");
    let split = v["rollout_fraction"].as_f64().unwrap() + v["learn_fraction"].as_f64().unwrap();
    assert!(split > 0.5 && split <= 1.0 + 1e-9, "{v}");
}

/// The embedding API's MAML agent (src/improve/maml/agent.rs: the caller steps the env
/// and calls `adapt`) against the meta-test's own collector on the same tasks, action
/// streams and parameters: identical adapted weights and post-adaptation returns.
#[test]
fn maml_agent_adapts_exactly_as_the_meta_test_collector() {
    use bamdp::env::{self, EnvOptions, Split, StepOut};
    use bamdp::improve::maml::agent::{MamlAgent, MamlSettings};
    use bamdp::improve::maml::rollout::{AdvantageSettings, Collector};
    use bamdp::rng::streams;
    let (rows, adapt_eps, post_eps, seed) = (3, 2, 1, 5);
    let make = || {
        env::make_with(
            "point_robot",
            rows,
            Split::Test,
            seed,
            Some(adapt_eps + post_eps),
            &EnvOptions::default(),
        )
        .unwrap()
    };
    let spec = make().spec().clone();
    let policy = Policy::new(
        spec.obs_dim,
        &[16],
        Activation::Tanh,
        Head::Gaussian { dim: 2 },
    );
    let theta = random_theta(&policy, 3, 0.3);
    let advantages = AdvantageSettings {
        gamma: 0.99,
        gae_lambda: 0.95,
        normalize: true,
    };
    let rngs = || -> Vec<Rng> {
        (0..rows)
            .map(|r| Rng::stream(seed, streams::EVAL_ACTIONS, r as u64))
            .collect()
    };
    let maml = Maml {
        policy: &policy,
        inner_lr: 0.5,
        first_order: false,
        threads: 1,
    };
    let mut env = make();
    let mut collector = Collector::new(
        policy.clone(),
        env.as_ref(),
        vec![adapt_eps, post_eps],
        vec![false, false],
        advantages,
        rngs(),
    );
    let (_, results) = collector.collect(env.as_mut(), &theta, &maml);

    let settings = MamlSettings {
        inner_lr: 0.5,
        first_order: false,
        advantages,
        greedy_adapted: false,
    };
    let mut agent = MamlAgent::new(policy.clone(), theta.clone(), settings, rngs(), (-1.0, 1.0));
    let mut env = make();
    let mut obs = vec![0.0f32; rows * spec.obs_dim];
    env.reset(&mut obs);
    let mut out = StepOut::new(rows, spec.obs_dim);
    let mut actions = vec![0.0f32; rows * 2];
    let mut post_return = vec![0.0f64; rows];
    for episode in 0..adapt_eps + post_eps {
        if episode == adapt_eps {
            agent.adapt();
            for r in 0..rows {
                assert_eq!(
                    agent.theta(r),
                    &collector.thetas[r][1][..],
                    "row {r}: adapted weights"
                );
            }
        }
        for _ in 0..spec.episode_len {
            agent.act(&obs, &mut actions);
            env.step(&actions, &mut out);
            agent.observe(&out.reward, &out.terminated, &out.truncated, &out.trial_end);
            if episode >= adapt_eps {
                for (total, &reward) in post_return.iter_mut().zip(&out.reward) {
                    *total += reward as f64;
                }
            }
            obs.copy_from_slice(&out.obs);
        }
    }
    assert!(
        out.trial_end.iter().all(|&e| e),
        "the trials ended together"
    );
    for r in 0..rows {
        assert_ne!(
            collector.thetas[r][1], theta,
            "row {r}: the inner step changed nothing"
        );
        assert_eq!(
            post_return[r] / post_eps as f64,
            results[r].block_returns[1],
            "row {r}"
        );
        // The trial's end restores the meta-parameters.
        assert_eq!(agent.theta(r), &theta[..]);
    }
}

/// The memory guard counts MAML's samples, parameters and per-thread tapes
/// (src/improve/maml/memory.rs): episodes, or a meta-batch and network, too large for
/// any machine are refused with exit 2, naming the keys behind the estimate, before
/// theta or any sample buffer exists.
#[test]
fn maml_updates_that_cannot_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r").display().to_string();
    let preset = point_robot_preset().display().to_string();
    for sets in [
        &["maml.episodes_per_task=1000000"][..],
        // Sizes whose products overflow 64 bits: refused, not wrapped.
        &["maml.episodes_per_task=1000000000000000000"][..],
        &["maml.meta_batch=4096", "maml.hidden=[4096, 4096]"][..],
    ] {
        let mut args = vec!["train", "--config", &preset, "--out", &out, "--force"];
        for set in sets {
            args.extend(["--set", set]);
        }
        assert_one_line_user_error(
            &bamdp(&args),
            &[
                "maml.meta_batch",
                "maml.episodes_per_task",
                "maml.post_episodes",
                "maml.hidden",
                "run.threads",
                "scratch tapes",
                "/proc/meminfo",
            ],
        );
    }
}
