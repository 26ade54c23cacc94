//! The MAML policy on the host: an MLP over the observation with a diagonal-Gaussian
//! (state-independent learned log-std, as in the MAML paper's rllab policy) or a
//! categorical head, on one flat `f64` parameter vector, with exact derivatives written
//! by hand:
//!
//! - [`Policy::grad_logp`]: `sum_t w_t grad log pi(a_t | s_t)` (reverse mode);
//! - [`Policy::hvp_logp`]: `sum_t w_t Hess log pi(a_t | s_t) v`, Pearlmutter's
//!   R-operator (forward-over-reverse): the tangent of every forward and backward
//!   quantity along `v`, so a Hessian-vector product costs about two gradients;
//! - [`Policy::fisher_vp`]: `(1/n) sum_t J_t' M_t J_t v`, the Fisher information of
//!   the action distribution (the Hessian of the mean KL at equal parameters), with
//!   `J_t` the Jacobian of the head's outputs and `M_t` the Fisher of the head
//!   (`1/sigma^2` for Gaussian means, `2` per log-std, `diag p - p p'` for logits).
//!
//! Layout: per layer a weight `[fan_in, fan_out]` row-major (`y = x W + b`) then its
//! bias, and for the Gaussian head the `dim` log-stds last.

use super::gemm;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Hidden nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Tanh,
    Relu,
}

impl Activation {
    /// `y = act(z)` elementwise, in a branch-free loop the compiler vectorises (libm's
    /// `tanh` / `exp` calls were most of the outer step's time).
    fn apply(self, z: &[f64], y: &mut [f64]) {
        match self {
            Activation::Tanh => {
                for (y, &z) in y.iter_mut().zip(z) {
                    *y = tanh(z);
                }
            }
            Activation::Relu => {
                for (y, &z) in y.iter_mut().zip(z) {
                    *y = z.max(0.0);
                }
            }
        }
    }

    /// `(act'(z), act''(z))` from the output `y = act(z)` (no second `tanh`).
    #[inline]
    fn derivs(self, y: f64) -> (f64, f64) {
        match self {
            Activation::Tanh => {
                let d = 1.0 - y * y;
                (d, -2.0 * y * d)
            }
            Activation::Relu => (if y > 0.0 { 1.0 } else { 0.0 }, 0.0),
        }
    }

    /// `(act(z), act'(z), act''(z))` from the pre-activation.
    #[inline]
    fn eval(self, z: f64) -> (f64, f64, f64) {
        match self {
            Activation::Tanh => {
                let y = tanh(z);
                let d = 1.0 - y * y;
                (y, d, -2.0 * y * d)
            }
            Activation::Relu => {
                if z > 0.0 {
                    (z, 1.0, 0.0)
                } else {
                    (0.0, 0.0, 0.0)
                }
            }
        }
    }
}

/// The action distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Head {
    /// `dim` independent normals; the network outputs the means.
    Gaussian { dim: usize },
    /// `n` actions; the network outputs the logits.
    Categorical { n: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layer {
    w: usize,
    b: usize,
    fan_in: usize,
    fan_out: usize,
}

/// The network's shape; parameters live in a caller-owned `&[f64]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub obs_dim: usize,
    pub activation: Activation,
    pub head: Head,
    layers: Vec<Layer>,
    log_std: usize,
    len: usize,
}

/// Forward values kept for the backward pass: per layer its input and pre-activation.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    n: usize,
    /// Rows the buffers hold.
    capacity: usize,
    /// `x[l]`: input of layer `l` (`x[0]` is the observation batch).
    x: Vec<Vec<f64>>,
    /// `z[l]`: pre-activation of layer `l`; the last is the head's output.
    z: Vec<Vec<f64>>,
    /// R-operator tangents of `x` and `z`.
    rx: Vec<Vec<f64>>,
    rz: Vec<Vec<f64>>,
    /// Backward scratch: `d loss / d z[l]` and its tangent, per layer.
    d: Vec<Vec<f64>>,
    rd: Vec<Vec<f64>>,
    e: Vec<f64>,
    re: Vec<f64>,
}

impl Policy {
    pub fn new(obs_dim: usize, hidden: &[usize], activation: Activation, head: Head) -> Policy {
        let out = match head {
            Head::Gaussian { dim } => dim,
            Head::Categorical { n } => n,
        };
        let mut layers = Vec::new();
        let mut offset = 0;
        let mut fan_in = obs_dim;
        for &fan_out in hidden.iter().chain(std::iter::once(&out)) {
            layers.push(Layer {
                w: offset,
                b: offset + fan_in * fan_out,
                fan_in,
                fan_out,
            });
            offset += (fan_in + 1) * fan_out;
            fan_in = fan_out;
        }
        let log_std = offset;
        let len = offset
            + match head {
                Head::Gaussian { dim } => dim,
                Head::Categorical { .. } => 0,
            };
        Policy {
            obs_dim,
            activation,
            head,
            layers,
            log_std,
            len,
        }
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Width of the head's output (means or logits).
    pub fn out_dim(&self) -> usize {
        self.layers
            .last()
            .expect("at least the output layer")
            .fan_out
    }
    /// Width of one stored action (1 for categorical).
    pub fn action_width(&self) -> usize {
        match self.head {
            Head::Gaussian { dim } => dim,
            Head::Categorical { .. } => 1,
        }
    }
    /// The log-stds inside `theta` (empty for categorical).
    pub fn log_std<'a>(&self, theta: &'a [f64]) -> &'a [f64] {
        &theta[self.log_std..self.len]
    }

    /// Initial parameters: weights normal with std `gain / sqrt(fan_in)` (gain 1 for
    /// hidden layers, 0.01 for the head so the first policy is near uniform / centred),
    /// zero biases, log-std 0 (std 1, the MAML paper's rllab default).
    pub fn init(&self, rng: &mut Rng) -> Vec<f64> {
        let mut theta = vec![0.0; self.len];
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let gain = if i == last { 0.01 } else { 1.0 };
            let std = gain / (l.fan_in as f64).sqrt();
            for w in &mut theta[l.w..l.w + l.fan_in * l.fan_out] {
                *w = rng.normal() * std;
            }
        }
        theta
    }

    /// Bytes a tape holds once sized for `n` rows (what `alloc` gives it): inputs,
    /// pre-activations, their tangents, the backward scratch and two rows of the
    /// widest input.
    pub fn tape_bytes(&self, n: usize) -> u128 {
        let fan_in: usize = self.layers.iter().map(|l| l.fan_in).sum();
        let fan_out: usize = self.layers.iter().map(|l| l.fan_out).sum();
        let widest = self.layers.iter().map(|l| l.fan_in).max().unwrap_or(0);
        let per_row = 2 * fan_in + 4 * fan_out + 2 * widest;
        8 * n as u128 * per_row as u128
    }

    fn alloc(&self, tape: &mut Tape, n: usize) {
        let layers = self.layers.len();
        if tape.x.len() != layers || tape.capacity < n {
            tape.x = self
                .layers
                .iter()
                .map(|l| vec![0.0; n * l.fan_in])
                .collect();
            tape.z = self
                .layers
                .iter()
                .map(|l| vec![0.0; n * l.fan_out])
                .collect();
            tape.rx = tape.x.clone();
            tape.rz = tape.z.clone();
            tape.d = tape.z.clone();
            tape.rd = tape.z.clone();
            let widest = self.layers.iter().map(|l| l.fan_in).max().unwrap_or(0);
            tape.e = vec![0.0; n * widest];
            tape.re = vec![0.0; n * widest];
            tape.capacity = n;
        }
        tape.n = n;
    }

    /// Forward pass of `n` observations; the head's outputs are [`Tape::out`].
    pub fn forward(&self, theta: &[f64], obs: &[f64], n: usize, tape: &mut Tape) {
        self.alloc(tape, n);
        tape.x[0][..n * self.obs_dim].copy_from_slice(&obs[..n * self.obs_dim]);
        for (l, layer) in self.layers.iter().enumerate() {
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            let w = &theta[layer.w..layer.w + fi * fo];
            let b = &theta[layer.b..layer.b + fo];
            let z = &mut tape.z[l][..n * fo];
            for row in z.chunks_mut(fo) {
                row.copy_from_slice(b);
            }
            gemm::a_b(z, &tape.x[l][..n * fi], w, n, fi, fo, true);
            if l + 1 < self.layers.len() {
                self.activation.apply(z, &mut tape.x[l + 1][..n * fo]);
            }
        }
    }

    /// The head's outputs of the last forward pass, `n * out_dim`.
    pub fn out<'a>(&self, tape: &'a Tape) -> &'a [f64] {
        let last = self.layers.len() - 1;
        &tape.z[last][..tape.n * self.out_dim()]
    }

    /// R-forward: tangents of every layer along `v` (needs a forward pass on `tape`).
    fn r_forward(&self, theta: &[f64], v: &[f64], tape: &mut Tape) {
        let n = tape.n;
        tape.rx[0][..n * self.obs_dim]
            .iter_mut()
            .for_each(|x| *x = 0.0);
        for (l, layer) in self.layers.iter().enumerate() {
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            let w = &theta[layer.w..layer.w + fi * fo];
            let vw = &v[layer.w..layer.w + fi * fo];
            let vb = &v[layer.b..layer.b + fo];
            let rz = &mut tape.rz[l][..n * fo];
            for row in rz.chunks_mut(fo) {
                row.copy_from_slice(vb);
            }
            gemm::a_b(rz, &tape.x[l][..n * fi], vw, n, fi, fo, true);
            if l > 0 {
                gemm::a_b(rz, &tape.rx[l][..n * fi], w, n, fi, fo, true);
            }
            if l + 1 < self.layers.len() {
                let y = &tape.x[l + 1][..n * fo];
                for ((rx, &rzv), &yv) in tape.rx[l + 1][..n * fo].iter_mut().zip(rz.iter()).zip(y) {
                    *rx = self.activation.derivs(yv).0 * rzv;
                }
            }
        }
    }

    /// Backward from `tape.d[last]` (and `tape.rd[last]` when `with_r`): accumulates
    /// the gradient into `grad` and, with `with_r`, its tangent along `v` into `hv`.
    fn backward(
        &self,
        theta: &[f64],
        v: &[f64],
        tape: &mut Tape,
        grad: Option<&mut [f64]>,
        hv: Option<&mut [f64]>,
    ) {
        let n = tape.n;
        let with_r = hv.is_some();
        let (mut grad, mut hv) = (grad, hv);
        for l in (0..self.layers.len()).rev() {
            let layer = self.layers[l];
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            let x = &tape.x[l][..n * fi];
            let d = &tape.d[l][..n * fo];
            // Without `grad` (a Hessian-vector product alone) the weight gradient's
            // product is skipped; the deltas below still flow back for `hv`.
            if let Some(grad) = grad.as_deref_mut() {
                gemm::at_b(&mut grad[layer.w..layer.w + fi * fo], x, d, n, fi, fo, true);
                let gb = &mut grad[layer.b..layer.b + fo];
                for row in d.chunks(fo) {
                    gb.iter_mut().zip(row).for_each(|(g, r)| *g += r);
                }
            }
            if let Some(hv) = hv.as_deref_mut() {
                let rd = &tape.rd[l][..n * fo];
                let hw = &mut hv[layer.w..layer.w + fi * fo];
                gemm::at_b(hw, x, rd, n, fi, fo, true);
                if l > 0 {
                    gemm::at_b(hw, &tape.rx[l][..n * fi], d, n, fi, fo, true);
                }
                let hb = &mut hv[layer.b..layer.b + fo];
                for row in rd.chunks(fo) {
                    hb.iter_mut().zip(row).for_each(|(g, r)| *g += r);
                }
            }
            if l == 0 {
                break;
            }
            let w = &theta[layer.w..layer.w + fi * fo];
            let e = &mut tape.e[..n * fi];
            gemm::a_bt(e, d, w, n, fo, fi, false);
            if with_r {
                let re = &mut tape.re[..n * fi];
                gemm::a_bt(re, &tape.rd[l][..n * fo], w, n, fo, fi, false);
                gemm::a_bt(re, d, &v[layer.w..layer.w + fi * fo], n, fo, fi, true);
            }
            let yp = &tape.x[l][..n * fi];
            let (dl, _) = tape.d.split_at_mut(l);
            let dp = &mut dl[l - 1][..n * fi];
            if with_r {
                let (rdl, _) = tape.rd.split_at_mut(l);
                let rdp = &mut rdl[l - 1][..n * fi];
                let rzp = &tape.rz[l - 1][..n * fi];
                for i in 0..n * fi {
                    let (d1, d2) = self.activation.derivs(yp[i]);
                    dp[i] = e[i] * d1;
                    rdp[i] = tape.re[i] * d1 + e[i] * d2 * rzp[i];
                }
            } else {
                for i in 0..n * fi {
                    dp[i] = e[i] * self.activation.derivs(yp[i]).0;
                }
            }
        }
    }

    /// Log-probability of `action` given one row of head outputs.
    pub fn log_prob(&self, theta: &[f64], out: &[f64], action: &[f64]) -> f64 {
        match self.head {
            Head::Gaussian { dim } => {
                let ls = self.log_std(theta);
                (0..dim)
                    .map(|j| {
                        let z = (action[j] - out[j]) * (-ls[j]).exp();
                        -0.5 * z * z - ls[j] - 0.5 * (2.0 * std::f64::consts::PI).ln()
                    })
                    .sum()
            }
            Head::Categorical { n } => {
                let m = out[..n].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + out[..n].iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                out[action[0] as usize] - lse
            }
        }
    }

    /// `log pi(a_t | s_t)` for every row of the last forward pass.
    pub fn log_probs(&self, theta: &[f64], tape: &Tape, actions: &[f64], out: &mut [f64]) {
        let (o, aw) = (self.out_dim(), self.action_width());
        let outs = self.out(tape);
        for t in 0..tape.n {
            out[t] = self.log_prob(
                theta,
                &outs[t * o..(t + 1) * o],
                &actions[t * aw..(t + 1) * aw],
            );
        }
    }

    /// `grad += sum_t w_t grad_theta log pi(a_t | s_t)` over `n` samples; also
    /// returns `sum_t w_t log pi(a_t | s_t)`.
    pub fn grad_logp(
        &self,
        theta: &[f64],
        obs: &[f64],
        actions: &[f64],
        w: &[f64],
        tape: &mut Tape,
        grad: &mut [f64],
    ) -> f64 {
        self.hvp_or_grad(theta, Some(obs), actions, w, None, tape, Some(grad), None)
    }

    /// `hv += sum_t w_t Hess_theta log pi(a_t | s_t) v` (and `grad +=` the gradient,
    /// which the R-operator computes on the way).
    #[allow(clippy::too_many_arguments)]
    pub fn hvp_logp(
        &self,
        theta: &[f64],
        obs: &[f64],
        actions: &[f64],
        w: &[f64],
        v: &[f64],
        tape: &mut Tape,
        grad: &mut [f64],
        hv: &mut [f64],
    ) {
        self.hvp_or_grad(
            theta,
            Some(obs),
            actions,
            w,
            Some(v),
            tape,
            Some(grad),
            Some(hv),
        );
    }

    /// `hv += sum_t w_t Hess_theta log pi(a_t | s_t) v` alone, on a `tape` that holds
    /// [`Policy::forward`] of `theta` on the batch's observations (left intact, so one
    /// forward pass serves every product at the same parameters and batch).
    pub fn hvp_logp_on_tape(
        &self,
        theta: &[f64],
        actions: &[f64],
        w: &[f64],
        v: &[f64],
        tape: &mut Tape,
        hv: &mut [f64],
    ) {
        assert_eq!(
            tape.n,
            w.len(),
            "the tape holds a forward pass of this batch"
        );
        self.hvp_or_grad(theta, None, actions, w, Some(v), tape, None, Some(hv));
    }

    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::needless_range_loop)] // parallel arrays share one index
    fn hvp_or_grad(
        &self,
        theta: &[f64],
        obs: Option<&[f64]>,
        actions: &[f64],
        w: &[f64],
        v: Option<&[f64]>,
        tape: &mut Tape,
        mut grad: Option<&mut [f64]>,
        mut hv: Option<&mut [f64]>,
    ) -> f64 {
        let n = w.len();
        // Without `obs` the tape already holds the forward pass.
        if let Some(obs) = obs {
            self.forward(theta, obs, n, tape);
        }
        if let Some(v) = v {
            self.r_forward(theta, v, tape);
        }
        let last = self.layers.len() - 1;
        let o = self.out_dim();
        let aw = self.action_width();
        let mut total = 0.0;
        match self.head {
            Head::Gaussian { dim } => {
                let ls = self.log_std(theta);
                let vs = v.map(|v| &v[self.log_std..self.len]);
                let mut g_ls = vec![0.0; dim];
                let mut h_ls = vec![0.0; dim];
                for t in 0..n {
                    let out = &tape.z[last][t * o..(t + 1) * o];
                    let a = &actions[t * aw..(t + 1) * aw];
                    total += w[t] * self.log_prob(theta, out, a);
                    for j in 0..dim {
                        let inv_var = (-2.0 * ls[j]).exp();
                        let diff = a[j] - out[j];
                        tape.d[last][t * o + j] = w[t] * diff * inv_var;
                        g_ls[j] += w[t] * (diff * diff * inv_var - 1.0);
                        if let Some(vs) = vs {
                            let rmu = tape.rz[last][t * o + j];
                            tape.rd[last][t * o + j] =
                                w[t] * (-rmu * inv_var - 2.0 * diff * inv_var * vs[j]);
                            h_ls[j] += w[t]
                                * (-2.0 * diff * inv_var * rmu
                                    - 2.0 * diff * diff * inv_var * vs[j]);
                        }
                    }
                }
                let range = self.log_std..self.len;
                if let Some(grad) = grad.as_deref_mut() {
                    grad[range.clone()]
                        .iter_mut()
                        .zip(&g_ls)
                        .for_each(|(g, x)| *g += x);
                }
                if let Some(hv) = hv.as_deref_mut() {
                    hv[range].iter_mut().zip(&h_ls).for_each(|(g, x)| *g += x);
                }
            }
            Head::Categorical { n: k } => {
                let mut p = vec![0.0; k];
                for t in 0..n {
                    let out = &tape.z[last][t * o..(t + 1) * o];
                    softmax(out, &mut p);
                    let a = actions[t] as usize;
                    total += w[t] * self.log_prob(theta, out, &actions[t..t + 1]);
                    for j in 0..k {
                        let onehot = if j == a { 1.0 } else { 0.0 };
                        tape.d[last][t * o + j] = w[t] * (onehot - p[j]);
                    }
                    if v.is_some() {
                        let rz = &tape.rz[last][t * o..(t + 1) * o];
                        let prz: f64 = p.iter().zip(rz).map(|(a, b)| a * b).sum();
                        for j in 0..k {
                            tape.rd[last][t * o + j] = -w[t] * p[j] * (rz[j] - prz);
                        }
                    }
                }
            }
        }
        self.backward(theta, v.unwrap_or(&[]), tape, grad, hv);
        total
    }

    /// `out = (1/n) sum_t J_t' M_t J_t v`: the Fisher information of the action
    /// distribution over `n` observations times `v` (exactly the Hessian of the mean
    /// KL(pi_theta_old || pi_theta) at theta = theta_old).
    #[allow(clippy::needless_range_loop)] // parallel arrays share one index
    pub fn fisher_vp(
        &self,
        theta: &[f64],
        obs: &[f64],
        n: usize,
        v: &[f64],
        tape: &mut Tape,
        out: &mut [f64],
    ) {
        self.forward(theta, obs, n, tape);
        self.r_forward(theta, v, tape);
        let last = self.layers.len() - 1;
        let o = self.out_dim();
        let inv_n = 1.0 / n as f64;
        match self.head {
            Head::Gaussian { dim } => {
                let ls = self.log_std(theta);
                for t in 0..n {
                    for j in 0..dim {
                        tape.d[last][t * o + j] =
                            inv_n * tape.rz[last][t * o + j] * (-2.0 * ls[j]).exp();
                    }
                }
                for j in 0..dim {
                    out[self.log_std + j] += 2.0 * v[self.log_std + j];
                }
            }
            Head::Categorical { n: k } => {
                let mut p = vec![0.0; k];
                for t in 0..n {
                    softmax(&tape.z[last][t * o..(t + 1) * o], &mut p);
                    let rz = &tape.rz[last][t * o..(t + 1) * o];
                    let prz: f64 = p.iter().zip(rz).map(|(a, b)| a * b).sum();
                    for j in 0..k {
                        tape.d[last][t * o + j] = inv_n * p[j] * (rz[j] - prz);
                    }
                }
            }
        }
        self.backward(theta, &[], tape, Some(out), None);
    }

    /// Mean over the last forward pass's rows of KL(old || new), where `old_out` /
    /// `old_log_std` are the stored head outputs of the behaviour policy.
    pub fn mean_kl(&self, theta: &[f64], tape: &Tape, old_out: &[f64], old_log_std: &[f64]) -> f64 {
        let n = tape.n;
        let o = self.out_dim();
        let new_out = self.out(tape);
        let mut total = 0.0;
        match self.head {
            Head::Gaussian { dim } => {
                let ls = self.log_std(theta);
                for t in 0..n {
                    for j in 0..dim {
                        let (m0, m1) = (old_out[t * o + j], new_out[t * o + j]);
                        let (s0, s1) = (old_log_std[j], ls[j]);
                        total += s1 - s0
                            + ((2.0 * s0).exp() + (m0 - m1) * (m0 - m1)) / (2.0 * (2.0 * s1).exp())
                            - 0.5;
                    }
                }
            }
            Head::Categorical { n: k } => {
                let (mut p, mut q) = (vec![0.0; k], vec![0.0; k]);
                for t in 0..n {
                    softmax(&old_out[t * o..(t + 1) * o], &mut p);
                    softmax(&new_out[t * o..(t + 1) * o], &mut q);
                    total += p
                        .iter()
                        .zip(&q)
                        .filter(|(a, _)| **a > 0.0)
                        .map(|(a, b)| a * (a.ln() - b.ln()))
                        .sum::<f64>();
                }
            }
        }
        total / n as f64
    }
}

/// `tanh(x) = sign(x) (1 - e) / (1 + e)` with `e = exp(-2|x|)` from [`exp_neg`]: no
/// libm call and no branch, so loops over it vectorise. Absolute error below 1e-15.
#[inline(always)]
pub fn tanh(x: f64) -> f64 {
    let e = exp_neg(2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// `exp(-a)` for `a >= 0` (0 beyond `a = 708`): `2^-k exp(-r)`, `a = k ln 2 + r`,
/// `|r| <= ln 2 / 2`, with a degree-13 Taylor polynomial (error below 1e-16 there).
#[inline(always)]
fn exp_neg(a: f64) -> f64 {
    let a = a.min(708.0);
    let k = (a * std::f64::consts::LOG2_E).round();
    let r = -(a - k * std::f64::consts::LN_2);
    let mut p = 1.0 / 6_227_020_800.0;
    for c in [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // 2^-k through the exponent bits (k <= 1022 here, so the result is normal).
    p * f64::from_bits(((1023 - k as i64) as u64) << 52)
}

/// Softmax of `logits` into `p`.
pub fn softmax(logits: &[f64], p: &mut [f64]) {
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for (pi, &l) in p.iter_mut().zip(logits) {
        *pi = (l - m).exp();
        s += *pi;
    }
    p.iter_mut().for_each(|x| *x /= s);
}

/// Acting one observation at a time without allocating: the scratch holds one row of
/// every layer.
#[derive(Clone, Debug)]
pub struct Actor {
    a: Vec<f64>,
    b: Vec<f64>,
    probs: Vec<f64>,
}

impl Actor {
    pub fn new(policy: &Policy) -> Actor {
        let widest = policy
            .layers
            .iter()
            .map(|l| l.fan_in.max(l.fan_out))
            .max()
            .unwrap_or(0);
        Actor {
            a: vec![0.0; widest],
            b: vec![0.0; widest],
            probs: vec![0.0; policy.out_dim()],
        }
    }

    /// Samples an action for `obs` (or takes the mode when `greedy`), writing its
    /// stored form into `action` and the head's outputs into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn act(
        &mut self,
        policy: &Policy,
        theta: &[f64],
        obs: &[f32],
        greedy: bool,
        rng: &mut Rng,
        action: &mut [f64],
        out: &mut [f64],
    ) {
        for (x, &o) in self.a.iter_mut().zip(obs) {
            *x = o as f64;
        }
        let last = policy.layers.len() - 1;
        for (l, layer) in policy.layers.iter().enumerate() {
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            let w = &theta[layer.w..layer.w + fi * fo];
            let y = &mut self.b[..fo];
            y.copy_from_slice(&theta[layer.b..layer.b + fo]);
            for (i, &xi) in self.a[..fi].iter().enumerate() {
                for (yj, &wij) in y.iter_mut().zip(&w[i * fo..(i + 1) * fo]) {
                    *yj += xi * wij;
                }
            }
            if l < last {
                y.iter_mut().for_each(|v| *v = policy.activation.eval(*v).0);
            }
            std::mem::swap(&mut self.a, &mut self.b);
        }
        let o = policy.out_dim();
        out[..o].copy_from_slice(&self.a[..o]);
        match policy.head {
            Head::Gaussian { dim } => {
                let ls = policy.log_std(theta);
                for j in 0..dim {
                    action[j] = if greedy {
                        out[j]
                    } else {
                        out[j] + ls[j].exp() * rng.normal()
                    };
                }
            }
            Head::Categorical { n } => {
                softmax(&out[..n], &mut self.probs);
                action[0] = if greedy {
                    let mut best = 0;
                    for j in 1..n {
                        if self.probs[j] > self.probs[best] {
                            best = j;
                        }
                    }
                    best as f64
                } else {
                    let u = rng.uniform();
                    let mut acc = 0.0;
                    let mut pick = n - 1;
                    for j in 0..n {
                        acc += self.probs[j];
                        if u < acc {
                            pick = j;
                            break;
                        }
                    }
                    pick as f64
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_tanh_matches_libm() {
        for i in -40_000..=40_000 {
            let x = i as f64 * 1e-3;
            let (a, b) = (super::tanh(x), x.tanh());
            assert!((a - b).abs() <= 1e-15, "{x}: {a} vs {b}");
        }
        assert_eq!(super::tanh(1000.0), 1.0);
        assert_eq!(super::tanh(-1000.0), -1.0);
        assert_eq!(super::tanh(0.0), 0.0);
    }
}
