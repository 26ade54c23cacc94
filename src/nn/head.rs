//! The policy head, once for every user: a categorical distribution over logits, a
//! diagonal Gaussian whose mean is the actor's output and whose log standard
//! deviations are a state-independent parameter slot, or Meta-World+'s diagonal
//! Gaussian whose mean and log standard deviations are both actor outputs squashed by
//! tanh (so the standard deviation stays in [1/e, e]). Sampling and log-densities on
//! the host (acting), log-probabilities, entropies and the cross-entropy to a target
//! as burn graphs (PPO's and EM's losses), and PPO's log-probabilities and entropy
//! with their gradient on the host.
//!
//! ```
//! use bamdp::nn::head::gaussian_log_density;
//! // Standard normal at 0: -log sqrt(2 pi).
//! assert!((gaussian_log_density(0.0, 0.0) + 0.918_938_5).abs() < 1e-6);
//! ```

use super::graph::{self, GraphParams};
use super::{AgentNet, Params, Slot};
use crate::rng::Rng;
use burn::tensor::{activation, Device, Tensor};

/// The distribution the actor's outputs parameterise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// Softmax over `num_actions` logits; actions are stored as their index.
    Categorical,
    /// `N(mean, diag exp(log_std)^2)`, `log_std` a parameter slot; actions are stored
    /// as the raw vector (the env clips to its bounds).
    Gaussian { log_std: Slot },
    /// Meta-World+'s head (`std_type = MLP_HEAD`, `activate_head = True`): the actor's
    /// `2 dim` outputs `[u | v]` give the mean `tanh u` and the log standard deviations
    /// `tanh v` of each row; actions are stored as the raw vector.
    StateGaussian,
}

/// log N(a; mean, std) of one dimension, from the standardised `z = (a - mean) / std`.
#[inline]
pub fn gaussian_log_density(z: f32, log_std: f32) -> f32 {
    -0.5 * z * z - log_std - 0.5 * (2.0 * std::f32::consts::PI).ln()
}

/// Index of the largest value (the first among equals).
pub fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

impl Head {
    pub fn of(net: &AgentNet) -> Head {
        match net.log_std {
            _ if net.state_std => Head::StateGaussian,
            None => Head::Categorical,
            Some(log_std) => Head::Gaussian { log_std },
        }
    }

    /// Width of one action in the env's action buffer.
    pub fn action_width(&self, num_actions: usize) -> usize {
        match self {
            Head::Categorical => 1,
            Head::Gaussian { .. } | Head::StateGaussian => num_actions,
        }
    }

    /// Width of one row of the actor's outputs.
    pub fn out_width(&self, num_actions: usize) -> usize {
        match self {
            Head::Categorical | Head::Gaussian { .. } => num_actions,
            Head::StateGaussian => 2 * num_actions,
        }
    }

    /// One row's mean and log standard deviations from its actor outputs `out`: the
    /// outputs and the slot (`Gaussian`), or `tanh` of the two halves written into
    /// `scratch` (`StateGaussian`, `2 * dim` wide). Panics for a categorical head.
    pub fn gaussian_row<'a>(
        &self,
        params: &'a Params,
        out: &'a [f32],
        scratch: &'a mut [f32],
    ) -> (&'a [f32], &'a [f32]) {
        match *self {
            Head::Categorical => panic!("a categorical head has no Gaussian rows"),
            Head::Gaussian { log_std } => (out, params.get(log_std)),
            Head::StateGaussian => {
                for (s, &o) in scratch.iter_mut().zip(out) {
                    *s = o.tanh();
                }
                let (mean, log_std) = scratch.split_at(out.len() / 2);
                (mean, log_std)
            }
        }
    }

    /// Width of one sample's planner target: the action distribution (categorical) or
    /// the weighted mean and variance per dimension (Gaussian).
    pub fn target_width(&self, num_actions: usize) -> usize {
        match self {
            Head::Categorical => num_actions,
            Head::Gaussian { .. } | Head::StateGaussian => 2 * num_actions,
        }
    }

    /// A categorical draw from one row's log-probabilities `lp` (the most likely action
    /// when `greedy`); `probs` is scratch of the same width.
    pub fn sample_categorical(lp: &[f32], probs: &mut [f32], rng: &mut Rng, greedy: bool) -> usize {
        if greedy {
            return argmax(lp);
        }
        for (p, &l) in probs.iter_mut().zip(lp) {
            *p = l.exp();
        }
        rng.categorical(probs)
    }

    /// A Gaussian draw `a = mean + std * z` for one row (the mean when `greedy`),
    /// written to `action`; returns its log-density.
    pub fn sample_gaussian(
        mean: &[f32],
        log_std: &[f32],
        rng: &mut Rng,
        greedy: bool,
        action: &mut [f32],
    ) -> f32 {
        let mut lp = 0.0f32;
        for j in 0..mean.len() {
            let z = if greedy { 0.0 } else { rng.normal() as f32 };
            action[j] = mean[j] + log_std[j].exp() * z;
            lp += gaussian_log_density(z, log_std[j]);
        }
        lp
    }

    /// Log-density of a given action under one row's Gaussian.
    pub fn gaussian_log_prob(action: &[f32], mean: &[f32], log_std: &[f32]) -> f32 {
        let mut lp = 0.0f32;
        for j in 0..mean.len() {
            let z = (action[j] - mean[j]) * (-log_std[j]).exp();
            lp += gaussian_log_density(z, log_std[j]);
        }
        lp
    }

    /// Graph of `log pi(a)` per sample (`[n, 1]`) for actor outputs `out` (`[n, A]`)
    /// and actions `act` (one-hot for categorical, raw for Gaussian), and of the summed
    /// entropy divided by `total`.
    pub fn log_prob_and_entropy(
        &self,
        gp: &GraphParams,
        out: Tensor<2>,
        act: Tensor<2>,
        n: usize,
        total: f32,
    ) -> (Tensor<2>, Tensor<1>) {
        match *self {
            Head::Categorical => {
                let logp_all = activation::log_softmax(out, 1);
                let logp = (logp_all.clone() * act).sum_dim(1);
                (
                    logp,
                    (logp_all.clone().exp() * logp_all).sum().neg() / total,
                )
            }
            Head::Gaussian { log_std } => {
                // sum_j -0.5 ((a_j - mean_j) / std_j)^2 - log std_j - log sqrt(2 pi);
                // entropy per sample sum_j log std_j + 0.5 log(2 pi e).
                let na = act.dims()[1];
                let log_std = gp.get(log_std);
                let z = (act - out) * log_std.clone().neg().exp();
                let half_log_2pi = 0.5 * (2.0 * std::f32::consts::PI).ln();
                let logp =
                    (z.square() * -0.5 - log_std.clone()).sum_dim(1) - half_log_2pi * na as f32;
                let per_sample = log_std.sum() + (half_log_2pi + 0.5) * na as f32;
                (logp, per_sample * (n as f32 / total))
            }
            Head::StateGaussian => {
                let na = act.dims()[1];
                let mean = activation::tanh(out.clone().slice([0..n, 0..na]));
                let log_std = activation::tanh(out.slice([0..n, na..2 * na]));
                let z = (act - mean) * log_std.clone().neg().exp();
                let half_log_2pi = 0.5 * (2.0 * std::f32::consts::PI).ln();
                let logp =
                    (z.square() * -0.5 - log_std.clone()).sum_dim(1) - half_log_2pi * na as f32;
                let ent = (log_std.sum() + (half_log_2pi + 0.5) * (n * na) as f32) / total;
                (logp, ent)
            }
        }
    }

    /// The host twin of [`Head::log_prob_and_entropy`] with its gradient, for the `n`
    /// samples of actor outputs `out` (`[n, out_width]`) and actions `act` (`[n, na]`,
    /// one-hot for categorical, raw for Gaussian). `dloss_dlogp(i, log pi(a_i))` returns the loss's
    /// derivative with respect to sample `i`'s log-probability; the gradient of that
    /// loss minus `entropy_coef` times the entropy (summed, divided by `total`) is
    /// written to `dout` (w.r.t. the outputs) and added to `grad` (w.r.t. the log
    /// standard deviations). Returns the entropy term (summed, divided by `total`).
    #[allow(clippy::too_many_arguments)]
    pub fn log_prob_and_entropy_host(
        &self,
        params: &Params,
        out: &[f32],
        act: &[f32],
        na: usize,
        total: f32,
        entropy_coef: f32,
        mut dloss_dlogp: impl FnMut(usize, f32) -> f32,
        dout: &mut [f32],
        grad: &mut [f32],
    ) -> f64 {
        let n = act.len() / na;
        let ec = entropy_coef;
        match *self {
            Head::Categorical => {
                let mut ent = 0.0f64;
                let mut lp = vec![0.0f32; na];
                for i in 0..n {
                    let z = &out[i * na..(i + 1) * na];
                    let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
                    let mut h = 0.0f32;
                    let mut logp = 0.0f32;
                    for j in 0..na {
                        lp[j] = z[j] - lse;
                        h -= lp[j].exp() * lp[j];
                        logp += lp[j] * act[i * na + j];
                    }
                    ent += h as f64;
                    let dlogp = dloss_dlogp(i, logp);
                    let d = &mut dout[i * na..(i + 1) * na];
                    for j in 0..na {
                        let pj = lp[j].exp();
                        // d(-ec H / total)/dz_j = ec p_j (log p_j + H) / total.
                        d[j] = dlogp * (act[i * na + j] - pj) + ec * pj * (lp[j] + h) / total;
                    }
                }
                ent / total as f64
            }
            Head::Gaussian { log_std: slot } => {
                let log_std = params.get(slot);
                let half_log_2pi = 0.5 * (2.0 * std::f32::consts::PI).ln();
                let mut dls = vec![0.0f32; na];
                for i in 0..n {
                    let mut logp = -half_log_2pi * na as f32;
                    for j in 0..na {
                        let z = (act[i * na + j] - out[i * na + j]) * (-log_std[j]).exp();
                        logp += -0.5 * z * z - log_std[j];
                    }
                    let dlogp = dloss_dlogp(i, logp);
                    for j in 0..na {
                        let z = (act[i * na + j] - out[i * na + j]) * (-log_std[j]).exp();
                        dout[i * na + j] = dlogp * z * (-log_std[j]).exp();
                        dls[j] += dlogp * (z * z - 1.0);
                    }
                }
                let per_sample = log_std.iter().sum::<f32>() + (half_log_2pi + 0.5) * na as f32;
                let scale = n as f32 / total;
                for (g, d) in grad[slot.range()].iter_mut().zip(&dls) {
                    *g += d - ec * scale;
                }
                (per_sample * scale) as f64
            }
            Head::StateGaussian => {
                let half_log_2pi = 0.5 * (2.0 * std::f32::consts::PI).ln();
                let mut ent = 0.0f64;
                let (mut mean, mut log_std) = (vec![0.0f32; na], vec![0.0f32; na]);
                for i in 0..n {
                    let (o, a) = (
                        &out[i * 2 * na..(i + 1) * 2 * na],
                        &act[i * na..(i + 1) * na],
                    );
                    let mut logp = -half_log_2pi * na as f32;
                    for j in 0..na {
                        (mean[j], log_std[j]) = (o[j].tanh(), o[na + j].tanh());
                        let z = (a[j] - mean[j]) * (-log_std[j]).exp();
                        logp += -0.5 * z * z - log_std[j];
                        ent += (log_std[j] + half_log_2pi + 0.5) as f64;
                    }
                    let dlogp = dloss_dlogp(i, logp);
                    let d = &mut dout[i * 2 * na..(i + 1) * 2 * na];
                    for j in 0..na {
                        let inv_std = (-log_std[j]).exp();
                        let z = (a[j] - mean[j]) * inv_std;
                        // Through tanh: d tanh(x) / dx = 1 - tanh(x)^2.
                        d[j] = dlogp * z * inv_std * (1.0 - mean[j] * mean[j]);
                        let dls = dlogp * (z * z - 1.0) - ec / total;
                        d[na + j] = dls * (1.0 - log_std[j] * log_std[j]);
                    }
                }
                ent / total as f64
            }
        }
    }

    /// Graphs of the cross-entropy of the policy to the planner's `target` (rows of
    /// [`Head::target_width`], one per row of `out`) and of the entropy, both summed and
    /// divided by `total`. Gaussian: per dimension
    /// `((abar - mu)^2 + var) / (2 s^2) + log s + log sqrt(2 pi)` for the target's
    /// weighted mean `abar` and variance `var`.
    pub fn cross_entropy_and_entropy(
        &self,
        gp: &GraphParams,
        out: Tensor<2>,
        target: &[f32],
        na: usize,
        total: f32,
        device: &Device,
    ) -> (Tensor<1>, Tensor<1>) {
        let n = target.len() / self.target_width(na).max(1);
        match *self {
            Head::Categorical => {
                let q = graph::constant(target, n, na, device);
                let logp = activation::log_softmax(out, 1);
                let ce = (logp.clone() * q).sum().neg() / total;
                let ent = (logp.clone().exp() * logp).sum().neg() / total;
                (ce, ent)
            }
            Head::Gaussian { log_std } => {
                let t = graph::constant(target, n, 2 * na, device);
                let mean = t.clone().slice([0..n, 0..na]);
                let var = t.slice([0..n, na..2 * na]);
                let log_std = gp.get(log_std);
                let inv_var = (log_std.clone() * -2.0).exp();
                let half_log_2pi = 0.5 * (2.0 * std::f32::consts::PI).ln();
                let per = ((mean - out).square() + var) * inv_var * 0.5 + log_std.clone();
                let ce = (per.sum() + half_log_2pi * (n * na) as f32) / total;
                let ent = (log_std.sum() + (half_log_2pi + 0.5) * na as f32) * (n as f32 / total);
                (ce, ent)
            }
            Head::StateGaussian => {
                let t = graph::constant(target, n, 2 * na, device);
                let mean = t.clone().slice([0..n, 0..na]);
                let var = t.slice([0..n, na..2 * na]);
                let mu = activation::tanh(out.clone().slice([0..n, 0..na]));
                let log_std = activation::tanh(out.slice([0..n, na..2 * na]));
                let inv_var = (log_std.clone() * -2.0).exp();
                let half_log_2pi = 0.5 * (2.0 * std::f32::consts::PI).ln();
                let per = ((mean - mu).square() + var) * inv_var * 0.5 + log_std.clone();
                let ce = (per.sum() + half_log_2pi * (n * na) as f32) / total;
                let ent = (log_std.sum() + (half_log_2pi + 0.5) * (n * na) as f32) / total;
                (ce, ent)
            }
        }
    }
}
