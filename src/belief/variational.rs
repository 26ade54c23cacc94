//! The VariBAD belief (Zintgraf et al.; reference implementation `lmzintgraf/varibad`):
//! a recurrent encoder `q(m | tau_{:t}) = N(mu_t, diag exp(logvar_t))` over the
//! transitions of the current trial, trained as the encoder of a VAE whose decoders
//! predict the rewards (and optionally the next states) of the whole trial (past and
//! future) from a latent sample. This module owns the model, its streaming update, the
//! ELBO and its exact gradient.
//!
//! # Model
//! - Encoder input per transition `(s, a, r, s')`: ReLU embeddings of `s'` (the next
//!   observation), of the action input (only when `action_embed > 0`; the GridNavi
//!   preset has no action input) and of the raw reward, concatenated in that order
//!   (the reference concatenates `(a, s', r)`; the order is immaterial), fed to a GRU
//!   (PyTorch convention, [`GruCell`]); `mu` and `logvar` are linear maps of the hidden
//!   state (no layers after the GRU, as in the presets). The action input is the
//!   one-hot vector for discrete actions and the raw (unclipped, as the agent sampled
//!   it) action vector for continuous ones, as the reference feeds it.
//! - Prior `q_0`: the same output layers at the zero hidden state (the reference's
//!   `RNNEncoder.prior`), so it is learned through the output biases.
//! - Reward decoder, one of ([`RewardDecoderKind`]):
//!   - `Multihead` (Bernoulli, GridNavi): an MLP with ReLU hidden layers from the latent
//!     sample alone to `num_cells` logits; a transition's likelihood is
//!     `Bernoulli(r == +1 | sigmoid(logit[head(s')]))`. The head of `s' = (x, y)` is
//!     `x * side + y`, `side = sqrt(num_cells)` (GridNavi's `cell_index`, the
//!     reference's `task_to_id`).
//!   - `Mlp` (deterministic, any env; the reference's `RewardDecoder` without
//!     `multi_head`, `rew_pred_type = deterministic`): ReLU hidden layers over
//!     `[m, e(s'), e(a)?, e(s)?]` (the reference's order; `e(a)` with
//!     `reward_input_action`, `e(s)` with `reward_input_state`, `e` the decoder's own
//!     ReLU embeddings, one for both states), one linear output `r_hat`; the term is
//!     the squared error `(r_hat - r)^2`.
//! - State decoder (optional, `decode_state`; the reference's `StateTransitionDecoder`
//!   with `state_pred_type = deterministic`): ReLU hidden layers over
//!   `[m, e(s), e(a)?]` (`e(a)` only when `action_embed > 0`: the reference's
//!   zero-width feature extractor), linear `obs_dim` output; the term is the squared
//!   error averaged over the state's dimensions.
//! - Policy features: `[mu_t, logvar_t]` (the reference's `pass_latent_to_policy`
//!   without sampling).
//!
//! # ELBO (checked against the reference's `vae.py::compute_loss`, the default path)
//! For each trial of length `T` the encoder runs from the prior, giving `q_0 .. q_T`
//! (`T + 1` ELBO terms). One reparameterised sample `m_t = mu_t + exp(logvar_t/2) eps_t`
//! per term (shared by all its decodes, as in the reference); every term decodes all
//! `T` transitions of the trial. Per trial:
//! `recon = sum_t sum_tau nll_t(tau)` with `nll_t(tau) = BCE(sigmoid(logit_t[head(s'_tau)]),
//! r_tau == 1)` (multi-head) or `(r_hat_t(tau) - r_tau)^2` (MLP; the reference's
//! `(rew_pred - reward).pow(2).mean(dim=-1)` over one output), likewise
//! `state = sum_t sum_tau mean_d (s_hat_t(tau)_d - s'_tau,d)^2`, and
//! `kl = sum_t KL(q_t || q_{t-1})` with `q_{-1} = N(0, I)` (or `KL(q_t || N(0, I))` for
//! every `t` when `kl_to_prior`). The reference sums (not averages) over ELBO terms and
//! over decodes (`vae_avg_elbo_terms = vae_avg_reconstruction_terms = False`), then
//! averages the reconstruction over the trials of the batch but **sums** the KL over
//! them (`kl_loss.sum(dim=0)` twice); its loss is `recon_mean + kl_weight * kl_sum`.
//! Here `loss = reward_loss_coeff * mean_b recon_b + state_loss_coeff * mean_b state_b +
//! kl_weight * K` (the reference's `rew_loss_coeff`, `state_loss_coeff`; the state
//! reconstruction is averaged over trials like the reward's), with `K = sum_b kl_b` when
//! [`VaribadConfig::kl_sum_over_trials`] (the reference's normalisation; the GridNavi
//! preset sets it) and `K = mean_b kl_b` otherwise. [`VaeStats`] reports per-trial
//! means of the (unweighted) terms.
//!
//! Sub-sampling (the reference's `vae_subsample_elbos` / `vae_subsample_decodes`): per
//! trial, `k` ELBO indices are drawn uniformly with replacement from `0..=T` (the KL
//! terms are sub-sampled at the same indices), and for each selected term `d` decode
//! indices are drawn with replacement from `0..T`; terms are summed with their
//! multiplicities. Implemented as count weights, so the graph keeps its shape.
//!
//! BCE is computed from logits with `log_sigmoid` (PyTorch's `binary_cross_entropy` on
//! probabilities clamps `log` at -100; they agree except for saturated logits).
//!
//! # Computation
//! Embeddings, output layers, decoder and loss run in burn; the GRU runs in the fused
//! host op ([`crate::nn::gru_op`]): embeddings -> detach -> host GRU -> hidden states as
//! a burn leaf -> loss -> backward -> dH -> BPTT on the host -> d(GRU input) -> surrogate
//! `sum(gin * dgin)` -> second backward for the embeddings. The `T` decodes of a term
//! are folded into count matrices: with `N1[t, c]` (`N0[t, c]`) the weighted number of
//! decodes of term `t` whose head is `c` and whose reward is (is not) +1,
//! `recon = sum N1 * softplus(-logits) + N0 * softplus(logits)`, one elementwise op on
//! `[B*(T+1), cells]` logits instead of a gather or batched matmul.
//!
//! The MLP decoders read the pair (term `t`, decode `tau`): their first layer is linear
//! in the concatenation, `W [m_t; c_tau] + b = W_m m_t + (W_c c_tau + b)`, so `W_m m_t`
//! is computed once per term (`[(T+1)*B, h]`), `W_c c_tau + b` once per decode
//! (`[T*B, h]`), and only the sum for each selected pair (nonzero decode count, weighted
//! by it) is materialised with two row gathers; the remaining layers run on the pairs.
//! The full ELBO has `(T+1) * T` pairs per trial (90,300 on the point robot), which
//! dominates the cost (docs/benchmarks.md): presets may sub-sample.
//!
//! # Differences from the reference
//! - Initialisation: scaled-normal weights (gain sqrt 2 for ReLU layers, 1 for the
//!   GRU and output layers), zero biases; the reference uses PyTorch's defaults and
//!   orthogonal GRU weights. With zero biases the initial prior is exactly N(0, I).
//! - Discrete actions enter as one-hot vectors (the reference feeds the action index),
//!   in the encoder and in the decoders.
//! - The buffer is a plain ring of complete trials, sampled without replacement.

use super::trials::TrialRecord;
use super::{Belief, PlanningBelief, RewardQuery, Transition};
use crate::config::BadValue;
use crate::env::gridnavi::{GOAL_REWARD, STEP_REWARD};
use crate::error::UserError;
use crate::nn::gemm::{matmul, mm_a_bt_acc, mm_at_b_acc, Mat};
use crate::nn::graph::{self, GraphParams};
use crate::nn::gru_op;
use crate::nn::host::{self, Act};
use crate::nn::lanes;
use crate::nn::mlp_op;
use crate::nn::params::{Dense, GruCell, Params};
use crate::rng::Rng;
use burn::tensor::{activation, Device, Gradients, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Which reward decoder the VAE trains (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewardDecoderKind {
    /// Bernoulli heads over grid cells from the latent alone (GridNavi).
    #[default]
    Multihead,
    /// Deterministic regression `r ~ MLP(m, e(s') [, e(a)] [, e(s)])`, squared error.
    Mlp,
}

/// A VariBAD model's shapes (from the env) and its `[varibad]` settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VaribadSpec {
    pub obs_dim: usize,
    /// Width of the action input: the one-hot width for discrete actions, the action
    /// vector's width for continuous ones.
    pub action_dim: usize,
    /// true: actions are raw continuous vectors; false: discrete indices (one-hot).
    pub continuous_actions: bool,
    /// Number of heads of the multi-head reward decoder (cells of the grid; unused by
    /// the MLP decoder).
    pub num_cells: usize,
    /// Encoder, decoders and ELBO (the training settings are the learner's).
    pub config: VaribadConfig,
}

/// `[varibad]`: the VariBAD belief (encoder, reward decoder, ELBO) and its VAE updates.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VaribadConfig {
    pub state_embed: usize,
    /// 0 = the encoder does not see the action (the GridNavi reference preset).
    pub action_embed: usize,
    pub reward_embed: usize,
    pub gru_hidden: usize,
    pub latent: usize,
    pub decoder_hidden: Vec<usize>,
    pub kl_weight: f64,
    /// KL of every posterior to the prior instead of to the previous posterior.
    pub kl_to_prior: bool,
    /// Sum the KL over the trials of a batch (the reference's normalisation) instead of
    /// averaging it.
    pub kl_sum_over_trials: bool,
    pub lr: f64,
    /// VAE updates per policy update.
    pub num_updates: usize,
    /// Trials per VAE batch.
    pub batch_trials: usize,
    /// Capacity of the buffer of recent trials.
    pub buffer_trials: usize,
    /// ELBO terms sampled per trial (0 = all).
    pub subsample_elbos: usize,
    /// Decodes sampled per ELBO term (0 = all).
    pub subsample_decodes: usize,
    /// `multihead` (Bernoulli heads over grid cells from the latent; GridNavi only) or
    /// `mlp` (deterministic reward regression from the latent and embeddings of s'
    /// [, a] [, s], squared error; any environment).
    pub reward_decoder: RewardDecoderKind,
    /// `mlp` reward decoder: also input s (the reference's `input_prev_state`).
    pub reward_input_state: bool,
    /// `mlp` reward decoder: also input a (the reference's `input_action`); needs
    /// `action_embed > 0`.
    pub reward_input_action: bool,
    /// Weight of the reward reconstruction (the reference's `rew_loss_coeff`).
    pub reward_loss_coeff: f64,
    /// Also train the deterministic state decoder p(s' | s, a, m) (the reference's
    /// `decode_state` with `state_pred_type = deterministic`).
    pub decode_state: bool,
    /// Weight of the state reconstruction (the reference's `state_loss_coeff`).
    pub state_loss_coeff: f64,
    /// Hidden layers of the state decoder (the reference's `state_decoder_layers`).
    pub state_decoder_hidden: Vec<usize>,
}

impl Default for VaribadConfig {
    fn default() -> Self {
        VaribadConfig {
            state_embed: 8,
            action_embed: 0,
            reward_embed: 8,
            gru_hidden: 64,
            latent: 5,
            decoder_hidden: vec![32, 32],
            kl_weight: 0.01,
            kl_to_prior: false,
            kl_sum_over_trials: true,
            lr: 1e-3,
            num_updates: 3,
            batch_trials: 25,
            buffer_trials: 100_000,
            subsample_elbos: 0,
            subsample_decodes: 0,
            reward_decoder: RewardDecoderKind::Multihead,
            reward_input_state: false,
            reward_input_action: false,
            reward_loss_coeff: 1.0,
            decode_state: false,
            state_loss_coeff: 1.0,
            state_decoder_hidden: vec![64, 32],
        }
    }
}

impl VaribadConfig {
    /// Checks every constraint of the section alone, reporting the first violation
    /// through `bad` (the env-dependent ones are checked where the model is built).
    pub fn check(&self, bad: &BadValue) -> Result<(), UserError> {
        for (key, value) in [
            ("varibad.state_embed", self.state_embed),
            ("varibad.reward_embed", self.reward_embed),
            ("varibad.gru_hidden", self.gru_hidden),
            ("varibad.latent", self.latent),
            ("varibad.num_updates", self.num_updates),
            ("varibad.batch_trials", self.batch_trials),
            ("varibad.buffer_trials", self.buffer_trials),
        ] {
            if value == 0 {
                return bad(key, &value, "an integer > 0");
            }
        }
        let v = self;
        if let Some(width) = v.decoder_hidden.iter().find(|&&w| w == 0) {
            return bad(
                "varibad.decoder_hidden",
                &format!("{:?}", v.decoder_hidden),
                &format!("a list of integers > 0 (found {width})"),
            );
        }
        if !(v.lr > 0.0 && v.lr.is_finite()) {
            return bad("varibad.lr", &v.lr, "a finite number > 0");
        }
        if let Some(width) = v.state_decoder_hidden.iter().find(|&&w| w == 0) {
            return bad(
                "varibad.state_decoder_hidden",
                &format!("{:?}", v.state_decoder_hidden),
                &format!("a list of integers > 0 (found {width})"),
            );
        }
        for (key, value) in [
            ("varibad.kl_weight", v.kl_weight),
            ("varibad.reward_loss_coeff", v.reward_loss_coeff),
            ("varibad.state_loss_coeff", v.state_loss_coeff),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return bad(key, &value, "a finite number >= 0");
            }
        }
        if v.reward_input_action && v.action_embed == 0 {
            return bad(
                "varibad.reward_input_action",
                &v.reward_input_action,
                "false while varibad.action_embed = 0 (the decoder embeds the action with the encoder's action_embed width)",
            );
        }
        if v.batch_trials > v.buffer_trials {
            return bad(
                "varibad.batch_trials",
                &v.batch_trials,
                &format!("at most varibad.buffer_trials = {}", v.buffer_trials),
            );
        }
        Ok(())
    }
}

impl VaribadSpec {
    /// The reference's GridNavi preset (`args_grid_varibad.py`).
    pub fn gridnavi() -> Self {
        VaribadSpec {
            obs_dim: 2,
            action_dim: 5,
            continuous_actions: false,
            num_cells: 25,
            config: VaribadConfig::default(),
        }
    }

    /// The reference's point-robot preset (`args_pointrobot_varibad.py`): MLP reward
    /// decoder [64, 32] over the latent and `e(s')`, KL weight 1.
    pub fn point_robot() -> Self {
        VaribadSpec {
            obs_dim: 2,
            action_dim: 2,
            continuous_actions: true,
            num_cells: 0,
            config: VaribadConfig {
                state_embed: 32,
                action_embed: 16,
                reward_embed: 16,
                gru_hidden: 128,
                latent: 5,
                decoder_hidden: vec![64, 32],
                reward_decoder: RewardDecoderKind::Mlp,
                kl_weight: 1.0,
                ..VaribadConfig::default()
            },
        }
    }

    /// Width of the GRU's input (concatenated embeddings).
    pub fn gru_input(&self) -> usize {
        let c = &self.config;
        c.state_embed + c.action_embed + c.reward_embed
    }

    /// Width of the MLP reward decoder's first-layer input `[m, e(s'), e(a)?, e(s)?]`.
    pub fn reward_decoder_input(&self) -> usize {
        let c = &self.config;
        c.latent
            + c.state_embed
            + if c.reward_input_action {
                c.action_embed
            } else {
                0
            }
            + if c.reward_input_state {
                c.state_embed
            } else {
                0
            }
    }
}

/// Encoder and decoder with their parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VaribadModel {
    pub spec: VaribadSpec,
    pub params: Params,
    pub state_embed: Dense,
    pub action_embed: Option<Dense>,
    pub reward_embed: Dense,
    pub gru: GruCell,
    pub mu: Dense,
    pub logvar: Dense,
    /// Reward decoder: hidden layers (ReLU) then the output layer (`num_cells` logits
    /// for the multi-head decoder, one reward for the MLP decoder, whose first layer
    /// reads `[m, e(s'), e(a)?, e(s)?]`, the reference's order).
    pub decoder: Vec<Dense>,
    /// The MLP reward decoder's own ReLU embedding of observations (used for `s'` and,
    /// with `reward_input_state`, for `s`: one embedding, as in the reference).
    #[serde(default)]
    pub reward_state_embed: Option<Dense>,
    /// The MLP reward decoder's action embedding (`reward_input_action`).
    #[serde(default)]
    pub reward_action_embed: Option<Dense>,
    /// The state decoder's own embeddings of `s` and `a` (the latter only when
    /// `action_embed > 0`, as the reference's zero-width feature extractor).
    #[serde(default)]
    pub transition_state_embed: Option<Dense>,
    #[serde(default)]
    pub transition_action_embed: Option<Dense>,
    /// State decoder layers over `[m, e(s), e(a)?]`: ReLU hidden, linear `obs_dim` output.
    #[serde(default)]
    pub state_decoder: Vec<Dense>,
}

/// Batched streaming state: GRU hidden states `[rows * gru_hidden]` plus scratch
/// buffers (not serialised; sized on first use).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VaribadState {
    pub h: Vec<f32>,
    #[serde(skip)]
    embed: Vec<f32>,
    /// One row's action input (one-hot or raw vector).
    #[serde(skip)]
    action_in: Vec<f32>,
    #[serde(skip)]
    gru: Vec<f32>,
    /// One embedding of every row, before it is interleaved into `embed`.
    #[serde(skip)]
    embed_part: Vec<f32>,
}

impl VaribadState {
    pub fn rows(&self, hidden: usize) -> usize {
        self.h.len() / hidden
    }
}

/// The ELBO's terms over a batch, per-trial means, plus the optimised loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VaeStats {
    pub loss: f64,
    /// Reward reconstruction (negative log-likelihood or squared error), unweighted.
    pub reconstruction: f64,
    pub kl: f64,
    /// State reconstruction (squared error averaged over dimensions), unweighted; 0
    /// without the state decoder.
    #[serde(default)]
    pub state_reconstruction: f64,
}

/// The (ELBO term, decode) pairs a draw selects, with their multiplicities: term row
/// `t * B + b` decodes data row `tau * B + b` with weight `decode_counts[..]`.
struct Pairs {
    term: Vec<i32>,
    data: Vec<i32>,
    weight: Vec<f32>,
}

impl Pairs {
    fn of(draw: &ElboDraw) -> Self {
        let (steps, rows) = (draw.steps, draw.trials);
        let (mut term, mut data, mut weight) = (Vec::new(), Vec::new(), Vec::new());
        for row in 0..(steps + 1) * rows {
            let b = row % rows;
            for tau in 0..steps {
                let w = draw.decode_counts[row * steps + tau];
                if w != 0.0 {
                    term.push(row as i32);
                    data.push((tau * rows + b) as i32);
                    weight.push(w);
                }
            }
        }
        Pairs { term, data, weight }
    }

    fn len(&self) -> usize {
        self.weight.len()
    }

    /// `src` rows (`width` values each) gathered at the pairs' data rows.
    fn gather_data(&self, src: &[f32], width: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.len() * width);
        for &d in &self.data {
            let d = d as usize;
            out.extend_from_slice(&src[d * width..(d + 1) * width]);
        }
        out
    }
}

/// ReLU on hidden layers, none on the output layer.
fn hidden_act(i: usize, layers: usize) -> Act {
    if i + 1 == layers {
        Act::None
    } else {
        Act::Relu
    }
}

fn int_tensor(v: &[i32], device: &Device) -> Tensor<1, Int> {
    Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

/// The random quantities of one ELBO evaluation: reparameterisation noise and the
/// sub-sampling multiplicities. Layouts are time-major over the `T + 1` terms and the
/// `B` trials: row `t * B + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct ElboDraw {
    pub steps: usize,
    pub trials: usize,
    /// `[(T+1) * B * latent]`.
    pub eps: Vec<f32>,
    /// Multiplicity of each ELBO term (its KL and its decodes), `[(T+1) * B]`.
    pub elbo_counts: Vec<f32>,
    /// Multiplicity of each decode `tau` of each term, `[(T+1) * B * T]`; includes the
    /// term's multiplicity.
    pub decode_counts: Vec<f32>,
}

impl ElboDraw {
    /// Every term and every decode once, with the given noise.
    pub fn full(steps: usize, trials: usize, eps: Vec<f32>) -> Self {
        let terms = (steps + 1) * trials;
        ElboDraw {
            steps,
            trials,
            eps,
            elbo_counts: vec![1.0; terms],
            decode_counts: vec![1.0; terms * steps],
        }
    }

    /// Draws the noise (first, `(T+1)*B*latent` normals in layout order) and then the
    /// sub-sampling indices (see the module doc).
    pub fn sample(
        steps: usize,
        trials: usize,
        latent: usize,
        rng: &mut Rng,
        subsample_elbos: Option<usize>,
        subsample_decodes: Option<usize>,
    ) -> Self {
        let terms = (steps + 1) * trials;
        let eps = (0..terms * latent).map(|_| rng.normal() as f32).collect();
        let mut d = ElboDraw::full(steps, trials, eps);
        if subsample_elbos.is_none() && subsample_decodes.is_none() {
            return d;
        }
        d.elbo_counts.iter_mut().for_each(|v| *v = 0.0);
        d.decode_counts.iter_mut().for_each(|v| *v = 0.0);
        for b in 0..trials {
            let selected: Vec<usize> = match subsample_elbos {
                Some(k) => (0..k)
                    .map(|_| rng.below(steps as u64 + 1) as usize)
                    .collect(),
                None => (0..=steps).collect(),
            };
            for t in selected {
                let row = t * trials + b;
                d.elbo_counts[row] += 1.0;
                let dc = &mut d.decode_counts[row * steps..(row + 1) * steps];
                match subsample_decodes {
                    Some(k) => {
                        for _ in 0..k {
                            dc[rng.below(steps as u64) as usize] += 1.0;
                        }
                    }
                    None => dc.iter_mut().for_each(|v| *v += 1.0),
                }
            }
        }
        d
    }
}

/// Which GRU implementation a training forward uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GruPath {
    /// Host forward + hand-written BPTT ([`crate::nn::gru_op`]); the fast path.
    Fused,
    /// burn's autodiff GRU ([`GraphParams::gru_sequence`]); the reference for tests.
    Graph,
}

/// `KL(N(mu1, exp(logvar1)) || N(mu2, exp(logvar2)))` for diagonal Gaussians, in f64.
pub fn kl_diag_gaussian(mu1: &[f32], logvar1: &[f32], mu2: &[f32], logvar2: &[f32]) -> f64 {
    assert!(mu1.len() == logvar1.len() && mu1.len() == mu2.len() && mu1.len() == logvar2.len());
    let mut kl = 0.0;
    for i in 0..mu1.len() {
        let (m1, l1, m2, l2) = (
            mu1[i] as f64,
            logvar1[i] as f64,
            mu2[i] as f64,
            logvar2[i] as f64,
        );
        kl += 0.5 * (l2 - l1 - 1.0 + (l1 - l2).exp() + (m1 - m2).powi(2) * (-l2).exp());
    }
    kl
}

/// A batch of equal-length trials laid out time-major for the training forward
/// (row `t * B + b`).
struct Batch {
    steps: usize,
    rows: usize,
    /// `[T*B, obs_dim]`: `s`.
    obs: Vec<f32>,
    /// `[T*B, obs_dim]`: `s'`.
    next_obs: Vec<f32>,
    /// `[T*B, action_dim]`: the action input (one-hot or the raw vector).
    actions: Vec<f32>,
    /// `[T*B, 1]`.
    rewards: Vec<f32>,
}

/// What the fused GRU's backward needs after the first burn backward.
struct Pending {
    gin: Tensor<2>,
    h_leaf: Tensor<2>,
    tape: gru_op::GruTape,
}

impl VaribadModel {
    /// Builds the model with fresh parameters drawn from `rng`.
    pub fn new(spec: VaribadSpec, rng: &mut Rng) -> Self {
        assert!(spec.config.latent > 0 && spec.config.gru_hidden > 0);
        let multihead = spec.config.reward_decoder == RewardDecoderKind::Multihead;
        assert!(
            !multihead || spec.num_cells > 0,
            "multi-head decoder without cells"
        );
        assert!(
            !spec.config.reward_input_action || spec.config.action_embed > 0,
            "reward_input_action needs action_embed > 0"
        );
        let mut p = Params::new();
        let relu = 2f32.sqrt();
        let state_embed = Dense::new(
            &mut p,
            "vae.state_embed",
            spec.obs_dim,
            spec.config.state_embed,
            relu,
            rng,
        );
        let action_embed = (spec.config.action_embed > 0).then(|| {
            Dense::new(
                &mut p,
                "vae.action_embed",
                spec.action_dim,
                spec.config.action_embed,
                relu,
                rng,
            )
        });
        let reward_embed = Dense::new(
            &mut p,
            "vae.reward_embed",
            1,
            spec.config.reward_embed,
            relu,
            rng,
        );
        let gru = GruCell::new(
            &mut p,
            "vae.gru",
            spec.gru_input(),
            spec.config.gru_hidden,
            rng,
        );
        let mu = Dense::new(
            &mut p,
            "vae.mu",
            spec.config.gru_hidden,
            spec.config.latent,
            1.0,
            rng,
        );
        let logvar = Dense::new(
            &mut p,
            "vae.logvar",
            spec.config.gru_hidden,
            spec.config.latent,
            1.0,
            rng,
        );
        // Parameters are drawn in the order they were before the MLP and state decoders
        // existed, so a multi-head model is initialised exactly as before.
        let (mut reward_state_embed, mut reward_action_embed) = (None, None);
        let (dec_in, dec_out) = if multihead {
            (spec.config.latent, spec.num_cells)
        } else {
            reward_state_embed = Some(Dense::new(
                &mut p,
                "vae.dec.state_embed",
                spec.obs_dim,
                spec.config.state_embed,
                relu,
                rng,
            ));
            if spec.config.reward_input_action {
                reward_action_embed = Some(Dense::new(
                    &mut p,
                    "vae.dec.action_embed",
                    spec.action_dim,
                    spec.config.action_embed,
                    relu,
                    rng,
                ));
            }
            (spec.reward_decoder_input(), 1)
        };
        let decoder = mlp(
            &mut p,
            "vae.dec",
            dec_in,
            &spec.config.decoder_hidden,
            dec_out,
            rng,
        );
        let (mut transition_state_embed, mut transition_action_embed) = (None, None);
        let mut state_decoder = Vec::new();
        if spec.config.decode_state {
            transition_state_embed = Some(Dense::new(
                &mut p,
                "vae.sdec.state_embed",
                spec.obs_dim,
                spec.config.state_embed,
                relu,
                rng,
            ));
            if spec.config.action_embed > 0 {
                transition_action_embed = Some(Dense::new(
                    &mut p,
                    "vae.sdec.action_embed",
                    spec.action_dim,
                    spec.config.action_embed,
                    relu,
                    rng,
                ));
            }
            let n_in = spec.config.latent + spec.config.state_embed + spec.config.action_embed;
            state_decoder = mlp(
                &mut p,
                "vae.sdec",
                n_in,
                &spec.config.state_decoder_hidden,
                spec.obs_dim,
                rng,
            );
        }
        VaribadModel {
            spec,
            params: p,
            state_embed,
            action_embed,
            reward_embed,
            gru,
            mu,
            logvar,
            decoder,
            reward_state_embed,
            reward_action_embed,
            transition_state_embed,
            transition_action_embed,
            state_decoder,
        }
    }

    /// Decoder head of next observation `s'` (`x * side + y`, see the module doc).
    pub fn head_of(&self, next_obs: &[f32]) -> usize {
        let side = (self.spec.num_cells as f64).sqrt().round() as usize;
        let x = next_obs[0].round().max(0.0) as usize;
        let y = if next_obs.len() > 1 {
            next_obs[1].round().max(0.0) as usize
        } else {
            0
        };
        let c = x * side + y;
        assert!(
            c < self.spec.num_cells,
            "observation {next_obs:?} has no decoder head"
        );
        c
    }

    /// Host forward of the prior `(mu_0, logvar_0)` (the output layers at h = 0).
    pub fn prior(&self) -> (Vec<f32>, Vec<f32>) {
        let h = vec![0.0; self.spec.config.gru_hidden];
        let mut mu = vec![0.0; self.spec.config.latent];
        let mut lv = vec![0.0; self.spec.config.latent];
        host::dense(&self.params, &self.mu, &h, 1, Act::None, &mut mu);
        host::dense(&self.params, &self.logvar, &h, 1, Act::None, &mut lv);
        (mu, lv)
    }

    /// Host decoder: `num_cells` logits of latent `m`.
    pub fn decode(&self, m: &[f32]) -> Vec<f32> {
        let mut x = m.to_vec();
        for (i, l) in self.decoder.iter().enumerate() {
            let act = if i + 1 == self.decoder.len() {
                Act::None
            } else {
                Act::Relu
            };
            let mut y = vec![0.0; l.fan_out()];
            host::dense(&self.params, l, &x, 1, act, &mut y);
            x = y;
        }
        x
    }

    /// Writes the encoder's/decoders' input for one action (`width` values as stored
    /// in trial records and transitions) into `out` (`action_dim` values).
    fn action_input(&self, action: &[f32], out: &mut [f32]) {
        if self.spec.continuous_actions {
            out.copy_from_slice(action);
        } else {
            out.iter_mut().for_each(|v| *v = 0.0);
            let a = action[0] as usize;
            assert!(a < self.spec.action_dim, "action {a} out of range");
            out[a] = 1.0;
        }
    }

    /// Stored width of one action (1 for a discrete index).
    fn action_width(&self) -> usize {
        if self.spec.continuous_actions {
            self.spec.action_dim
        } else {
            1
        }
    }

    fn batch(&self, trials: &[&TrialRecord]) -> Batch {
        let sp = &self.spec;
        assert!(!trials.is_empty(), "empty VAE batch");
        let steps = trials[0].len();
        assert!(steps > 0, "empty trial");
        let rows = trials.len();
        let (od, ad, aw) = (sp.obs_dim, sp.action_dim, self.action_width());
        let mut obs = vec![0.0; steps * rows * od];
        let mut next_obs = vec![0.0; steps * rows * od];
        let mut actions = vec![0.0; steps * rows * ad];
        let mut rewards = vec![0.0; steps * rows];
        for (b, tr) in trials.iter().enumerate() {
            assert_eq!(tr.len(), steps, "VAE batches need trials of equal length");
            assert_eq!(tr.next_obs.len(), steps * od);
            assert_eq!(tr.obs.len(), steps * od);
            assert_eq!(tr.actions.len(), steps * aw, "trial action width");
            for t in 0..steps {
                let i = t * rows + b;
                obs[i * od..(i + 1) * od].copy_from_slice(&tr.obs[t * od..(t + 1) * od]);
                next_obs[i * od..(i + 1) * od].copy_from_slice(&tr.next_obs[t * od..(t + 1) * od]);
                self.action_input(
                    &tr.actions[t * aw..(t + 1) * aw],
                    &mut actions[i * ad..(i + 1) * ad],
                );
                rewards[i] = tr.rewards[t];
            }
        }
        Batch {
            steps,
            rows,
            obs,
            next_obs,
            actions,
            rewards,
        }
    }

    /// The GRU input `[T*B, gru_input]` in burn.
    fn embed_graph(&self, gp: &GraphParams, batch: &Batch, device: &Device) -> Tensor<2> {
        let sp = &self.spec;
        let n = batch.steps * batch.rows;
        let mut parts = vec![gp.dense(
            &self.state_embed,
            graph::constant(&batch.next_obs, n, sp.obs_dim, device),
            Act::Relu,
        )];
        if let Some(l) = &self.action_embed {
            parts.push(gp.dense(
                l,
                graph::constant(&batch.actions, n, sp.action_dim, device),
                Act::Relu,
            ));
        }
        parts.push(gp.dense(
            &self.reward_embed,
            graph::constant(&batch.rewards, n, 1, device),
            Act::Relu,
        ));
        Tensor::cat(parts, 1)
    }

    /// Posterior parameters `[(T+1)*B, latent]` each (row `t * B + b`; `t = 0` is the
    /// prior) in burn, and the fused GRU's pending backward.
    fn encode_graph(
        &self,
        gp: &GraphParams,
        batch: &Batch,
        path: GruPath,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>, Option<Pending>) {
        let (steps, rows) = (batch.steps, batch.rows);
        let hd = self.spec.config.gru_hidden;
        let n = steps * rows;
        let gin = self.embed_graph(gp, batch, device);
        let zeros_h = vec![0.0f32; rows * hd];
        let (hs, pending) = match path {
            GruPath::Graph => {
                let reset = vec![0.0f32; n];
                let h0 = graph::constant(&zeros_h, rows, hd, device);
                (
                    gp.gru_sequence(&self.gru, gin, &reset, h0, steps, rows),
                    None,
                )
            }
            GruPath::Fused => {
                let gin_host = graph::to_vec(gin.clone().detach());
                let reset = vec![0.0f32; n];
                let (hs, tape) = gru_op::forward(
                    &self.params,
                    &self.gru,
                    &gin_host,
                    &reset,
                    &zeros_h,
                    steps,
                    rows,
                );
                let h_leaf = graph::constant(&hs, n, hd, device).require_grad();
                (h_leaf.clone(), Some(Pending { gin, h_leaf, tape }))
            }
        };
        let h_all = Tensor::cat(vec![graph::constant(&zeros_h, rows, hd, device), hs], 0);
        let mu = gp.dense(&self.mu, h_all.clone(), Act::None);
        let lv = gp.dense(&self.logvar, h_all, Act::None);
        (mu, lv, pending)
    }

    /// The posteriors after every prefix of each trial, recomputed by the training
    /// forward (burn embeddings + fused GRU): `(mu, logvar)`, each `[(T+1)*B*latent]`
    /// time-major (row `t * B + b`, `t = 0` the prior).
    pub fn posteriors(&self, trials: &[&TrialRecord]) -> (Vec<f32>, Vec<f32>) {
        let device = Device::flex().autodiff();
        let gp = GraphParams::new(&self.params, &device);
        let batch = self.batch(trials);
        let (mu, lv, _) = self.encode_graph(&gp, &batch, GruPath::Fused, &device);
        (graph::to_vec(mu.detach()), graph::to_vec(lv.detach()))
    }

    /// Count matrices `N1`, `N0` (`[(T+1)*B, cells]`): the weighted number of decodes of
    /// each term with a given head and reward +1 / not +1.
    fn decode_counts(&self, trials: &[&TrialRecord], draw: &ElboDraw) -> (Vec<f32>, Vec<f32>) {
        let (steps, rows) = (draw.steps, draw.trials);
        let (c, od) = (self.spec.num_cells, self.spec.obs_dim);
        let mut n1 = vec![0.0f32; (steps + 1) * rows * c];
        let mut n0 = vec![0.0f32; (steps + 1) * rows * c];
        for (b, tr) in trials.iter().enumerate() {
            let heads: Vec<usize> = (0..steps)
                .map(|tau| self.head_of(&tr.next_obs[tau * od..(tau + 1) * od]))
                .collect();
            for t in 0..=steps {
                let row = t * rows + b;
                for tau in 0..steps {
                    let w = draw.decode_counts[row * steps + tau];
                    if w == 0.0 {
                        continue;
                    }
                    let target = if tr.rewards[tau] == 1.0 {
                        &mut n1
                    } else {
                        &mut n0
                    };
                    target[row * c + heads[tau]] += w;
                }
            }
        }
        (n1, n0)
    }

    /// The loss and its gradient (layout of `self.params.data`) on a batch of
    /// equal-length trials; noise and sub-sampling drawn from `rng` (see [`ElboDraw`]).
    pub fn loss_and_grad(
        &self,
        trials: &[&TrialRecord],
        rng: &mut Rng,
        subsample_elbos: Option<usize>,
        subsample_decodes: Option<usize>,
    ) -> (VaeStats, Vec<f32>) {
        assert!(!trials.is_empty(), "empty VAE batch");
        let draw = ElboDraw::sample(
            trials[0].len(),
            trials.len(),
            self.spec.config.latent,
            rng,
            subsample_elbos,
            subsample_decodes,
        );
        self.loss_and_grad_with(trials, &draw, GruPath::Fused)
    }

    /// [`Self::loss_and_grad`] with given noise and sub-sampling and a chosen GRU path.
    pub fn loss_and_grad_with(
        &self,
        trials: &[&TrialRecord],
        draw: &ElboDraw,
        path: GruPath,
    ) -> (VaeStats, Vec<f32>) {
        self.chunk_loss_and_grad(trials, draw, path, trials.len())
    }

    /// The part of the loss (and gradient) of a batch of `batch_trials` trials that
    /// `trials` contribute: the loss is normalised by the whole batch, so the chunks of a
    /// batch add up to the batch's loss and gradient (data-parallel VAE updates).
    /// `VaeStats::reconstruction` and `kl` are per-trial means over this chunk.
    pub fn chunk_loss_and_grad(
        &self,
        trials: &[&TrialRecord],
        draw: &ElboDraw,
        path: GruPath,
        batch_trials: usize,
    ) -> (VaeStats, Vec<f32>) {
        let sp = &self.spec;
        let batch = self.batch(trials);
        let (steps, rows) = (batch.steps, batch.rows);
        assert_eq!(
            (draw.steps, draw.trials),
            (steps, rows),
            "draw does not fit the batch"
        );
        let terms = (steps + 1) * rows;
        let l = sp.config.latent;
        assert_eq!(draw.eps.len(), terms * l);
        if path == GruPath::Fused && !sp.config.decode_state {
            return self.chunk_loss_and_grad_host(trials, &batch, draw, batch_trials);
        }
        let device = Device::flex().autodiff();
        let gp = GraphParams::new(&self.params, &device);
        let (mu, lv, pending) = self.encode_graph(&gp, &batch, path, &device);

        // Reconstruction: one latent sample per ELBO term.
        let eps = graph::constant(&draw.eps, terms, l, &device);
        let m = mu.clone() + (lv.clone() * 0.5).exp() * eps;
        let pairs = (sp.config.reward_decoder == RewardDecoderKind::Mlp || sp.config.decode_state)
            .then(|| Pairs::of(draw));
        let recon = match sp.config.reward_decoder {
            RewardDecoderKind::Multihead => {
                let mut x = m.clone();
                for (i, layer) in self.decoder.iter().enumerate() {
                    x = gp.dense(layer, x, hidden_act(i, self.decoder.len()));
                }
                let c = sp.num_cells;
                let (n1, n0) = self.decode_counts(trials, draw);
                let n1 = graph::constant(&n1, terms, c, &device);
                let n0 = graph::constant(&n0, terms, c, &device);
                (n1 * activation::log_sigmoid(x.clone()) + n0 * activation::log_sigmoid(x.neg()))
                    .sum()
                    .neg()
            }
            RewardDecoderKind::Mlp => {
                let pairs = pairs.as_ref().expect("pairs");
                self.mlp_reward_recon(&gp, m.clone(), &batch, pairs, &device)
            }
        };
        let state_recon = sp.config.decode_state.then(|| {
            let pairs = pairs.as_ref().expect("pairs");
            self.state_recon(&gp, m, &batch, pairs, &device)
        });

        // KL to the previous posterior (N(0, I) before the prior) or to N(0, I).
        let zeros = graph::constant(&vec![0.0f32; rows * l], rows, l, &device);
        let (mu_p, lv_p) = if sp.config.kl_to_prior {
            let z = graph::constant(&vec![0.0f32; terms * l], terms, l, &device);
            (z.clone(), z)
        } else {
            (
                Tensor::cat(
                    vec![zeros.clone(), mu.clone().slice([0..steps * rows, 0..l])],
                    0,
                ),
                Tensor::cat(vec![zeros, lv.clone().slice([0..steps * rows, 0..l])], 0),
            )
        };
        let diff = mu - mu_p;
        let kl_el = (lv_p.clone() - lv.clone() - 1.0
            + (lv - lv_p.clone()).exp()
            + diff.clone() * diff * lv_p.neg().exp())
            * 0.5;
        let kl_terms = kl_el.sum_dim(1);
        let counts = graph::constant(&draw.elbo_counts, terms, 1, &device);
        let kl = (kl_terms * counts).sum();

        let inv_b = 1.0 / batch_trials as f32;
        let kl_norm = if sp.config.kl_sum_over_trials {
            1.0
        } else {
            inv_b
        };
        let mut loss = recon.clone() * (sp.config.reward_loss_coeff as f32 * inv_b)
            + kl.clone() * (sp.config.kl_weight as f32 * kl_norm);
        if let Some(sr) = &state_recon {
            loss = loss + sr.clone() * (sp.config.state_loss_coeff as f32 * inv_b);
        }
        let grads = loss.backward();
        let mut grad = vec![0.0f32; self.params.len()];
        gp.add_flat_grad(&grads, &mut grad);
        if let Some(p) = pending {
            self.finish_fused(&gp, p, &grads, &mut grad);
        }
        let stats = VaeStats {
            loss: scalar(loss.detach()),
            reconstruction: scalar(recon.detach()) / rows as f64,
            kl: scalar(kl.detach()) / rows as f64,
            state_reconstruction: state_recon.map_or(0.0, |t| scalar(t.detach()) / rows as f64),
        };
        (stats, grad)
    }

    /// [`Self::chunk_loss_and_grad`] on the host, for the fused path without the state
    /// decoder: embeddings and decoders by [`mlp_op`], the GRU by [`gru_op`], the KL and
    /// likelihood gradients written out by hand (tests compare it with the burn graph,
    /// the f64 reference and finite differences).
    fn chunk_loss_and_grad_host(
        &self,
        trials: &[&TrialRecord],
        batch: &Batch,
        draw: &ElboDraw,
        batch_trials: usize,
    ) -> (VaeStats, Vec<f32>) {
        let sp = &self.spec;
        let p = &self.params;
        let (steps, rows) = (batch.steps, batch.rows);
        let (n, terms, l, hd) = (
            steps * rows,
            (steps + 1) * rows,
            sp.config.latent,
            sp.config.gru_hidden,
        );
        let mut grad = vec![0.0f32; p.len()];
        let one = |d: &Dense| std::slice::from_ref(d).to_vec();
        let relu_layer =
            |d: &Dense, x: &[f32]| mlp_op::forward(p, &one(d), Act::Relu, Act::Relu, x, n);

        // Encoder: embeddings -> GRU -> (mu, logvar) of every prefix, the prior first.
        let mut parts = vec![(
            self.state_embed,
            relu_layer(&self.state_embed, &batch.next_obs),
        )];
        if let Some(a) = &self.action_embed {
            parts.push((*a, relu_layer(a, &batch.actions)));
        }
        parts.push((
            self.reward_embed,
            relu_layer(&self.reward_embed, &batch.rewards),
        ));
        let gi = sp.gru_input();
        let mut gin = Vec::with_capacity(n * gi);
        for i in 0..n {
            for (d, (e, _)) in &parts {
                let w = d.fan_out();
                gin.extend_from_slice(&e[i * w..(i + 1) * w]);
            }
        }
        let zeros = vec![0.0f32; n.max(rows) * hd];
        let (hs, gru_tape) = gru_op::forward(
            p,
            &self.gru,
            &gin,
            &zeros[..n],
            &zeros[..rows * hd],
            steps,
            rows,
        );
        let mut h_all = vec![0.0f32; terms * hd];
        h_all[rows * hd..].copy_from_slice(&hs);
        let dense_none = |d: &Dense| {
            let (y, t) = mlp_op::forward(p, &one(d), Act::None, Act::None, &h_all, terms);
            (y, t)
        };
        let (mu, mu_tape) = dense_none(&self.mu);
        let (lv, lv_tape) = dense_none(&self.logvar);
        let m: Vec<f32> = (0..terms * l)
            .map(|i| mu[i] + (lv[i] * 0.5).exp() * draw.eps[i])
            .collect();

        // Reconstruction and dLoss/dm.
        let inv_b = 1.0 / batch_trials as f32;
        let rc = sp.config.reward_loss_coeff as f32 * inv_b;
        let mut dm = vec![0.0f32; terms * l];
        let recon = match sp.config.reward_decoder {
            RewardDecoderKind::Multihead => {
                let (x, tape) = mlp_op::forward(p, &self.decoder, Act::Relu, Act::None, &m, terms);
                let (n1, n0) = self.decode_counts(trials, draw);
                let mut recon = 0.0f64;
                let mut dx = vec![0.0f32; x.len()];
                for (i, &v) in x.iter().enumerate() {
                    if n1[i] == 0.0 && n0[i] == 0.0 {
                        continue;
                    }
                    // log sigmoid(v) = min(v, 0) - ln(1 + e^-|v|); log sigmoid(-v) likewise.
                    let soft = host::exp(-v.abs()).ln_1p();
                    let (ls_pos, ls_neg) = (v.min(0.0) - soft, (-v).min(0.0) - soft);
                    recon -= (n1[i] * ls_pos + n0[i] * ls_neg) as f64;
                    let s = host::sigmoid(v);
                    dx[i] = rc * ((n1[i] + n0[i]) * s - n1[i]);
                }
                mlp_op::backward(p, &self.decoder, &tape, &dx, &mut grad, Some(&mut dm));
                recon
            }
            RewardDecoderKind::Mlp => {
                self.mlp_reward_recon_host(batch, draw, &m, rc, &mut dm, &mut grad)
            }
        };

        // KL of each term to the previous posterior (N(0, I) before the prior).
        let kw = sp.config.kl_weight as f32
            * if sp.config.kl_sum_over_trials {
                1.0
            } else {
                inv_b
            };
        let mut dmu = dm.clone();
        let mut dlv = vec![0.0f32; terms * l];
        let mut kl = 0.0f64;
        for r in 0..terms {
            let c = draw.elbo_counts[r];
            if c == 0.0 {
                continue;
            }
            let prev = (!sp.config.kl_to_prior && r >= rows).then(|| r - rows);
            let w = kw * c;
            let mut kl_r = 0.0f32;
            for j in 0..l {
                let (mu_p, lv_p) = prev.map_or((0.0, 0.0), |q| (mu[q * l + j], lv[q * l + j]));
                let (mu_j, lv_j) = (mu[r * l + j], lv[r * l + j]);
                let diff = mu_j - mu_p;
                let ratio = (lv_j - lv_p).exp();
                let inv_p = (-lv_p).exp();
                kl_r += 0.5 * (lv_p - lv_j - 1.0 + ratio + diff * diff * inv_p);
                dmu[r * l + j] += w * diff * inv_p;
                dlv[r * l + j] += w * 0.5 * (ratio - 1.0);
                if let Some(q) = prev {
                    dmu[q * l + j] -= w * diff * inv_p;
                    dlv[q * l + j] += w * 0.5 * (1.0 - ratio - diff * diff * inv_p);
                }
            }
            kl += (c * kl_r) as f64;
        }
        // Through the reparameterisation m = mu + exp(lv / 2) eps.
        for i in 0..terms * l {
            dlv[i] += dm[i] * draw.eps[i] * 0.5 * (lv[i] * 0.5).exp();
        }
        let mut dh_all = vec![0.0f32; terms * hd];
        let mut dh_lv = vec![0.0f32; terms * hd];
        mlp_op::backward(
            p,
            &one(&self.mu),
            &mu_tape,
            &dmu,
            &mut grad,
            Some(&mut dh_all),
        );
        mlp_op::backward(
            p,
            &one(&self.logvar),
            &lv_tape,
            &dlv,
            &mut grad,
            Some(&mut dh_lv),
        );
        dh_all.iter_mut().zip(&dh_lv).for_each(|(a, b)| *a += b);
        let mut dgin = vec![0.0f32; n * gi];
        gru_op::backward(
            p,
            &self.gru,
            &gru_tape,
            &dh_all[rows * hd..],
            &mut grad,
            &mut dgin,
        );
        let mut from = 0;
        for (d, (_, tape)) in &parts {
            let w = d.fan_out();
            let de: Vec<f32> = dgin
                .chunks_exact(gi)
                .flat_map(|r| r[from..from + w].iter().copied())
                .collect();
            mlp_op::backward(p, &one(d), tape, &de, &mut grad, None);
            from += w;
        }
        let loss = rc as f64 * recon + kw as f64 * kl;
        let stats = VaeStats {
            loss,
            reconstruction: recon / rows as f64,
            kl: kl / rows as f64,
            state_reconstruction: 0.0,
        };
        (stats, grad)
    }

    /// The MLP reward decoder's `sum_pairs w (r_hat - r)^2` on the host; adds `scale`
    /// times its gradient into `dm` (w.r.t. the latent samples) and `grad`.
    fn mlp_reward_recon_host(
        &self,
        batch: &Batch,
        draw: &ElboDraw,
        m: &[f32],
        scale: f32,
        dm: &mut [f32],
        grad: &mut [f32],
    ) -> f64 {
        let sp = &self.spec;
        let p = &self.params;
        let (n, l) = (batch.steps * batch.rows, sp.config.latent);
        let terms = m.len() / l;
        let pairs = Pairs::of(draw);
        let np = pairs.len();
        let one = |d: &Dense| vec![*d];
        let se = self.reward_state_embed.expect("MLP reward decoder");
        let relu_layer =
            |d: &Dense, x: &[f32]| mlp_op::forward(p, &one(d), Act::Relu, Act::Relu, x, n);
        let mut parts = vec![(se, relu_layer(&se, &batch.next_obs))];
        if let Some(ae) = &self.reward_action_embed {
            parts.push((*ae, relu_layer(ae, &batch.actions)));
        }
        if sp.config.reward_input_state {
            parts.push((se, relu_layer(&se, &batch.obs)));
        }
        let cw: usize = parts.iter().map(|(d, _)| d.fan_out()).sum();
        let mut ctx = Vec::with_capacity(n * cw);
        for i in 0..n {
            for (d, (e, _)) in &parts {
                let w = d.fan_out();
                ctx.extend_from_slice(&e[i * w..(i + 1) * w]);
            }
        }
        // First layer, linear in [m, ctx]: its halves once per term and once per decode.
        let first = &self.decoder[0];
        let (n_in, h1) = (first.fan_in(), first.fan_out());
        let w = p.get(first.w);
        let (w_m, w_ctx) = w.split_at(l * h1);
        let mut per_term = vec![0.0f32; terms * h1];
        matmul(
            &mut per_term,
            Mat::rows(m, terms, l),
            Mat::rows(w_m, l, h1),
            false,
        );
        let mut per_decode = Vec::with_capacity(n * h1);
        for _ in 0..n {
            per_decode.extend_from_slice(p.get(first.b));
        }
        matmul(
            &mut per_decode,
            Mat::rows(&ctx, n, cw),
            Mat::rows(w_ctx, n_in - l, h1),
            true,
        );
        let act0 = hidden_act(0, self.decoder.len());
        let mut x = Vec::with_capacity(np * h1);
        for (&t, &d) in pairs.term.iter().zip(&pairs.data) {
            let (t, d) = (t as usize, d as usize);
            for j in 0..h1 {
                x.push(act0.apply(per_term[t * h1 + j] + per_decode[d * h1 + j]));
            }
        }
        let rest = &self.decoder[1..];
        let (pred, tape) = if rest.is_empty() {
            (x.clone(), None)
        } else {
            let (y, t) = mlp_op::forward(p, rest, Act::Relu, Act::None, &x, np);
            (y, Some(t))
        };
        let mut recon = 0.0f64;
        let mut dpred = vec![0.0f32; np];
        for (i, &d) in pairs.data.iter().enumerate() {
            let err = pred[i] - batch.rewards[d as usize];
            recon += (pairs.weight[i] * err * err) as f64;
            dpred[i] = scale * 2.0 * pairs.weight[i] * err;
        }
        let mut dx = match &tape {
            Some(t) => {
                let mut dx = vec![0.0f32; np * h1];
                mlp_op::backward(p, rest, t, &dpred, grad, Some(&mut dx));
                dx
            }
            None => dpred,
        };
        if act0 == Act::Relu {
            dx.iter_mut().zip(&x).for_each(|(g, &v)| {
                if v <= 0.0 {
                    *g = 0.0
                }
            });
        }
        let mut d_term = vec![0.0f32; terms * h1];
        let mut d_decode = vec![0.0f32; n * h1];
        for (i, (&t, &d)) in pairs.term.iter().zip(&pairs.data).enumerate() {
            let (t, d) = (t as usize, d as usize);
            let g = &dx[i * h1..(i + 1) * h1];
            d_term[t * h1..(t + 1) * h1]
                .iter_mut()
                .zip(g)
                .for_each(|(a, b)| *a += b);
            d_decode[d * h1..(d + 1) * h1]
                .iter_mut()
                .zip(g)
                .for_each(|(a, b)| *a += b);
        }
        let gw = &mut grad[first.w.range()];
        let (gw_m, gw_ctx) = gw.split_at_mut(l * h1);
        mm_at_b_acc(m, &d_term, gw_m, terms, l, h1);
        mm_at_b_acc(&ctx, &d_decode, gw_ctx, n, cw, h1);
        let gb = &mut grad[first.b.range()];
        for row in d_decode.chunks_exact(h1) {
            gb.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
        mm_a_bt_acc(&d_term, w_m, dm, terms, h1, l);
        let mut dctx = vec![0.0f32; n * cw];
        mm_a_bt_acc(&d_decode, w_ctx, &mut dctx, n, h1, cw);
        let mut from = 0;
        for (d, (_, t)) in &parts {
            let wd = d.fan_out();
            let de: Vec<f32> = dctx
                .chunks_exact(cw)
                .flat_map(|r| r[from..from + wd].iter().copied())
                .collect();
            mlp_op::backward(p, &one(d), t, &de, grad, None);
            from += wd;
        }
        recon
    }

    /// A decoder MLP evaluated on every (term, decode) pair: `m` is `[terms, latent]`,
    /// `ctx` the per-decode part of the first layer's input `[T*B, n_in - latent]`.
    /// The first layer is linear in the concatenation `[m, ctx]`, so its two halves are
    /// computed once per term and once per decode, and only their pairwise sums are
    /// materialised (the full ELBO has `(T+1) * T` pairs per trial).
    fn pair_mlp(
        &self,
        gp: &GraphParams,
        layers: &[Dense],
        m: Tensor<2>,
        ctx: Tensor<2>,
        pairs: &Pairs,
        device: &Device,
    ) -> Tensor<2> {
        let l = self.spec.config.latent;
        let first = &layers[0];
        let (n_in, h1) = (first.fan_in(), first.fan_out());
        let w = gp.get(first.w);
        let per_term = m.matmul(w.clone().slice([0..l, 0..h1]));
        let per_decode = ctx.matmul(w.slice([l..n_in, 0..h1])) + gp.get(first.b);
        let x = per_term.select(0, int_tensor(&pairs.term, device))
            + per_decode.select(0, int_tensor(&pairs.data, device));
        let mut x = graph::apply(x, hidden_act(0, layers.len()));
        for (i, layer) in layers.iter().enumerate().skip(1) {
            x = gp.dense(layer, x, hidden_act(i, layers.len()));
        }
        x
    }

    /// `sum_pairs w (r_hat - r)^2` of the MLP reward decoder (the reference's
    /// deterministic reward loss: squared error, summed over ELBO terms and decodes).
    fn mlp_reward_recon(
        &self,
        gp: &GraphParams,
        m: Tensor<2>,
        batch: &Batch,
        pairs: &Pairs,
        device: &Device,
    ) -> Tensor<1> {
        let sp = &self.spec;
        let n = batch.steps * batch.rows;
        let se = self
            .reward_state_embed
            .as_ref()
            .expect("MLP reward decoder");
        let mut ctx = vec![gp.dense(
            se,
            graph::constant(&batch.next_obs, n, sp.obs_dim, device),
            Act::Relu,
        )];
        if let Some(ae) = &self.reward_action_embed {
            ctx.push(gp.dense(
                ae,
                graph::constant(&batch.actions, n, sp.action_dim, device),
                Act::Relu,
            ));
        }
        if sp.config.reward_input_state {
            ctx.push(gp.dense(
                se,
                graph::constant(&batch.obs, n, sp.obs_dim, device),
                Act::Relu,
            ));
        }
        let pred = self.pair_mlp(gp, &self.decoder, m, Tensor::cat(ctx, 1), pairs, device);
        let p = pairs.len();
        let target = graph::constant(&pairs.gather_data(&batch.rewards, 1), p, 1, device);
        let w = graph::constant(&pairs.weight, p, 1, device);
        let err = pred - target;
        (err.clone() * err * w).sum()
    }

    /// `sum_pairs w mean_d (s_hat'_d - s'_d)^2` of the state decoder (the reference's
    /// deterministic state loss).
    fn state_recon(
        &self,
        gp: &GraphParams,
        m: Tensor<2>,
        batch: &Batch,
        pairs: &Pairs,
        device: &Device,
    ) -> Tensor<1> {
        let sp = &self.spec;
        let (n, od) = (batch.steps * batch.rows, sp.obs_dim);
        let se = self.transition_state_embed.as_ref().expect("state decoder");
        let mut ctx = vec![gp.dense(se, graph::constant(&batch.obs, n, od, device), Act::Relu)];
        if let Some(ae) = &self.transition_action_embed {
            ctx.push(gp.dense(
                ae,
                graph::constant(&batch.actions, n, sp.action_dim, device),
                Act::Relu,
            ));
        }
        let pred = self.pair_mlp(
            gp,
            &self.state_decoder,
            m,
            Tensor::cat(ctx, 1),
            pairs,
            device,
        );
        let p = pairs.len();
        let target = graph::constant(&pairs.gather_data(&batch.next_obs, od), p, od, device);
        let w = graph::constant(&pairs.weight, p, 1, device);
        let err = pred - target;
        (err.clone() * err * w).sum() * (1.0 / od as f32)
    }

    fn finish_fused(&self, gp: &GraphParams, p: Pending, grads: &Gradients, grad: &mut [f32]) {
        let dh = graph::to_vec(
            p.h_leaf
                .grad(grads)
                .expect("loss depends on the hidden states"),
        );
        let [n, gi] = p.gin.dims();
        let mut dgin = vec![0.0f32; n * gi];
        gru_op::backward(&self.params, &self.gru, &p.tape, &dh, grad, &mut dgin);
        let device = p.gin.device();
        let surrogate = (p.gin * graph::constant(&dgin, n, gi, &device)).sum();
        let g2 = surrogate.backward();
        gp.add_flat_grad(&g2, grad);
    }

    /// Host GRU input of `rows` transitions into `state.embed`.
    /// The GRU inputs `[e(s'), e(a)?, e(r)]` of every row. The state and reward
    /// embeddings are one call each for all rows (the host kernel is row-stable, so the
    /// same bits as row by row; per-row calls of these 2- and 1-input layers were ~15%
    /// of a VariBAD planning step), then interleaved.
    fn embed_host(&self, state: &mut VaribadState, tr: &Transition<'_>, rows: usize) {
        let sp = &self.spec;
        let gi = sp.gru_input();
        let (se, ae, re) = (
            sp.config.state_embed,
            sp.config.action_embed,
            sp.config.reward_embed,
        );
        let p = &self.params;
        let part = &mut state.embed_part;
        host::dense(
            p,
            &self.state_embed,
            &tr.next_obs[..rows * sp.obs_dim],
            rows,
            Act::Relu,
            &mut part[..rows * se],
        );
        for r in 0..rows {
            state.embed[r * gi..r * gi + se].copy_from_slice(&part[r * se..(r + 1) * se]);
        }
        if let Some(l) = &self.action_embed {
            let aw = self.action_width();
            for r in 0..rows {
                self.action_input(&tr.action[r * aw..(r + 1) * aw], &mut state.action_in);
                let o = r * gi + se;
                host::dense(
                    p,
                    l,
                    &state.action_in,
                    1,
                    Act::Relu,
                    &mut state.embed[o..o + ae],
                );
            }
        }
        host::dense(
            p,
            &self.reward_embed,
            &tr.reward[..rows],
            rows,
            Act::Relu,
            &mut part[..rows * re],
        );
        for r in 0..rows {
            let o = r * gi + se + ae;
            state.embed[o..o + re].copy_from_slice(&part[r * re..(r + 1) * re]);
        }
    }
}

/// ReLU hidden layers of the given widths, then a linear output layer; layer names
/// `{name}.{i}` and `{name}.out`.
fn mlp(
    p: &mut Params,
    name: &str,
    n_in: usize,
    hidden: &[usize],
    n_out: usize,
    rng: &mut Rng,
) -> Vec<Dense> {
    let mut layers = Vec::new();
    let mut n_in = n_in;
    for (i, &h) in hidden.iter().enumerate() {
        layers.push(Dense::new(
            p,
            &format!("{name}.{i}"),
            n_in,
            h,
            2f32.sqrt(),
            rng,
        ));
        n_in = h;
    }
    layers.push(Dense::new(p, &format!("{name}.out"), n_in, n_out, 1.0, rng));
    layers
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data().try_into_vec::<f32>().expect("f32")[0] as f64
}

impl Belief for VaribadModel {
    type State = VaribadState;

    fn params_mut(&mut self) -> Option<&mut Params> {
        Some(&mut self.params)
    }

    fn feature_dim(&self) -> usize {
        2 * self.spec.config.latent
    }

    fn init(&self, rows: usize) -> VaribadState {
        let mut s = VaribadState {
            h: vec![0.0; rows * self.spec.config.gru_hidden],
            ..Default::default()
        };
        self.ensure_scratch(&mut s, rows);
        s
    }

    fn reset(&self, state: &mut VaribadState, mask: &[bool]) {
        let hd = self.spec.config.gru_hidden;
        for (r, &m) in mask.iter().enumerate() {
            if m {
                state.h[r * hd..(r + 1) * hd]
                    .iter_mut()
                    .for_each(|v| *v = 0.0);
            }
        }
    }

    fn update(&self, state: &mut VaribadState, tr: &Transition<'_>) {
        let rows = state.rows(self.spec.config.gru_hidden);
        self.ensure_scratch(state, rows);
        self.embed_host(state, tr, rows);
        let gi = self.spec.gru_input();
        host::gru_step(
            &self.params,
            &self.gru,
            &state.embed[..rows * gi],
            &mut state.h,
            rows,
            &mut state.gru,
        );
    }

    fn features(&self, state: &VaribadState, out: &mut [f32]) {
        let (hd, l) = (self.spec.config.gru_hidden, self.spec.config.latent);
        let rows = state.rows(hd);
        // All rows in one product per head (not one per row: the GEMM call's fixed cost
        // dominated rollouts and planning); row-stable, so results are unchanged.
        let h = &state.h[..rows * hd];
        let p = &self.params;
        host::dense_strided(p, &self.mu, h, rows, Act::None, out, 2 * l);
        host::dense_strided(p, &self.logvar, h, rows, Act::None, &mut out[l..], 2 * l);
    }

    fn gather(&self, from: &VaribadState, src: &[usize], into: &mut VaribadState) {
        let hd = self.spec.config.gru_hidden;
        into.h.resize(src.len() * hd, 0.0);
        for (i, &s) in src.iter().enumerate() {
            into.h[i * hd..(i + 1) * hd].copy_from_slice(&from.h[s * hd..(s + 1) * hd]);
        }
    }
}

impl VaribadModel {
    /// The reward decoder of [`PlanningBelief::sample_rewards`] for decoders too wide for
    /// `nn::lanes`: hidden layers over the whole batch of nested samples `s.x`, then
    /// only the output head each sample's row needs, into `s.values`.
    fn decode_layer_by_layer(
        &self,
        s: &mut VaribadPredictScratch,
        batch: usize,
        nested: usize,
        n_in: usize,
        width: usize,
    ) {
        let (last, hidden) = self.decoder.split_last().expect("a decoder output layer");
        let widest = hidden.iter().map(|l| l.fan_out()).max().unwrap_or(0);
        s.a.resize(batch * widest.max(1), 0.0);
        s.b.resize(batch * widest.max(1), 0.0);
        let mut cur_is_a = false;
        for (li, layer) in hidden.iter().enumerate() {
            let (fi, fo) = (layer.fan_in(), layer.fan_out());
            let (src, dst) = match (li, cur_is_a) {
                (0, _) => (&s.x[..batch * fi], &mut s.a[..batch * fo]),
                (_, true) => (&s.a[..batch * fi], &mut s.b[..batch * fo]),
                (_, false) => (&s.b[..batch * fi], &mut s.a[..batch * fo]),
            };
            host::dense(&self.params, layer, src, batch, Act::Relu, dst);
            cur_is_a = li == 0 || !cur_is_a;
        }
        let h: &[f32] = if hidden.is_empty() {
            &s.x[..batch * n_in]
        } else if cur_is_a {
            &s.a[..batch * width]
        } else {
            &s.b[..batch * width]
        };
        let b = self.params.get(last.b);
        for (sample, (hj, value)) in h.chunks_exact(width).zip(&mut s.values).enumerate() {
            let head = s.heads[sample / nested];
            let wh = &s.head_w[head * width..(head + 1) * width];
            let mut out = b[head];
            for (&hi, &wi) in hj.iter().zip(wh) {
                out += hi * wi;
            }
            *value = out;
        }
    }

    /// Sizes the scratch buffers for `rows` rows (allocates only when they grow).
    fn ensure_scratch(&self, s: &mut VaribadState, rows: usize) {
        let need_embed = rows * self.spec.gru_input();
        if s.embed.len() < need_embed {
            s.embed.resize(need_embed, 0.0);
        }
        if s.action_in.len() != self.spec.action_dim {
            s.action_in.resize(self.spec.action_dim, 0.0);
        }
        let c = &self.spec.config;
        let need_part = rows * c.state_embed.max(c.reward_embed);
        if s.embed_part.len() < need_part {
            s.embed_part.resize(need_part, 0.0);
        }
        let need_gru = 2 * rows * 3 * self.spec.config.gru_hidden;
        if s.gru.len() < need_gru {
            s.gru.resize(need_gru, 0.0);
        }
    }
}

/// Buffers of VariBAD's reward predictive (see [`PlanningBelief`]).
#[derive(Clone, Debug, Default)]
pub struct VaribadPredictScratch {
    /// A row's posterior standard deviations.
    std: Vec<f32>,
    /// The decoder output layer's weights head by head (`n_out x width`), so the one
    /// head a query needs reads contiguous weights.
    head_w: Vec<f32>,

    /// Decoder input `[m, e(s'), e(a)?, e(s)?]` (multi-head: `m` only).
    x: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    action_in: Vec<f32>,
    /// Per query row: the decoder head, the nested sample whose reward is reported,
    /// the uniform draw of the Bernoulli reward.
    heads: Vec<usize>,
    picks: Vec<usize>,
    draws: Vec<f32>,
    /// One row's standard normals of its nested samples.
    noise: Vec<f32>,
    /// Each nested sample's decoder output at its row's head.
    values: Vec<f32>,
}

impl PlanningBelief for VaribadModel {
    type Scratch = VaribadPredictScratch;

    fn predictive_scratch(&self) -> VaribadPredictScratch {
        let widest = self
            .decoder
            .iter()
            .map(|l| l.fan_in().max(l.fan_out()))
            .max()
            .unwrap_or(1);
        VaribadPredictScratch {
            std: Vec::new(),
            head_w: Vec::new(),
            x: vec![0.0; widest],
            a: vec![0.0; widest],
            b: vec![0.0; widest],
            action_in: vec![0.0; self.spec.action_dim],
            heads: Vec::new(),
            picks: Vec::new(),
            draws: Vec::new(),
            noise: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Nested samples `m_j = mu + exp(logvar / 2) eps` from the row's posterior. The
    /// multi-head decoder gives `P(r = +1 | m_j)` at the head of `s'` (rewards
    /// GridNavi's [`GOAL_REWARD`] / [`STEP_REWARD`]); the MLP decoder is deterministic,
    /// task j's reward is its prediction.
    fn sample_rewards(
        &self,
        state: &VaribadState,
        tr: &RewardQuery<'_>,
        nested: usize,
        rngs: &mut [Rng],
        rows_per_rng: usize,
        sampled: &mut [f32],
        mean: &mut [f32],
        s: &mut VaribadPredictScratch,
    ) {
        let (hd, l, od) = (
            self.spec.config.gru_hidden,
            self.spec.config.latent,
            self.spec.obs_dim,
        );
        let rows = state.rows(hd);
        let aw = tr.action.len() / rows;
        // The posterior's mean and log-variance are the belief's features `[mu |
        // logvar]`, which the caller computed from this state already.
        debug_assert_eq!(tr.features.len(), rows * 2 * l);
        s.std.resize(l, 0.0);
        let multihead = self.spec.config.reward_decoder == RewardDecoderKind::Multihead;
        let (last, hidden) = self.decoder.split_last().expect("a decoder output layer");
        // All rows' nested samples go through the decoder as one batch. The random
        // draws happen in the order of a row-by-row loop (pick, noise, then the reward
        // draw), and the kernels are row-stable, so results equal that loop's.
        let n_in = self.decoder[0].fan_in();
        let batch = rows * nested;
        s.x.resize(batch * n_in, 0.0);
        s.heads.resize(rows, 0);
        s.picks.resize(rows, 0);
        s.draws.resize(rows, 0.0);
        s.noise.resize(nested * l, 0.0);
        for r in 0..rows {
            let rng = &mut rngs[r / rows_per_rng];
            let base = r * nested * n_in;
            s.heads[r] = if multihead {
                self.head_of(&tr.next_obs[r * od..(r + 1) * od])
            } else {
                // The observation and action parts of the input are the same for every
                // nested sample: computed once into the first, copied to the others.
                let se = self.spec.config.state_embed;
                let emb = self
                    .reward_state_embed
                    .as_ref()
                    .expect("MLP decoder embedding");
                let mut o = base + l;
                host::dense(
                    &self.params,
                    emb,
                    &tr.next_obs[r * od..(r + 1) * od],
                    1,
                    Act::Relu,
                    &mut s.x[o..o + se],
                );
                o += se;
                if let Some(ae) = &self.reward_action_embed {
                    self.action_input(&tr.action[r * aw..(r + 1) * aw], &mut s.action_in);
                    let w = ae.fan_out();
                    host::dense(
                        &self.params,
                        ae,
                        &s.action_in,
                        1,
                        Act::Relu,
                        &mut s.x[o..o + w],
                    );
                    o += w;
                }
                if self.spec.config.reward_input_state {
                    host::dense(
                        &self.params,
                        emb,
                        &tr.obs[r * od..(r + 1) * od],
                        1,
                        Act::Relu,
                        &mut s.x[o..o + se],
                    );
                }
                for j in 1..nested {
                    s.x.copy_within(base + l..base + n_in, base + j * n_in + l);
                }
                0
            };
            s.picks[r] = rng.below(nested as u64) as usize;
            let (mu, logvar) = tr.features[r * 2 * l..(r + 1) * 2 * l].split_at(l);
            // The row's standard deviations once, not once per nested sample.
            for (sd, &lv) in s.std.iter_mut().zip(logvar) {
                *sd = (0.5 * lv).exp();
            }
            let std = &s.std[..];
            // The row's nested-sample noise as one vectorised block.
            rng.fill_normals(&mut s.noise[..nested * l]);
            for (j, eps) in s.noise[..nested * l].chunks_exact(l).enumerate() {
                let x = &mut s.x[base + j * n_in..base + j * n_in + l];
                for (((xi, &m), &sd), &e) in x.iter_mut().zip(mu).zip(std).zip(eps) {
                    *xi = m + sd * e;
                }
            }
            if multihead {
                s.draws[r] = rng.uniform_f32();
            }
        }
        // The output layer's weights head by head, so one head reads contiguous weights.
        let (last_w, last_b) = (self.params.get(last.w), self.params.get(last.b));
        let n_out = last.fan_out();
        let width = hidden.last().map_or(n_in, |l| l.fan_out());
        s.head_w.resize(n_out * width, 0.0);
        for (i, wi) in last_w.chunks_exact(n_out).enumerate() {
            for (o, &v) in wi.iter().enumerate() {
                s.head_w[o * width + i] = v;
            }
        }
        // Each nested sample's decoder output at its row's head: the narrow decoders
        // (VariBAD's 5 -> 32 -> 32) with samples as vector lanes, bit-identical to the
        // layer-by-layer path below (`nn::lanes`).
        s.values.resize(batch, 0.0);
        if lanes::fits(hidden) {
            let head = lanes::Head {
                w: &s.head_w,
                b: last_b,
                per_group: &s.heads[..rows],
            };
            lanes::relu_stack_head(
                &self.params,
                hidden,
                &s.x,
                batch,
                head,
                nested,
                &mut s.values,
            );
        } else {
            self.decode_layer_by_layer(s, batch, nested, n_in, width);
        }
        for r in 0..rows {
            let (mut sum, mut picked) = (0.0f32, 0.0f32);
            for (j, &out) in s.values[r * nested..(r + 1) * nested].iter().enumerate() {
                let value = if multihead { host::sigmoid(out) } else { out };
                sum += value;
                if j == s.picks[r] {
                    picked = value;
                }
            }
            let avg = sum / nested as f32;
            if multihead {
                sampled[r] = if s.draws[r] < avg {
                    GOAL_REWARD
                } else {
                    STEP_REWARD
                };
                mean[r] = avg * GOAL_REWARD + (1.0 - avg) * STEP_REWARD;
            } else {
                sampled[r] = picked;
                mean[r] = avg;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_spec() -> VaribadSpec {
        VaribadSpec {
            obs_dim: 2,
            action_dim: 5,
            num_cells: 25,
            config: VaribadConfig {
                state_embed: 3,
                action_embed: 2,
                reward_embed: 2,
                gru_hidden: 6,
                latent: 2,
                decoder_hidden: vec![4],
                kl_weight: 0.1,
                kl_to_prior: false,
                kl_sum_over_trials: false,
                ..VaribadConfig::default()
            },
            ..VaribadSpec::gridnavi()
        }
    }

    #[test]
    fn variational_initial_prior_is_standard_normal() {
        let m = VaribadModel::new(tiny_spec(), &mut Rng::new(1));
        let (mu, lv) = m.prior();
        assert!(mu.iter().chain(&lv).all(|&v| v == 0.0));
        assert_eq!(m.feature_dim(), 4);
    }

    #[test]
    fn variational_subsampling_counts_add_up() {
        let d = ElboDraw::sample(6, 3, 2, &mut Rng::new(2), Some(4), Some(5));
        assert_eq!(d.elbo_counts.iter().sum::<f32>(), 12.0);
        assert_eq!(d.decode_counts.iter().sum::<f32>(), 60.0);
        let d = ElboDraw::sample(6, 3, 2, &mut Rng::new(2), Some(4), None);
        assert_eq!(d.decode_counts.iter().sum::<f32>(), 4.0 * 3.0 * 6.0);
        let d = ElboDraw::sample(6, 3, 2, &mut Rng::new(2), None, None);
        assert_eq!(d, ElboDraw::full(6, 3, d.eps.clone()));
    }

    #[test]
    fn variational_heads_follow_gridnavi_cells() {
        let m = VaribadModel::new(VaribadSpec::gridnavi(), &mut Rng::new(1));
        for x in 0..5 {
            for y in 0..5 {
                assert_eq!(
                    m.head_of(&[x as f32, y as f32]),
                    crate::env::gridnavi::cell_index(x, y)
                );
            }
        }
    }
}
