//! VariBASeD's M-step: the amortised policy and value fit what the planner found.
//!
//! One joint loss per sample `h_t` of the rollout (docs/methods.md#em):
//! `L = c_V * 0.5 * (V(h_t) - G_t)^2 + CE(q*(. | h_t), pi(. | h_t)) + beta * (-ELBO)`.
//! `G_t` is the TD(lambda) return of the real rewards (GAE with the rollout's values).
//! The policy's gradient is stopped inside the belief (the network reads the belief's
//! features as constants) and the belief's ELBO or marginal likelihood involves no
//! policy parameter, so the joint gradient splits into disjoint parameter blocks; with
//! Adam (per-parameter moments) one optimiser over the joint loss and one optimiser per
//! block take the same steps up to epsilon. The belief's part therefore stays with its
//! own learner (VariBAD's VAE, GLiBRL's marginal likelihood) and this module owns the
//! policy/value part.
//!
//! Cross-entropy: discrete `-sum_a q*(a) log pi(a)`; for a diagonal Gaussian policy and
//! the planner's weighted root actions `{(w_k, a_k)}`, `-sum_k w_k log N(a_k; mu, s^2)`
//! equals, per dimension, `((abar - mu)^2 + var) / (2 s^2) + log s + log sqrt(2 pi)`
//! with `abar, var` the weighted mean and variance: only those two are stored.
//!
//! Samples carry no recurrent state (the belief is the memory), so minibatches are
//! random subsets of all `steps x rows` samples. Each minibatch's gradient is computed
//! in a fixed number of chunks (on threads if asked) and summed in a fixed order:
//! results do not depend on the thread count.

use crate::config::PpoConfig;
use crate::improve::ppo::RolloutBuffer;
use crate::nn::graph::GraphParams;
use crate::nn::head::Head;
use crate::nn::{Adam, AgentNet, Params};
use crate::rng::Rng;
use burn::tensor::{Device, Tensor, TensorData};

/// Scalars of one EM update, averaged over minibatches.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmStats {
    /// Cross-entropy of the policy to the planner's target.
    pub policy_loss: f64,
    pub value_loss: f64,
    /// Entropy of the policy (diagnostic).
    pub entropy: f64,
    pub grad_norm: f64,
}

/// Width of one sample's target: the action distribution (discrete) or the weighted
/// mean and variance per dimension (Gaussian).
pub fn target_width(net: &AgentNet) -> usize {
    Head::of(net).target_width(net.num_actions)
}

struct Chunk {
    x: Vec<f32>,
    target: Vec<f32>,
    returns: Vec<f32>,
}

fn col(v: &[f32], device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(v.to_vec(), [v.len(), 1]), device)
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data().try_into_vec::<f32>().expect("f32")[0] as f64
}

/// The loss of one chunk normalised by `total`; adds its gradient into `grad`.
fn chunk_grad(
    net: &AgentNet,
    params: &Params,
    c: &Chunk,
    value_coef: f32,
    total: f32,
    grad: &mut [f32],
) -> [f64; 3] {
    let device = Device::flex().autodiff();
    let gp = GraphParams::new(params, &device);
    let n = c.returns.len();
    let (out, values) = net.forward_graph(&gp, &c.x, &vec![0.0; n], &[], 1, n, &device);
    let (ce, entropy) = Head::of(net).cross_entropy_and_entropy(
        &gp,
        out,
        &c.target,
        net.num_actions,
        total,
        &device,
    );
    let vl = (values - col(&c.returns, &device)).square().sum() * 0.5 / total;
    let loss = ce.clone() + vl.clone() * value_coef;
    let grads = loss.backward();
    gp.add_flat_grad(&grads, grad);
    [
        scalar(ce.detach()),
        scalar(vl.detach()),
        scalar(entropy.detach()),
    ]
}

/// `epochs x minibatches` steps of the M-step loss over the rollout `buf` (returns
/// computed) and the planner's `targets` (`steps * rows * target_width`).
#[allow(clippy::too_many_arguments)]
pub fn update(
    net: &AgentNet,
    params: &mut Params,
    adam: &mut Adam,
    buf: &RolloutBuffer,
    targets: &[f32],
    cfg: &PpoConfig,
    value_coef: f64,
    lr: f64,
    rng: &mut Rng,
    threads: usize,
) -> EmStats {
    let n = buf.steps * buf.rows;
    let (id, tw) = (buf.input_dim, target_width(net));
    assert_eq!(targets.len(), n * tw, "one target per sample");
    let mut order: Vec<usize> = (0..n).collect();
    let per_mb = n.div_ceil(cfg.minibatches);
    let mut stats = EmStats::default();
    let mut count = 0.0;
    let mut grad = vec![0.0f32; params.len()];
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut order);
        for mb in order.chunks(per_mb) {
            let total = mb.len() as f32;
            let per_chunk = mb.len().div_ceil(super::CHUNKS);
            let chunks: Vec<Chunk> = mb
                .chunks(per_chunk)
                .map(|idx| {
                    let mut c = Chunk {
                        x: Vec::with_capacity(idx.len() * id),
                        target: Vec::with_capacity(idx.len() * tw),
                        returns: Vec::with_capacity(idx.len()),
                    };
                    for &i in idx {
                        c.x.extend_from_slice(&buf.x[i * id..(i + 1) * id]);
                        c.target.extend_from_slice(&targets[i * tw..(i + 1) * tw]);
                        c.returns.push(buf.returns[i]);
                    }
                    c
                })
                .collect();
            let vc = value_coef as f32;
            let (st, norm) = super::minibatch_step(
                &chunks,
                params,
                adam,
                cfg.max_grad_norm,
                lr,
                threads,
                &mut grad,
                |p, c, g| chunk_grad(net, p, c, vc, total, g),
            );
            stats.policy_loss += st[0];
            stats.value_loss += st[1];
            stats.entropy += st[2];
            stats.grad_norm += norm;
            count += 1.0;
        }
    }
    stats.policy_loss /= count;
    stats.value_loss /= count;
    stats.entropy /= count;
    stats.grad_norm /= count;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::host::Act;

    fn net(gaussian: bool) -> (AgentNet, Params) {
        let mut p = Params::new();
        let mut rng = Rng::new(3);
        let net = AgentNet::new(&mut p, 4, 3, &[8], Act::Tanh, None, &mut rng);
        let net = if gaussian {
            net.with_gaussian_head(&mut p)
        } else {
            net
        };
        // Non-trivial log standard deviations.
        if let Some(s) = net.log_std {
            p.data[s.range()].copy_from_slice(&[0.3, -0.2, 0.1]);
        }
        (net, p)
    }

    fn chunk(n: usize, tw: usize, rng: &mut Rng) -> Chunk {
        Chunk {
            x: (0..n * 4).map(|_| rng.normal() as f32).collect(),
            target: (0..n * tw).map(|_| rng.uniform() as f32).collect(),
            returns: (0..n).map(|_| rng.normal() as f32).collect(),
        }
    }

    /// The loss value `chunk_grad` reports (CE + c_V * value loss).
    fn loss(net: &AgentNet, p: &Params, c: &Chunk) -> f64 {
        let mut g = vec![0.0; p.len()];
        let o = chunk_grad(net, p, c, 0.7, c.returns.len() as f32, &mut g);
        o[0] + 0.7 * o[1]
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // parallel arrays share one index
    fn em_gaussian_cross_entropy_equals_the_weighted_sum_over_root_actions() {
        let (net, p) = net(true);
        let mut rng = Rng::new(9);
        let n = 5;
        let mut c = chunk(n, 6, &mut rng);
        // Weighted root actions per sample; the target holds their mean and variance.
        let (k, na) = (7, 3);
        let mut expected = 0.0f64;
        let mut mean = vec![0.0f32; n * na];
        let mut values = vec![0.0f32; n];
        let mut s = net.scratch(n);
        net.step(&p, &c.x, n, &mut [], &mut s, &mut mean, &mut values);
        let log_std = p.get(net.log_std.unwrap()).to_vec();
        for i in 0..n {
            let w: Vec<f64> = (0..k).map(|_| rng.uniform() + 0.1).collect();
            let sw: f64 = w.iter().sum();
            let acts: Vec<Vec<f64>> = (0..k)
                .map(|_| (0..na).map(|_| rng.normal()).collect())
                .collect();
            for j in 0..na {
                let m: f64 = (0..k).map(|q| w[q] / sw * acts[q][j]).sum();
                let m2: f64 = (0..k).map(|q| w[q] / sw * acts[q][j] * acts[q][j]).sum();
                c.target[i * 6 + j] = m as f32;
                c.target[i * 6 + na + j] = (m2 - m * m) as f32;
            }
            for q in 0..k {
                let mut lp = 0.0;
                for j in 0..na {
                    let z = (acts[q][j] - mean[i * na + j] as f64) / (log_std[j] as f64).exp();
                    lp +=
                        -0.5 * z * z - log_std[j] as f64 - 0.5 * (2.0 * std::f64::consts::PI).ln();
                }
                expected -= w[q] / sw * lp;
            }
        }
        let mut g = vec![0.0; p.len()];
        let ce = chunk_grad(&net, &p, &c, 0.0, n as f32, &mut g)[0];
        let expected = expected / n as f64;
        assert!(
            (ce - expected).abs() < 1e-4 * expected.abs().max(1.0),
            "{ce} vs {expected}"
        );
    }

    #[test]
    fn em_gradients_match_finite_differences() {
        for gaussian in [false, true] {
            let (net, p) = net(gaussian);
            let mut rng = Rng::new(4);
            let c = chunk(6, target_width(&net), &mut rng);
            let mut g = vec![0.0; p.len()];
            chunk_grad(&net, &p, &c, 0.7, 6.0, &mut g);
            for i in (0..p.len()).step_by(7) {
                let h = 1e-2f32;
                let (mut a, mut b) = (p.clone(), p.clone());
                a.data[i] += h;
                b.data[i] -= h;
                let fd = (loss(&net, &a, &c) - loss(&net, &b, &c)) / (2.0 * h as f64);
                assert!(
                    (fd - g[i] as f64).abs() < 2e-3 + 2e-2 * fd.abs(),
                    "gaussian {gaussian}, param {i}: fd {fd} vs grad {}",
                    g[i]
                );
            }
        }
    }
}
