//! GLM (MNIW) belief: posterior and log marginal against brute force (dense joint
//! Gaussian, matrix-t density with N x N matrices, predictive chain rule), gradients
//! against central finite differences, streaming rank-1 updates against batch refits,
//! permutation invariance, numerical edge cases, invalid priors, and sampling moments.

use bamdp::belief::glm::special::ln_multigamma;
use bamdp::belief::glm::{
    chi_square, features_grad, gamma, log_marginal, log_marginal_and_grad, posterior, targets_grad,
    trials_loss_and_grad, GlmError, GlmStream, MniwPrior, PriorGrad, SampleScratch, Stats,
    StreamSampleScratch, TrialBatchLoss,
};
use bamdp::rng::Rng;
mod common;
use common::allocs;

// ---------- independent brute-force linear algebra (LU with partial pivoting) ----------

/// log|det A| and sign via Gaussian elimination with partial pivoting (deliberately a
/// different algorithm from the library's Cholesky).
fn lu_log_det(a: &[f64], n: usize) -> f64 {
    let mut a = a.to_vec();
    let mut ld = 0.0;
    for k in 0..n {
        let p = (k..n)
            .max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs()))
            .unwrap();
        if p != k {
            for j in 0..n {
                a.swap(k * n + j, p * n + j);
            }
        }
        let piv = a[k * n + k];
        assert!(piv != 0.0 && piv.is_finite(), "singular");
        ld += piv.abs().ln();
        for i in k + 1..n {
            let f = a[i * n + k] / piv;
            for j in k..n {
                a[i * n + j] -= f * a[k * n + j];
            }
        }
    }
    ld
}

/// X = A^{-1} B (A `n x n`, B `n x k`) by Gauss-Jordan with partial pivoting.
fn lu_solve(a: &[f64], n: usize, b: &[f64], k: usize) -> Vec<f64> {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
            .unwrap();
        for j in 0..n {
            a.swap(c * n + j, p * n + j);
        }
        for j in 0..k {
            b.swap(c * k + j, p * k + j);
        }
        let piv = a[c * n + c];
        for i in 0..n {
            if i != c {
                let f = a[i * n + c] / piv;
                if f != 0.0 {
                    for j in 0..n {
                        a[i * n + j] -= f * a[c * n + j];
                    }
                    for j in 0..k {
                        b[i * k + j] -= f * b[c * k + j];
                    }
                }
            }
        }
    }
    for i in 0..n {
        for j in 0..k {
            b[i * k + j] /= a[i * n + i];
        }
    }
    b
}

fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for t in 0..k {
            for j in 0..m {
                out[i * m + j] += a[i * k + t] * b[t * m + j];
            }
        }
    }
    out
}

fn transpose(a: &[f64], n: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            out[j * n + i] = a[i * m + j];
        }
    }
    out
}

fn diag(v: &[f64]) -> Vec<f64> {
    let n = v.len();
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        out[i * n + i] = v[i];
    }
    out
}

/// Matrix-t log density of Y (N x m) given C, from N x N matrices only.
fn matrix_t_log_density(prior: &MniwPrior, c: &[f64], y: &[f64], n: usize) -> f64 {
    let (d, m) = (prior.d, prior.m);
    let lam_inv: Vec<f64> = prior.lambda0_log_diag.iter().map(|v| (-v).exp()).collect();
    // S = I_N + C Λ0^{-1} C'.
    let c_li = matmul(c, &diag(&lam_inv), n, d, d);
    let mut s = matmul(&c_li, &transpose(c, n, d), n, d, n);
    for i in 0..n {
        s[i * n + i] += 1.0;
    }
    let cm0 = matmul(c, &prior.m0, n, d, m);
    let r: Vec<f64> = y.iter().zip(&cm0).map(|(a, b)| a - b).collect();
    let s_inv_r = lu_solve(&s, n, &r, m);
    let mut q = matmul(&transpose(&r, n, m), &s_inv_r, m, n, m);
    let psi0: Vec<f64> = prior.psi0_log_diag.iter().map(|v| v.exp()).collect();
    for a in 0..m {
        q[a * m + a] += psi0[a];
    }
    let (nf, mf) = (n as f64, m as f64);
    let nu_n = prior.nu0 + nf;
    -0.5 * nf * mf * std::f64::consts::PI.ln() + ln_multigamma(m, 0.5 * nu_n)
        - ln_multigamma(m, 0.5 * prior.nu0)
        + 0.5 * prior.nu0 * prior.psi0_log_diag.iter().sum::<f64>()
        - 0.5 * mf * lu_log_det(&s, n)
        - 0.5 * nu_n * lu_log_det(&q, m)
}

// ---------- data ----------

fn random_prior(d: usize, m: usize, rng: &mut Rng) -> MniwPrior {
    MniwPrior::new(
        d,
        m,
        (0..d * m).map(|_| 0.5 * rng.normal()).collect(),
        (0..d).map(|_| 0.5 * rng.normal()).collect(),
        (0..m).map(|_| 0.3 * rng.normal()).collect(),
        m as f64 + 0.5 + 2.0 * rng.uniform(),
    )
    .unwrap()
}

fn random_data(d: usize, m: usize, n: usize, rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    let c: Vec<f64> = (0..n * d).map(|_| rng.normal()).collect();
    let w: Vec<f64> = (0..d * m).map(|_| rng.normal()).collect();
    let mut y = matmul(&c, &w, n, d, m);
    for v in &mut y {
        *v += 0.3 * rng.normal();
    }
    (c, y)
}

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1e-300)
}

/// max |a - b| <= tol * max(max |a|, floor).
fn assert_mat_close(what: &str, a: &[f64], b: &[f64], tol: f64, floor: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = a.iter().chain(b).fold(floor, |s, v| s.max(v.abs()));
    let err = a
        .iter()
        .zip(b)
        .fold(0.0f64, |s, (x, y)| s.max((x - y).abs()));
    assert!(
        err <= tol * scale,
        "{what}: max error {err:e} > {tol:e} * {scale:e}\n{a:?}\n{b:?}"
    );
}

// ---------- 1. posterior and log marginal against brute force ----------

#[test]
fn posterior_matches_dense_joint_gaussian_for_fixed_sigma() {
    let mut rng = Rng::new(1);
    let (d, m, n) = (3, 2, 7);
    let prior = random_prior(d, m, &mut rng);
    let (c, y) = random_data(d, m, n, &mut rng);
    let post = posterior(&prior, &Stats::from_rows(d, m, &c, &y, n).unwrap()).unwrap();
    // Any fixed SPD Σ: the posterior of W | Σ is MN(M_N, Λ_N^{-1}, Σ).
    let sigma = [0.7, 0.2, 0.2, 0.4];
    let lam_inv: Vec<f64> = prior.lambda0_log_diag.iter().map(|v| (-v).exp()).collect();
    // Joint Gaussian over w = vec_row(W) (dm) and v = vec_row(Y) (Nm).
    let (dw, dy) = (d * m, n * m);
    let mut cov_ww = vec![0.0; dw * dw];
    let mut cov_wy = vec![0.0; dw * dy];
    let mut cov_yy = vec![0.0; dy * dy];
    for i in 0..d {
        for a in 0..m {
            for b in 0..m {
                cov_ww[(i * m + a) * dw + i * m + b] = lam_inv[i] * sigma[a * m + b];
                for t in 0..n {
                    cov_wy[(i * m + a) * dy + t * m + b] =
                        lam_inv[i] * c[t * d + i] * sigma[a * m + b];
                }
            }
        }
    }
    for t in 0..n {
        for s in 0..n {
            let k: f64 = (0..d)
                .map(|i| c[t * d + i] * lam_inv[i] * c[s * d + i])
                .sum::<f64>()
                + if t == s { 1.0 } else { 0.0 };
            for a in 0..m {
                for b in 0..m {
                    cov_yy[(t * m + a) * dy + s * m + b] = k * sigma[a * m + b];
                }
            }
        }
    }
    let mean_y = matmul(&c, &prior.m0, n, d, m);
    let resid: Vec<f64> = y.iter().zip(&mean_y).map(|(a, b)| a - b).collect();
    let sol = lu_solve(&cov_yy, dy, &resid, 1);
    let post_w: Vec<f64> = (0..dw)
        .map(|r| prior.m0[r] + (0..dy).map(|k| cov_wy[r * dy + k] * sol[k]).sum::<f64>())
        .collect();
    assert_mat_close("M_N", &post.m_n, &post_w, 1e-9, 1e-3);
    let x = lu_solve(&cov_yy, dy, &transpose(&cov_wy, dw, dy), dw);
    let reduce = matmul(&cov_wy, &x, dw, dy, dw);
    let post_cov: Vec<f64> = cov_ww.iter().zip(&reduce).map(|(a, b)| a - b).collect();
    // Λ_N^{-1} ⊗ Σ in the same vec_row order.
    let l_inv = lu_solve(&post.lambda_n, d, &diag(&vec![1.0; d]), d);
    let mut kron = vec![0.0; dw * dw];
    for i in 0..d {
        for j in 0..d {
            for a in 0..m {
                for b in 0..m {
                    kron[(i * m + a) * dw + j * m + b] = l_inv[i * d + j] * sigma[a * m + b];
                }
            }
        }
    }
    assert_mat_close("Cov(W | Y, Σ)", &post_cov, &kron, 1e-9, 1e-3);
}

#[test]
fn log_marginal_matches_matrix_t_density() {
    let mut rng = Rng::new(2);
    for &(d, m, n) in &[
        (3, 2, 8),
        (4, 3, 5),
        (2, 1, 6),
        (5, 1, 12),
        (1, 1, 1),
        (6, 2, 30),
    ] {
        let prior = random_prior(d, m, &mut rng);
        let (c, y) = random_data(d, m, n, &mut rng);
        let stats = Stats::from_rows(d, m, &c, &y, n).unwrap();
        let got = log_marginal(&prior, &stats).unwrap();
        let want = matrix_t_log_density(&prior, &c, &y, n);
        assert!(
            rel_close(got, want, 1e-9),
            "d={d} m={m} n={n}: {got} vs {want}"
        );
        let post = posterior(&prior, &stats).unwrap();
        assert_eq!(post.log_marginal, got);
        assert_eq!(post.nu_n, prior.nu0 + n as f64);
    }
}

#[test]
fn log_marginal_is_product_of_student_t_predictives() {
    let mut rng = Rng::new(3);
    for &(d, m, n) in &[(3, 2, 10), (2, 1, 8), (4, 3, 6)] {
        let prior = random_prior(d, m, &mut rng);
        let (c, y) = random_data(d, m, n, &mut rng);
        let mut stats = Stats::new(d, m);
        let mut chain = 0.0;
        let mut stream = GlmStream::new(&prior, 1).unwrap();
        for t in 0..n {
            let (ct, yt) = (&c[t * d..(t + 1) * d], &y[t * m..(t + 1) * m]);
            let pred = posterior(&prior, &stats).unwrap().predictive(ct).unwrap();
            let from_stream = stream.predictive_student_t(0, ct);
            assert!(rel_close(
                pred.log_density(yt),
                from_stream.log_density(yt),
                1e-9
            ));
            chain += pred.log_density(yt);
            stats.add_row(ct, yt);
            stream.update_row(0, ct, yt);
        }
        let lml = log_marginal(&prior, &stats).unwrap();
        assert!(rel_close(chain, lml, 1e-9), "{chain} vs {lml}");
    }
}

// ---------- 2. gradients against finite differences ----------

fn lml_of(prior: &MniwPrior, c: &[f64], y: &[f64], n: usize) -> f64 {
    log_marginal(prior, &Stats::from_rows(prior.d, prior.m, c, y, n).unwrap()).unwrap()
}

fn check_fd(what: &str, analytic: &[f64], mut f: impl FnMut(usize, f64) -> f64, h: f64) {
    let fd: Vec<f64> = (0..analytic.len())
        .map(|i| (f(i, h) - f(i, -h)) / (2.0 * h))
        .collect();
    let scale = analytic.iter().fold(1e-3f64, |s, v| s.max(v.abs()));
    for (i, (a, b)) in analytic.iter().zip(&fd).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-2 * scale),
            "{what}[{i}]: analytic {a} vs finite difference {b}"
        );
    }
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = Rng::new(4);
    for &(d, m, n) in &[(3, 2, 9), (4, 1, 6), (2, 3, 3), (5, 2, 4)] {
        let prior = random_prior(d, m, &mut rng);
        let (c, y) = random_data(d, m, n, &mut rng);
        let stats = Stats::from_rows(d, m, &c, &y, n).unwrap();
        let (l, g) = log_marginal_and_grad(&prior, &stats).unwrap();
        assert_eq!(l, log_marginal(&prior, &stats).unwrap());
        let mut gc = vec![0.0; n * d];
        features_grad(&c, &y, n, &g, &mut gc).unwrap();
        check_fd(
            "dL/dC",
            &gc,
            |i, h| {
                let mut c2 = c.clone();
                c2[i] += h;
                lml_of(&prior, &c2, &y, n)
            },
            1e-5,
        );
        let mut gy = vec![0.0; n * m];
        targets_grad(&c, &y, n, &g, &mut gy).unwrap();
        check_fd(
            "dL/dY",
            &gy,
            |i, h| {
                let mut y2 = y.clone();
                y2[i] += h;
                lml_of(&prior, &c, &y2, n)
            },
            1e-5,
        );
        check_fd(
            "dL/dM0",
            &g.m0,
            |i, h| {
                let mut p = prior.clone();
                p.m0[i] += h;
                lml_of(&p, &c, &y, n)
            },
            1e-5,
        );
        check_fd(
            "dL/dlog Λ0",
            &g.lambda0_log_diag,
            |i, h| {
                let mut p = prior.clone();
                p.lambda0_log_diag[i] += h;
                lml_of(&p, &c, &y, n)
            },
            1e-5,
        );
        check_fd(
            "dL/dlog Ψ0",
            &g.psi0_log_diag,
            |i, h| {
                let mut p = prior.clone();
                p.psi0_log_diag[i] += h;
                lml_of(&p, &c, &y, n)
            },
            1e-5,
        );
        check_fd(
            "dL/dν0",
            &[g.nu0],
            |_, h| {
                let mut p = prior.clone();
                p.nu0 += h;
                lml_of(&p, &c, &y, n)
            },
            1e-5,
        );
        // Statistic gradients: symmetric perturbations of C'C and Y'Y.
        let sym_fd = |which: usize, i: usize, j: usize, h: f64| {
            let mut s = stats.clone();
            let (mat, k) = if which == 0 {
                (&mut s.ctc, d)
            } else {
                (&mut s.yty, m)
            };
            mat[i * k + j] += h;
            if i != j {
                mat[j * k + i] += h;
            }
            log_marginal(&prior, &s).unwrap()
        };
        for i in 0..d {
            for j in 0..=i {
                let fd = (sym_fd(0, i, j, 1e-5) - sym_fd(0, i, j, -1e-5)) / 2e-5;
                let an = if i == j {
                    g.ctc[i * d + i]
                } else {
                    2.0 * g.ctc[i * d + j]
                };
                assert!(
                    (an - fd).abs() < 1e-6 * an.abs().max(1e-2),
                    "ctc {i} {j}: {an} {fd}"
                );
                assert_eq!(g.ctc[i * d + j], g.ctc[j * d + i]);
            }
        }
        for a in 0..m {
            for b in 0..=a {
                let fd = (sym_fd(1, a, b, 1e-5) - sym_fd(1, a, b, -1e-5)) / 2e-5;
                let an = if a == b {
                    g.yty[a * m + a]
                } else {
                    2.0 * g.yty[a * m + b]
                };
                assert!(
                    (an - fd).abs() < 1e-6 * an.abs().max(1e-2),
                    "yty {a} {b}: {an} {fd}"
                );
            }
        }
        check_fd(
            "dL/dC'Y",
            &g.cty,
            |i, h| {
                let mut s = stats.clone();
                s.cty[i] += h;
                log_marginal(&prior, &s).unwrap()
            },
            1e-5,
        );
    }
}

#[allow(clippy::type_complexity)]
fn batch_case(
    seed: u64,
) -> (
    MniwPrior,
    Vec<f64>,
    Vec<f64>,
    usize,
    usize,
    Vec<usize>,
    usize,
) {
    let mut rng = Rng::new(seed);
    let (d, m, trials, steps, k) = (3, 2, 3, 7, 4);
    let prior = random_prior(d, m, &mut rng);
    let mut c = Vec::new();
    let mut y = Vec::new();
    for _ in 0..trials {
        let (ct, yt) = random_data(d, m, steps, &mut rng);
        c.extend(ct);
        y.extend(yt);
    }
    // Unsorted, with a repeat and the full trial.
    let prefixes = vec![5, 2, 7, 2, 1, 7, 3, 4, 6, 6, 6, 1];
    (prior, c, y, trials, steps, prefixes, k)
}

fn direct_batch_loss(
    prior: &MniwPrior,
    c: &[f64],
    y: &[f64],
    trials: usize,
    steps: usize,
    prefixes: &[usize],
    k: usize,
) -> f64 {
    let (d, m) = (prior.d, prior.m);
    let mut total = 0.0;
    for tr in 0..trials {
        for &n in &prefixes[tr * k..(tr + 1) * k] {
            let ct = &c[tr * steps * d..(tr * steps + n) * d];
            let yt = &y[tr * steps * m..(tr * steps + n) * m];
            total -= lml_of(prior, ct, yt, n) / n as f64;
        }
    }
    total / (trials * k) as f64
}

#[test]
fn batched_prefix_loss_matches_direct_sum_and_finite_differences() {
    let (prior, c, y, trials, steps, prefixes, k) = batch_case(5);
    let (d, m) = (prior.d, prior.m);
    let mut gc = vec![0.0; trials * steps * d];
    let mut pg = PriorGrad::zeros(d, m);
    let loss = trials_loss_and_grad(
        &prior, &c, &y, trials, steps, &prefixes, k, &mut gc, &mut pg,
    )
    .unwrap();
    let direct = direct_batch_loss(&prior, &c, &y, trials, steps, &prefixes, k);
    assert!(rel_close(loss, direct, 1e-12), "{loss} vs {direct}");
    let f = |p: &MniwPrior, c: &[f64]| direct_batch_loss(p, c, &y, trials, steps, &prefixes, k);
    check_fd(
        "dLoss/dC",
        &gc,
        |i, h| {
            let mut c2 = c.clone();
            c2[i] += h;
            f(&prior, &c2)
        },
        1e-5,
    );
    check_fd(
        "dLoss/dM0",
        &pg.m0,
        |i, h| {
            let mut p = prior.clone();
            p.m0[i] += h;
            f(&p, &c)
        },
        1e-5,
    );
    check_fd(
        "dLoss/dlog Λ0",
        &pg.lambda0_log_diag,
        |i, h| {
            let mut p = prior.clone();
            p.lambda0_log_diag[i] += h;
            f(&p, &c)
        },
        1e-5,
    );
    check_fd(
        "dLoss/dlog Ψ0",
        &pg.psi0_log_diag,
        |i, h| {
            let mut p = prior.clone();
            p.psi0_log_diag[i] += h;
            f(&p, &c)
        },
        1e-5,
    );
    check_fd(
        "dLoss/dν0",
        &[pg.nu0],
        |_, h| {
            let mut p = prior.clone();
            p.nu0 += h;
            f(&p, &c)
        },
        1e-5,
    );
    // Rows past a trial's longest prefix (trial 2's is 6) get no gradient.
    assert!(gc[(2 * steps + 6) * d..(2 * steps + 7) * d]
        .iter()
        .all(|&v| v == 0.0));
}

#[test]
fn batched_loss_full_trials_d32_matches_per_trial_gradients_and_f32_path() {
    let mut rng = Rng::new(6);
    let (d, m, trials, steps) = (32, 2, 4, 50);
    let prior = random_prior(d, m, &mut rng);
    let mut c = Vec::new();
    let mut y = Vec::new();
    for _ in 0..trials {
        let (ct, yt) = random_data(d, m, steps, &mut rng);
        c.extend(ct);
        y.extend(yt);
    }
    let prefixes = vec![steps; trials];
    let mut gc = vec![0.0; trials * steps * d];
    let mut pg = PriorGrad::zeros(d, m);
    let mut tbl = TrialBatchLoss::new();
    let loss = tbl
        .loss_and_grad(
            &prior, &c, &y, trials, steps, &prefixes, 1, &mut gc, &mut pg,
        )
        .unwrap();
    let mut want_loss = 0.0;
    let mut want_gc = vec![0.0; trials * steps * d];
    let mut want_nu = 0.0;
    for tr in 0..trials {
        let ct = &c[tr * steps * d..(tr + 1) * steps * d];
        let yt = &y[tr * steps * m..(tr + 1) * steps * m];
        let s = Stats::from_rows(d, m, ct, yt, steps).unwrap();
        let (l, g) = log_marginal_and_grad(&prior, &s).unwrap();
        let w = -1.0 / (steps * trials) as f64;
        want_loss += w * l;
        want_nu += w * g.nu0;
        let out = &mut want_gc[tr * steps * d..(tr + 1) * steps * d];
        features_grad(ct, yt, steps, &g, out).unwrap();
        for v in out.iter_mut() {
            *v *= w;
        }
    }
    assert!(rel_close(loss, want_loss, 1e-10));
    assert!(rel_close(pg.nu0, want_nu, 1e-9));
    assert_mat_close("dLoss/dC", &gc, &want_gc, 1e-9, 0.0);
    // Second call with the same shapes allocates only the per-call prior cache.
    let before = allocs();
    tbl.loss_and_grad(
        &prior, &c, &y, trials, steps, &prefixes, 1, &mut gc, &mut pg,
    )
    .unwrap();
    assert!(allocs() - before <= 8, "{} allocations", allocs() - before);
    // f32 inputs: same result up to the inputs' rounding.
    let c32: Vec<f32> = c.iter().map(|&v| v as f32).collect();
    let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let mut gc32 = vec![0f32; gc.len()];
    let l32 = tbl
        .loss_and_grad(
            &prior, &c32, &y32, trials, steps, &prefixes, 1, &mut gc32, &mut pg,
        )
        .unwrap();
    assert!(rel_close(l32, loss, 1e-5), "{l32} vs {loss}");
    let gc32: Vec<f64> = gc32.iter().map(|&v| v as f64).collect();
    assert_mat_close("f32 dLoss/dC", &gc32, &gc, 1e-4, 0.0);
}

#[test]
fn batched_loss_rejects_bad_input() {
    let (prior, c, y, trials, steps, mut prefixes, k) = batch_case(7);
    let mut gc = vec![0.0; trials * steps * prior.d];
    let mut pg = PriorGrad::zeros(prior.d, prior.m);
    prefixes[3] = 0;
    let e = trials_loss_and_grad(
        &prior, &c, &y, trials, steps, &prefixes, k, &mut gc, &mut pg,
    );
    assert!(
        matches!(e, Err(GlmError::InvalidPrefix { n: 0, trial: 0, .. })),
        "{e:?}"
    );
    prefixes[3] = steps + 1;
    let e = trials_loss_and_grad(
        &prior, &c, &y, trials, steps, &prefixes, k, &mut gc, &mut pg,
    );
    assert!(matches!(e, Err(GlmError::InvalidPrefix { .. })), "{e:?}");
    prefixes[3] = 1;
    let e = trials_loss_and_grad(
        &prior,
        &c[1..],
        &y,
        trials,
        steps,
        &prefixes,
        k,
        &mut gc,
        &mut pg,
    );
    assert!(matches!(e, Err(GlmError::Shape { what: "c", .. })), "{e:?}");
}

// ---------- 3. streaming ----------

fn check_stream_against_batch(d: usize, m: usize, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let prior = random_prior(d, m, &mut rng);
    let (c, y) = random_data(d, m, n, &mut rng);
    let rows = 3;
    let mut stream = GlmStream::new(&prior, rows).unwrap();
    let mut stats = Stats::new(d, m);
    for t in 0..n {
        let (ct, yt) = (&c[t * d..(t + 1) * d], &y[t * m..(t + 1) * m]);
        stats.add_row(ct, yt);
        stream.update_row(1, ct, yt);
        let post = posterior(&prior, &stats).unwrap();
        let p_inv = lu_solve(&post.lambda_n, d, &diag(&vec![1.0; d]), d);
        assert_mat_close("Λ_N^-1", stream.p_row(1), &p_inv, 1e-9, 0.0);
        assert_mat_close("M_N", stream.mean_row(1), &post.m_n, 1e-9, 0.0);
        assert_mat_close("Ψ_N", stream.psi_row(1), &post.psi_n, 1e-9, 0.0);
        assert!(rel_close(stream.nu_row(1), post.nu_n, 1e-14));
        assert_eq!(stream.n_row(1), (t + 1) as f64);
    }
    // Untouched rows stay at the prior.
    assert_eq!(stream.n_row(0), 0.0);
    assert_eq!(stream.mean_row(2), &prior.m0[..]);
    // Predictive quantities agree with the batch posterior.
    let c_new: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    let post = posterior(&prior, &stats).unwrap();
    let mut mean = vec![0.0; m];
    let q = stream.predictive_row(1, &c_new, &mut mean);
    assert!(rel_close(q, post.quad_form(&c_new), 1e-9));
    assert_mat_close(
        "pred mean",
        &mean,
        &post.predictive(&c_new).unwrap().mean,
        1e-9,
        0.0,
    );
    let mut es = vec![0.0; m * m];
    stream.expected_sigma_row(1, &mut es);
    assert_mat_close("E[Σ]", &es, &post.expected_sigma(), 1e-9, 0.0);
}

#[test]
fn streaming_updates_equal_batch_refits() {
    check_stream_against_batch(32, 2, 120, 8);
    check_stream_against_batch(3, 1, 20, 9);
    check_stream_against_batch(4, 3, 15, 10);
}

/// Episodes of rows with `discount_row` between them equal one batch posterior of the
/// statistics weighted by `gamma^(episodes since)`, the prior at full weight.
fn check_discount_against_weighted_batch(d: usize, m: usize, gamma: f64, seed: u64) {
    let mut rng = Rng::new(seed);
    let prior = random_prior(d, m, &mut rng);
    let episodes = [7usize, 1, 12, 5];
    let n: usize = episodes.iter().sum();
    let (c, y) = random_data(d, m, n, &mut rng);
    let mut stream = GlmStream::new(&prior, 2).unwrap();
    let mut weighted = Stats::new(d, m);
    let mut t = 0;
    for (e, &len) in episodes.iter().enumerate() {
        if e > 0 {
            stream.discount_row(1, gamma).unwrap();
            weighted.n *= gamma;
            for v in weighted
                .ctc
                .iter_mut()
                .chain(&mut weighted.cty)
                .chain(&mut weighted.yty)
            {
                *v *= gamma;
            }
        }
        for _ in 0..len {
            let (ct, yt) = (&c[t * d..(t + 1) * d], &y[t * m..(t + 1) * m]);
            stream.update_row(1, ct, yt);
            weighted.add_row(ct, yt);
            t += 1;
        }
        let post = posterior(&prior, &weighted).unwrap();
        let p_inv = lu_solve(&post.lambda_n, d, &diag(&vec![1.0; d]), d);
        let what = format!("gamma {gamma}, episode {e}");
        assert_mat_close(
            &format!("{what}: Λ_N^-1"),
            stream.p_row(1),
            &p_inv,
            1e-9,
            0.0,
        );
        assert_mat_close(
            &format!("{what}: M_N"),
            stream.mean_row(1),
            &post.m_n,
            1e-9,
            0.0,
        );
        assert_mat_close(
            &format!("{what}: Ψ_N"),
            stream.psi_row(1),
            &post.psi_n,
            1e-9,
            0.0,
        );
        assert!(rel_close(stream.nu_row(1), post.nu_n, 1e-12), "{what}: ν");
        assert!(rel_close(stream.n_row(1), weighted.n, 1e-12), "{what}: n");
    }
    // The other row never moved, and gamma = 1 leaves a row as it is.
    assert_eq!(stream.mean_row(0), &prior.m0[..]);
    let before = (
        stream.p_row(1).to_vec(),
        stream.mean_row(1).to_vec(),
        stream.psi_row(1).to_vec(),
    );
    stream.discount_row(1, 1.0).unwrap();
    assert_eq!(
        before,
        (
            stream.p_row(1).to_vec(),
            stream.mean_row(1).to_vec(),
            stream.psi_row(1).to_vec()
        )
    );
    // gamma = 0 forgets everything: the prior again.
    stream.discount_row(1, 0.0).unwrap();
    assert_eq!(stream.mean_row(1), &prior.m0[..]);
    assert_eq!(stream.n_row(1), 0.0);
}

#[test]
fn discounted_streams_equal_weighted_batch_posteriors() {
    check_discount_against_weighted_batch(32, 1, 0.5, 21);
    check_discount_against_weighted_batch(6, 3, 0.9, 22);
    check_discount_against_weighted_batch(4, 2, 0.05, 23);
}

/// Every non-decreasing index list of 5 rows (resampling's shapes: duplicates, rows
/// moving up and down, runs kept in place): the in-place gather equals the gather
/// into a second stream, and copies without allocating.
#[test]
fn gather_in_place_equals_gather_for_every_sorted_index_list() {
    let mut rng = Rng::new(12);
    let (d, m, rows) = (4, 2, 5);
    let prior = random_prior(d, m, &mut rng);
    let mut s = GlmStream::new(&prior, rows).unwrap();
    let (c, y) = random_data(d, m, rows, &mut rng);
    s.update_all(&c, &y);
    s.update_row(1, &c[..d], &y[..m]); // rows differ in n as well
    let mut lists = vec![vec![]];
    for _ in 0..rows {
        lists = lists
            .into_iter()
            .flat_map(|l: Vec<usize>| {
                let from = l.last().copied().unwrap_or(0);
                (from..rows).map(move |v| [l.clone(), vec![v]].concat())
            })
            .collect();
    }
    assert_eq!(lists.len(), 126); // C(9, 5)
    let mut want = GlmStream::new(&prior, rows).unwrap();
    for src in &lists {
        s.gather(src, &mut want);
        let mut got = s.clone();
        let before = allocs();
        got.gather_in_place(src);
        assert_eq!(allocs(), before, "in-place gather allocated");
        for i in 0..rows {
            assert_eq!(got.p_row(i), want.p_row(i), "{src:?}, row {i}");
            assert_eq!(got.mean_row(i), want.mean_row(i), "{src:?}, row {i}");
            assert_eq!(got.psi_row(i), want.psi_row(i), "{src:?}, row {i}");
            assert_eq!(got.nu_row(i), want.nu_row(i), "{src:?}, row {i}");
            assert_eq!(got.n_row(i), want.n_row(i), "{src:?}, row {i}");
        }
    }
}

#[test]
#[should_panic(expected = "non-decreasing")]
fn gather_in_place_refuses_a_decreasing_index_list() {
    let prior = random_prior(2, 1, &mut Rng::new(1));
    GlmStream::new(&prior, 3)
        .unwrap()
        .gather_in_place(&[0, 2, 1]);
}

#[test]
fn streaming_update_does_not_allocate_and_gather_copies_rows() {
    let mut rng = Rng::new(11);
    let (d, m) = (8, 2);
    let prior = random_prior(d, m, &mut rng);
    let mut s = GlmStream::new(&prior, 4).unwrap();
    let (c, y) = random_data(d, m, 4, &mut rng);
    let before = allocs();
    s.update_row(0, &c[..d], &y[..m]);
    for r in 0..4 {
        s.update_row(r, &c[r * d..(r + 1) * d], &y[r * m..(r + 1) * m]);
    }
    s.update_all(&c, &y);
    assert_eq!(allocs(), before, "rank-1 updates allocated");
    let mut into = GlmStream::new(&prior, 3).unwrap();
    s.gather(&[2, 0, 2], &mut into);
    for (i, &r) in [2, 0, 2].iter().enumerate() {
        assert_eq!(into.p_row(i), s.p_row(r));
        assert_eq!(into.mean_row(i), s.mean_row(r));
        assert_eq!(into.psi_row(i), s.psi_row(r));
        assert_eq!(into.nu_row(i), s.nu_row(r));
        assert_eq!(into.n_row(i), s.n_row(r));
    }
    let before = allocs();
    s.gather(&[1, 1, 3], &mut into);
    assert_eq!(
        allocs(),
        before,
        "gather into a large-enough stream allocated"
    );
    // A too-small target is reshaped.
    let mut small = GlmStream::new(&prior, 1).unwrap();
    s.gather(&[3, 2], &mut small);
    assert_eq!(small.rows(), 2);
    assert_eq!(small.mean_row(0), s.mean_row(3));
    // Reset and serde round trip.
    let json = serde_json::to_string(&s).unwrap();
    let mut back: GlmStream = serde_json::from_str(&json).unwrap();
    // serde_json (without its float_roundtrip feature) may move the last bit.
    assert_mat_close("round trip", back.mean_row(3), s.mean_row(3), 1e-15, 0.0);
    back.update_row(3, &c[..d], &y[..m]);
    s.reset_rows(&prior, &[false, true, false, false]).unwrap();
    assert_eq!(s.n_row(1), 0.0);
    assert_eq!(s.mean_row(1), &prior.m0[..]);
    assert_eq!(s.n_row(0), 3.0);
    assert!(matches!(
        s.reset_rows(&prior, &[true]),
        Err(GlmError::Shape { .. })
    ));
}

// ---------- 4. permutation invariance ----------

#[test]
fn posterior_and_log_marginal_are_permutation_invariant() {
    let mut rng = Rng::new(12);
    let (d, m, n) = (5, 2, 20);
    let prior = random_prior(d, m, &mut rng);
    let (c, y) = random_data(d, m, n, &mut rng);
    let a = posterior(&prior, &Stats::from_rows(d, m, &c, &y, n).unwrap()).unwrap();
    let mut perm: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut perm);
    let cp: Vec<f64> = perm
        .iter()
        .flat_map(|&t| c[t * d..(t + 1) * d].to_vec())
        .collect();
    let yp: Vec<f64> = perm
        .iter()
        .flat_map(|&t| y[t * m..(t + 1) * m].to_vec())
        .collect();
    let b = posterior(&prior, &Stats::from_rows(d, m, &cp, &yp, n).unwrap()).unwrap();
    assert!(rel_close(a.log_marginal, b.log_marginal, 1e-12));
    assert_mat_close("M_N", &a.m_n, &b.m_n, 1e-12, 0.0);
    assert_mat_close("Ψ_N", &a.psi_n, &b.psi_n, 1e-12, 0.0);
    // Merging the statistics of two halves is the same as one batch.
    let mut s1 = Stats::from_rows(d, m, &cp[..8 * d], &yp[..8 * m], 8).unwrap();
    let s2 = Stats::from_rows(d, m, &cp[8 * d..], &yp[8 * m..], n - 8).unwrap();
    s1.merge(&s2).unwrap();
    assert!(rel_close(
        log_marginal(&prior, &s1).unwrap(),
        a.log_marginal,
        1e-12
    ));
}

// ---------- 5. numerical safety ----------

#[test]
fn empty_data_gives_prior_and_zero_log_marginal() {
    let mut rng = Rng::new(13);
    let prior = random_prior(4, 2, &mut rng);
    let stats = Stats::new(4, 2);
    let post = posterior(&prior, &stats).unwrap();
    assert!(log_marginal(&prior, &stats).unwrap().abs() < 1e-13);
    assert_mat_close("M_N", &post.m_n, &prior.m0, 1e-15, 0.0);
    let l0: Vec<f64> = prior.lambda0_log_diag.iter().map(|v| v.exp()).collect();
    assert_mat_close("Λ_N", &post.lambda_n, &diag(&l0), 1e-15, 0.0);
    let p0: Vec<f64> = prior.psi0_log_diag.iter().map(|v| v.exp()).collect();
    assert_mat_close("Ψ_N", &post.psi_n, &diag(&p0), 1e-14, 0.0);
    assert_eq!(post.nu_n, prior.nu0);
    let (_, g) = log_marginal_and_grad(&prior, &stats).unwrap();
    assert!(g.nu0.abs() < 1e-13 && g.m0.iter().all(|v| v.abs() < 1e-12));
}

#[test]
fn degenerate_features_match_brute_force() {
    let mut rng = Rng::new(14);
    let (d, m) = (4, 2);
    let prior = random_prior(d, m, &mut rng);
    // N < d.
    let (c, y) = random_data(d, m, 2, &mut rng);
    let cases: Vec<(&str, Vec<f64>, Vec<f64>, usize)> = vec![
        ("N < d", c, y, 2),
        {
            // Column 1 = column 0 exactly, and a duplicated row.
            let (mut c, y) = random_data(d, m, 9, &mut rng);
            for t in 0..9 {
                c[t * d + 1] = c[t * d];
            }
            let (r0, r1) = (c[..d].to_vec(), y[..m].to_vec());
            let mut y = y;
            c[d..2 * d].copy_from_slice(&r0);
            y[m..2 * m].copy_from_slice(&r1);
            ("collinear and duplicate", c, y, 9)
        },
        {
            let (_, y) = random_data(d, m, 6, &mut rng);
            ("all-zero features", vec![0.0; 6 * d], y, 6)
        },
    ];
    for (what, c, y, n) in cases {
        let stats = Stats::from_rows(d, m, &c, &y, n).unwrap();
        let (l, g) = log_marginal_and_grad(&prior, &stats).unwrap();
        let want = matrix_t_log_density(&prior, &c, &y, n);
        assert!(rel_close(l, want, 1e-9), "{what}: {l} vs {want}");
        assert!(
            g.ctc
                .iter()
                .chain(&g.cty)
                .chain(&g.m0)
                .all(|v| v.is_finite()),
            "{what}"
        );
        let mut gc = vec![0.0; n * d];
        features_grad(&c, &y, n, &g, &mut gc).unwrap();
        check_fd(
            what,
            &gc,
            |i, h| {
                let mut c2 = c.clone();
                c2[i] += h;
                lml_of(&prior, &c2, &y, n)
            },
            1e-5,
        );
    }
}

#[test]
fn extreme_scales_are_finite_and_obey_exact_rescaling_identities() {
    let mut rng = Rng::new(15);
    let (d, m, n) = (3, 2, 12);
    let prior = random_prior(d, m, &mut rng);
    let (c, y) = random_data(d, m, n, &mut rng);
    let base = lml_of(&prior, &c, &y, n);
    for s in [1e6f64, 1e-6] {
        // C -> sC with Λ0 -> s²Λ0, M0 -> M0/s leaves Λ_N^{-1}-weighted quantities and
        // hence log p(Y | C) exactly unchanged.
        let mut p = prior.clone();
        for v in &mut p.lambda0_log_diag {
            *v += 2.0 * s.ln();
        }
        for v in &mut p.m0 {
            *v /= s;
        }
        let cs: Vec<f64> = c.iter().map(|v| v * s).collect();
        let l = lml_of(&p, &cs, &y, n);
        assert!(rel_close(l, base, 1e-8), "feature scale {s}: {l} vs {base}");
        // Y -> sY with Ψ0 -> s²Ψ0, M0 -> sM0: log p gains the Jacobian -N m log s.
        let mut p = prior.clone();
        for v in &mut p.psi0_log_diag {
            *v += 2.0 * s.ln();
        }
        for v in &mut p.m0 {
            *v *= s;
        }
        let ys: Vec<f64> = y.iter().map(|v| v * s).collect();
        let l = lml_of(&p, &c, &ys, n);
        let want = base - (n * m) as f64 * s.ln();
        assert!(rel_close(l, want, 1e-8), "target scale {s}: {l} vs {want}");
        // The same extreme data under the unscaled prior: finite everywhere.
        for (cc, yy) in [(&cs, &y), (&c, &ys), (&cs, &ys)] {
            let stats = Stats::from_rows(d, m, cc, yy, n).unwrap();
            let (l, g) = log_marginal_and_grad(&prior, &stats).unwrap();
            assert!(l.is_finite(), "scale {s}: {l}");
            let mut gc = vec![0.0; n * d];
            features_grad(cc, yy, n, &g, &mut gc).unwrap();
            assert!(gc.iter().all(|v| v.is_finite()), "scale {s}");
            let post = posterior(&prior, &stats).unwrap();
            assert!(post.m_n.iter().chain(&post.psi_n).all(|v| v.is_finite()));
            let mut stream = GlmStream::new(&prior, 1).unwrap();
            stream.update_all(&cc[..d], &yy[..m]);
            assert!(stream
                .p_row(0)
                .iter()
                .chain(stream.psi_row(0))
                .all(|v| v.is_finite()));
        }
    }
}

#[test]
fn invalid_priors_are_typed_errors() {
    let ok = MniwPrior::isotropic(3, 2, 1.0, 1.0, 2.0).unwrap();
    let field = |p: MniwPrior| match p.validate() {
        Err(GlmError::InvalidPrior { field, .. }) => field,
        other => panic!("expected InvalidPrior, got {other:?}"),
    };
    let mut p = ok.clone();
    p.nu0 = 1.0; // = m - 1
    assert_eq!(field(p.clone()), "nu0");
    let msg = p.validate().unwrap_err().to_string();
    assert!(msg.contains("nu0") && msg.contains("> m - 1 = 1"), "{msg}");
    p.nu0 = f64::NAN;
    assert_eq!(field(p), "nu0");
    let mut p = ok.clone();
    p.m0[4] = f64::NAN;
    assert_eq!(field(p), "m0");
    let mut p = ok.clone();
    p.lambda0_log_diag.pop();
    assert_eq!(field(p), "lambda0_log_diag");
    let mut p = ok.clone();
    p.psi0_log_diag[1] = f64::INFINITY;
    assert_eq!(field(p), "psi0_log_diag");
    assert!(MniwPrior::isotropic(3, 2, -1.0, 1.0, 2.0).is_err());
    assert!(MniwPrior::isotropic(0, 2, 1.0, 1.0, 2.0).is_err());
    // Every entry point refuses an invalid prior instead of panicking.
    let mut bad = ok.clone();
    bad.nu0 = 0.5;
    let s = Stats::new(3, 2);
    assert!(log_marginal(&bad, &s).is_err());
    assert!(log_marginal_and_grad(&bad, &s).is_err());
    assert!(posterior(&bad, &s).is_err());
    assert!(GlmStream::new(&bad, 2).is_err());
    let mut pg = PriorGrad::zeros(3, 2);
    let e = trials_loss_and_grad::<f64>(
        &bad,
        &[0.0; 3],
        &[0.0; 2],
        1,
        1,
        &[1],
        1,
        &mut [0.0; 3],
        &mut pg,
    );
    assert!(matches!(
        e,
        Err(GlmError::InvalidPrior { field: "nu0", .. })
    ));
    // Statistics of the wrong shape.
    assert!(matches!(
        log_marginal(&ok, &Stats::new(2, 2)),
        Err(GlmError::Shape { .. })
    ));
    let mut s = Stats::new(3, 2);
    s.n = -1.0;
    assert!(matches!(
        log_marginal(&ok, &s),
        Err(GlmError::InvalidStats { .. })
    ));
}

// ---------- 6. sampling ----------

#[test]
fn gamma_and_chi_square_moments() {
    let mut rng = Rng::new(16);
    let draws = 200_000;
    for shape in [0.3, 1.0, 2.5, 17.0] {
        let xs: Vec<f64> = (0..draws).map(|_| gamma(&mut rng, shape)).collect();
        let mean = xs.iter().sum::<f64>() / draws as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws as f64;
        // Mean: 5 standard errors sqrt(shape / draws); variance: 5 % is > 5 standard
        // errors of the sample variance for these shapes (kurtosis 6 / shape).
        assert!(
            (mean - shape).abs() < 5.0 * (shape / draws as f64).sqrt(),
            "{shape}: {mean}"
        );
        assert!(
            (var - shape).abs()
                < 0.05 * shape + 5.0 * shape * (2.0 + 6.0 / shape).sqrt() / (draws as f64).sqrt(),
            "{shape}: {var}"
        );
    }
    let k = 3.7;
    let mean = (0..draws).map(|_| chi_square(&mut rng, k)).sum::<f64>() / draws as f64;
    assert!((mean - k).abs() < 5.0 * (2.0 * k / draws as f64).sqrt());
}

#[test]
fn posterior_samples_have_the_posterior_moments() {
    let mut rng = Rng::new(17);
    let (d, m, n) = (3, 2, 10);
    let prior = random_prior(d, m, &mut rng);
    let (c, y) = random_data(d, m, n, &mut rng);
    let stats = Stats::from_rows(d, m, &c, &y, n).unwrap();
    let post = posterior(&prior, &stats).unwrap();
    let mut stream = GlmStream::new(&prior, 1).unwrap();
    stream.update_all(&c[..d], &y[..m]);
    for t in 1..n {
        stream.update_row(0, &c[t * d..(t + 1) * d], &y[t * m..(t + 1) * m]);
    }
    let draws = 40_000;
    let nu = post.nu_n;
    let mf = m as f64;
    let e_sigma = post.expected_sigma();
    let l_inv = lu_solve(&post.lambda_n, d, &diag(&vec![1.0; d]), d);
    for from_stream in [false, true] {
        let mut sum_w = vec![0.0; d * m];
        let mut sum_s = vec![0.0; m * m];
        let (mut w, mut s) = (vec![0.0; d * m], vec![0.0; m * m]);
        let mut scratch = SampleScratch::new(d, m);
        let mut sscratch = StreamSampleScratch::new(d, m);
        let before = allocs();
        for _ in 0..draws {
            if from_stream {
                stream
                    .sample_row_into(0, &mut rng, &mut w, &mut s, &mut sscratch)
                    .unwrap();
            } else {
                post.sample_into(&mut rng, &mut w, &mut s, &mut scratch);
            }
            for (a, b) in sum_w.iter_mut().zip(&w) {
                *a += b;
            }
            for (a, b) in sum_s.iter_mut().zip(&s) {
                *a += b;
            }
        }
        assert_eq!(allocs(), before, "sampling allocated");
        for i in 0..d {
            for a in 0..m {
                // Var(W_ia) = (Λ_N^{-1})_ii E[Σ_aa]; 5 standard errors of the mean.
                let se = (l_inv[i * d + i] * e_sigma[a * m + a] / draws as f64).sqrt();
                let got = sum_w[i * m + a] / draws as f64;
                assert!(
                    (got - post.m_n[i * m + a]).abs() < 5.0 * se,
                    "W[{i},{a}] {got} stream={from_stream}"
                );
            }
        }
        for a in 0..m {
            for b in 0..m {
                // Inverse-Wishart variance of Σ_ab.
                let (pab, paa, pbb) = (
                    post.psi_n[a * m + b],
                    post.psi_n[a * m + a],
                    post.psi_n[b * m + b],
                );
                let var = ((nu - mf + 1.0) * pab * pab + (nu - mf - 1.0) * paa * pbb)
                    / ((nu - mf) * (nu - mf - 1.0).powi(2) * (nu - mf - 3.0));
                let se = (var / draws as f64).sqrt();
                let got = sum_s[a * m + b] / draws as f64;
                assert!(
                    (got - e_sigma[a * m + b]).abs() < 5.0 * se,
                    "Σ[{a},{b}] {got} vs {} stream={from_stream}",
                    e_sigma[a * m + b]
                );
            }
        }
    }
    let (w, s) = post.sample(&mut rng);
    assert_eq!((w.len(), s.len()), (d * m, m * m));
}
