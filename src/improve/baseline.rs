//! The per-task linear feature baseline of rllab (Duan et al. 2016, used by the MAML
//! paper and Meta-World+'s MAML-TRPO and RL2) fitted by ridge-regularised least squares,
//! with discounted returns, GAE(lambda) over it and advantage standardisation: MAML's
//! advantages, and PPO's with `ppo.baseline = "linear"`.
//!
//! Features of a step `t` (0-based within its episode; PPO counts within the trial, as
//! Meta-World+'s RL2, whose trial is one episode to its baseline) with observation `o`:
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

/// PPO's values from the linear baseline (`ppo.baseline = "linear"`): for each trial of
/// each row of `buf` (a trial starts where `buf.reset` is 1 and ends at its terminal
/// step or at the rollout's end, treated as terminal like the references do), the
/// discounted returns of `buf.rewards` regressed on the features of the row's first
/// `obs_dim` inputs (the observation) and the step within the trial. Writes the fitted
/// values into `buf.values`, zeroes `buf.last_value`, and returns half the mean squared
/// residual (the value loss a perfect critic of this family would have).
///
/// The inputs may be normalised (`ppo.norm_obs`): an affine map of each component keeps
/// the span of `[o, o^2, 1]`, so only the clip at +-10 and the ridge see the difference.
pub fn fit_rollout(
    buf: &mut crate::improve::ppo::RolloutBuffer,
    obs_dim: usize,
    gamma: f64,
) -> f64 {
    let (steps, rows, id) = (buf.steps, buf.rows, buf.input_dim);
    let mut obs = Vec::with_capacity(steps * obs_dim);
    let (mut step, mut rewards, mut ends) = (Vec::new(), Vec::new(), Vec::new());
    let (mut targets, mut values) = (Vec::new(), Vec::new());
    let mut squared = 0.0f64;
    for r in 0..rows {
        let mut start = 0;
        while start < steps {
            let mut end = start;
            while end + 1 < steps
                && !buf.terminal[end * rows + r]
                && buf.reset[(end + 1) * rows + r] == 0.0
            {
                end += 1;
            }
            let n = end + 1 - start;
            obs.clear();
            step.clear();
            rewards.clear();
            for t in start..=end {
                let i = t * rows + r;
                obs.extend(buf.x[i * id..i * id + obs_dim].iter().map(|&v| v as f64));
                step.push(t - start);
                rewards.push(buf.rewards[i] as f64);
            }
            ends.clear();
            ends.resize(n, false);
            ends[n - 1] = true;
            targets.resize(n, 0.0);
            values.resize(n, 0.0);
            returns_to_go(&rewards, &ends, gamma, &mut targets);
            let fit = LinearBaseline::fit(&obs, &step, &targets, obs_dim);
            fit.predict(&obs, &step, obs_dim, &mut values);
            for (k, t) in (start..=end).enumerate() {
                buf.values[t * rows + r] = values[k] as f32;
                squared += (targets[k] - values[k]).powi(2);
            }
            start = end + 1;
        }
        buf.last_value[r] = 0.0;
    }
    0.5 * squared / (steps * rows) as f64
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

    /// `fit_rollout` cuts each row at its trials (resets), fits each trial alone on
    /// the observation part of the inputs and the step within the trial, and writes
    /// what `LinearBaseline` fits to the hand-computed returns of that trial.
    #[test]
    fn a_rollout_is_fitted_trial_by_trial() {
        use crate::improve::ppo::RolloutBuffer;
        use crate::rng::Rng;
        let (steps, rows, obs_dim, input_dim, trial) = (24, 2, 1, 3, 8);
        let mut buf = RolloutBuffer::new(steps, rows, input_dim, 0, 1);
        let mut rng = Rng::new(2);
        for v in buf.x.iter_mut().chain(&mut buf.rewards) {
            *v = rng.normal() as f32;
        }
        for t in 0..steps {
            for r in 0..rows {
                let i = t * rows + r;
                buf.reset[i] = if t % trial == 0 { 1.0 } else { 0.0 };
                buf.terminal[i] = t % trial == trial - 1;
            }
        }
        buf.last_value = vec![9.0; rows];
        let gamma = 0.9;
        let loss = fit_rollout(&mut buf, obs_dim, gamma);
        assert_eq!(buf.last_value, vec![0.0; rows]);
        let mut squared = 0.0;
        for r in 0..rows {
            for k in 0..steps / trial {
                let ts: Vec<usize> = (k * trial..(k + 1) * trial).collect();
                let obs: Vec<f64> = ts
                    .iter()
                    .map(|&t| buf.x[(t * rows + r) * input_dim] as f64)
                    .collect();
                let rew: Vec<f64> = ts
                    .iter()
                    .map(|&t| buf.rewards[t * rows + r] as f64)
                    .collect();
                // Returns by hand, to the trial's end.
                let mut ret = vec![0.0; trial];
                let mut next = 0.0;
                for j in (0..trial).rev() {
                    next = rew[j] + gamma * next;
                    ret[j] = next;
                }
                let step: Vec<usize> = (0..trial).collect();
                let fit = LinearBaseline::fit(&obs, &step, &ret, obs_dim);
                let mut v = vec![0.0; trial];
                fit.predict(&obs, &step, obs_dim, &mut v);
                for (j, &t) in ts.iter().enumerate() {
                    assert_eq!(buf.values[t * rows + r], v[j] as f32, "row {r}, step {t}");
                    squared += (ret[j] - v[j]).powi(2);
                }
            }
        }
        assert!((loss - 0.5 * squared / (steps * rows) as f64).abs() < 1e-12);
        // Six features and eight steps per trial: a fit, not an interpolation.
        assert!(loss > 1e-3, "{loss}");
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
