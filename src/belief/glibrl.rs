//! The GLiBRL belief: per-task generalised linear models over learnable neural basis
//! functions, with exact Matrix-Normal-Inverse-Wishart inference (docs/methods.md#glibrl).
//!
//! # Model
//! Up to two GLM heads, each `Y = C W + E`, rows of `E ~ N(0, Sigma)`, with the
//! conjugate prior `Sigma ~ IW(Psi0, nu0)`, `W | Sigma ~ MN(M0, Lambda0^-1, Sigma)`:
//! - reward head: `C_R = phi_R(s, a, s')`, `Y_R = r` (`m = 1`, Normal-Inverse-Gamma);
//! - transition head (optional): `C_T = phi_T(s, a)`, `Y_T = (s' - s)[dims]` for a
//!   configured subset of state dimensions (size reduction for large state spaces).
//!
//! `phi` is a ReLU MLP whose last layer is linear with `d - 1` outputs, followed by a
//! constant feature 1 (the GLM's intercept). Discrete actions enter one-hot, continuous
//! ones raw. The prior of a head is learnable: `M0` (`d x m`), `log diag Lambda0` (`d`),
//! `log diag Psi0` (`m`) and `nu0 = (m - 1) + exp(nu0_raw)`; all live in the model's
//! [`Params`] next to the basis weights, so one optimiser trains everything.
//!
//! # Training
//! The loss of a batch of trials is, per head, the mean over trials (and over the
//! sampled prefixes of each trial) of `-log p(Y_{1..n} | C_{1..n}) / n`, summed over
//! heads. [`crate::belief::glm`] computes it and its exact gradient with respect to every
//! row of `C` and every prior parameter in f64; `G = dLoss/dC` is back-propagated
//! through the basis networks on the host ([`crate::nn::mlp_op`], GEMM).
//!
//! Noise floor: rewards and transitions that are deterministic given the task make the
//! marginal likelihood unbounded as the noise scale goes to zero (every repeated
//! observation is then predicted exactly). After each update the prior is projected
//! onto `Psi0_ii / nu0 >= noise_floor^2` (prior-mean noise variance at least the floor)
//! and `nu0 <= NU0_MAX`, which bounds the objective.
//!
//! # Acting
//! Each row (environment or particle) carries the exact posterior of each head,
//! advanced by one rank-1 update per transition (O(d^2 + d m)). The policy reads, per
//! head, `vec(M_N)` (`d m`), `log diag(Lambda_N^-1)` (`d`, how uncertain each basis
//! direction still is) and `log diag(Psi_N) - log max(nu_N - m - 1, 1)` (`m`; the log
//! of `E[Sigma | data]`'s diagonal once it exists, `nu_N > m + 1`).

use super::glm::{self, GlmError, GlmStream, MniwPrior, PriorGrad};
use super::trials::TrialRecord;
use super::{Belief, PlanningBelief, RewardQuery, Transition};
use crate::config::BadValue;
use crate::env::probes::RewardProbes;
use crate::error::UserError;
use crate::nn::host::{self, Act};
use crate::nn::lanes;
use crate::nn::mlp_op;
use crate::nn::params::{Dense, Params, Slot};
use crate::par;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Upper bound of the learnable prior degrees of freedom (see the module doc).
pub const NU0_MAX: f64 = 1e4;

/// Chunks of trials the basis networks are trained in (fixed, so results do not depend
/// on the thread count; two, for the two cores the presets use).
pub const BASIS_CHUNKS: usize = 2;

/// What a GLM head models.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeadKind {
    /// `r` from `phi_R(s, a, s')`.
    Reward,
    /// `(s' - s)[dims]` from `phi_T(s, a)`.
    Transition { dims: Vec<usize> },
}

/// A GLiBRL belief's shapes (from the env) and its `[glibrl]` settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlibrlSpec {
    pub obs_dim: usize,
    /// Discrete: number of actions (fed one-hot); continuous: the action's dimension.
    pub action_dim: usize,
    pub discrete_actions: bool,
    /// Bases, heads and prior initialisation (the training settings are the learner's).
    pub config: GlibrlConfig,
    /// The env's reward probes (read by the policy with `policy_input = "probes"`).
    #[serde(default)]
    pub probes: Option<RewardProbes>,
}

/// `[glibrl]`: the GLiBRL belief (basis networks, learnable MNIW priors) and its
/// marginal-likelihood updates (see [`crate::belief::glibrl`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GlibrlConfig {
    /// Basis functions per GLM head (`d`), the constant feature included.
    pub features: usize,
    /// Hidden ReLU layers of the basis networks.
    pub basis_hidden: Vec<usize>,
    /// Model rewards `r ~ phi_R(s, a, s')' W_R`.
    pub reward_head: bool,
    /// State dimensions whose change `s' - s` the transition head models (empty: no
    /// transition head; deterministic task-independent dynamics carry no task
    /// information).
    pub transition_dims: Vec<usize>,
    /// Initial prior precision `Lambda0 = init_lambda0 * I`.
    pub init_lambda0: f64,
    /// Initial prior scale `Psi0 = init_psi0 * I`.
    pub init_psi0: f64,
    /// Initial prior degrees of freedom `nu0` (> m - 1 for every head).
    pub init_nu0: f64,
    /// Smallest prior-mean noise standard deviation the prior may learn (0 = none).
    pub noise_floor: f64,
    pub lr: f64,
    /// Marginal-likelihood updates per policy update.
    pub num_updates: usize,
    /// Trials per update batch.
    pub batch_trials: usize,
    /// Capacity of the buffer of recent trials.
    pub buffer_trials: usize,
    /// Random prefixes `log p(Y_{1..n})` per trial added to the full-trial term.
    pub prefixes: usize,
    /// What the policy reads of each head's posterior: `"diagonal"` (the paper's:
    /// vec M_N, log diag Lambda_N^-1, log E[sigma^2]) or `"correlations"` (adds the
    /// d(d-1)/2 correlations of Lambda_N^-1, which with its diagonal determine the
    /// full posterior covariance of W, not only its marginal variances) or `"probes"`
    /// (adds the reward head's posterior predictive at the env's reward probes, see
    /// [`PolicyInput::Probes`]).
    pub policy_input: PolicyInput,
    /// What data a row's posterior is built from while acting: `"trial"` (every
    /// transition since the trial began, the paper's BAMDP belief) or `"episode"`
    /// (reset to the prior at every episode end; an ablation, see [`PosteriorSpan`]).
    pub posterior_span: PosteriorSpan,
    /// Weight of the trial's earlier episodes against the current one, applied at every
    /// episode end (`[0, 1]`; our extension): the acting posterior becomes that of the
    /// prior and the data of `k` episodes ago weighted by `episode_discount^k`
    /// ([`GlmStream::discount_row`]). 1 is the paper's belief, 0 the same as
    /// `posterior_span = "episode"`; between them a long trial's old episodes fade
    /// instead of vanishing. Acting only, as `posterior_span`.
    pub episode_discount: f64,
}

/// The stretch of experience an acting posterior conditions on (`glibrl.posterior_span`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PosteriorSpan {
    /// The whole trial: the belief survives episode ends (the BAMDP of the paper).
    #[default]
    Trial,
    /// The current episode: the posterior returns to the prior at every episode end, so
    /// every episode starts as the trial's first did. The learner still fits the prior
    /// and bases to whole trials (all of a trial's data share one task), so only acting
    /// changes; it tests whether a posterior over many episodes helps or hurts a policy.
    Episode,
}

/// The posterior summary the policy reads (`glibrl.policy_input`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyInput {
    #[default]
    Diagonal,
    Correlations,
    /// The diagonal summary plus, for each of the env's reward probes `x_j`
    /// ([`crate::env::probes`]), the reward head's predictive mean `c_j' M_N` and the log
    /// of its weight uncertainty `c_j' Lambda_N^-1 c_j` (`c_j = phi_R(x_j)`): what the
    /// belief now expects at every place a goal may be, and how sure it is.
    Probes,
}

impl Default for GlibrlConfig {
    fn default() -> Self {
        GlibrlConfig {
            features: 16,
            basis_hidden: vec![64, 64],
            reward_head: true,
            transition_dims: Vec::new(),
            init_lambda0: 0.01,
            init_psi0: 0.01,
            init_nu0: 3.0,
            noise_floor: 0.01,
            lr: 1e-3,
            num_updates: 3,
            batch_trials: 32,
            buffer_trials: 10_000,
            prefixes: 1,
            policy_input: PolicyInput::Diagonal,
            posterior_span: PosteriorSpan::Trial,
            episode_discount: 1.0,
        }
    }
}

impl GlibrlConfig {
    /// Checks every constraint of the section alone, reporting the first violation
    /// through `bad` (the env-dependent ones are checked where the model is built).
    pub fn check(&self, bad: &BadValue) -> Result<(), UserError> {
        let g = self;
        for (key, value) in [
            ("glibrl.num_updates", g.num_updates),
            ("glibrl.batch_trials", g.batch_trials),
            ("glibrl.buffer_trials", g.buffer_trials),
        ] {
            if value == 0 {
                return bad(key, &value, "an integer > 0");
            }
        }
        if g.features < 2 {
            return bad(
                "glibrl.features",
                &g.features,
                "an integer >= 2 (the constant feature plus at least one learned one)",
            );
        }
        if let Some(width) = g.basis_hidden.iter().find(|&&w| w == 0) {
            return bad(
                "glibrl.basis_hidden",
                &format!("{:?}", g.basis_hidden),
                &format!("a list of integers > 0 (found {width})"),
            );
        }
        if !g.reward_head && g.transition_dims.is_empty() {
            return bad(
                "glibrl.reward_head",
                &g.reward_head,
                "true, or a non-empty glibrl.transition_dims (the belief needs at least one head)",
            );
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = g.transition_dims.iter().find(|&&j| !seen.insert(j)) {
            return bad(
                "glibrl.transition_dims",
                &format!("{:?}", g.transition_dims),
                &format!("distinct state dimensions ({dup} repeats)"),
            );
        }
        for (key, value) in [
            ("glibrl.init_lambda0", g.init_lambda0),
            ("glibrl.init_psi0", g.init_psi0),
            ("glibrl.lr", g.lr),
        ] {
            if !(value > 0.0 && value.is_finite()) {
                return bad(key, &value, "a finite number > 0");
            }
        }
        let m_max = g.transition_dims.len().max(usize::from(g.reward_head));
        if !(g.init_nu0.is_finite() && g.init_nu0 > m_max as f64 - 1.0) {
            return bad(
                "glibrl.init_nu0",
                &g.init_nu0,
                &format!(
                    "a finite number > m - 1 = {} (m = the widest head's targets)",
                    m_max as f64 - 1.0
                ),
            );
        }
        if !(0.0..=1.0).contains(&g.episode_discount) {
            return bad(
                "glibrl.episode_discount",
                &g.episode_discount,
                "a number in [0, 1] (1: the whole trial at full weight)",
            );
        }
        if g.posterior_span == PosteriorSpan::Episode && g.episode_discount != 1.0 {
            return bad(
                "glibrl.episode_discount",
                &g.episode_discount,
                "1 with posterior_span = \"episode\" (that span already forgets every earlier episode; use one of the two)",
            );
        }
        if !(g.noise_floor >= 0.0 && g.noise_floor.is_finite()) {
            return bad("glibrl.noise_floor", &g.noise_floor, "a finite number >= 0");
        }
        if g.batch_trials > g.buffer_trials {
            return bad(
                "glibrl.batch_trials",
                &g.batch_trials,
                &format!("at most glibrl.buffer_trials = {}", g.buffer_trials),
            );
        }
        Ok(())
    }
}

impl GlibrlSpec {
    fn heads(&self) -> Vec<HeadKind> {
        let mut h = Vec::new();
        if self.config.reward_head {
            h.push(HeadKind::Reward);
        }
        if !self.config.transition_dims.is_empty() {
            h.push(HeadKind::Transition {
                dims: self.config.transition_dims.clone(),
            });
        }
        h
    }
}

/// One GLM head: its basis network and its prior's parameter slots.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlmHead {
    pub kind: HeadKind,
    /// Input width of the basis network.
    pub input: usize,
    /// Hidden layers (ReLU) then the linear output layer (`d - 1` outputs).
    pub net: Vec<Dense>,
    /// Targets per row.
    pub m: usize,
    pub m0: Slot,
    pub lambda0_log_diag: Slot,
    pub psi0_log_diag: Slot,
    pub nu0_raw: Slot,
}

impl GlmHead {
    /// The head's MNIW prior from the current parameters.
    pub fn prior(&self, p: &Params, d: usize) -> Result<MniwPrior, GlmError> {
        let f = |s: Slot| p.get(s).iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let nu0 = (self.m as f64 - 1.0) + (p.get(self.nu0_raw)[0] as f64).exp();
        MniwPrior::new(
            d,
            self.m,
            f(self.m0),
            f(self.lambda0_log_diag),
            f(self.psi0_log_diag),
            nu0,
        )
    }

    /// Width of this head's policy features, given the number of reward probes.
    pub fn feature_dim(&self, d: usize, input: PolicyInput, probes: usize) -> usize {
        let extra = match input {
            PolicyInput::Diagonal => 0,
            PolicyInput::Correlations => d * (d - 1) / 2,
            PolicyInput::Probes if self.kind == HeadKind::Reward => 2 * probes,
            PolicyInput::Probes => 0,
        };
        d * self.m + d + self.m + extra
    }
}

/// Basis networks and learnable priors of all heads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlibrlModel {
    pub spec: GlibrlSpec,
    pub params: Params,
    pub heads: Vec<GlmHead>,
}

/// Per-row streaming posteriors of every head plus scratch (not serialised).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GlibrlState {
    pub rows: usize,
    pub heads: Vec<GlmStream>,
    #[serde(skip)]
    scratch: Scratch,
}

thread_local! {
    /// Buffers of the reward probes' basis forward in [`Belief::features`], which only
    /// borrows the state: per thread, so acting allocates nothing after the first call.
    static PROBE_SCRATCH: std::cell::RefCell<(Scratch, Vec<f64>)> = Default::default();
}

#[derive(Clone, Debug, Default)]
struct Scratch {
    x: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f64>,
    y: Vec<f64>,
}

/// Loss statistics of one training batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GlibrlStats {
    /// The optimised loss: mean over trials and prefixes of `-log p / n`, summed over
    /// heads.
    pub loss: f64,
    /// Posterior-mean noise standard deviation of the reward head's prior,
    /// `sqrt(Psi0 / (nu0 + 1))` (NaN without a reward head).
    pub reward_noise: f64,
}

impl GlibrlModel {
    /// Builds the model with fresh basis weights drawn from `rng` and the configured
    /// initial prior.
    pub fn new(spec: GlibrlSpec, rng: &mut Rng) -> Self {
        let d = spec.config.features;
        assert!(d >= 2, "GLiBRL needs at least one learned feature");
        let mut p = Params::new();
        let mut heads = Vec::new();
        for kind in spec.heads() {
            let (tag, input, m) = match &kind {
                HeadKind::Reward => ("r", 2 * spec.obs_dim + spec.action_dim, 1),
                HeadKind::Transition { dims } => ("t", spec.obs_dim + spec.action_dim, dims.len()),
            };
            let mut net = Vec::new();
            let mut n_in = input;
            for (i, &h) in spec.config.basis_hidden.iter().enumerate() {
                net.push(Dense::new(
                    &mut p,
                    &format!("glm.{tag}.basis.{i}"),
                    n_in,
                    h,
                    2f32.sqrt(),
                    rng,
                ));
                n_in = h;
            }
            net.push(Dense::new(
                &mut p,
                &format!("glm.{tag}.basis.out"),
                n_in,
                d - 1,
                1.0,
                rng,
            ));
            let m0 = p.tensor(&format!("glm.{tag}.m0"), d, m, vec![0.0; d * m]);
            let lambda0_log_diag = p.tensor(
                &format!("glm.{tag}.lambda0_log_diag"),
                1,
                d,
                vec![spec.config.init_lambda0.ln() as f32; d],
            );
            let psi0_log_diag = p.tensor(
                &format!("glm.{tag}.psi0_log_diag"),
                1,
                m,
                vec![spec.config.init_psi0.ln() as f32; m],
            );
            let nu0_raw = p.tensor(
                &format!("glm.{tag}.nu0_raw"),
                1,
                1,
                vec![(spec.config.init_nu0 - (m as f64 - 1.0)).ln() as f32],
            );
            heads.push(GlmHead {
                kind,
                input,
                net,
                m,
                m0,
                lambda0_log_diag,
                psi0_log_diag,
                nu0_raw,
            });
        }
        GlibrlModel {
            spec,
            params: p,
            heads,
        }
    }

    /// Writes the basis-network input of one transition for `head` into `x`.
    fn head_input(&self, head: &GlmHead, s: &[f32], a: &[f32], s2: &[f32], x: &mut [f32]) {
        let od = self.spec.obs_dim;
        x[..od].copy_from_slice(s);
        let ad = self.spec.action_dim;
        let xa = &mut x[od..od + ad];
        if self.spec.discrete_actions {
            xa.iter_mut().for_each(|v| *v = 0.0);
            let i = a[0] as usize;
            assert!(i < ad, "action {i} out of range");
            xa[i] = 1.0;
        } else {
            xa.copy_from_slice(a);
        }
        if head.kind == HeadKind::Reward {
            x[od + ad..].copy_from_slice(s2);
        }
    }

    /// Writes the targets of one transition for `head` into `y`.
    fn head_target<T: glm::GlmScalar>(head: &GlmHead, s: &[f32], r: f32, s2: &[f32], y: &mut [T]) {
        match &head.kind {
            HeadKind::Reward => y[0] = T::from_f64(r as f64),
            HeadKind::Transition { dims } => {
                for (yi, &j) in y.iter_mut().zip(dims) {
                    *yi = T::from_f64(s2[j] as f64 - s[j] as f64);
                }
            }
        }
    }

    /// Host forward of a head's basis for the `rows` inputs in `scratch.x`, into
    /// `scratch.a` (`rows * (d - 1)` learned features); buffers sized by
    /// [`Self::ensure_scratch`].
    fn basis_host(&self, head: &GlmHead, rows: usize, sc: &mut Scratch) {
        let n = head.net.len();
        if rows >= lanes::MLP_MIN_ROWS && lanes::mlp_fits(&head.net) {
            // The same bits as layer by layer (below), without the GEMM's packing.
            let (n_in, n_out) = (head.net[0].fan_in(), head.net[n - 1].fan_out());
            let (x, out) = (&sc.x[..rows * n_in], &mut sc.a[..rows * n_out]);
            lanes::mlp(&self.params, &head.net, Act::Relu, x, rows, out);
            return;
        }
        for (i, l) in head.net.iter().enumerate() {
            let act = if i + 1 == n { Act::None } else { Act::Relu };
            let (src, dst) = match i {
                0 => (&sc.x, &mut sc.a),
                _ if i % 2 == 1 => (&sc.a, &mut sc.b),
                _ => (&sc.b, &mut sc.a),
            };
            host::dense(
                &self.params,
                l,
                &src[..rows * l.fan_in()],
                rows,
                act,
                &mut dst[..rows * l.fan_out()],
            );
        }
        if n.is_multiple_of(2) {
            std::mem::swap(&mut sc.a, &mut sc.b);
        }
    }

    /// The design matrix `C` (`T x d`, constant feature last) and targets `Y` (`T x m`)
    /// of head `h` on one trial, computed on the host like the acting path.
    pub fn design(&self, h: usize, trial: &TrialRecord) -> (Vec<f64>, Vec<f64>) {
        let head = &self.heads[h];
        let (d, od, steps) = (self.spec.config.features, self.spec.obs_dim, trial.len());
        let aw = trial.actions.len() / steps.max(1);
        let mut sc = Scratch::default();
        self.ensure_scratch(&mut sc, steps);
        for t in 0..steps {
            let x = &mut sc.x[t * head.input..(t + 1) * head.input];
            self.head_input(
                head,
                &trial.obs[t * od..(t + 1) * od],
                &trial.actions[t * aw..(t + 1) * aw],
                &trial.next_obs[t * od..(t + 1) * od],
                x,
            );
        }
        self.basis_host(head, steps, &mut sc);
        let mut c = vec![1.0f64; steps * d];
        let mut y = vec![0.0f64; steps * head.m];
        for t in 0..steps {
            for (ci, &v) in c[t * d..t * d + d - 1]
                .iter_mut()
                .zip(&sc.a[t * (d - 1)..(t + 1) * (d - 1)])
            {
                *ci = v as f64;
            }
            Self::head_target(
                head,
                &trial.obs[t * od..(t + 1) * od],
                trial.rewards[t],
                &trial.next_obs[t * od..(t + 1) * od],
                &mut y[t * head.m..(t + 1) * head.m],
            );
        }
        (c, y)
    }

    /// The loss of a batch of equal-length trials and its gradient (layout of
    /// `self.params.data`). `prefixes` lists, per trial, `per_trial` prefix lengths
    /// (see [`glm::trials_loss_and_grad`]).
    pub fn loss_and_grad(
        &self,
        trials: &[&TrialRecord],
        prefixes: &[usize],
        per_trial: usize,
    ) -> Result<(GlibrlStats, Vec<f32>), GlmError> {
        self.loss_and_grad_on(trials, prefixes, per_trial, 1)
    }

    /// [`Self::loss_and_grad`] with the basis networks run on up to `threads` threads.
    /// They run in [`BASIS_CHUNKS`] fixed chunks of trials whose weight gradients are
    /// summed in chunk order, so the result does not depend on `threads`.
    pub fn loss_and_grad_on(
        &self,
        trials: &[&TrialRecord],
        prefixes: &[usize],
        per_trial: usize,
        threads: usize,
    ) -> Result<(GlibrlStats, Vec<f32>), GlmError> {
        assert!(!trials.is_empty(), "empty GLiBRL batch");
        let steps = trials[0].len();
        let b = trials.len();
        let n = b * steps;
        let d = self.spec.config.features;
        let (od, aw) = (
            self.spec.obs_dim,
            if self.spec.discrete_actions {
                1
            } else {
                self.spec.action_dim
            },
        );
        let mut grad = vec![0.0f32; self.params.len()];
        let mut stats = GlibrlStats {
            reward_noise: f64::NAN,
            ..Default::default()
        };
        for head in &self.heads {
            // Inputs and targets, trial-major (row `b * T + t`).
            let mut x = vec![0.0f32; n * head.input];
            let mut y = vec![0.0f32; n * head.m];
            for (bi, tr) in trials.iter().enumerate() {
                assert_eq!(
                    tr.len(),
                    steps,
                    "GLiBRL batches need trials of equal length"
                );
                for t in 0..steps {
                    let row = bi * steps + t;
                    let (s, s2) = (
                        &tr.obs[t * od..(t + 1) * od],
                        &tr.next_obs[t * od..(t + 1) * od],
                    );
                    self.head_input(
                        head,
                        s,
                        &tr.actions[t * aw..(t + 1) * aw],
                        s2,
                        &mut x[row * head.input..(row + 1) * head.input],
                    );
                    Self::head_target(
                        head,
                        s,
                        tr.rewards[t],
                        s2,
                        &mut y[row * head.m..(row + 1) * head.m],
                    );
                }
            }
            // The basis network on the host (GEMM forward, exact backward below), in
            // fixed chunks of whole trials (rows are independent in the forward pass).
            let chunks: Vec<_> = par::ranges(b, BASIS_CHUNKS)
                .into_iter()
                .map(|r| r.start * steps..r.end * steps)
                .collect();
            let (xi, net) = (head.input, &head.net);
            let forwards = par::map(threads, chunks.len(), |k| {
                let rows = chunks[k].clone();
                let x = &x[rows.start * xi..rows.end * xi];
                mlp_op::forward(&self.params, net, Act::Relu, Act::None, x, rows.len())
            });
            let mut c = vec![1.0f32; n * d];
            let learned = forwards.iter().flat_map(|(out, _)| out.chunks_exact(d - 1));
            for (row, f) in learned.enumerate() {
                c[row * d..row * d + d - 1].copy_from_slice(f);
            }
            let prior = head.prior(&self.params, d)?;
            let mut gc = vec![0.0f32; n * d];
            let mut pg = PriorGrad::zeros(d, head.m);
            let loss = glm::trials_loss_and_grad(
                &prior, &c, &y, b, steps, prefixes, per_trial, &mut gc, &mut pg,
            )?;
            stats.loss += loss;
            if head.kind == HeadKind::Reward {
                stats.reward_noise = (prior.psi0_log_diag[0].exp() / (prior.nu0 + 1.0)).sqrt();
            }
            // Basis weights: back-propagate G = dLoss/dC through the basis network.
            let g: Vec<f32> = gc
                .chunks_exact(d)
                .flat_map(|r| r[..d - 1].iter().copied())
                .collect();
            let chunk_grads = par::map(threads, chunks.len(), |k| {
                let rows = chunks[k].clone();
                let mut gk = vec![0.0f32; grad.len()];
                let gr = &g[rows.start * (d - 1)..rows.end * (d - 1)];
                mlp_op::backward(&self.params, net, &forwards[k].1, gr, &mut gk, None);
                gk
            });
            for gk in &chunk_grads {
                grad.iter_mut().zip(gk).for_each(|(a, v)| *a += v);
            }
            // Prior parameters: the host gradient, chained through the parametrisation.
            let add = |grad: &mut [f32], slot: Slot, v: &[f64]| {
                for (o, &gi) in grad[slot.range()].iter_mut().zip(v) {
                    *o += gi as f32;
                }
            };
            add(&mut grad, head.m0, &pg.m0);
            add(&mut grad, head.lambda0_log_diag, &pg.lambda0_log_diag);
            add(&mut grad, head.psi0_log_diag, &pg.psi0_log_diag);
            let nu_excess = prior.nu0 - (head.m as f64 - 1.0);
            add(&mut grad, head.nu0_raw, &[pg.nu0 * nu_excess]);
        }
        Ok((stats, grad))
    }

    /// Projects the priors onto the bounded region of the module doc (after an
    /// optimiser step).
    pub fn project_prior(&mut self) {
        let floor = self.spec.config.noise_floor;
        for head in &self.heads {
            let m1 = head.m as f64 - 1.0;
            let raw = &mut self.params.data[head.nu0_raw.range()][0];
            let max_raw = ((NU0_MAX - m1).ln()) as f32;
            if *raw > max_raw {
                *raw = max_raw;
            }
            let nu0 = m1 + (*raw as f64).exp();
            if floor > 0.0 {
                let min_log = (floor * floor * nu0).ln() as f32;
                for v in &mut self.params.data[head.psi0_log_diag.range()] {
                    *v = v.max(min_log);
                }
            }
        }
    }

    /// [`Belief::update`], with the reward head's learned features of these
    /// transitions given (`rows * (d - 1)`) instead of recomputed.
    fn update_with(
        &self,
        state: &mut GlibrlState,
        tr: &Transition<'_>,
        reward_basis: Option<&[f32]>,
    ) {
        let rows = state.rows;
        let d = self.spec.config.features;
        let od = self.spec.obs_dim;
        let aw = tr.action.len() / rows;
        self.ensure_scratch(&mut state.scratch, rows);
        for (head, stream) in self.heads.iter().zip(state.heads.iter_mut()) {
            let sc = &mut state.scratch;
            let given = reward_basis.filter(|_| head.kind == HeadKind::Reward);
            let w = head.input;
            for r in 0..rows {
                if given.is_some() {
                    break;
                }
                let x = &mut sc.x[r * w..(r + 1) * w];
                self.head_input(
                    head,
                    &tr.obs[r * od..(r + 1) * od],
                    &tr.action[r * aw..(r + 1) * aw],
                    &tr.next_obs[r * od..(r + 1) * od],
                    x,
                );
            }
            if given.is_none() {
                self.basis_host(head, rows, sc);
            }
            for r in 0..rows {
                let f = match given {
                    Some(b) => &b[r * (d - 1)..(r + 1) * (d - 1)],
                    None => &sc.a[r * (d - 1)..(r + 1) * (d - 1)],
                };
                for (ci, &v) in sc.c[..d - 1].iter_mut().zip(f) {
                    *ci = v as f64;
                }
                sc.c[d - 1] = 1.0;
                Self::head_target(
                    head,
                    &tr.obs[r * od..(r + 1) * od],
                    tr.reward[r],
                    &tr.next_obs[r * od..(r + 1) * od],
                    &mut sc.y[..head.m],
                );
                stream.update_row(r, &sc.c[..d], &sc.y[..head.m]);
            }
        }
        let gamma = self.spec.config.episode_discount;
        if self.spec.config.posterior_span == PosteriorSpan::Episode {
            self.reset(state, tr.episode_end);
        } else if gamma < 1.0 {
            for (r, _) in tr.episode_end.iter().enumerate().filter(|(_, &e)| e) {
                for stream in &mut state.heads {
                    stream
                        .discount_row(r, gamma)
                        .expect("a posterior precision stays positive definite");
                }
            }
        }
    }

    /// [`Belief::features`] with the reward probes' design `probe_c` (`probes x d`,
    /// empty unless the policy reads the probes).
    fn features_with(&self, state: &GlibrlState, probe_c: &[f64], out: &mut [f32]) {
        let d = self.spec.config.features;
        let fd = self.feature_dim();
        for r in 0..state.rows {
            let mut o = &mut out[r * fd..(r + 1) * fd];
            for (head, stream) in self.heads.iter().zip(&state.heads) {
                let m = head.m;
                let (mean, rest) = o.split_at_mut(d * m);
                for (v, &x) in mean.iter_mut().zip(stream.mean_row(r)) {
                    *v = x as f32;
                }
                let (prec, rest) = rest.split_at_mut(d);
                let p = stream.p_row(r);
                for (i, v) in prec.iter_mut().enumerate() {
                    *v = p[i * d + i].max(1e-300).ln() as f32;
                }
                let (noise, rest) = rest.split_at_mut(m);
                let psi = stream.psi_row(r);
                let denom = (stream.nu_row(r) - m as f64 - 1.0).max(1.0).ln();
                for (i, v) in noise.iter_mut().enumerate() {
                    *v = (psi[i * m + i].max(1e-300).ln() - denom) as f32;
                }
                let rest = match self.spec.config.policy_input {
                    PolicyInput::Diagonal => rest,
                    PolicyInput::Probes if head.kind != HeadKind::Reward => rest,
                    PolicyInput::Probes => {
                        let (probe_out, rest) = rest.split_at_mut(2 * probe_c.len() / d);
                        let mut predicted = [0.0];
                        for (c, o) in probe_c.chunks_exact(d).zip(probe_out.chunks_exact_mut(2)) {
                            let spread = stream.predictive_row(r, c, &mut predicted);
                            o[0] = predicted[0] as f32;
                            o[1] = spread.max(1e-300).ln() as f32;
                        }
                        rest
                    }
                    PolicyInput::Correlations => {
                        let (corr, rest) = rest.split_at_mut(d * (d - 1) / 2);
                        let mut k = 0;
                        for i in 0..d {
                            for j in i + 1..d {
                                let scale = (p[i * d + i] * p[j * d + j]).max(1e-300).sqrt();
                                corr[k] = (p[i * d + j] / scale) as f32;
                                k += 1;
                            }
                        }
                        rest
                    }
                };
                o = rest;
            }
        }
    }

    /// The reward head's design rows `phi_R(x_j)` (constant feature last) at the env's
    /// reward probes, with the current basis weights, into `c` (`probes x d`).
    fn probe_design(&self, sc: &mut Scratch, c: &mut Vec<f64>) {
        let d = self.spec.config.features;
        let (Some(probes), Some(head)) = (
            self.spec.probes.as_ref(),
            self.heads.iter().find(|h| h.kind == HeadKind::Reward),
        ) else {
            c.clear();
            return;
        };
        let (n, od) = (probes.count, self.spec.obs_dim);
        let aw = probes.actions.len() / n;
        self.ensure_scratch(sc, n);
        for j in 0..n {
            self.head_input(
                head,
                &probes.obs[j * od..(j + 1) * od],
                &probes.actions[j * aw..(j + 1) * aw],
                &probes.next_obs[j * od..(j + 1) * od],
                &mut sc.x[j * head.input..(j + 1) * head.input],
            );
        }
        self.basis_host(head, n, sc);
        c.clear();
        for f in sc.a[..n * (d - 1)].chunks_exact(d - 1) {
            c.extend(f.iter().map(|&v| v as f64));
            c.push(1.0);
        }
    }

    fn ensure_scratch(&self, sc: &mut Scratch, rows: usize) {
        let widest = self
            .heads
            .iter()
            .flat_map(|h| std::iter::once(h.input).chain(h.net.iter().map(|l| l.fan_out())))
            .max()
            .unwrap_or(0);
        for v in [&mut sc.x, &mut sc.a, &mut sc.b] {
            if v.len() < rows * widest {
                v.resize(rows * widest, 0.0);
            }
        }
        let d = self.spec.config.features;
        if sc.c.len() < d {
            sc.c.resize(d, 0.0);
        }
        let mmax = self.heads.iter().map(|h| h.m).max().unwrap_or(1);
        if sc.y.len() < mmax {
            sc.y.resize(mmax, 0.0);
        }
    }

    fn priors(&self) -> Vec<MniwPrior> {
        self.heads
            .iter()
            .map(|h| {
                h.prior(&self.params, self.spec.config.features)
                    .expect("GLiBRL prior parameters stay valid (projected after every update)")
            })
            .collect()
    }
}

impl Belief for GlibrlModel {
    type State = GlibrlState;

    fn params_mut(&mut self) -> Option<&mut Params> {
        Some(&mut self.params)
    }

    fn feature_dim(&self) -> usize {
        let probes = self.spec.probes.as_ref().map_or(0, |p| p.count);
        self.heads
            .iter()
            .map(|h| {
                h.feature_dim(
                    self.spec.config.features,
                    self.spec.config.policy_input,
                    probes,
                )
            })
            .sum()
    }

    fn init(&self, rows: usize) -> GlibrlState {
        let heads = self
            .priors()
            .iter()
            .map(|p| GlmStream::new(p, rows).expect("a validated prior"))
            .collect();
        let mut s = GlibrlState {
            rows,
            heads,
            scratch: Scratch::default(),
        };
        self.ensure_scratch(&mut s.scratch, rows);
        s
    }

    fn reset(&self, state: &mut GlibrlState, mask: &[bool]) {
        if !mask.iter().any(|&m| m) {
            return;
        }
        for (stream, prior) in state.heads.iter_mut().zip(self.priors()) {
            stream
                .reset_rows(&prior, mask)
                .expect("a validated prior of the stream's shape");
        }
    }

    fn update(&self, state: &mut GlibrlState, tr: &Transition<'_>) {
        self.update_with(state, tr, None)
    }

    fn features(&self, state: &GlibrlState, out: &mut [f32]) {
        PROBE_SCRATCH.with_borrow_mut(|(sc, probe_c)| {
            if self.spec.config.policy_input == PolicyInput::Probes {
                self.probe_design(sc, probe_c);
            }
            self.features_with(state, probe_c, out)
        })
    }
    fn gather(&self, from: &GlibrlState, src: &[usize], into: &mut GlibrlState) {
        into.rows = src.len();
        if into.heads.len() != from.heads.len() {
            into.heads = from.heads.clone();
        }
        for (f, i) in from.heads.iter().zip(into.heads.iter_mut()) {
            f.gather(src, i);
        }
        self.ensure_scratch(&mut into.scratch, src.len());
    }
    fn gather_in_place(&self, state: &mut GlibrlState, src: &[usize]) -> bool {
        for stream in &mut state.heads {
            stream.gather_in_place(src);
        }
        true
    }
}

/// Per trial, `extra` prefix lengths uniform in `1..T` followed by the full length `T`
/// (the layout [`GlibrlModel::loss_and_grad`] expects with `per_trial = extra + 1`).
pub fn sample_prefixes(trials: usize, steps: usize, extra: usize, rng: &mut Rng) -> Vec<usize> {
    let mut v = Vec::with_capacity(trials * (extra + 1));
    for _ in 0..trials {
        for _ in 0..extra {
            v.push(1 + rng.below(steps.max(2) as u64 - 1) as usize);
        }
        v.push(steps);
    }
    v
}

/// Buffers of [`GlibrlModel`]'s reward predictive (see [`PlanningBelief`]).
#[derive(Clone, Debug, Default)]
pub struct GlibrlPredictScratch {
    sc: Scratch,
    f: Vec<f64>,
    /// A row's standard normals: the gammas' first proposals, the nested weights',
    /// the reward noise.
    z: Vec<f32>,
}

impl PlanningBelief for GlibrlModel {
    type Scratch = GlibrlPredictScratch;

    fn predictive_scratch(&self) -> GlibrlPredictScratch {
        GlibrlPredictScratch::default()
    }

    /// Reuses the reward head's features computed by `sample_rewards`.
    fn update_sampled(
        &self,
        state: &mut GlibrlState,
        tr: &Transition<'_>,
        ps: &mut GlibrlPredictScratch,
    ) {
        let n = state.rows * (self.spec.config.features - 1);
        self.update_with(state, tr, Some(&ps.sc.a[..n]))
    }

    /// Nested task samples are exact posterior draws. Only the reward head's weights
    /// along the query's features matter, so each draw is `sigma^2 ~ IG(nu_N / 2,
    /// Psi_N / 2)` then `c'W ~ N(c'M_N, c'Lambda_N^{-1}c sigma^2)`: the marginal of a
    /// full MNIW draw of `(W, Sigma)` along `c`, in O(1) per draw after the O(d^2)
    /// predictive. The reward of task j is `N(c'W_j, sigma_j^2)`.
    fn sample_rewards(
        &self,
        state: &GlibrlState,
        tr: &RewardQuery<'_>,
        nested: usize,
        rngs: &mut [Rng],
        rows_per_rng: usize,
        sampled: &mut [f32],
        mean: &mut [f32],
        ps: &mut GlibrlPredictScratch,
    ) {
        let hi = self
            .heads
            .iter()
            .position(|h| h.kind == HeadKind::Reward)
            .expect("planning with GLiBRL needs a reward head");
        let head = &self.heads[hi];
        let stream = &state.heads[hi];
        let rows = state.rows;
        let (d, od) = (self.spec.config.features, self.spec.obs_dim);
        let aw = tr.action.len() / rows;
        self.ensure_scratch(&mut ps.sc, rows);
        if ps.f.len() < nested {
            ps.f.resize(nested, 0.0);
        }
        ps.z.resize(2 * nested + 1, 0.0);
        let w = head.input;
        for r in 0..rows {
            let x = &mut ps.sc.x[r * w..(r + 1) * w];
            self.head_input(
                head,
                &tr.obs[r * od..(r + 1) * od],
                &tr.action[r * aw..(r + 1) * aw],
                &tr.next_obs[r * od..(r + 1) * od],
                x,
            );
        }
        self.basis_host(head, rows, &mut ps.sc);
        let mut mu = [0.0f64];
        for r in 0..rows {
            let sc = &mut ps.sc;
            for (ci, &v) in sc.c[..d - 1]
                .iter_mut()
                .zip(&sc.a[r * (d - 1)..(r + 1) * (d - 1)])
            {
                *ci = v as f64;
            }
            sc.c[d - 1] = 1.0;
            let q = stream.predictive_row(r, &sc.c[..d], &mut mu);
            let (psi, nu) = (stream.psi_row(r)[0], stream.nu_row(r));
            let rng = &mut rngs[r / rows_per_rng];
            let mut sum = 0.0;
            let mut pick_sigma2 = 0.0;
            let pick = rng.below(nested as u64) as usize;
            // The row's normals as one vectorised block (the gammas' rare rejections
            // draw further ones from the stream).
            rng.fill_normals(&mut ps.z);
            let (z_gamma, z_weight) = ps.z.split_at(nested);
            for (j, f) in ps.f[..nested].iter_mut().enumerate() {
                let sigma2 = 0.5 * psi / glm::gamma_from(rng, 0.5 * nu, z_gamma[j] as f64);
                *f = mu[0] + (q * sigma2).sqrt() * z_weight[j] as f64;
                sum += *f;
                if j == pick {
                    pick_sigma2 = sigma2;
                }
            }
            sampled[r] = (ps.f[pick] + pick_sigma2.sqrt() * z_weight[nested] as f64) as f32;
            mean[r] = (sum / nested as f64) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(discrete: bool) -> GlibrlSpec {
        GlibrlSpec {
            obs_dim: 2,
            action_dim: if discrete { 5 } else { 2 },
            discrete_actions: discrete,
            config: GlibrlConfig {
                basis_hidden: vec![8],
                features: 6,
                reward_head: true,
                transition_dims: vec![0, 1],
                init_lambda0: 1.0,
                init_psi0: 1.0,
                init_nu0: 3.0,
                noise_floor: 0.01,
                ..GlibrlConfig::default()
            },
            probes: None,
        }
    }

    #[test]
    fn glibrl_initial_prior_is_the_configured_one() {
        let m = GlibrlModel::new(spec(true), &mut Rng::new(1));
        assert_eq!(m.heads.len(), 2);
        for h in &m.heads {
            let p = h.prior(&m.params, 6).unwrap();
            assert!((p.nu0 - 3.0).abs() < 1e-6);
        }
        assert_eq!(m.feature_dim(), (6 + 6 + 1) + (12 + 6 + 2));
        let mut s = spec(true);
        s.config.policy_input = PolicyInput::Correlations;
        let m = GlibrlModel::new(s, &mut Rng::new(1));
        assert_eq!(m.feature_dim(), (6 + 6 + 1) + (12 + 6 + 2) + 2 * 15);
        // Probes widen the reward head only: a mean and a log spread per probe.
        let mut s = spec(true);
        s.config.policy_input = PolicyInput::Probes;
        s.probes = Some(RewardProbes {
            count: 3,
            obs: vec![0.0; 6],
            actions: vec![0.0, 1.0, 2.0],
            next_obs: vec![1.0; 6],
        });
        let m = GlibrlModel::new(s, &mut Rng::new(1));
        assert_eq!(m.feature_dim(), (6 + 6 + 1 + 2 * 3) + (12 + 6 + 2));
    }

    /// Feeds row-wise random transitions (2 rows, continuous actions) to `state`,
    /// with `ends` marking episode ends.
    fn feed(m: &GlibrlModel, state: &mut GlibrlState, rng: &mut Rng, ends: &[bool]) {
        let mut x = vec![0.0f32; 2 * (2 + 2 + 2) + 2];
        rng.fill_normals(&mut x);
        let (obs, rest) = x.split_at(4);
        let (action, rest) = rest.split_at(4);
        let (next_obs, reward) = rest.split_at(4);
        m.update(
            state,
            &Transition {
                obs,
                action,
                reward,
                next_obs,
                episode_end: ends,
            },
        );
    }

    #[test]
    fn glibrl_episode_span_starts_every_episode_from_the_prior() {
        let mut s = spec(false);
        s.config.posterior_span = PosteriorSpan::Episode;
        let episode = GlibrlModel::new(s, &mut Rng::new(3));
        let trial = GlibrlModel::new(spec(false), &mut Rng::new(3));
        let fd = episode.feature_dim();
        let features = |m: &GlibrlModel, st: &GlibrlState| {
            let mut f = vec![0.0f32; 2 * fd];
            m.features(st, &mut f);
            f
        };
        let (mut a, mut b) = (episode.init(2), trial.init(2));
        let prior = features(&episode, &a);
        let (mut ra, mut rb) = (Rng::new(9), Rng::new(9));
        for _ in 0..3 {
            feed(&episode, &mut a, &mut ra, &[false, false]);
            feed(&trial, &mut b, &mut rb, &[false, false]);
        }
        // Within an episode the two spans are the same posterior.
        assert_eq!(features(&episode, &a), features(&trial, &b));
        assert_ne!(features(&episode, &a), prior);
        // Row 0's episode ends: it alone is back at the prior.
        feed(&episode, &mut a, &mut ra, &[true, false]);
        feed(&trial, &mut b, &mut rb, &[true, false]);
        let (fa, fb) = (features(&episode, &a), features(&trial, &b));
        assert_eq!(fa[..fd], prior[..fd]);
        assert_eq!(fa[fd..], fb[fd..]);
        assert_ne!(fb[..fd], prior[..fd]);
        // The next step conditions on that step alone: as a fresh posterior fed it.
        let mut fresh = episode.init(2);
        let mut rf = ra.clone();
        feed(&episode, &mut a, &mut ra, &[false, false]);
        feed(&episode, &mut fresh, &mut rf, &[false, false]);
        assert_eq!(
            features(&episode, &a)[..fd],
            features(&episode, &fresh)[..fd]
        );
    }

    #[test]
    fn glibrl_episode_discount_spans_trial_to_episode() {
        let model = |span, gamma| {
            let mut s = spec(false);
            s.config.posterior_span = span;
            s.config.episode_discount = gamma;
            GlibrlModel::new(s, &mut Rng::new(3))
        };
        let models = [
            model(PosteriorSpan::Trial, 1.0),
            model(PosteriorSpan::Trial, 0.5),
            model(PosteriorSpan::Trial, 0.0),
            model(PosteriorSpan::Episode, 1.0),
        ];
        let fd = models[0].feature_dim();
        let after = |ends: &[&[bool]]| -> Vec<Vec<f32>> {
            models
                .iter()
                .map(|m| {
                    let mut st = m.init(2);
                    let mut rng = Rng::new(9);
                    for e in ends {
                        feed(m, &mut st, &mut rng, e);
                    }
                    let mut f = vec![0.0f32; 2 * fd];
                    m.features(&st, &mut f);
                    f
                })
                .collect()
        };
        let (no, end) = (&[false, false][..], &[true, false][..]);
        // Within an episode the discount changes nothing.
        let f = after(&[no, no, no]);
        assert!(f.iter().all(|x| *x == f[0]));
        // After an episode end and one more step, row 0 of a 0.5 discount differs from
        // both the whole trial and the episode alone (tests/glm.rs checks its values);
        // a 0 discount is the per-episode span exactly; row 1 (no end) is the same
        // everywhere.
        let f = after(&[no, no, end, no]);
        assert_eq!(f[2], f[3]);
        assert!(f[1][..fd] != f[0][..fd] && f[1][..fd] != f[2][..fd]);
        assert!(f.iter().all(|x| x[fd..] == f[0][fd..]));
    }

    #[test]
    fn glibrl_episode_discount_is_checked() {
        let bad = |span, gamma: f64| {
            let mut c = spec(false).config;
            c.posterior_span = span;
            c.episode_discount = gamma;
            let b: &BadValue =
                &|key, value, allowed| Err(UserError::invalid(key, &value.to_string(), allowed));
            c.check(b).is_err()
        };
        assert!(!bad(PosteriorSpan::Trial, 0.0) && !bad(PosteriorSpan::Trial, 0.7));
        assert!(bad(PosteriorSpan::Trial, 1.5) && bad(PosteriorSpan::Trial, f64::NAN));
        assert!(bad(PosteriorSpan::Episode, 0.5) && !bad(PosteriorSpan::Episode, 1.0));
    }

    #[test]
    fn glibrl_prefixes_end_with_the_full_trial() {
        let v = sample_prefixes(3, 10, 2, &mut Rng::new(4));
        assert_eq!(v.len(), 9);
        for c in v.chunks(3) {
            assert_eq!(c[2], 10);
            assert!(c[..2].iter().all(|&n| (1..10).contains(&n)));
        }
    }
}
