//! TRPO's step (Schulman et al. 2015, Appendix C): conjugate gradient on Fisher-vector
//! products for the natural direction `s ~ F^-1 g`, scaled to the trust region
//! `sqrt(2 delta / s'Fs)`, then a backtracking line search that accepts the first
//! shrunk step whose objective improves and whose mean KL stays within `delta`.

/// Solves `A x = b` by conjugate gradient with `iters` iterations (stopping early
/// once the squared residual is below `1e-10`); `avp(v)` returns `A v` for a
/// symmetric positive definite `A`.
pub fn conjugate_gradient(
    mut avp: impl FnMut(&[f64]) -> Vec<f64>,
    b: &[f64],
    iters: usize,
) -> Vec<f64> {
    let mut x = vec![0.0; b.len()];
    let mut r = b.to_vec();
    let mut p = b.to_vec();
    let mut rr = dot(&r, &r);
    for _ in 0..iters {
        if rr < 1e-10 {
            break;
        }
        let ap = avp(&p);
        let alpha = rr / dot(&p, &ap);
        for i in 0..x.len() {
            x[i] += alpha * p[i];
            r[i] -= alpha * ap[i];
        }
        let rr_new = dot(&r, &r);
        let beta = rr_new / rr;
        for i in 0..p.len() {
            p[i] = r[i] + beta * p[i];
        }
        rr = rr_new;
    }
    x
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The outcome of [`line_search`].
#[derive(Clone, Debug, PartialEq)]
pub struct LineSearch {
    /// The accepted parameters (the old ones when every candidate was rejected).
    pub theta: Vec<f64>,
    pub accepted: bool,
    /// Candidates tried (1 when the full step was accepted).
    pub tries: usize,
    /// Objective and mean KL of the last candidate evaluated.
    pub objective: f64,
    pub kl: f64,
}

/// Backtracking along `full_step`: candidates `theta + ratio^j full_step` for
/// `j = 0..max_steps`; the first with `objective > objective_before` and
/// `kl <= max_kl` is accepted. `eval(candidate)` returns `(objective, mean KL)`.
pub fn line_search(
    theta: &[f64],
    full_step: &[f64],
    objective_before: f64,
    max_kl: f64,
    backtrack_ratio: f64,
    max_steps: usize,
    mut eval: impl FnMut(&[f64]) -> (f64, f64),
) -> LineSearch {
    let mut candidate = theta.to_vec();
    let mut last = (objective_before, 0.0);
    for j in 0..max_steps {
        let scale = backtrack_ratio.powi(j as i32);
        for i in 0..theta.len() {
            candidate[i] = theta[i] + scale * full_step[i];
        }
        let (objective, kl) = eval(&candidate);
        last = (objective, kl);
        if objective.is_finite() && kl.is_finite() && objective > objective_before && kl <= max_kl {
            return LineSearch {
                theta: candidate,
                accepted: true,
                tries: j + 1,
                objective,
                kl,
            };
        }
    }
    LineSearch {
        theta: theta.to_vec(),
        accepted: false,
        tries: max_steps,
        objective: last.0,
        kl: last.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cg_solves_a_known_spd_system() {
        // A = M'M + I for a fixed M; b = A x_true.
        let n = 6;
        let mut rng = crate::rng::Rng::new(3);
        let m: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| m[k * n + i] * m[k * n + j]).sum::<f64>()
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        let x_true: Vec<f64> = (0..n).map(|i| i as f64 - 2.5).collect();
        let b: Vec<f64> = (0..n)
            .map(|i| dot(&a[i * n..(i + 1) * n], &x_true))
            .collect();
        let mut calls = 0;
        let x = conjugate_gradient(
            |v| {
                calls += 1;
                (0..n).map(|i| dot(&a[i * n..(i + 1) * n], v)).collect()
            },
            &b,
            n,
        );
        // Exact arithmetic converges in n steps.
        assert!(calls <= n);
        for i in 0..n {
            assert!((x[i] - x_true[i]).abs() < 1e-8, "{x:?} vs {x_true:?}");
        }
    }

    #[test]
    fn line_search_rejects_kl_violations_and_backtracks() {
        // Objective increases along the step; KL = |theta|^2 exceeds 0.01 unless the
        // step is shrunk to at most 0.1 in norm.
        let eval = |t: &[f64]| (t[0], t[0] * t[0]);
        let r = line_search(&[0.0], &[1.0], 0.0, 0.01, 0.5, 10, eval);
        assert!(r.accepted);
        // 1, 0.5, 0.25, 0.125 violate (KL 0.0156 > 0.01), 0.0625 is accepted.
        assert_eq!(r.tries, 5);
        assert!((r.theta[0] - 0.0625).abs() < 1e-15);
        assert!(r.kl <= 0.01);
        // Too few backtracks: every candidate violates, so the old theta is kept.
        let r = line_search(&[0.0], &[1.0], 0.0, 0.01, 0.5, 3, eval);
        assert!(!r.accepted);
        assert_eq!(r.theta, vec![0.0]);
        // A step that lowers the objective is rejected even within the KL bound.
        let r = line_search(&[0.0], &[-1.0], 0.0, 10.0, 0.5, 4, eval);
        assert!(!r.accepted);
    }
}
