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
//! Each has a `_frozen` form on a [`Frozen`] forward (and backward) pass that the
//! caller keeps across products at the same parameters and batch, as TRPO's conjugate
//! gradient does: a Hessian-vector product is then one R-forward and one R-backward
//! pass, a Fisher-vector product one R-forward and one backward pass.
//!
//! Layout: per layer a weight `[fan_in, fan_out]` row-major (`y = x W + b`) then its
//! bias, and for the Gaussian head the `dim` log-stds last.

use crate::nn::gemm_mixed::{round_into, round_transposed_into, Operand, Precision};
use crate::nn::{gemm64, rows64};
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
    /// `z = act(z)` elementwise, in a branch-free loop the compiler vectorises (libm's
    /// `tanh` / `exp` calls were most of the outer step's time).
    fn apply_in_place(self, z: &mut [f64]) {
        match self {
            Activation::Tanh => z.iter_mut().for_each(|z| *z = tanh(*z)),
            Activation::Relu => z.iter_mut().for_each(|z| *z = z.max(0.0)),
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
    /// The arithmetic of the layers' matrix products ([`Policy::with_precision`]).
    precision: Precision,
}

/// One batch's passes at fixed parameters, kept so that every product at those
/// parameters reuses them: the forward pass (each layer's input and the head's
/// outputs) and, after [`Policy::backward_deltas`], the backward deltas of a weighted
/// log-likelihood (`e[l] = d[l] W_l'` for `l >= 1`). The outer
/// step keeps one per task and block, so the conjugate gradient's products repeat none
/// of these passes.
#[derive(Clone, Debug, Default)]
pub struct Frozen {
    n: usize,
    /// `x[l]`: input of layer `l` (`x[0]` is the observation batch, `x[l + 1]` the
    /// activation of layer `l`'s pre-activation).
    x: Vec<Vec<f64>>,
    /// The head's outputs (means or logits), `n * out_dim`.
    out: Vec<f64>,
    /// `e[l] = d[l] W_l'` (`n * fan_in`) for `l >= 1`; empty for `l = 0`.
    e: Vec<Vec<f64>>,
    /// With `f32` products, the operands above rounded once for all the products on
    /// this pass (empty with `f64` products).
    narrow: Narrow,
}

/// A [`Frozen`] pass's operands rounded to `f32` ([`Policy::with_precision`]), in the
/// layouts the products read them: the conjugate gradient's products on a kept pass
/// would otherwise round the same values again in every product.
#[derive(Clone, Debug, Default)]
struct Narrow {
    /// `x[l]` as it is (the forward and R-forward passes' left sides); filled by
    /// [`Policy::freeze`].
    x: Vec<Vec<f32>>,
    /// `x[l]` transposed (the weight gradients' left sides); filled by
    /// [`Policy::keep_for_products`].
    xt: Vec<Vec<f32>>,
    /// The backward deltas `d[l]` (`n * fan_out`) of [`Policy::backward_deltas`].
    d: Vec<Vec<f32>>,
}

/// Per-thread scratch of the products: R-operator tangents and backward deltas.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    /// R-operator tangents of each layer's input and pre-activation.
    rx: Vec<Vec<f64>>,
    rz: Vec<Vec<f64>>,
    /// `d loss / d z[l]` and its tangent, per layer.
    d: Vec<Vec<f64>>,
    rd: Vec<Vec<f64>>,
    /// One layer's `d W'` (when not kept in a [`Frozen`]) and its tangent.
    e: Vec<f64>,
    re: Vec<f64>,
    /// A transposed layer input for the weight-gradient products.
    t: Vec<f64>,
    /// With `f32` products, `rd` of the current layer rounded once for its two products.
    rd_narrow: Vec<f32>,
}

/// A forward pass and the scratch of the products on it: what the single-batch calls
/// ([`Policy::grad_logp`], [`Policy::hvp_logp`], [`Policy::fisher_vp`]) use.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    pub frozen: Frozen,
    pub scratch: Scratch,
}

impl Frozen {
    /// Rows of the last forward pass.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// The input of layer `l` (`len` values) as a product's plain side.
    fn x_plain(&self, l: usize, len: usize) -> Operand<'_> {
        match self.narrow.x.get(l) {
            Some(x) => Operand::Narrow(&x[..len]),
            None => Operand::Wide(&self.x[l][..len]),
        }
    }

    /// The input of layer `l` (`len` values) as a product's transposed side.
    fn x_transposed(&self, l: usize, len: usize) -> Operand<'_> {
        match self.narrow.xt.get(l) {
            Some(x) => Operand::Narrow(&x[..len]),
            None => Operand::Wide(&self.x[l][..len]),
        }
    }

    /// The backward delta of layer `l`, `d` as computed, as a product's plain side.
    fn delta<'a>(&'a self, l: usize, d: &'a [f64]) -> Operand<'a> {
        match self.narrow.d.get(l) {
            Some(r) => Operand::Narrow(&r[..d.len()]),
            None => Operand::Wide(d),
        }
    }
}

/// `v` resized to `len` without shrinking its allocation.
fn sized(v: &mut Vec<f64>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
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
            precision: Precision::F64,
        }
    }

    /// The same policy with its layers' matrix products in `precision` (`F64` unless
    /// set; `maml.matmul`). Everything else stays `f64`.
    pub fn with_precision(mut self, precision: Precision) -> Policy {
        self.precision = precision;
        self
    }

    /// The arithmetic of the layers' matrix products.
    pub fn precision(&self) -> Precision {
        self.precision
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

    /// Bytes of a [`Frozen`] of `n` rows kept for the outer step's products
    /// ([`Policy::keep_for_products`]): the forward pass alone, or with the backward
    /// deltas (`with_backward`); with `f32` products also their roundings.
    pub fn frozen_bytes(&self, n: usize, with_backward: bool) -> u128 {
        self.pass_bytes(n, with_backward, true)
    }

    /// Bytes of a frozen pass of `n` rows: its `f64` values and, with `f32` products,
    /// the rounded inputs, plus when `kept` for many products the inputs rounded
    /// transposed and (`with_backward`) the rounded deltas.
    fn pass_bytes(&self, n: usize, with_backward: bool, kept: bool) -> u128 {
        let fan_in: usize = self.layers.iter().map(|l| l.fan_in).sum();
        let fan_out: usize = self.layers.iter().map(|l| l.fan_out).sum();
        let mut per_row = fan_in + self.out_dim();
        let mut narrow_per_row = fan_in;
        if kept {
            narrow_per_row += fan_in;
        }
        if with_backward {
            per_row += fan_in - self.obs_dim;
            narrow_per_row += fan_out;
        }
        let rows = n as u128;
        let narrow = self
            .precision
            .buffer_bytes(0, 0, rows * narrow_per_row as u128);
        8 * rows * per_row as u128 + narrow
    }

    /// Bytes of a [`Scratch`] once sized for `n` rows: tangents, deltas and their
    /// tangents of every layer, and three rows of the widest input; with `f32`
    /// products also the thread's rounding buffers.
    pub fn scratch_bytes(&self, n: usize) -> u128 {
        let fan_in: usize = self.layers.iter().map(|l| l.fan_in).sum();
        let fan_out: usize = self.layers.iter().map(|l| l.fan_out).sum();
        let widest = self.layers.iter().map(|l| l.fan_in).max().unwrap_or(0);
        let per_row = fan_in + 3 * fan_out + 3 * widest;
        // The rounding buffers of `f32` products (per thread, like the scratch).
        let widest_out = self.layers.iter().map(|l| l.fan_out).max().unwrap_or(0);
        let weights = self
            .layers
            .iter()
            .map(|l| l.fan_in as u128 * l.fan_out as u128)
            .max()
            .unwrap_or(0);
        // In u128: the memory guard asks about absurd sizes too, and must get a huge
        // answer, not a wrapped one.
        let rows = n as u128;
        let rounding = self.precision.buffer_bytes(
            rows * widest as u128,
            (rows * widest_out as u128).max(weights),
            (rows * widest_out as u128).max(weights),
        );
        // `rd` rounded once per layer in the Hessian-vector products.
        let rd = self.precision.buffer_bytes(0, 0, rows * widest_out as u128);
        8 * n as u128 * per_row as u128 + rounding + rd
    }

    /// Bytes a [`Tape`] holds once sized for `n` rows (a forward pass and a gradient;
    /// not kept for many products, so with `f32` products only the rounded inputs).
    pub fn tape_bytes(&self, n: usize) -> u128 {
        self.pass_bytes(n, false, false) + self.scratch_bytes(n)
    }

    fn alloc_scratch(&self, s: &mut Scratch, n: usize) {
        let layers = self.layers.len();
        for v in [&mut s.rx, &mut s.rz, &mut s.d, &mut s.rd] {
            v.resize_with(layers, Vec::new);
        }
        for (l, layer) in self.layers.iter().enumerate() {
            sized(&mut s.rx[l], n * layer.fan_in);
            sized(&mut s.rz[l], n * layer.fan_out);
            sized(&mut s.d[l], n * layer.fan_out);
            sized(&mut s.rd[l], n * layer.fan_out);
        }
        let widest = self.layers.iter().map(|l| l.fan_in).max().unwrap_or(0);
        sized(&mut s.e, n * widest);
        sized(&mut s.re, n * widest);
        sized(&mut s.t, n * widest);
    }

    /// Forward pass of `n` observations; the head's outputs are [`Policy::out`].
    pub fn forward(&self, theta: &[f64], obs: &[f64], n: usize, tape: &mut Tape) {
        self.freeze(theta, obs, n, &mut tape.frozen);
    }

    /// Forward pass of `n` observations into `f` (its backward deltas are dropped).
    pub fn freeze(&self, theta: &[f64], obs: &[f64], n: usize, f: &mut Frozen) {
        let layers = self.layers.len();
        f.n = n;
        f.x.resize_with(layers, Vec::new);
        f.e.clear();
        f.narrow.xt.clear();
        f.narrow.d.clear();
        // The inputs' roundings are kept: the products of a kept pass read them again.
        let narrow = self.precision == Precision::F32;
        f.narrow
            .x
            .resize_with(if narrow { layers } else { 0 }, Vec::new);
        for (l, layer) in self.layers.iter().enumerate() {
            sized(&mut f.x[l], n * layer.fan_in);
        }
        sized(&mut f.out, n * self.out_dim());
        f.x[0][..n * self.obs_dim].copy_from_slice(&obs[..n * self.obs_dim]);
        for (l, layer) in self.layers.iter().enumerate() {
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            let w = &theta[layer.w..layer.w + fi * fo];
            let b = &theta[layer.b..layer.b + fo];
            let (inputs, rest) = f.x.split_at_mut(l + 1);
            let z = if l + 1 < layers {
                &mut rest[0][..n * fo]
            } else {
                &mut f.out[..n * fo]
            };
            for row in z.chunks_mut(fo) {
                row.copy_from_slice(b);
            }
            let x = &inputs[l][..n * fi];
            let x = match f.narrow.x.get_mut(l) {
                Some(buf) => self.precision.rounded(x, buf),
                None => Operand::Wide(x),
            };
            self.precision.a_b(z, x, w, n, fi, fo, true);
            if l + 1 < layers {
                self.activation.apply_in_place(z);
            }
        }
    }

    /// Prepares a frozen pass for many products (the outer step's passes): with `f32`
    /// products, rounds each layer's input transposed once, as the weight gradients'
    /// products read it. Nothing with `f64` products.
    pub fn keep_for_products(&self, f: &mut Frozen) {
        if self.precision != Precision::F32 {
            return;
        }
        let n = f.n;
        f.narrow.xt.resize_with(self.layers.len(), Vec::new);
        for (l, layer) in self.layers.iter().enumerate() {
            let fi = layer.fan_in;
            round_transposed_into(&mut f.narrow.xt[l], &f.x[l][..n * fi], n, fi);
        }
    }

    /// The head's outputs of the last forward pass, `n * out_dim`.
    pub fn out<'a>(&self, tape: &'a Tape) -> &'a [f64] {
        self.frozen_out(&tape.frozen)
    }

    /// The head's outputs of a frozen forward pass, `n * out_dim`.
    pub fn frozen_out<'a>(&self, f: &'a Frozen) -> &'a [f64] {
        &f.out[..f.n * self.out_dim()]
    }

    /// R-forward: tangents of every layer along `v` on the frozen forward pass.
    fn r_forward(&self, theta: &[f64], v: &[f64], f: &Frozen, s: &mut Scratch) {
        let n = f.n;
        for (l, layer) in self.layers.iter().enumerate() {
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            let w = &theta[layer.w..layer.w + fi * fo];
            let vw = &v[layer.w..layer.w + fi * fo];
            let vb = &v[layer.b..layer.b + fo];
            let rz = &mut s.rz[l][..n * fo];
            for row in rz.chunks_mut(fo) {
                row.copy_from_slice(vb);
            }
            self.precision
                .a_b(rz, f.x_plain(l, n * fi), vw, n, fi, fo, true);
            // The observations have no tangent.
            if l > 0 {
                self.precision
                    .a_b(rz, &s.rx[l][..n * fi], w, n, fi, fo, true);
            }
            if l + 1 < self.layers.len() {
                let y = &f.x[l + 1][..n * fo];
                for ((rx, &rzv), &yv) in s.rx[l + 1][..n * fo].iter_mut().zip(rz.iter()).zip(y) {
                    *rx = self.activation.derivs(yv).0 * rzv;
                }
            }
        }
    }

    /// Plain backward from `s.d[last]` on the frozen forward pass: accumulates the
    /// gradient into `grad`; keeps every `e[l]` in `keep` when given.
    fn backward(
        &self,
        theta: &[f64],
        f: &Frozen,
        n: usize,
        s: &mut Scratch,
        mut keep: Option<&mut Vec<Vec<f64>>>,
        mut grad: Option<&mut [f64]>,
    ) {
        for l in (0..self.layers.len()).rev() {
            let layer = self.layers[l];
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            let (dl, dh) = s.d.split_at_mut(l);
            let d = &dh[0][..n * fo];
            if let Some(grad) = grad.as_deref_mut() {
                self.precision.at_b_wide(
                    &mut grad[layer.w..layer.w + fi * fo],
                    f.x_transposed(l, n * fi),
                    d,
                    n,
                    fi,
                    fo,
                    true,
                    &mut s.t,
                );
                gemm64::add_row_sums(&mut grad[layer.b..layer.b + fo], d, n, fo);
            }
            if l == 0 {
                break;
            }
            let w = &theta[layer.w..layer.w + fi * fo];
            let e = match keep.as_deref_mut() {
                Some(keep) => {
                    keep.resize_with(self.layers.len(), Vec::new);
                    sized(&mut keep[l], n * fi);
                    &mut keep[l][..n * fi]
                }
                None => &mut s.e[..n * fi],
            };
            self.precision.a_bt(e, d, w, n, fo, fi, false);
            let yp = &f.x[l][..n * fi];
            let dp = &mut dl[l - 1][..n * fi];
            for i in 0..n * fi {
                dp[i] = e[i] * self.activation.derivs(yp[i]).0;
            }
        }
    }

    /// The head's delta of `sum_t w_t log pi(a_t | s_t)` into `d_out` (and, with
    /// `rd_out`, its tangent along `v`); accumulates the log-std parts of the gradient
    /// and of the Hessian-vector product; returns `sum_t w_t log pi(a_t | s_t)`.
    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::needless_range_loop)] // parallel arrays share one index
    fn head_deltas(
        &self,
        theta: &[f64],
        out: &[f64],
        actions: &[f64],
        w: &[f64],
        d_out: &mut [f64],
        tangent: Option<(&[f64], &[f64], &mut [f64])>,
        grad: Option<&mut [f64]>,
        hv: Option<&mut [f64]>,
    ) -> f64 {
        let n = w.len();
        let o = self.out_dim();
        let aw = self.action_width();
        let mut total = 0.0;
        let (v, rz, mut rd) = match tangent {
            Some((v, rz, rd)) => (Some(v), Some(rz), Some(rd)),
            None => (None, None, None),
        };
        match self.head {
            Head::Gaussian { dim } => {
                let ls = self.log_std(theta);
                let vs = v.map(|v| &v[self.log_std..self.len]);
                let mut g_ls = vec![0.0; dim];
                let mut h_ls = vec![0.0; dim];
                for t in 0..n {
                    let out = &out[t * o..(t + 1) * o];
                    let a = &actions[t * aw..(t + 1) * aw];
                    total += w[t] * self.log_prob(theta, out, a);
                    for j in 0..dim {
                        let inv_var = (-2.0 * ls[j]).exp();
                        let diff = a[j] - out[j];
                        d_out[t * o + j] = w[t] * diff * inv_var;
                        g_ls[j] += w[t] * (diff * diff * inv_var - 1.0);
                        if let (Some(vs), Some(rz), Some(rd)) = (vs, rz, rd.as_deref_mut()) {
                            let rmu = rz[t * o + j];
                            rd[t * o + j] = w[t] * (-rmu * inv_var - 2.0 * diff * inv_var * vs[j]);
                            h_ls[j] += w[t]
                                * (-2.0 * diff * inv_var * rmu
                                    - 2.0 * diff * diff * inv_var * vs[j]);
                        }
                    }
                }
                let range = self.log_std..self.len;
                if let Some(grad) = grad {
                    grad[range.clone()]
                        .iter_mut()
                        .zip(&g_ls)
                        .for_each(|(g, x)| *g += x);
                }
                if let Some(hv) = hv {
                    hv[range].iter_mut().zip(&h_ls).for_each(|(g, x)| *g += x);
                }
            }
            Head::Categorical { n: k } => {
                let mut p = vec![0.0; k];
                for t in 0..n {
                    let out = &out[t * o..(t + 1) * o];
                    softmax(out, &mut p);
                    let a = actions[t] as usize;
                    total += w[t] * self.log_prob(theta, out, &actions[t..t + 1]);
                    for j in 0..k {
                        let onehot = if j == a { 1.0 } else { 0.0 };
                        d_out[t * o + j] = w[t] * (onehot - p[j]);
                    }
                    if let (Some(rz), Some(rd)) = (rz, rd.as_deref_mut()) {
                        let rz = &rz[t * o..(t + 1) * o];
                        let prz: f64 = p.iter().zip(rz).map(|(a, b)| a * b).sum();
                        for j in 0..k {
                            rd[t * o + j] = -w[t] * p[j] * (rz[j] - prz);
                        }
                    }
                }
            }
        }
        total
    }

    /// The backward deltas of `sum_t w_t log pi(a_t | s_t)` on a frozen forward pass at
    /// `theta`, kept in `f` for [`Policy::hvp_frozen`]; `grad +=` the gradient when
    /// given. Returns `sum_t w_t log pi(a_t | s_t)`.
    pub fn backward_deltas(
        &self,
        theta: &[f64],
        f: &mut Frozen,
        actions: &[f64],
        w: &[f64],
        s: &mut Scratch,
        grad: Option<&mut [f64]>,
    ) -> f64 {
        let mut e = std::mem::take(&mut f.e);
        let total = self.weighted_backward(theta, f, actions, w, s, Some(&mut e), grad);
        f.e = e;
        // The deltas are the same in every Hessian-vector product on this pass.
        if self.precision == Precision::F32 {
            let n = f.n;
            f.narrow.d.resize_with(self.layers.len(), Vec::new);
            for (l, layer) in self.layers.iter().enumerate() {
                round_into(&mut f.narrow.d[l], &s.d[l][..n * layer.fan_out]);
            }
        }
        total
    }

    /// `grad += sum_t w_t grad log pi(a_t | s_t)` on a frozen forward pass, keeping
    /// nothing in it. Returns `sum_t w_t log pi(a_t | s_t)`.
    pub fn grad_frozen(
        &self,
        theta: &[f64],
        f: &Frozen,
        actions: &[f64],
        w: &[f64],
        s: &mut Scratch,
        grad: &mut [f64],
    ) -> f64 {
        self.weighted_backward(theta, f, actions, w, s, None, Some(grad))
    }

    /// [`Policy::backward_deltas`] (keeping `e` in `keep`) or, without `keep`,
    /// [`Policy::grad_frozen`].
    #[allow(clippy::too_many_arguments)]
    fn weighted_backward(
        &self,
        theta: &[f64],
        f: &Frozen,
        actions: &[f64],
        w: &[f64],
        s: &mut Scratch,
        keep: Option<&mut Vec<Vec<f64>>>,
        mut grad: Option<&mut [f64]>,
    ) -> f64 {
        let n = w.len();
        assert_eq!(f.n, n, "the frozen pass is of this batch");
        self.alloc_scratch(s, n);
        let last = self.layers.len() - 1;
        let o = self.out_dim();
        let total = self.head_deltas(
            theta,
            &f.out[..n * o],
            actions,
            w,
            &mut s.d[last][..n * o],
            None,
            grad.as_deref_mut(),
            None,
        );
        self.backward(theta, f, n, s, keep, grad);
        total
    }

    /// `hv += sum_t w_t Hess_theta log pi(a_t | s_t) v` on `f`, which holds the forward
    /// pass at `theta` and its [`Policy::backward_deltas`] with the same `actions` and
    /// `w`: one R-forward and one R-backward pass, nothing else.
    #[allow(clippy::too_many_arguments)]
    pub fn hvp_frozen(
        &self,
        theta: &[f64],
        f: &Frozen,
        actions: &[f64],
        w: &[f64],
        v: &[f64],
        s: &mut Scratch,
        hv: &mut [f64],
    ) {
        let n = w.len();
        assert_eq!(f.n, n, "the frozen pass is of this batch");
        let last = self.layers.len() - 1;
        assert!(
            last == 0 || f.e.len() == self.layers.len(),
            "hvp_frozen needs backward_deltas first"
        );
        self.alloc_scratch(s, n);
        self.r_forward(theta, v, f, s);
        let o = self.out_dim();
        {
            let (d, rd, rz) = (&mut s.d, &mut s.rd, &s.rz);
            self.head_deltas(
                theta,
                &f.out[..n * o],
                actions,
                w,
                &mut d[last][..n * o],
                Some((v, &rz[last][..n * o], &mut rd[last][..n * o])),
                None,
                Some(hv),
            );
        }
        for l in (0..self.layers.len()).rev() {
            let layer = self.layers[l];
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            let x = &f.x[l][..n * fi];
            let (dl, dh) = s.d.split_at_mut(l);
            let d = &dh[0][..n * fo];
            let (rdl, rdh) = s.rd.split_at_mut(l);
            let rd = &rdh[0][..n * fo];
            let hw = &mut hv[layer.w..layer.w + fi * fo];
            // `rd` is the right side here and the left side of `rd W'` below.
            let rd = self.precision.rounded(rd, &mut s.rd_narrow);
            let xt = f.x_transposed(l, n * fi);
            self.precision
                .at_b_wide(hw, xt, rd, n, fi, fo, true, &mut s.t);
            if l > 0 {
                let d = f.delta(l, d);
                self.precision
                    .at_b_wide(hw, &s.rx[l][..n * fi], d, n, fi, fo, true, &mut s.t);
            }
            gemm64::add_row_sums(&mut hv[layer.b..layer.b + fo], &rdh[0][..n * fo], n, fo);
            if l == 0 {
                break;
            }
            let w = &theta[layer.w..layer.w + fi * fo];
            let e = &f.e[l][..n * fi];
            let re = &mut s.re[..n * fi];
            self.precision.a_bt(re, rd, w, n, fo, fi, false);
            self.precision.a_bt(
                re,
                f.delta(l, d),
                &v[layer.w..layer.w + fi * fo],
                n,
                fo,
                fi,
                true,
            );
            let dp = &mut dl[l - 1][..n * fi];
            let rdp = &mut rdl[l - 1][..n * fi];
            let rzp = &s.rz[l - 1][..n * fi];
            if f.narrow.d.get(l - 1).is_some() {
                // The products read the delta `backward_deltas` kept rounded (f32
                // products): `dp` itself would be computed for nothing.
                for i in 0..n * fi {
                    let (d1, d2) = self.activation.derivs(x[i]);
                    rdp[i] = re[i] * d1 + e[i] * d2 * rzp[i];
                }
            } else {
                for i in 0..n * fi {
                    let (d1, d2) = self.activation.derivs(x[i]);
                    dp[i] = e[i] * d1;
                    rdp[i] = re[i] * d1 + e[i] * d2 * rzp[i];
                }
            }
        }
    }

    /// `out += (1/n) sum_t J_t' M_t J_t v` on the frozen forward pass `f` at `theta`:
    /// the Fisher information of the action distribution times `v` (exactly the
    /// Hessian of the mean KL(pi_theta_old || pi_theta) at theta = theta_old).
    #[allow(clippy::needless_range_loop)] // parallel arrays share one index
    pub fn fisher_vp_frozen(
        &self,
        theta: &[f64],
        f: &Frozen,
        v: &[f64],
        s: &mut Scratch,
        out: &mut [f64],
    ) {
        let n = f.n;
        self.alloc_scratch(s, n);
        self.r_forward(theta, v, f, s);
        let last = self.layers.len() - 1;
        let o = self.out_dim();
        let inv_n = 1.0 / n as f64;
        let (d, rz) = (&mut s.d[last], &s.rz[last]);
        match self.head {
            Head::Gaussian { dim } => {
                let ls = self.log_std(theta);
                for t in 0..n {
                    for j in 0..dim {
                        d[t * o + j] = inv_n * rz[t * o + j] * (-2.0 * ls[j]).exp();
                    }
                }
                for j in 0..dim {
                    out[self.log_std + j] += 2.0 * v[self.log_std + j];
                }
            }
            Head::Categorical { n: k } => {
                let mut p = vec![0.0; k];
                for t in 0..n {
                    softmax(&f.out[t * o..(t + 1) * o], &mut p);
                    let rz = &rz[t * o..(t + 1) * o];
                    let prz: f64 = p.iter().zip(rz).map(|(a, b)| a * b).sum();
                    for j in 0..k {
                        d[t * o + j] = inv_n * p[j] * (rz[j] - prz);
                    }
                }
            }
        }
        self.backward(theta, f, n, s, None, Some(out));
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
        self.frozen_log_probs(theta, &tape.frozen, actions, out);
    }

    /// `log pi(a_t | s_t)` for every row of a frozen forward pass.
    pub fn frozen_log_probs(&self, theta: &[f64], f: &Frozen, actions: &[f64], out: &mut [f64]) {
        let (o, aw) = (self.out_dim(), self.action_width());
        let outs = self.frozen_out(f);
        for t in 0..f.n {
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
        self.freeze(theta, obs, w.len(), &mut tape.frozen);
        self.grad_frozen(theta, &tape.frozen, actions, w, &mut tape.scratch, grad)
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
        let Tape { frozen, scratch } = tape;
        self.freeze(theta, obs, w.len(), frozen);
        self.backward_deltas(theta, frozen, actions, w, scratch, Some(grad));
        self.hvp_frozen(theta, frozen, actions, w, v, scratch, hv);
    }

    /// `out += (1/n) sum_t J_t' M_t J_t v`: the Fisher information of the action
    /// distribution over `n` observations times `v` (exactly the Hessian of the mean
    /// KL(pi_theta_old || pi_theta) at theta = theta_old).
    pub fn fisher_vp(
        &self,
        theta: &[f64],
        obs: &[f64],
        n: usize,
        v: &[f64],
        tape: &mut Tape,
        out: &mut [f64],
    ) {
        self.freeze(theta, obs, n, &mut tape.frozen);
        self.fisher_vp_frozen(theta, &tape.frozen, v, &mut tape.scratch, out);
    }

    /// Mean over the last forward pass's rows of KL(old || new), where `old_out` /
    /// `old_log_std` are the stored head outputs of the behaviour policy.
    pub fn mean_kl(&self, theta: &[f64], tape: &Tape, old_out: &[f64], old_log_std: &[f64]) -> f64 {
        self.frozen_mean_kl(theta, &tape.frozen, old_out, old_log_std)
    }

    /// [`Policy::mean_kl`] over a frozen forward pass.
    pub fn frozen_mean_kl(
        &self,
        theta: &[f64],
        f: &Frozen,
        old_out: &[f64],
        old_log_std: &[f64],
    ) -> f64 {
        let n = f.n;
        let o = self.out_dim();
        let new_out = self.frozen_out(f);
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

/// Acting without allocating: the scratch holds every layer of up to `rows` rows.
/// Rows that share parameters are computed together ([`Actor::forward_rows`]), so each
/// weight is read once per step for all of them instead of once per row (the policy's
/// weights do not fit in a core's cache); every row's arithmetic is the same sequence
/// of operations whatever the rows beside it.
#[derive(Clone, Debug)]
pub struct Actor {
    a: Vec<f64>,
    b: Vec<f64>,
    probs: Vec<f64>,
    /// Rows of the current group, reused across steps.
    pub group: Vec<usize>,
}

impl Actor {
    /// An actor for one row at a time.
    pub fn new(policy: &Policy) -> Actor {
        Actor::with_rows(policy, 1)
    }

    /// An actor for up to `rows` rows at a time.
    pub fn with_rows(policy: &Policy, rows: usize) -> Actor {
        let widest = policy
            .layers
            .iter()
            .map(|l| l.fan_in.max(l.fan_out))
            .max()
            .unwrap_or(0);
        Actor {
            a: vec![0.0; rows * widest],
            b: vec![0.0; rows * widest],
            probs: vec![0.0; policy.out_dim()],
            group: Vec::with_capacity(rows),
        }
    }

    /// The head's outputs (`rows.len() * out_dim`, into `out`) for the observations of
    /// `rows` (row `r` is `obs[r * obs_dim..]`), all with the parameters `theta`.
    pub fn forward_rows(
        &mut self,
        policy: &Policy,
        theta: &[f64],
        obs: &[f32],
        rows: &[usize],
        out: &mut [f64],
    ) {
        let k = rows.len();
        let od = policy.obs_dim;
        for (i, &r) in rows.iter().enumerate() {
            for (x, &o) in self.a[i * od..(i + 1) * od]
                .iter_mut()
                .zip(&obs[r * od..(r + 1) * od])
            {
                *x = o as f64;
            }
        }
        let last = policy.layers.len() - 1;
        for (l, layer) in policy.layers.iter().enumerate() {
            let (fi, fo) = (layer.fan_in, layer.fan_out);
            let w = &theta[layer.w..layer.w + fi * fo];
            let bias = &theta[layer.b..layer.b + fo];
            let y = &mut self.b[..k * fo];
            for row in y.chunks_mut(fo) {
                row.copy_from_slice(bias);
            }
            // y_r += x_r[i] W[i] for i in order: per row the single-row sequence, with
            // the weights read once for all rows.
            rows64::add_product(y, &self.a[..k * fi], w, k, fi, fo);
            if l < last {
                y.iter_mut().for_each(|v| *v = policy.activation.eval(*v).0);
            }
            std::mem::swap(&mut self.a, &mut self.b);
        }
        let o = policy.out_dim();
        out[..k * o].copy_from_slice(&self.a[..k * o]);
    }

    /// Samples an action from one row of head outputs `out` (or takes the mode when
    /// `greedy`), writing its stored form into `action`.
    pub fn sample(
        &mut self,
        policy: &Policy,
        theta: &[f64],
        out: &[f64],
        greedy: bool,
        rng: &mut Rng,
        action: &mut [f64],
    ) {
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
        self.forward_rows(policy, theta, obs, &[0], out);
        self.sample(policy, theta, out, greedy, rng, action);
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
