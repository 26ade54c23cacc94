//! Advantages for MAML's policy gradients: discounted returns, the per-task linear
//! feature baseline of rllab (Duan et al. 2016, used by the MAML paper and Meta-World+'s
//! MAML-TRPO) fitted by ridge-regularised least squares, GAE(lambda) over it, and
//! advantage standardisation.
//!
//! Features of a step `t` (0-based within its episode) with observation `o`:
//! `[clip(o, -10, 10), clip(o)^2, t/100, (t/100)^2, (t/100)^3, 1]`.
//!
//! Every episode ends at its last stored step and the value after it is 0 (both
//! references treat the time limit as terminal; episodes are whole here).

/// Number of baseline features for `obs_dim`-dimensional observations.
pub fn feature_dim(obs_dim: usize) -> usize {
    2 * obs_dim + 4
}

/// Writes the features of one step into `out` (`feature_dim(obs.len())` values).
pub fn features(obs: &[f64], step_in_episode: usize, out: &mut [f64]) {
    let d = obs.len();
    for (i, &o) in obs.iter().enumerate() {
        let c = o.clamp(-10.0, 10.0);
        out[i] = c;
        out[d + i] = c * c;
    }
    let t = step_in_episode as f64 / 100.0;
    out[2 * d] = t;
    out[2 * d + 1] = t * t;
    out[2 * d + 2] = t * t * t;
    out[2 * d + 3] = 1.0;
}

/// Discounted return-to-go of every step; `ends[t]` marks the last step of an episode.
pub fn returns_to_go(rewards: &[f64], ends: &[bool], gamma: f64, out: &mut [f64]) {
    let mut next = 0.0;
    for t in (0..rewards.len()).rev() {
        if ends[t] {
            next = 0.0;
        }
        next = rewards[t] + gamma * next;
        out[t] = next;
    }
}

/// The ridge regularisation the references start from; it grows tenfold (up to five
/// times) while the normal equations are not numerically positive definite.
pub const RIDGE: f64 = 1e-5;

/// A fitted linear baseline: `b(s_t) = phi(s_t, t) . coeffs`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearBaseline {
    pub coeffs: Vec<f64>,
}

impl LinearBaseline {
    /// Ridge least squares of `targets` on the features of `obs` (`n x obs_dim`):
    /// `(Phi' Phi + reg I) c = Phi' y`, solved by Cholesky.
    pub fn fit(obs: &[f64], steps: &[usize], targets: &[f64], obs_dim: usize) -> LinearBaseline {
        let n = targets.len();
        let f = feature_dim(obs_dim);
        let mut a = vec![0.0; f * f];
        let mut b = vec![0.0; f];
        let mut phi = vec![0.0; f];
        for t in 0..n {
            features(&obs[t * obs_dim..(t + 1) * obs_dim], steps[t], &mut phi);
            for i in 0..f {
                b[i] += phi[i] * targets[t];
                for j in 0..=i {
                    a[i * f + j] += phi[i] * phi[j];
                }
            }
        }
        let mut reg = RIDGE;
        for _ in 0..5 {
            if let Some(c) = solve_spd(&a, &b, f, reg) {
                return LinearBaseline { coeffs: c };
            }
            reg *= 10.0;
        }
        // Degenerate data (e.g. no samples): predict zero, the references' fallback.
        LinearBaseline {
            coeffs: vec![0.0; f],
        }
    }

    /// Baseline value of every step.
    pub fn predict(&self, obs: &[f64], steps: &[usize], obs_dim: usize, out: &mut [f64]) {
        let mut phi = vec![0.0; self.coeffs.len()];
        for t in 0..steps.len() {
            features(&obs[t * obs_dim..(t + 1) * obs_dim], steps[t], &mut phi);
            out[t] = phi.iter().zip(&self.coeffs).map(|(a, b)| a * b).sum();
        }
    }
}

/// Solves `(A + reg I) x = b` for the lower triangle of a symmetric `A`; `None` when
/// the Cholesky factorisation fails or the solution is not finite.
fn solve_spd(a: &[f64], b: &[f64], f: usize, reg: f64) -> Option<Vec<f64>> {
    let mut l = vec![0.0; f * f];
    for i in 0..f {
        for j in 0..=i {
            let mut s = a[i * f + j] + if i == j { reg } else { 0.0 };
            for k in 0..j {
                s -= l[i * f + k] * l[j * f + k];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * f + i] = s.sqrt();
            } else {
                l[i * f + j] = s / l[j * f + j];
            }
        }
    }
    let mut y = vec![0.0; f];
    for i in 0..f {
        let s: f64 = (0..i).map(|k| l[i * f + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * f + i];
    }
    let mut x = vec![0.0; f];
    for i in (0..f).rev() {
        let s: f64 = (i + 1..f).map(|k| l[k * f + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * f + i];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// GAE(lambda) with `values` from the baseline; the value after an episode's last
/// step is 0.
pub fn gae(
    rewards: &[f64],
    values: &[f64],
    ends: &[bool],
    gamma: f64,
    lambda: f64,
    out: &mut [f64],
) {
    let mut next_adv = 0.0;
    for t in (0..rewards.len()).rev() {
        let (next_value, carry) = if ends[t] {
            (0.0, 0.0)
        } else {
            (values[t + 1], next_adv)
        };
        next_adv = rewards[t] + gamma * next_value - values[t] + gamma * lambda * carry;
        out[t] = next_adv;
    }
}

/// Standardises `adv` to mean 0 and standard deviation 1 (1e-8 guards a constant batch).
pub fn standardize(adv: &mut [f64]) {
    let n = adv.len() as f64;
    if adv.is_empty() {
        return;
    }
    let mean = adv.iter().sum::<f64>() / n;
    let var = adv.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n;
    let scale = 1.0 / (var.sqrt() + 1e-8);
    adv.iter_mut().for_each(|a| *a = (*a - mean) * scale);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_restart_at_episode_ends() {
        let mut out = [0.0; 4];
        returns_to_go(
            &[1.0, 2.0, 3.0, 4.0],
            &[false, true, false, true],
            0.5,
            &mut out,
        );
        assert_eq!(out, [2.0, 2.0, 5.0, 4.0]);
    }

    #[test]
    fn gae_with_lambda_one_is_return_minus_baseline() {
        let r = [1.0, -1.0, 2.0, 0.5, 0.25];
        let v = [0.3, -0.2, 0.7, 0.1, -0.4];
        let ends = [false, false, true, false, true];
        let (mut adv, mut ret) = ([0.0; 5], [0.0; 5]);
        gae(&r, &v, &ends, 0.9, 1.0, &mut adv);
        returns_to_go(&r, &ends, 0.9, &mut ret);
        for t in 0..5 {
            assert!((adv[t] - (ret[t] - v[t])).abs() < 1e-12);
        }
    }
}
