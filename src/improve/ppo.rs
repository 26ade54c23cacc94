//! PPO (Schulman et al., 2017) with GAE(lambda), over whole environment sequences so
//! that recurrent policies (RL2) are trained by back-propagation through time.
//!
//! Reads top to bottom: the rollout buffer, advantage estimation, the clipped loss, and
//! the update (epochs x minibatches, gradient-norm clipping, Adam). Minibatches are
//! groups of training sequences: whole env columns of the rollout, or, with
//! `ppo.bptt_steps` (truncated back-propagation through time, as Meta-World+'s RL2),
//! pieces of `bptt_steps` consecutive steps of a column, each starting from the
//! recurrent state the actor had there (held fixed: no gradient flows into it).
//! Advantages are computed over the whole columns first, so truncation changes only
//! where gradients stop and how minibatches mix. Each minibatch's gradient is computed in
//! a fixed number of chunks (optionally on several threads) and summed in a fixed order,
//! so results do not depend on the thread count.

use crate::config::{BpttOrder, PpoConfig, ValueLoss};
use crate::nn::graph::{self, GraphParams};
use crate::nn::head::Head;
use crate::nn::{Adam, AgentNet, Params};
use crate::rng::Rng;
use burn::tensor::{Device, Tensor, TensorData};
use std::sync::Mutex;

/// Everything one rollout of `steps` x `rows` recorded, time-major (`t * rows + r`).
#[derive(Clone, Debug, Default)]
pub struct RolloutBuffer {
    pub steps: usize,
    pub rows: usize,
    pub input_dim: usize,
    pub state_dim: usize,
    /// Network input per step, `steps * rows * input_dim`.
    pub x: Vec<f32>,
    /// 1.0 where the recurrent state is reset before the step (trial start).
    pub reset: Vec<f32>,
    /// Steps per training sequence: `steps`, or `ppo.bptt_steps` (which divides it).
    pub seq_steps: usize,
    /// Recurrent state before the first step of every training sequence, sequence `q`
    /// (start step `(q / rows) * seq_steps`, row `q % rows`) at `q * state_dim`:
    /// `sequences() * state_dim` values.
    pub h0: Vec<f32>,
    /// Values per action: 1 (the index of a discrete action) or the continuous vector.
    pub action_width: usize,
    /// Actions taken, `steps * rows * action_width`.
    pub actions: Vec<f32>,
    pub logp: Vec<f32>,
    pub values: Vec<f32>,
    /// Rewards as the learner sees them (possibly normalised).
    pub rewards: Vec<f32>,
    /// No bootstrapping after this step (true end of the decision process).
    pub terminal: Vec<bool>,
    /// Time-limit end after this step: bootstrap from `trunc_value`.
    pub truncated: Vec<bool>,
    pub trunc_value: Vec<f32>,
    /// Value of the state after the last step, per row.
    pub last_value: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
}

impl RolloutBuffer {
    pub fn new(
        steps: usize,
        rows: usize,
        input_dim: usize,
        state_dim: usize,
        action_width: usize,
    ) -> Self {
        let n = steps * rows;
        RolloutBuffer {
            steps,
            rows,
            input_dim,
            state_dim,
            x: vec![0.0; n * input_dim],
            reset: vec![0.0; n],
            seq_steps: steps,
            h0: vec![0.0; rows * state_dim],
            action_width,
            actions: vec![0.0; n * action_width],
            logp: vec![0.0; n],
            values: vec![0.0; n],
            rewards: vec![0.0; n],
            terminal: vec![false; n],
            truncated: vec![false; n],
            trunc_value: vec![0.0; n],
            last_value: vec![0.0; rows],
            advantages: vec![0.0; n],
            returns: vec![0.0; n],
        }
    }

    /// Cuts every env's column into training sequences of `seq_steps` steps (a divisor
    /// of `steps`; `steps` keeps columns whole).
    pub fn with_sequence_steps(mut self, seq_steps: usize) -> Self {
        assert!(
            seq_steps > 0 && self.steps.is_multiple_of(seq_steps),
            "sequence length {seq_steps} must divide the rollout's {} steps (checked with the config)",
            self.steps
        );
        self.seq_steps = seq_steps;
        self.h0 = vec![0.0; self.sequences() * self.state_dim];
        self
    }

    /// Number of training sequences: rows x sequences per column.
    pub fn sequences(&self) -> usize {
        self.steps / self.seq_steps * self.rows
    }

    /// Whether a training sequence starts at step `t`: the actor's recurrent state
    /// before it is to be kept (in `h0`).
    pub fn sequence_starts_at(&self, t: usize) -> bool {
        t.is_multiple_of(self.seq_steps)
    }

    /// Where the states before step `t` (a sequence start) go in `h0`: `rows * state_dim`
    /// values.
    pub fn h0_at(&mut self, t: usize) -> &mut [f32] {
        let sd = self.rows * self.state_dim;
        let k = t / self.seq_steps;
        &mut self.h0[k * sd..(k + 1) * sd]
    }

    /// Fills `advantages` and `returns` with GAE(lambda).
    pub fn compute_gae(&mut self, gamma: f32, lambda: f32) {
        gae(
            self.steps,
            self.rows,
            &self.rewards,
            &self.values,
            &self.terminal,
            &self.truncated,
            &self.trunc_value,
            &self.last_value,
            gamma,
            lambda,
            &mut self.advantages,
            &mut self.returns,
        );
    }
}

/// Generalised advantage estimation over time-major `steps x rows` arrays.
///
/// delta_t = r_t + gamma * V_next - V(s_t), where V_next is 0 after a terminal step,
/// `trunc_value[t]` (the value of the final observation) after a time-limit truncation,
/// `values[t+1]` inside a sequence and `last_value` after the rollout's last step.
/// The advantage recursion A_t = delta_t + gamma * lambda * A_{t+1} is cut after any end.
#[allow(clippy::too_many_arguments)]
#[allow(clippy::needless_range_loop)] // parallel arrays share one index
pub fn gae(
    steps: usize,
    rows: usize,
    rewards: &[f32],
    values: &[f32],
    terminal: &[bool],
    truncated: &[bool],
    trunc_value: &[f32],
    last_value: &[f32],
    gamma: f32,
    lambda: f32,
    advantages: &mut [f32],
    returns: &mut [f32],
) {
    for r in 0..rows {
        let mut next_adv = 0.0f32;
        for t in (0..steps).rev() {
            let i = t * rows + r;
            let next_value = if terminal[i] {
                0.0
            } else if truncated[i] {
                trunc_value[i]
            } else if t + 1 == steps {
                last_value[r]
            } else {
                values[i + rows]
            };
            let delta = rewards[i] + gamma * next_value - values[i];
            let carry = if terminal[i] || truncated[i] {
                0.0
            } else {
                next_adv
            };
            next_adv = delta + gamma * lambda * carry;
            advantages[i] = next_adv;
            returns[i] = next_adv + values[i];
        }
    }
}

/// Scalars describing one update, averaged over minibatches.
#[derive(Clone, Copy, Debug, Default)]
pub struct UpdateStats {
    pub policy_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    pub approx_kl: f64,
    pub clip_frac: f64,
    pub grad_norm: f64,
    /// Minibatch steps taken (fewer than epochs x minibatches when `ppo.target_kl`
    /// ended the update early).
    pub minibatches: usize,
}

/// One minibatch's data, gathered into contiguous time-major arrays.
struct Minibatch {
    rows: usize,
    x: Vec<f32>,
    reset: Vec<f32>,
    h0: Vec<f32>,
    /// Categorical: one-hot `[n, A]`; Gaussian: the actions `[n, dim]`.
    act: Vec<f32>,
    logp: Vec<f32>,
    values: Vec<f32>,
    adv: Vec<f32>,
    returns: Vec<f32>,
}

/// Training sequences `seqs` (see [`RolloutBuffer::h0`]) as one minibatch, each from
/// its stored starting state. `num_actions`: the width of the policy's output;
/// `categorical`: actions are stored as indices (one-hot encoded here) rather than as
/// vectors.
fn gather(
    buf: &RolloutBuffer,
    seqs: &[usize],
    adv: &[f32],
    num_actions: usize,
    categorical: bool,
) -> Minibatch {
    let sd = buf.state_dim;
    let places: Vec<(usize, usize)> = seqs
        .iter()
        .map(|&q| ((q / buf.rows) * buf.seq_steps, q % buf.rows))
        .collect();
    let h0 = seqs
        .iter()
        .flat_map(|&q| buf.h0[q * sd..(q + 1) * sd].iter().copied())
        .collect();
    gather_at(
        buf,
        &places,
        buf.seq_steps,
        h0,
        adv,
        num_actions,
        categorical,
    )
}

/// The `t_len` steps from `(start step, row)` of each of `places` as one minibatch
/// starting from the states `h0` (`places.len() * state_dim` values).
fn gather_at(
    buf: &RolloutBuffer,
    places: &[(usize, usize)],
    t_len: usize,
    h0: Vec<f32>,
    adv: &[f32],
    num_actions: usize,
    categorical: bool,
) -> Minibatch {
    let m = places.len();
    let id = buf.input_dim;
    let mut mb = Minibatch {
        rows: m,
        x: Vec::with_capacity(t_len * m * id),
        reset: Vec::with_capacity(t_len * m),
        h0,
        act: vec![0.0; t_len * m * num_actions],
        logp: Vec::with_capacity(t_len * m),
        values: Vec::with_capacity(t_len * m),
        adv: Vec::with_capacity(t_len * m),
        returns: Vec::with_capacity(t_len * m),
    };
    for t in 0..t_len {
        for (j, &(start, row)) in places.iter().enumerate() {
            let i = (start + t) * buf.rows + row;
            mb.x.extend_from_slice(&buf.x[i * id..(i + 1) * id]);
            mb.reset.push(buf.reset[i]);
            let dst = &mut mb.act[(t * m + j) * num_actions..(t * m + j + 1) * num_actions];
            if categorical {
                dst[buf.actions[i] as usize] = 1.0;
            } else {
                dst.copy_from_slice(&buf.actions[i * num_actions..(i + 1) * num_actions]);
            }
            mb.logp.push(buf.logp[i]);
            mb.values.push(buf.values[i]);
            mb.adv.push(adv[i]);
            mb.returns.push(buf.returns[i]);
        }
    }
    mb
}

/// A feed-forward minibatch as `k` chunks of consecutive samples, each laid out as
/// one step of `samples` rows (no recurrent state).
fn split_samples(mb: &Minibatch, k: usize) -> Vec<Minibatch> {
    let n = mb.logp.len();
    let per = n.div_ceil(k.min(n).max(1));
    let (xw, aw) = (mb.x.len() / n, mb.act.len() / n);
    (0..n)
        .step_by(per)
        .map(|s| {
            let e = (s + per).min(n);
            Minibatch {
                rows: e - s,
                x: mb.x[s * xw..e * xw].to_vec(),
                reset: mb.reset[s..e].to_vec(),
                h0: Vec::new(),
                act: mb.act[s * aw..e * aw].to_vec(),
                logp: mb.logp[s..e].to_vec(),
                values: mb.values[s..e].to_vec(),
                adv: mb.adv[s..e].to_vec(),
                returns: mb.returns[s..e].to_vec(),
            }
        })
        .collect()
}

fn col(v: &[f32], device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(v.to_vec(), [v.len(), 1]), device)
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data().try_into_vec::<f32>().expect("f32")[0] as f64
}

/// The clipped PPO loss of one chunk, normalised by `total` samples of the minibatch;
/// adds its gradient into `grad` and returns (policy loss, value loss, entropy,
/// approx KL, clip fraction) summed over the chunk and divided by `total`.
#[allow(clippy::too_many_arguments)]
fn chunk_grad(
    net: &AgentNet,
    params: &Params,
    mb: &Minibatch,
    steps: usize,
    cfg: &PpoConfig,
    total: f32,
    grad: &mut [f32],
    fused: bool,
    threads: usize,
) -> [f64; 5] {
    if fused {
        return chunk_grad_host(net, params, mb, steps, cfg, total, grad, threads, None);
    }
    let device = Device::flex().autodiff();
    let gp = GraphParams::new(params, &device);
    let (logits, values, pending) = if fused {
        net.forward_fused(
            &gp, params, &mb.x, &mb.reset, &mb.h0, steps, mb.rows, &device,
        )
    } else {
        let (l, v) = net.forward_graph(&gp, &mb.x, &mb.reset, &mb.h0, steps, mb.rows, &device);
        (l, v, None)
    };
    let n = steps * mb.rows;
    let act = graph::constant(&mb.act, n, net.num_actions, &device);
    let (logp, entropy) = Head::of(net).log_prob_and_entropy(&gp, logits, act, n, total);
    let log_ratio = logp - col(&mb.logp, &device);
    let ratio = log_ratio.clone().exp();
    let adv = col(&mb.adv, &device);
    let c = cfg.clip as f32;
    let surr1 = ratio.clone() * adv.clone();
    let surr2 = ratio.clone().clamp(1.0 - c, 1.0 + c) * adv;
    let policy_loss = surr1.min_pair(surr2).sum().neg() / total;

    let v_old = col(&mb.values, &device);
    let ret = col(&mb.returns, &device);
    let elementwise = |d: Tensor<2>| match cfg.value_loss {
        ValueLoss::Mse => d.square(),
        // Huber with delta = 1, written without a mask: 0.5 q^2 + (|d| - q), q = min(|d|, 1).
        ValueLoss::Huber => {
            let a = d.abs();
            let q = a.clone().clamp_max(1.0);
            q.clone().square() * 0.5 + (a - q)
        }
    };
    let vl = if cfg.clip_value {
        let v_clipped = v_old.clone() + (values.clone() - v_old).clamp(-c, c);
        elementwise(values - ret.clone()).max_pair(elementwise(v_clipped - ret))
    } else {
        elementwise(values - ret)
    };
    let value_loss = vl.sum() * 0.5 / total;
    let loss = policy_loss.clone() + value_loss.clone() * cfg.value_coef as f32
        - entropy.clone() * cfg.entropy_coef as f32;
    let grads = loss.backward();
    gp.add_flat_grad(&grads, grad);
    if let Some(p) = pending {
        p.finish(&gp, params, &grads, grad);
    }

    // Diagnostics on the host.
    let lr = graph::to_vec(log_ratio.detach());
    let approx_kl: f64 = lr
        .iter()
        .map(|&x| ((x.exp() - 1.0) - x) as f64)
        .sum::<f64>()
        / total as f64;
    let clipped = lr.iter().filter(|&&x| (x.exp() - 1.0).abs() > c).count() as f64 / total as f64;
    [
        scalar(policy_loss.detach()),
        scalar(value_loss.detach()),
        scalar(entropy.detach()),
        approx_kl,
        clipped,
    ]
}

/// [`chunk_grad`]'s loss and gradient computed on the host: the network by
/// [`AgentNet::forward_host`] / [`AgentNet::backward_host`], the loss's gradient w.r.t.
/// logits and values written out by hand (tested against the burn graph). Runs on up
/// to `threads` threads with a result that does not depend on them. With `keep_state =
/// Some((t, out))` it also writes the GRU state entering step `t` of the chunk's rows
/// into `out` (where the next time-ordered piece starts).
#[allow(clippy::too_many_arguments)]
fn chunk_grad_host(
    net: &AgentNet,
    params: &Params,
    mb: &Minibatch,
    steps: usize,
    cfg: &PpoConfig,
    total: f32,
    grad: &mut [f32],
    threads: usize,
    keep_state: Option<(usize, &Mutex<Vec<f32>>)>,
) -> [f64; 5] {
    let n = steps * mb.rows;
    let a = net.num_actions;
    let (logits, values, tape) =
        net.forward_host(params, &mb.x, &mb.reset, &mb.h0, steps, mb.rows, threads);
    if let Some((t, out)) = keep_state {
        let h = tape
            .gru_state_entering(t)
            .expect("time-ordered pieces need RL2's GRU (checked with the config)");
        *out.lock().expect("no other holder panicked") = h;
    }
    let c = cfg.clip as f32;
    let (ec, vc) = (cfg.entropy_coef as f32, cfg.value_coef as f32);
    let mut dlogits = vec![0.0f32; n * net.out_width()];
    let mut dvalues = vec![0.0f32; n];
    let (mut surr, mut kl, mut clipped, mut vl) = (0.0f64, 0.0f64, 0.0, 0.0f64);
    // dLoss/dlogp of one sample from the clipped surrogate -min(r A, clip(r) A) / total.
    let policy_term = |i: usize, logp: f32| {
        let log_ratio = logp - mb.logp[i];
        let ratio = log_ratio.exp();
        let adv = mb.adv[i];
        let s1 = ratio * adv;
        let s2 = ratio.clamp(1.0 - c, 1.0 + c) * adv;
        surr += s1.min(s2) as f64;
        kl += ((ratio - 1.0) - log_ratio) as f64;
        if (ratio - 1.0).abs() > c {
            clipped += 1.0;
        }
        let passes = s1 <= s2 || (1.0 - c..=1.0 + c).contains(&ratio);
        if passes {
            -adv * ratio / total
        } else {
            0.0
        }
    };
    let ent = Head::of(net).log_prob_and_entropy_host(
        params,
        &logits,
        &mb.act,
        a,
        total,
        ec,
        policy_term,
        &mut dlogits,
        grad,
    );
    // Value loss 0.5 max(f(v - R), f(v_clip - R)) / total, f = Huber(1) or square.
    type Scalar = fn(f32) -> f32;
    let (f, df): (Scalar, Scalar) = match cfg.value_loss {
        ValueLoss::Mse => (|d| d * d, |d| 2.0 * d),
        ValueLoss::Huber => (
            |d| {
                let q = d.abs().min(1.0);
                0.5 * q * q + (d.abs() - q)
            },
            |d| d.clamp(-1.0, 1.0),
        ),
    };
    for i in 0..n {
        let (v, v_old, ret) = (values[i], mb.values[i], mb.returns[i]);
        let d1 = v - ret;
        let (loss, dv) = if cfg.clip_value {
            let step = v - v_old;
            let d2 = v_old + step.clamp(-c, c) - ret;
            if f(d1) >= f(d2) {
                (f(d1), df(d1))
            } else {
                let inside = (-c..=c).contains(&step);
                (f(d2), if inside { df(d2) } else { 0.0 })
            }
        } else {
            (f(d1), df(d1))
        };
        vl += loss as f64;
        dvalues[i] = vc * 0.5 * dv / total;
    }
    net.backward_host(params, &tape, &dlogits, &dvalues, grad, threads);
    let t = total as f64;
    [-surr / t, 0.5 * vl / t, ent, kl / t, clipped / t]
}

/// The advantages the policy loss weighs: standardised over the whole rollout (mean 0,
/// standard deviation 1, as VariBAD's reference and CleanRL do) or as GAE gave them
/// (`ppo.normalize_advantages = false`, as Meta-World+'s RL2).
pub fn policy_advantages(advantages: &[f32], normalize: bool) -> Vec<f32> {
    if !normalize {
        return advantages.to_vec();
    }
    let n = advantages.len() as f64;
    let mean = advantages.iter().map(|&a| a as f64).sum::<f64>() / n;
    let var = advantages
        .iter()
        .map(|&a| (a as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt();
    advantages
        .iter()
        .map(|&a| ((a as f64 - mean) / (std + 1e-5)) as f32)
        .collect()
}

/// Runs PPO's epochs x minibatches over `buf` (which must have advantages computed).
#[allow(clippy::too_many_arguments)]
pub fn update(
    net: &AgentNet,
    params: &mut Params,
    adam: &mut Adam,
    buf: &RolloutBuffer,
    cfg: &PpoConfig,
    lr: f64,
    rng: &mut Rng,
    threads: usize,
) -> UpdateStats {
    let adv = policy_advantages(&buf.advantages, cfg.normalize_advantages);
    let mut stats = UpdateStats::default();
    let mut grad = vec![0.0f32; params.len()];
    let kl_limit = cfg.target_kl.map(|t| 1.5 * t);
    if cfg.bptt_order == BpttOrder::Time {
        let time = TimeOrdered {
            net,
            buf,
            cfg,
            adv: &adv,
            threads,
        };
        time.run(params, adam, lr, &mut grad, kl_limit, &mut stats);
        return stats.averaged();
    }

    let mut cols: Vec<usize> = (0..buf.sequences()).collect();
    let per_mb = buf.sequences() / cfg.minibatches;
    'epochs: for _ in 0..cfg.epochs {
        rng.shuffle(&mut cols);
        for mb_cols in cols.chunks(per_mb) {
            let mb_total = (mb_cols.len() * buf.seq_steps) as f32;
            let categorical = Head::of(net) == Head::Categorical;
            let chunks: Vec<(Minibatch, usize)> = if net.memory.is_some() {
                // Sequences stay whole: chunks of columns.
                let k = super::CHUNKS.min(mb_cols.len());
                let per_chunk = mb_cols.len().div_ceil(k);
                mb_cols
                    .chunks(per_chunk)
                    .map(|c| {
                        let mb = gather(buf, c, &adv, net.num_actions, categorical);
                        (mb, buf.seq_steps)
                    })
                    .collect()
            } else {
                // A feed-forward net's samples are independent: chunks of samples, so
                // a minibatch of one long column still splits.
                let mb = gather(buf, mb_cols, &adv, net.num_actions, categorical);
                split_samples(&mb, super::CHUNKS)
                    .into_iter()
                    .map(|c| (c, 1))
                    .collect()
            };
            // Threads the chunks leave idle work inside each chunk (a minibatch of one
            // sequence is one chunk); chunk results do not depend on them.
            let inner_threads = (threads / chunks.len()).max(1);
            let (st, norm) = super::minibatch_step(
                &chunks,
                params,
                adam,
                cfg.max_grad_norm,
                lr,
                threads,
                &mut grad,
                |p, (mb, steps), g| {
                    chunk_grad(net, p, mb, *steps, cfg, mb_total, g, true, inner_threads)
                },
            );
            // The step that crossed the limit stays taken, as in Meta-World+'s rule.
            if stats.add(st, norm, kl_limit) {
                break 'epochs;
            }
        }
    }
    stats.averaged()
}

impl UpdateStats {
    /// Adds one minibatch step's statistics (policy loss, value loss, entropy, approx.
    /// KL, clip fraction) and gradient norm; true when its KL crossed `kl_limit`.
    fn add(&mut self, st: [f64; 5], grad_norm: f64, kl_limit: Option<f64>) -> bool {
        self.policy_loss += st[0];
        self.value_loss += st[1];
        self.entropy += st[2];
        self.approx_kl += st[3];
        self.clip_frac += st[4];
        self.grad_norm += grad_norm;
        self.minibatches += 1;
        kl_limit.is_some_and(|limit| st[3] > limit)
    }

    /// The sums of [`Self::add`] as means over the steps taken.
    fn averaged(mut self) -> Self {
        let count = self.minibatches as f64;
        self.policy_loss /= count;
        self.value_loss /= count;
        self.entropy /= count;
        self.approx_kl /= count;
        self.clip_frac /= count;
        self.grad_norm /= count;
        self
    }
}

/// Meta-World+'s truncated BPTT (`ppo.bptt_order = "time"`, RL2 only): each epoch walks
/// the columns' pieces of `ppo.bptt_steps` steps in time order (starting every
/// `bptt_steps - bptt_overlap` steps, [`PpoConfig::time_ordered_starts`]), one
/// minibatch per piece holding that piece of every row. The first piece starts from the
/// actor's state before the rollout; each later one from the GRU state the previous
/// minibatch's forward pass (the parameters before its step) reached at this piece's
/// start, so the starting states follow the parameters through the epochs instead of
/// staying the acting policy's. No gradient flows from one piece into another.
struct TimeOrdered<'a> {
    net: &'a AgentNet,
    buf: &'a RolloutBuffer,
    cfg: &'a PpoConfig,
    adv: &'a [f32],
    threads: usize,
}

impl TimeOrdered<'_> {
    fn run(
        &self,
        params: &mut Params,
        adam: &mut Adam,
        lr: f64,
        grad: &mut [f32],
        kl_limit: Option<f64>,
        stats: &mut UpdateStats,
    ) {
        let (net, buf, cfg) = (self.net, self.buf, self.cfg);
        let (len, rows, sd) = (cfg.bptt_steps, buf.rows, buf.state_dim);
        let starts = cfg.time_ordered_starts(buf.steps);
        let categorical = Head::of(net) == Head::Categorical;
        // Rows split into a fixed number of chunks, as the shuffled minibatches are.
        let per_chunk = rows.div_ceil(super::CHUNKS.min(rows));
        let groups: Vec<std::ops::Range<usize>> = (0..rows)
            .step_by(per_chunk)
            .map(|r| r..(r + per_chunk).min(rows))
            .collect();
        let total = (rows * len) as f32;
        let inner_threads = (self.threads / groups.len()).max(1);
        for _ in 0..cfg.epochs {
            let mut carry = buf.h0[..rows * sd].to_vec();
            for (k, &start) in starts.iter().enumerate() {
                // Where, within this piece, the next one starts.
                let next = starts.get(k + 1).map(|&s| s - start);
                let chunks: Vec<(Minibatch, Mutex<Vec<f32>>)> = groups
                    .iter()
                    .map(|g| {
                        let places: Vec<(usize, usize)> = g.clone().map(|r| (start, r)).collect();
                        let h0 = carry[g.start * sd..g.end * sd].to_vec();
                        let mb = gather_at(
                            buf,
                            &places,
                            len,
                            h0,
                            self.adv,
                            net.num_actions,
                            categorical,
                        );
                        (mb, Mutex::new(Vec::new()))
                    })
                    .collect();
                let (st, norm) = super::minibatch_step(
                    &chunks,
                    params,
                    adam,
                    cfg.max_grad_norm,
                    lr,
                    self.threads,
                    grad,
                    |p, (mb, state), g| {
                        let keep = next.map(|t| (t, state));
                        chunk_grad_host(net, p, mb, len, cfg, total, g, inner_threads, keep)
                    },
                );
                if next.is_some() {
                    for (g, (_, state)) in groups.iter().zip(&chunks) {
                        let state = state.lock().expect("no other holder panicked");
                        carry[g.start * sd..g.end * sd].copy_from_slice(&state);
                    }
                }
                if stats.add(st, norm, kl_limit) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::HeadSpec;

    #[test]
    fn gae_hand_computed_with_truncation_and_termination() {
        // One row, 4 steps, gamma = 0.5, lambda = 0.5.
        // Step 1 is truncated (bootstrap from trunc_value = 10), step 3 is the rollout's
        // last (bootstrap from last_value = 4); no terminal.
        let rewards = [1.0, 2.0, 3.0, 4.0];
        let values = [0.5, 1.0, 1.5, 2.0];
        let terminal = [false; 4];
        let truncated = [false, true, false, false];
        let trunc_value = [0.0, 10.0, 0.0, 0.0];
        let (mut adv, mut ret) = ([0.0; 4], [0.0; 4]);
        gae(
            4,
            1,
            &rewards,
            &values,
            &terminal,
            &truncated,
            &trunc_value,
            &[4.0],
            0.5,
            0.5,
            &mut adv,
            &mut ret,
        );
        // delta3 = 4 + 0.5*4 - 2 = 4;            A3 = 4
        // delta2 = 3 + 0.5*2 - 1.5 = 2.5;        A2 = 2.5 + 0.25*4 = 3.5
        // delta1 = 2 + 0.5*10 - 1 = 6;           A1 = 6 (cut after truncation)
        // delta0 = 1 + 0.5*1 - 0.5 = 1;          A0 = 1 + 0.25*6 = 2.5
        let want = [2.5, 6.0, 3.5, 4.0];
        for i in 0..4 {
            assert!((adv[i] - want[i]).abs() < 1e-6, "{adv:?}");
            assert!((ret[i] - (want[i] + values[i])).abs() < 1e-6);
        }
        // Terminal at step 1 instead: no bootstrap at all.
        let terminal = [false, true, false, false];
        gae(
            4,
            1,
            &rewards,
            &values,
            &terminal,
            &[false; 4],
            &trunc_value,
            &[4.0],
            0.5,
            0.5,
            &mut adv,
            &mut ret,
        );
        // delta1 = 2 - 1 = 1; A1 = 1; A0 = 1 + 0.25*1 = 1.25
        assert!(
            (adv[1] - 1.0).abs() < 1e-6 && (adv[0] - 1.25).abs() < 1e-6,
            "{adv:?}"
        );
    }

    #[test]
    fn fused_and_pure_burn_losses_have_equal_gradients() {
        fused_equals_pure_burn(Default::default());
    }

    #[test]
    fn fused_and_pure_burn_losses_have_equal_gradients_transformer() {
        fused_equals_pure_burn(small_transformer(4));
    }

    #[test]
    fn fused_and_pure_burn_losses_have_equal_gradients_gaussian_heads() {
        fused_equals_pure_burn_with(Default::default(), HeadSpec::Gaussian);
        fused_equals_pure_burn_with(Default::default(), HeadSpec::StateGaussian);
    }

    /// A small recurrent net (9 inputs, 5 actions) with memory `core`.
    fn small_memory_net(core: crate::nn::CoreSpec, rng: &mut Rng) -> (AgentNet, Params) {
        small_memory_net_with(core, HeadSpec::Categorical, rng)
    }

    fn small_memory_net_with(
        core: crate::nn::CoreSpec,
        head: HeadSpec,
        rng: &mut Rng,
    ) -> (AgentNet, Params) {
        use crate::nn::host::Act;
        use crate::nn::MemorySpec;
        let mut params = Params::new();
        let spec = MemorySpec {
            obs_dim: 2,
            action_dim: 5,
            obs_embed: 4,
            action_embed: 3,
            reward_embed: 2,
            hidden: 6,
            core,
        };
        let net = AgentNet::with_head(&mut params, 9, 5, head, &[8], Act::Tanh, Some(spec), rng);
        // Outputs far from 0, so that tanh's curvature and the std both matter.
        for (name, slot) in params.names.clone().iter().zip(params.slots.clone()) {
            if name.starts_with("actor.out") || name == "actor.log_std" {
                for v in &mut params.data[slot.range()] {
                    *v = 0.8 * rng.normal() as f32;
                }
            }
        }
        (net, params)
    }

    /// A small transformer memory with a `window`-step context.
    fn small_transformer(window: usize) -> crate::nn::CoreSpec {
        use crate::nn::transformer::{Positions, TransformerSpec};
        crate::nn::CoreSpec::Transformer(TransformerSpec {
            layers: 2,
            heads: 2,
            width: 8,
            window,
            mlp: 12,
            positions: Positions::Rotary,
        })
    }

    fn fused_equals_pure_burn(core: crate::nn::CoreSpec) {
        fused_equals_pure_burn_with(core, HeadSpec::Categorical)
    }

    fn fused_equals_pure_burn_with(core: crate::nn::CoreSpec, head: HeadSpec) {
        let mut rng = Rng::new(5);
        let (net, params) = small_memory_net_with(core, head, &mut rng);
        let (steps, rows) = (6, 3);
        let n = steps * rows;
        let act = match head {
            HeadSpec::Categorical => {
                let mut onehot = vec![0.0; n * 5];
                for i in 0..n {
                    onehot[i * 5 + rng.below(5) as usize] = 1.0;
                }
                onehot
            }
            _ => (0..n * 5).map(|_| rng.normal() as f32).collect(),
        };
        let mut reset = vec![0.0; n];
        reset[..rows].iter_mut().for_each(|v| *v = 1.0);
        reset[3 * rows + 1] = 1.0;
        let mb = Minibatch {
            rows,
            x: (0..n * 9).map(|_| rng.normal() as f32).collect(),
            reset,
            h0: vec![0.0; rows * net.state_dim()],
            act,
            logp: (0..n).map(|_| -1.6 + 0.1 * rng.normal() as f32).collect(),
            values: (0..n).map(|_| rng.normal() as f32).collect(),
            adv: (0..n).map(|_| rng.normal() as f32).collect(),
            returns: (0..n).map(|_| rng.normal() as f32).collect(),
        };
        let cfg = crate::config::Config::default().ppo;
        let mut g1 = vec![0.0; params.len()];
        let mut g2 = vec![0.0; params.len()];
        let s1 = chunk_grad(&net, &params, &mb, steps, &cfg, n as f32, &mut g1, true, 1);
        let s2 = chunk_grad(&net, &params, &mb, steps, &cfg, n as f32, &mut g2, false, 1);
        assert!(g1.iter().any(|&g| g != 0.0));
        for (i, (a, b)) in g1.iter().zip(&g2).enumerate() {
            assert!(
                (a - b).abs() < 1e-5 * (1.0 + b.abs()),
                "{} ({i}): fused {a} vs burn {b}",
                params.names.len()
            );
        }
        for (a, b) in s1.iter().zip(&s2) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    /// Truncated BPTT: every training sequence starts from the state the actor had
    /// before its first step, so a forward pass over the gathered sequences reproduces
    /// the actor's outputs at every step (cutting changes where gradients stop, not what
    /// the net computes), while the gradient differs from the whole columns' (it stops).
    #[test]
    fn truncated_gru_sequences_start_from_the_actors_states() {
        truncated_sequences_start_from_the_actors_states(crate::nn::CoreSpec::Gru);
    }

    #[test]
    fn truncated_transformer_sequences_start_from_the_actors_states() {
        truncated_sequences_start_from_the_actors_states(small_transformer(3));
    }

    fn truncated_sequences_start_from_the_actors_states(core: crate::nn::CoreSpec) {
        let mut rng = Rng::new(11);
        let (net, params) = small_memory_net(core, &mut rng);
        let (id, na) = (9, 5);
        let (steps, rows, len) = (8, 3, 4);
        let sd = net.state_dim();
        let whole = |rng: &mut Rng| {
            let mut b = RolloutBuffer::new(steps, rows, id, sd, 1);
            b.x = (0..steps * rows * id)
                .map(|_| rng.normal() as f32)
                .collect();
            b.actions = (0..steps * rows)
                .map(|_| rng.below(na as u64) as f32)
                .collect();
            b.logp = (0..steps * rows)
                .map(|_| -1.6 + 0.1 * rng.normal() as f32)
                .collect();
            b.returns = (0..steps * rows).map(|_| rng.normal() as f32).collect();
            b.values = b.returns.iter().map(|r| r + 0.3).collect();
            // Trial starts: every row at step 0, row 1 inside a sequence, row 2 at the
            // second sequence's first step.
            for i in [0, 1, 2, 5 * rows + 1, 4 * rows + 2] {
                b.reset[i] = 1.0;
            }
            b
        };
        let mut cut = whole(&mut Rng::new(3)).with_sequence_steps(len);
        assert_eq!(cut.sequences(), 6);
        // Keep the actor's state at each sequence start, as the trainer does.
        let (entering, want_logits, want_values) = act_through(&net, &params, &cut);
        for (t, h) in entering.iter().enumerate() {
            if cut.sequence_starts_at(t) {
                cut.h0_at(t).copy_from_slice(h);
            }
        }
        assert!(
            cut.h0[rows * sd..].iter().any(|&v| v != 0.0),
            "a state is kept mid-column"
        );
        let adv: Vec<f32> = (0..steps * rows).map(|_| rng.normal() as f32).collect();
        let seqs: Vec<usize> = (0..cut.sequences()).collect();
        let mb = gather(&cut, &seqs, &adv, na, true);
        let (logits, values, _) =
            net.forward_host(&params, &mb.x, &mb.reset, &mb.h0, len, mb.rows, 1);
        for t in 0..len {
            for q in 0..cut.sequences() {
                let (start, row) = ((q / rows) * len, q % rows);
                let i = (start + t) * rows + row;
                let j = t * mb.rows + q;
                assert!(
                    (values[j] - want_values[i]).abs() < 1e-5,
                    "value at step {} row {row}",
                    start + t
                );
                for a in 0..na {
                    let (got, want) = (logits[j * na + a], want_logits[i * na + a]);
                    assert!(
                        (got - want).abs() < 1e-5,
                        "logit at step {} row {row}: {got} vs {want}",
                        start + t
                    );
                }
                assert_eq!(mb.adv[j], adv[i]);
            }
        }
        // The same data as whole columns: the loss is the same function of the
        // parameters at this point, but its gradient also flows across the cut.
        let full = whole(&mut Rng::new(3));
        let cols: Vec<usize> = (0..rows).collect();
        let mb_full = gather(&full, &cols, &adv, na, true);
        let cfg = crate::config::Config::default().ppo;
        let n = (steps * rows) as f32;
        let (mut g_cut, mut g_full) = (vec![0.0; params.len()], vec![0.0; params.len()]);
        let s_cut = chunk_grad(&net, &params, &mb, len, &cfg, n, &mut g_cut, true, 1);
        let s_full = chunk_grad(
            &net,
            &params,
            &mb_full,
            steps,
            &cfg,
            n,
            &mut g_full,
            true,
            1,
        );
        for (a, b) in s_cut.iter().zip(&s_full) {
            assert!((a - b).abs() < 1e-5, "losses {s_cut:?} vs {s_full:?}");
        }
        let diff = g_cut
            .iter()
            .zip(&g_full)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff > 1e-4,
            "truncation left the gradient unchanged (max diff {diff})"
        );
    }

    /// A rollout of a small GRU net (`steps` x 3 rows, trial starts inside pieces)
    /// with the state entering every step as the actor had it.
    fn time_ordered_case(steps: usize) -> (AgentNet, Params, RolloutBuffer, Vec<Vec<f32>>) {
        let mut rng = Rng::new(17);
        let (net, params) = small_memory_net(crate::nn::CoreSpec::Gru, &mut rng);
        let (id, na, rows, sd) = (9, 5, 3, net.state_dim());
        let n = steps * rows;
        let mut b = RolloutBuffer::new(steps, rows, id, sd, 1);
        b.x = (0..n * id).map(|_| rng.normal() as f32).collect();
        b.actions = (0..n).map(|_| rng.below(na as u64) as f32).collect();
        b.logp = (0..n).map(|_| -1.6 + 0.1 * rng.normal() as f32).collect();
        b.returns = (0..n).map(|_| rng.normal() as f32).collect();
        b.values = b.returns.iter().map(|r| r + 0.3).collect();
        b.advantages = (0..n).map(|_| rng.normal() as f32).collect();
        for i in [0, 1, 2, 5 * rows + 1, 4 * rows + 2] {
            b.reset[i] = 1.0;
        }
        let (entering, _, _) = act_through(&net, &params, &b);
        (net, params, b, entering)
    }

    /// The actor over `buf`'s inputs: steps every row from a zero state, zeroing it at
    /// trial starts. Returns the state entering each step (before its reset) and the
    /// logits and values of every step.
    fn act_through(
        net: &AgentNet,
        params: &Params,
        buf: &RolloutBuffer,
    ) -> (Vec<Vec<f32>>, Vec<f32>, Vec<f32>) {
        let (rows, sd, id, na) = (buf.rows, buf.state_dim, buf.input_dim, net.out_width());
        let mut h = vec![0.0f32; rows * sd];
        let mut scratch = net.scratch(rows);
        let (mut entering, mut logits, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for t in 0..buf.steps {
            entering.push(h.clone());
            for r in 0..rows {
                if buf.reset[t * rows + r] == 1.0 {
                    h[r * sd..(r + 1) * sd].fill(0.0);
                }
            }
            let (mut lg, mut v) = (vec![0.0; rows * na], vec![0.0; rows]);
            let xt = &buf.x[t * rows * id..(t + 1) * rows * id];
            net.step(params, xt, rows, &mut h, &mut scratch, &mut lg, &mut v);
            logits.extend(lg);
            values.extend(v);
        }
        (entering, logits, values)
    }

    fn time_ordered_cfg(overlap: usize) -> PpoConfig {
        PpoConfig {
            bptt_order: BpttOrder::Time,
            bptt_steps: 4,
            bptt_overlap: overlap,
            minibatches: 2,
            epochs: 2,
            normalize_advantages: false,
            ..crate::config::Config::default().ppo
        }
    }

    #[test]
    fn time_ordered_pieces_start_where_the_parameters_lead() {
        // With a learning rate of 0 the parameters stay the actor's, so the state each
        // piece is carried into must be the actor's state at the piece's start: every
        // loss statistic then equals that of the pieces gathered from the actor's states.
        // Pieces of 4 in 8 steps: every 3 (at 0 and 3, step 7 untrained), and every 4
        // (at 0 and 4: the carried state is the one after the first piece's last step).
        for (overlap, starts) in [(1, [0, 3]), (0, [0, 4])] {
            let (net, mut params, buf, entering) = time_ordered_case(8);
            let cfg = time_ordered_cfg(overlap);
            assert_eq!(cfg.time_ordered_starts(8), starts);
            let before = params.data.clone();
            let mut adam = Adam::new(params.len(), 1e-8);
            let got = update(
                &net,
                &mut params,
                &mut adam,
                &buf,
                &cfg,
                0.0,
                &mut Rng::new(1),
                1,
            );
            assert_eq!(params.data, before, "a step of size 0 moved the parameters");
            assert_eq!(got.minibatches, 4, "2 pieces x 2 epochs");
            let rows = buf.rows;
            let total = (rows * 4) as f32;
            let piece = |start: usize, h0: Vec<f32>| {
                let places: Vec<(usize, usize)> = (0..rows).map(|r| (start, r)).collect();
                let mb = gather_at(&buf, &places, 4, h0, &buf.advantages, 5, true);
                let mut g = vec![0.0; params.len()];
                chunk_grad_host(&net, &params, &mb, 4, &cfg, total, &mut g, 1, None)
            };
            let first = piece(0, entering[0].clone());
            let second = piece(starts[1], entering[starts[1]].clone());
            let want: Vec<f64> = (0..5).map(|k| (first[k] + second[k]) / 2.0).collect();
            let got = [
                got.policy_loss,
                got.value_loss,
                got.entropy,
                got.approx_kl,
                got.clip_frac,
            ];
            for k in 0..5 {
                assert!(
                    (got[k] - want[k]).abs() < 1e-5,
                    "overlap {overlap}, statistic {k}: {got:?} vs {want:?}"
                );
            }
            // The test can tell: the second piece from a zero state has other losses.
            let zero = piece(starts[1], vec![0.0; entering[0].len()]);
            assert!((zero[1] - second[1]).abs() > 1e-4, "{zero:?} vs {second:?}");
        }
    }

    #[test]
    fn time_ordered_update_is_the_same_on_any_thread_count() {
        let (net, params, buf, _) = time_ordered_case(11);
        let cfg = time_ordered_cfg(1);
        let run = |threads: usize| {
            let mut p = params.clone();
            let mut adam = Adam::new(p.len(), 1e-8);
            let st = update(
                &net,
                &mut p,
                &mut adam,
                &buf,
                &cfg,
                1e-2,
                &mut Rng::new(1),
                threads,
            );
            (p.data, st.policy_loss, st.value_loss, st.approx_kl)
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one, two);
        assert_ne!(one.0, params.data, "the update moved nothing");
    }

    /// A feedforward net and a one-step minibatch whose old log-probabilities put the
    /// probability ratio where the test wants it.
    fn clip_case(ratio: f32, adv: f32) -> (f64, Vec<f32>) {
        use crate::nn::host::Act;
        let mut rng = Rng::new(1);
        let mut params = Params::new();
        let net = AgentNet::new(&mut params, 3, 4, &[5], Act::Tanh, None, &mut rng);
        let x = vec![0.3f32, -0.2, 0.5];
        let mut s = net.scratch(1);
        let (mut logits, mut value) = (vec![0.0; 4], vec![0.0; 1]);
        net.step(&params, &x, 1, &mut [], &mut s, &mut logits, &mut value);
        crate::nn::host::log_softmax_rows(&mut logits, 4);
        let action = 2;
        let mut onehot = vec![0.0; 4];
        onehot[action] = 1.0;
        let mb = Minibatch {
            rows: 1,
            x,
            reset: vec![1.0],
            h0: vec![],
            act: onehot,
            logp: vec![logits[action] - ratio.ln()],
            values: value.clone(),
            adv: vec![adv],
            returns: value,
        };
        let mut cfg = crate::config::Config::default().ppo;
        cfg.clip = 0.2;
        cfg.value_coef = 0.0;
        cfg.entropy_coef = 0.0;
        let mut g = vec![0.0; params.len()];
        let stats = chunk_grad(&net, &params, &mb, 1, &cfg, 1.0, &mut g, true, 1);
        (stats[0], g)
    }

    /// PPO's statistics and gradient on one feed-forward step of samples whose recorded
    /// log-probabilities `logp` are the policy's own (ratio 1), with advantage 1.
    fn own_samples(
        net: &AgentNet,
        params: &Params,
        x: Vec<f32>,
        actions: Vec<f32>,
        logp: Vec<f32>,
        value: Vec<f32>,
    ) -> ([f64; 5], Vec<f32>) {
        let rows = logp.len();
        let mb = Minibatch {
            rows,
            x,
            reset: vec![1.0; rows],
            h0: vec![],
            act: actions,
            logp,
            values: value.clone(),
            adv: vec![1.0; rows],
            returns: value,
        };
        let cfg = crate::config::Config::default().ppo;
        let mut g = vec![0.0; params.len()];
        let st = chunk_grad(net, params, &mb, 1, &cfg, rows as f32, &mut g, true, 1);
        (st, g)
    }

    #[test]
    fn gaussian_head_log_density_and_entropy_match_closed_forms() {
        use crate::nn::host::Act;
        let mut rng = Rng::new(3);
        let mut params = Params::new();
        let net = AgentNet::new(&mut params, 3, 2, &[8], Act::Tanh, None, &mut rng)
            .with_gaussian_head(&mut params);
        let slot = net.log_std.unwrap();
        params.data[slot.range()].copy_from_slice(&[-0.5, 0.3]);
        let rows = 5;
        let x: Vec<f32> = (0..rows * 3).map(|_| rng.normal() as f32).collect();
        let mut s = net.scratch(rows);
        let (mut mean, mut value) = (vec![0.0; rows * 2], vec![0.0; rows]);
        net.step(&params, &x, rows, &mut [], &mut s, &mut mean, &mut value);
        // Actions and their log densities computed independently in f64.
        let actions: Vec<f32> = (0..rows * 2).map(|_| rng.normal() as f32).collect();
        let logp: Vec<f32> = (0..rows)
            .map(|r| {
                (0..2)
                    .map(|j| {
                        let (a, m, ls) = (
                            actions[r * 2 + j] as f64,
                            mean[r * 2 + j] as f64,
                            [-0.5f64, 0.3][j],
                        );
                        let sd = ls.exp();
                        (-(a - m).powi(2) / (2.0 * sd * sd)
                            - (sd * (2.0 * std::f64::consts::PI).sqrt()).ln())
                            as f32
                    })
                    .sum()
            })
            .collect();
        let (st, g) = own_samples(&net, &params, x, actions, logp, value);
        // Same density in the graph: ratio 1 everywhere, so no KL and nothing clipped.
        assert!(st[3].abs() < 1e-6, "approx KL {}", st[3]);
        assert_eq!(st[4], 0.0);
        let entropy =
            (-0.5 + 0.3) + 2.0 * 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln();
        assert!(
            (st[2] - entropy).abs() < 1e-5,
            "entropy {} vs {entropy}",
            st[2]
        );
        // The policy loss with A = 1 and ratio 1 is -1; its gradient reaches log std.
        assert!((st[0] + 1.0).abs() < 1e-5);
        assert!(g[slot.range()].iter().any(|&v| v != 0.0));
    }

    /// Meta-World+'s head: mean `tanh u`, log std `tanh v` per row; the log-densities
    /// and the entropy PPO computes equal the closed forms in f64, and the entropy
    /// stays within the bounds tanh gives it however large the outputs.
    #[test]
    fn state_gaussian_head_log_density_and_entropy_match_closed_forms() {
        use crate::nn::host::Act;
        let mut rng = Rng::new(4);
        let mut params = Params::new();
        let head = HeadSpec::StateGaussian;
        let net = AgentNet::with_head(&mut params, 3, 2, head, &[8], Act::Tanh, None, &mut rng);
        assert_eq!(net.out_width(), 4);
        let half_log_2pi_e = 0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln();
        for scale in [1.0f32, 50.0] {
            let (net, mut params) = (net.clone(), params.clone());
            // Large output weights drive tanh into saturation at scale 50.
            for (name, slot) in params.names.clone().iter().zip(params.slots.clone()) {
                if name.starts_with("actor.out") {
                    for v in &mut params.data[slot.range()] {
                        *v = scale * rng.normal() as f32;
                    }
                }
            }
            let rows = 5;
            let x: Vec<f32> = (0..rows * 3).map(|_| rng.normal() as f32).collect();
            let mut s = net.scratch(rows);
            let (mut out, mut value) = (vec![0.0; rows * 4], vec![0.0; rows]);
            net.step(&params, &x, rows, &mut [], &mut s, &mut out, &mut value);
            let actions: Vec<f32> = (0..rows * 2).map(|_| rng.normal() as f32).collect();
            let (mut logp, mut entropy) = (vec![0.0f32; rows], 0.0f64);
            for r in 0..rows {
                for j in 0..2 {
                    let m = (out[r * 4 + j] as f64).tanh();
                    let ls = (out[r * 4 + 2 + j] as f64).tanh();
                    let z = (actions[r * 2 + j] as f64 - m) / ls.exp();
                    logp[r] += (-0.5 * z * z - ls - 0.5 * (2.0 * std::f64::consts::PI).ln()) as f32;
                    entropy += (ls + half_log_2pi_e) / rows as f64;
                }
            }
            let (st, _) = own_samples(&net, &params, x, actions, logp, value);
            assert!(st[3].abs() < 1e-5, "approx KL {}", st[3]);
            assert_eq!(st[4], 0.0);
            assert!(
                (st[2] - entropy).abs() < 1e-5,
                "entropy {} vs {entropy}",
                st[2]
            );
            let per_dim = st[2] / 2.0;
            assert!(
                per_dim >= half_log_2pi_e - 1.0 && per_dim <= half_log_2pi_e + 1.0,
                "entropy per dimension {per_dim} outside [c - 1, c + 1]"
            );
            assert!((st[0] + 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn ppo_clipping_matches_the_clipped_objective() {
        // Inside the trust region: loss = -ratio * A and a non-zero gradient.
        let (loss, g) = clip_case(1.1, 2.0);
        assert!((loss + 2.2).abs() < 1e-5, "{loss}");
        assert!(g.iter().any(|&v| v.abs() > 1e-6));
        // Ratio above 1 + clip with A > 0: the objective is flat (clipped): loss =
        // -(1 + clip) * A and no gradient pushes the ratio further.
        let (loss, g) = clip_case(1.5, 2.0);
        assert!((loss + 2.4).abs() < 1e-5, "{loss}");
        assert!(
            g.iter().all(|&v| v == 0.0),
            "clipped sample must not give a gradient"
        );
        // Ratio below 1 - clip with A < 0: also clipped.
        let (loss, g) = clip_case(0.5, -1.0);
        assert!((loss - 0.8).abs() < 1e-5, "{loss}");
        assert!(g.iter().all(|&v| v == 0.0));
        // Ratio above 1 + clip with A < 0: pessimistic min keeps the unclipped term,
        // so the gradient is there to pull the ratio back.
        let (loss, g) = clip_case(1.5, -1.0);
        assert!((loss - 1.5).abs() < 1e-5, "{loss}");
        assert!(g.iter().any(|&v| v.abs() > 1e-6));
    }

    #[test]
    fn advantages_are_standardised_only_when_asked() {
        let raw: Vec<f32> = (0..40)
            .map(|i| (i as f32 * 0.37).sin() * 5.0 + 2.0)
            .collect();
        let norm = policy_advantages(&raw, true);
        let mean = norm.iter().map(|&a| a as f64).sum::<f64>() / 40.0;
        let var = norm.iter().map(|&a| (a as f64 - mean).powi(2)).sum::<f64>() / 40.0;
        assert!(
            mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
        // Standardising forgets the advantages' scale and offset; the raw ones keep it.
        let scaled: Vec<f32> = raw.iter().map(|&a| 10.0 * a - 3.0).collect();
        for (a, b) in policy_advantages(&scaled, true).iter().zip(&norm) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        assert_eq!(policy_advantages(&raw, false), raw);
    }

    #[test]
    fn gae_rows_are_independent_and_time_major() {
        // Two rows interleaved time-major must equal each row computed alone.
        let r0 = [1.0f32, 0.0, 2.0];
        let r1 = [0.0f32, 3.0, 1.0];
        let v0 = [0.1f32, 0.2, 0.3];
        let v1 = [0.4f32, 0.5, 0.6];
        let inter =
            |a: &[f32], b: &[f32]| -> Vec<f32> { (0..3).flat_map(|t| [a[t], b[t]]).collect() };
        let (mut adv, mut ret) = (vec![0.0; 6], vec![0.0; 6]);
        gae(
            3,
            2,
            &inter(&r0, &r1),
            &inter(&v0, &v1),
            &[false; 6],
            &[false; 6],
            &[0.0; 6],
            &[0.7, 0.8],
            0.9,
            0.8,
            &mut adv,
            &mut ret,
        );
        for (row, (r, v, last)) in [(r0, v0, 0.7f32), (r1, v1, 0.8)].iter().enumerate() {
            let (mut a1, mut r1_) = ([0.0; 3], [0.0; 3]);
            gae(
                3,
                1,
                r,
                v,
                &[false; 3],
                &[false; 3],
                &[0.0; 3],
                &[*last],
                0.9,
                0.8,
                &mut a1,
                &mut r1_,
            );
            for t in 0..3 {
                assert_eq!(a1[t], adv[t * 2 + row]);
            }
        }
    }
}
