//! Belief-SMC planning: VariBASeD's E-step (docs/methods.md#smc-planner), for any belief that
//! can predict rewards and any policy/value pair.
//!
//! At a real step, for every environment row, the planner starts K particles from the
//! row's current belief and observation and simulates D steps:
//!
//! 1. each particle samples `a ~ pi(. | s, b)` (its first action is its *root action*);
//! 2. the environment's task-independent dynamics give `s'` ([`KnownDynamics`]: in every
//!    task family bamdp plans in, tasks change rewards only);
//! 3. the belief draws `K_Omega` nested task samples `m_j ~ b` (fresh at every step,
//!    never propagated) and a reward from their equal mixture
//!    `(1 / K_Omega) sum_j p(r | s, a, s', m_j)` ([`PlanningBelief::sample_rewards`]);
//! 4. the particle's belief is updated on `(s, a, r, s')` with the belief model's own
//!    streaming update (VariBAD's GRU step, GLiBRL's rank-1 update, an exact posterior);
//! 5. its log-weight grows by `A / eta`, `A = r + gamma V(s', b') - V(s, b)` (`V = 0`
//!    after the trial's last step: the BAMDP ends there, and such a particle earns
//!    nothing afterwards);
//! 6. a row whose effective sample size falls below `resample_below * K` is resampled
//!    (systematic resampling; weights reset to uniform).
//!
//! The target is the weighted distribution of the surviving particles' root actions:
//! `q*(a)` over discrete actions, or for continuous actions the weighted root actions
//! themselves (kept with their weights, plus their weighted mean and variance per
//! dimension, which is all the Gaussian policy's cross-entropy needs).
//!
//! With `advantage_reward = "mean"` the advantage uses the mixture's mean reward
//! `(1 / K_Omega) sum_j E[r | m_j]` instead of the drawn one (a Rao-Blackwellised
//! weight; the drawn reward still drives the particle's belief). The default,
//! "sampled", is the rule of docs/methods.md#smc-planner.
//!
//! Continuous actions are clipped to the env's action box when sampled, so particles,
//! their beliefs and the root actions only ever see queries the env would execute.
//!
//! Layout and determinism: particles are rows `row * K + k` of one batched belief
//! state, so every phase is one batched call over all particles of a chunk of real
//! rows. Each real row owns one random stream and its particles draw from it in order,
//! phase by phase, so the result does not depend on how rows are split into chunks
//! (threads) or batched with other rows: a batch of rows plans exactly as a loop of
//! one-row planners with the same streams. Nothing allocates after the first call
//! with a given shape. The policy is evaluated once per distinct particle state
//! (`[obs | features]` bit for bit: all K particles of a row at the root, and any
//! particles with the same history later) and copied, which gives the same outputs
//! because a row's output does not depend on its batch.

use crate::belief::{Batched, BatchedBelief, PlanningBelief, RewardQuery, Transition};
use crate::config::BadValue;
use crate::env::{ActionSpace, KnownDynamics};
use crate::error::UserError;
use crate::improve::normalize::InputNorm;
use crate::nn::agent::Scratch;
use crate::nn::{AgentNet, Params};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// The amortised policy and value the planner proposes with and bootstraps from.
pub trait PolicyValue: Sync {
    /// Buffers for one batched evaluation.
    type Scratch: Send;
    fn scratch(&self, rows: usize) -> Self::Scratch;
    /// Width of the policy output: logits (discrete) or means (Gaussian).
    fn num_outputs(&self) -> usize;
    /// Log standard deviations of a Gaussian policy (None: categorical).
    fn log_std(&self) -> Option<&[f32]>;
    /// Policy outputs (`rows * num_outputs()`) and values (`rows`) at observations
    /// `obs` and belief features `features`.
    fn evaluate(
        &self,
        obs: &[f32],
        features: &[f32],
        rows: usize,
        policy: &mut [f32],
        values: &mut [f32],
        scratch: &mut Self::Scratch,
    );
    /// Only the values of [`PolicyValue::evaluate`] (the planner's last step needs no
    /// policy); `policy` is scratch of the same size. By default the full evaluation.
    fn evaluate_values(
        &self,
        obs: &[f32],
        features: &[f32],
        rows: usize,
        policy: &mut [f32],
        values: &mut [f32],
        scratch: &mut Self::Scratch,
    ) {
        self.evaluate(obs, features, rows, policy, values, scratch)
    }
}

/// Which reward enters the advantage (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdvantageReward {
    #[default]
    Sampled,
    Mean,
}

/// `[smc]`: the Belief-SMC planner and the EM update (see [`crate::improve::smc`] and
/// [`crate::improve::em`]); used when `improver = "smc"`. The optimiser, discount,
/// lambda, epochs and minibatches are `[ppo]`'s.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SmcConfig {
    /// K: particles per environment.
    pub particles: usize,
    /// K_Omega: nested task samples per particle and simulated step.
    pub nested: usize,
    /// D: simulated steps.
    pub depth: usize,
    /// Temperature of the advantage weights exp(A / eta).
    pub eta: f64,
    /// Resample when the effective sample size falls below this fraction of K.
    pub resample_below: f64,
    /// Reward in the advantage: "sampled" (the drawn reward) or "mean" (the nested
    /// mixture's mean reward).
    pub advantage_reward: AdvantageReward,
    /// Act by sampling the planner's target ("planner") or the amortised policy
    /// ("policy").
    pub act: String,
    /// Weight of the value loss against the policy's cross-entropy.
    pub value_coef: f64,
}

impl Default for SmcConfig {
    fn default() -> Self {
        SmcConfig {
            particles: 64,
            nested: 8,
            depth: 8,
            eta: 1.0,
            resample_below: 0.5,
            advantage_reward: AdvantageReward::Sampled,
            act: "planner".to_string(),
            value_coef: 0.5,
        }
    }
}

impl SmcConfig {
    /// Checks every constraint of the section alone, reporting the first violation
    /// through `bad` (whether the method can plan is checked with the whole config).
    pub fn check(&self, bad: &BadValue) -> Result<(), UserError> {
        let c = self;
        for (key, value) in [
            ("smc.particles", c.particles),
            ("smc.nested", c.nested),
            ("smc.depth", c.depth),
        ] {
            if value == 0 {
                return bad(key, &value, "an integer > 0");
            }
        }
        if !(c.eta > 0.0 && c.eta.is_finite()) {
            return bad("smc.eta", &c.eta, "a finite number > 0");
        }
        if !(0.0..=1.0).contains(&c.resample_below) {
            return bad(
                "smc.resample_below",
                &c.resample_below,
                "a number in [0, 1]",
            );
        }
        if !(c.value_coef >= 0.0 && c.value_coef.is_finite()) {
            return bad("smc.value_coef", &c.value_coef, "a finite number >= 0");
        }
        if !matches!(c.act.as_str(), "planner" | "policy") {
            return bad(
                "smc.act",
                &format!("{:?}", c.act),
                "one of: planner, policy",
            );
        }
        Ok(())
    }
}

/// The planner's budgets and constants: the `[smc]` section and the discount.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmcSettings {
    pub config: SmcConfig,
    /// The discount of the returns the planner's advantages estimate (`ppo.gamma`).
    pub gamma: f64,
}

/// Effective sample size `(sum w)^2 / sum w^2` of unnormalised log-weights.
pub fn ess(logw: &[f64]) -> f64 {
    let m = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return 0.0;
    }
    let (mut s, mut s2) = (0.0, 0.0);
    for &l in logw {
        let w = (l - m).exp();
        s += w;
        s2 += w * w;
    }
    s * s / s2
}

/// Normalised weights of `logw` into `out` (sums to 1; uniform if all are -inf).
pub fn normalise(logw: &[f64], out: &mut [f64]) {
    let m = logw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        out.fill(1.0 / logw.len() as f64);
        return;
    }
    let mut s = 0.0;
    for (o, &l) in out.iter_mut().zip(logw) {
        *o = (l - m).exp();
        s += *o;
    }
    out.iter_mut().for_each(|o| *o /= s);
}

/// Systematic resampling: `out[k]` is the index whose cumulative weight interval holds
/// `(u + k) / K`, for normalised `weights` and `u` in `[0, 1)`.
pub fn systematic_resample(weights: &[f64], u: f64, out: &mut [usize]) {
    let k = weights.len();
    let mut cum = weights[0];
    let mut j = 0;
    for (i, o) in out.iter_mut().enumerate() {
        let pos = (u + i as f64) / k as f64;
        while pos >= cum && j + 1 < k {
            j += 1;
            cum += weights[j];
        }
        *o = j;
    }
}

/// What one planning call produced, per real row.
#[derive(Clone, Debug, Default)]
pub struct PlanOut {
    /// Discrete: `rows * n` target probabilities `q*(a)`.
    pub target: Vec<f32>,
    /// `rows * K * width` root actions of the final particles.
    pub root_actions: Vec<f32>,
    /// `rows * K` normalised final weights.
    pub weights: Vec<f32>,
    /// Continuous: weighted mean and variance of the root actions, `rows * dim` each.
    pub root_mean: Vec<f32>,
    pub root_var: Vec<f32>,
    /// Resampling events in this call (summed over rows and steps).
    pub resamples: u64,
}

/// Particle buffers of one chunk of real rows.
struct Chunk<B: PlanningBelief>
where
    B::State: Send + Sync,
{
    rows: usize,
    belief: Option<B::State>,
    spare: Option<B::State>,
    pred: B::Scratch,
    obs: Vec<f32>,
    next_obs: Vec<f32>,
    first_obs: Vec<f32>,
    tmp_obs: Vec<f32>,
    /// Step within the trial of each particle.
    step: Vec<u32>,
    tmp_step: Vec<u32>,
    done: Vec<bool>,
    tmp_done: Vec<bool>,
    episode_end: Vec<bool>,
    actions: Vec<f32>,
    roots: Vec<f32>,
    tmp_roots: Vec<f32>,
    logw: Vec<f64>,
    features: Vec<f32>,
    /// Features of the distinct particles (see [`Distinct`]).
    tmp_features: Vec<f32>,
    distinct: Distinct,
    /// History of each particle: particles with the same id have the same history
    /// since the root, so the same belief state.
    hist: Vec<u32>,
    tmp_hist: Vec<u32>,
    /// Every particle's history differs from every other's (then so do their keys
    /// below, until resampling duplicates histories again).
    all_distinct: bool,
    /// Particles' `[history | s | a | r | s' | episode end]`, whose distinct rows get
    /// the same belief update (see [`update_distinct`]).
    keys: Vec<f32>,
    /// The distinct rows' belief states and transitions.
    compact: Option<B::State>,
    compact_tr: CompactTransitions,
    policy: Vec<f32>,
    tmp_policy: Vec<f32>,
    values: Vec<f32>,
    next_values: Vec<f32>,
    tmp_values: Vec<f32>,
    rewards: Vec<f32>,
    mean_rewards: Vec<f32>,
    probs: Vec<f32>,
    w: Vec<f64>,
    idx: Vec<usize>,
    src: Vec<usize>,
    resamples: u64,
}

/// One chunk's buffers and its slices of the per-row inputs and outputs.
struct ChunkWork<'a, B: PlanningBelief, S>
where
    B::State: Send + Sync,
{
    chunk: &'a mut Chunk<B>,
    ps: &'a mut S,
    r0: usize,
    rngs: &'a mut [Rng],
    target: &'a mut [f32],
    roots: &'a mut [f32],
    weights: &'a mut [f32],
    mean: &'a mut [f32],
    var: &'a mut [f32],
}

/// The batched Belief-SMC planner. Holds only buffers: the belief model, the policy
/// and the dynamics are passed to [`Planner::plan`].
pub struct Planner<B: PlanningBelief, S>
where
    B::State: Send + Sync,
{
    pub settings: SmcSettings,
    chunks: Vec<(Chunk<B>, S)>,
    chunk_rows: usize,
}

impl<B: PlanningBelief, S: Send> Planner<B, S>
where
    B::State: Send + Sync,
{
    /// A planner for `rows` real rows, split into `threads` chunks planned in parallel.
    pub fn new<P: PolicyValue<Scratch = S>>(
        settings: SmcSettings,
        model: &B,
        policy: &P,
        dynamics: &dyn KnownDynamics,
        rows: usize,
        threads: usize,
    ) -> Self {
        assert!(
            settings.config.particles >= 1
                && settings.config.depth >= 1
                && settings.config.nested >= 1
        );
        let threads = threads.clamp(1, rows.max(1));
        let chunk_rows = rows.div_ceil(threads);
        let k = settings.config.particles;
        let od = dynamics.obs_dim();
        let aw = dynamics.action().width();
        let no = policy.num_outputs();
        let fd = model.feature_dim();
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < rows {
            let n = chunk_rows.min(rows - start);
            let p = n * k;
            let mut first_obs = vec![0.0; od];
            dynamics.first_obs(&mut first_obs);
            chunks.push((
                Chunk {
                    rows: n,
                    belief: Some(model.init(p)),
                    spare: Some(model.init(p)),
                    pred: model.predictive_scratch(),
                    obs: vec![0.0; p * od],
                    next_obs: vec![0.0; p * od],
                    first_obs,
                    tmp_obs: vec![0.0; p * od],
                    step: vec![0; p],
                    tmp_step: vec![0; p],
                    done: vec![false; p],
                    tmp_done: vec![false; p],
                    episode_end: vec![false; p],
                    actions: vec![0.0; p * aw],
                    roots: vec![0.0; p * aw],
                    tmp_roots: vec![0.0; p * aw],
                    logw: vec![0.0; p],
                    features: vec![0.0; p * fd],
                    tmp_features: vec![0.0; p * fd],
                    distinct: Distinct::new(p),
                    hist: vec![0; p],
                    tmp_hist: vec![0; p],
                    all_distinct: false,
                    keys: vec![0.0; p * (1 + 2 * od + aw + 2)],
                    compact: Some(model.init(p)),
                    compact_tr: CompactTransitions {
                        obs: vec![0.0; p * od],
                        action: vec![0.0; p * aw],
                        reward: vec![0.0; p],
                        next_obs: vec![0.0; p * od],
                        episode_end: vec![false; p],
                    },
                    policy: vec![0.0; p * no],
                    tmp_policy: vec![0.0; p * no],
                    values: vec![0.0; p],
                    next_values: vec![0.0; p],
                    tmp_values: vec![0.0; p],
                    rewards: vec![0.0; p],
                    mean_rewards: vec![0.0; p],
                    probs: vec![0.0; no],
                    w: vec![0.0; k],
                    idx: vec![0; k],
                    src: vec![0; p],
                    resamples: 0,
                },
                policy.scratch(p),
            ));
            start += n;
        }
        Planner {
            settings,
            chunks,
            chunk_rows,
        }
    }

    /// Plans from the current belief `state` (one row per real row) at observations
    /// `obs` and trial steps `trial_step`, drawing from `rngs` (one per real row).
    #[allow(clippy::too_many_arguments)]
    pub fn plan<P: PolicyValue<Scratch = S>>(
        &mut self,
        model: &B,
        state: &B::State,
        obs: &[f32],
        trial_step: &[u32],
        policy: &P,
        dynamics: &dyn KnownDynamics,
        rngs: &mut [Rng],
        out: &mut PlanOut,
    ) {
        let rows: usize = self.chunks.iter().map(|c| c.0.rows).sum();
        assert_eq!(rngs.len(), rows, "one random stream per real row");
        let k = self.settings.config.particles;
        let aw = dynamics.action().width();
        let (od, no) = (dynamics.obs_dim(), policy.num_outputs());
        let discrete = matches!(dynamics.action(), ActionSpace::Discrete(_));
        out.target.resize(if discrete { rows * no } else { 0 }, 0.0);
        out.root_actions.resize(rows * k * aw, 0.0);
        out.weights.resize(rows * k, 0.0);
        let dim = if discrete { 0 } else { aw };
        out.root_mean.resize(rows * dim, 0.0);
        out.root_var.resize(rows * dim, 0.0);
        let settings = &self.settings;
        let cr = self.chunk_rows;
        // Split every per-row output into the chunks' slices.
        let mut work = Vec::with_capacity(self.chunks.len());
        let mut rngs_rest = rngs;
        let mut target = out.target.as_mut_slice();
        let mut roots = out.root_actions.as_mut_slice();
        let mut weights = out.weights.as_mut_slice();
        let mut rmean = out.root_mean.as_mut_slice();
        let mut rvar = out.root_var.as_mut_slice();
        for (ci, (chunk, ps)) in self.chunks.iter_mut().enumerate() {
            let n = chunk.rows;
            let r0 = ci * cr;
            let (rg, rest) = rngs_rest.split_at_mut(n);
            rngs_rest = rest;
            let (t, rest) =
                std::mem::take(&mut target).split_at_mut(if discrete { n * no } else { 0 });
            target = rest;
            let (ra, rest) = std::mem::take(&mut roots).split_at_mut(n * k * aw);
            roots = rest;
            let (wt, rest) = std::mem::take(&mut weights).split_at_mut(n * k);
            weights = rest;
            let (rm, rest) = std::mem::take(&mut rmean).split_at_mut(n * dim);
            rmean = rest;
            let (rv, rest) = std::mem::take(&mut rvar).split_at_mut(n * dim);
            rvar = rest;
            work.push(ChunkWork {
                chunk,
                ps,
                r0,
                rngs: rg,
                target: t,
                roots: ra,
                weights: wt,
                mean: rm,
                var: rv,
            });
        }
        let run = |w: ChunkWork<'_, B, S>| {
            let ChunkWork {
                chunk,
                ps,
                r0,
                rngs: rg,
                target: t,
                roots: ra,
                weights: wt,
                mean: rm,
                var: rv,
            } = w;
            let n = chunk.rows;
            plan_chunk(
                settings,
                model,
                state,
                &obs[r0 * od..(r0 + n) * od],
                &trial_step[r0..r0 + n],
                r0,
                policy,
                dynamics,
                rg,
                chunk,
                ps,
            );
            write_targets(settings, chunk, discrete, aw, no, t, ra, wt, rm, rv);
        };
        if work.len() > 1 {
            std::thread::scope(|s| {
                let mut it = work.into_iter();
                let first = it.next().expect("a chunk");
                for w in it {
                    s.spawn(move || run(w));
                }
                run(first);
            });
        } else {
            work.into_iter().for_each(run);
        }
        out.resamples = self
            .chunks
            .iter_mut()
            .map(|(c, _)| std::mem::take(&mut c.resamples))
            .sum();
    }
}

/// Samples one action per particle from the policy outputs into `actions`.
fn sample_actions<P: PolicyValue>(
    policy: &P,
    out: &[f32],
    k: usize,
    rngs: &mut [Rng],
    probs: &mut [f32],
    actions: &mut [f32],
) {
    let no = policy.num_outputs();
    let particles = out.len() / no;
    match policy.log_std() {
        None => {
            for i in 0..particles {
                let logits = &out[i * no..(i + 1) * no];
                let m = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                for (p, &l) in probs.iter_mut().zip(logits) {
                    *p = (l - m).exp();
                }
                actions[i] = rngs[i / k].categorical(probs) as f32;
            }
        }
        Some(log_std) => {
            for i in 0..particles {
                for j in 0..no {
                    let z = rngs[i / k].normal() as f32;
                    actions[i * no + j] = out[i * no + j] + log_std[j].exp() * z;
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[allow(clippy::needless_range_loop)] // parallel arrays share one index
fn plan_chunk<B: PlanningBelief, P: PolicyValue>(
    st: &SmcSettings,
    model: &B,
    state: &B::State,
    obs: &[f32],
    trial_step: &[u32],
    r0: usize,
    policy: &P,
    dynamics: &dyn KnownDynamics,
    rngs: &mut [Rng],
    c: &mut Chunk<B>,
    ps: &mut P::Scratch,
) where
    B::State: Send + Sync,
{
    let (n, k) = (c.rows, st.config.particles);
    let p = n * k;
    let od = dynamics.obs_dim();
    let aw = dynamics.action().width();
    let (len, eps) = (dynamics.episode_len(), dynamics.episodes_per_trial());
    let trial_len = (len * eps) as u32;
    let (gamma, eta) = (st.gamma as f32, st.config.eta);

    // Particles start as copies of their real row.
    for i in 0..p {
        c.src[i] = r0 + i / k;
        let r = i / k;
        c.obs[i * od..(i + 1) * od].copy_from_slice(&obs[r * od..(r + 1) * od]);
        c.step[i] = trial_step[r];
        c.done[i] = false;
        c.logw[i] = 0.0;
        c.hist[i] = r as u32;
    }
    c.all_distinct = false;
    let mut belief = c.belief.take().expect("particle belief");
    model.gather(state, &c.src, &mut belief);
    model.features(&belief, &mut c.features);
    // At the root a row's K particles are identical: the policy is evaluated once per
    // distinct particle (here once per real row, or less) and copied.
    let fd = c.features.len() / p;
    evaluate_distinct(policy, c, od, fd, p, false, ps);
    std::mem::swap(&mut c.values, &mut c.next_values);

    for d in 0..st.config.depth {
        sample_actions(policy, &c.policy, k, rngs, &mut c.probs, &mut c.actions);
        // Simulated queries stay in the box the env clips to: a learned reward model
        // queried far outside its data would reward extrapolation, and root actions
        // outside the box would pull the policy's mean out with them.
        if let ActionSpace::Continuous { low, high, .. } = dynamics.action() {
            c.actions.iter_mut().for_each(|a| *a = a.clamp(low, high));
        }
        if d == 0 {
            c.roots.copy_from_slice(&c.actions);
        }
        for i in 0..p {
            let t = c.step[i] as usize % len;
            dynamics.next_obs(
                &c.obs[i * od..(i + 1) * od],
                &c.actions[i * aw..(i + 1) * aw],
                t,
                &mut c.next_obs[i * od..(i + 1) * od],
            );
            c.episode_end[i] = (c.step[i] as usize + 1).is_multiple_of(len);
        }
        model.sample_rewards(
            &belief,
            &RewardQuery {
                obs: &c.obs,
                action: &c.actions,
                next_obs: &c.next_obs,
                features: &c.features,
            },
            st.config.nested,
            rngs,
            k,
            &mut c.rewards,
            &mut c.mean_rewards,
            &mut c.pred,
        );
        update_distinct(model, &mut belief, c, od, aw, p);
        for i in 0..p {
            let o = &mut c.obs[i * od..(i + 1) * od];
            if c.episode_end[i] {
                o.copy_from_slice(&c.first_obs);
            } else {
                o.copy_from_slice(&c.next_obs[i * od..(i + 1) * od]);
            }
        }
        model.features(&belief, &mut c.features);
        // After the last step only the values are needed.
        let values_only = d + 1 == st.config.depth;
        evaluate_distinct(policy, c, od, fd, p, values_only, ps);
        let r_adv = match st.config.advantage_reward {
            AdvantageReward::Sampled => &c.rewards,
            AdvantageReward::Mean => &c.mean_rewards,
        };
        for i in 0..p {
            if c.done[i] {
                continue;
            }
            c.step[i] += 1;
            let ends = c.step[i] >= trial_len;
            let v_next = if ends { 0.0 } else { c.next_values[i] };
            let a = r_adv[i] + gamma * v_next - c.values[i];
            c.logw[i] += a as f64 / eta;
            c.done[i] = ends;
        }
        std::mem::swap(&mut c.values, &mut c.next_values);
        if d + 1 == st.config.depth {
            break;
        }
        // Resample rows whose ESS fell below the threshold.
        let mut any = false;
        for r in 0..n {
            let lw = &c.logw[r * k..(r + 1) * k];
            if ess(lw) < st.config.resample_below * k as f64 {
                normalise(lw, &mut c.w);
                let u = rngs[r].uniform();
                systematic_resample(&c.w, u, &mut c.idx);
                for j in 0..k {
                    c.src[r * k + j] = r * k + c.idx[j];
                }
                c.logw[r * k..(r + 1) * k].fill(0.0);
                c.resamples += 1;
                any = true;
            } else {
                for j in 0..k {
                    c.src[r * k + j] = r * k + j;
                }
            }
        }
        if any {
            // `src` is non-decreasing: resampled rows take systematic resampling's
            // sorted indices inside their own block, the others keep theirs.
            if !model.gather_in_place(&mut belief, &c.src) {
                let mut spare = c.spare.take().expect("spare belief");
                model.gather(&belief, &c.src, &mut spare);
                c.spare = Some(belief);
                belief = spare;
            }
            gather_rows(&c.src, &c.obs, od, &mut c.tmp_obs);
            std::mem::swap(&mut c.obs, &mut c.tmp_obs);
            gather_rows(&c.src, &c.roots, aw, &mut c.tmp_roots);
            std::mem::swap(&mut c.roots, &mut c.tmp_roots);
            gather_rows(&c.src, &c.values, 1, &mut c.tmp_values);
            std::mem::swap(&mut c.values, &mut c.tmp_values);
            // The next step's reward queries read the features of the resampled beliefs.
            gather_rows(&c.src, &c.features, fd, &mut c.tmp_features);
            std::mem::swap(&mut c.features, &mut c.tmp_features);
            for i in 0..p {
                c.tmp_step[i] = c.step[c.src[i]];
                c.tmp_done[i] = c.done[c.src[i]];
            }
            gather_rows(&c.src, &c.hist, 1, &mut c.tmp_hist);
            std::mem::swap(&mut c.step, &mut c.tmp_step);
            std::mem::swap(&mut c.done, &mut c.tmp_done);
            std::mem::swap(&mut c.hist, &mut c.tmp_hist);
            c.all_distinct = false;
            // The policy outputs of the resampled particles: re-gathered, not recomputed.
            gather_rows(&c.src, &c.policy, policy.num_outputs(), &mut c.tmp_policy);
            std::mem::swap(&mut c.policy, &mut c.tmp_policy);
        }
    }
    c.belief = Some(belief);
}

/// The distinct rows of a particle batch: particles with the same history have the
/// same observation and belief features (all K of a row at the root; in discrete
/// worlds many more), and a policy's output for a row does not depend on the other
/// rows of its batch (ARCHITECTURE.md, invariants), so each distinct row is evaluated
/// once and its output copied: the same results as evaluating every particle.
struct Distinct {
    /// Open-addressing table of representative particles (`u32::MAX`: empty), a power
    /// of two at least twice the number of particles.
    table: Vec<u32>,
    /// The representative particle of each distinct row, in order of first appearance.
    first: Vec<usize>,
    /// The distinct row of each particle.
    of: Vec<usize>,
}

impl Distinct {
    fn new(particles: usize) -> Self {
        Distinct {
            table: vec![u32::MAX; (2 * particles).next_power_of_two().max(2)],
            first: Vec::with_capacity(particles),
            of: vec![0; particles],
        }
    }

    /// Groups the `rows` rows `(a[i], b[i])` (widths `wa`, `wb`) by their bits.
    fn find(&mut self, a: &[f32], wa: usize, b: &[f32], wb: usize, rows: usize) {
        let row = |i: usize| (&a[i * wa..(i + 1) * wa], &b[i * wb..(i + 1) * wb]);
        let same = |i: usize, j: usize| {
            let ((ai, bi), (aj, bj)) = (row(i), row(j));
            ai.iter().zip(aj).all(|(x, y)| x.to_bits() == y.to_bits())
                && bi.iter().zip(bj).all(|(x, y)| x.to_bits() == y.to_bits())
        };
        self.table.fill(u32::MAX);
        self.first.clear();
        let mask = self.table.len() - 1;
        for i in 0..rows {
            let (ra, rb) = row(i);
            let mut h = 0u64;
            for v in ra.iter().chain(rb) {
                h = (h.rotate_left(5) ^ v.to_bits() as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
            }
            let mut slot = (h >> 32) as usize & mask;
            loop {
                let e = self.table[slot];
                if e == u32::MAX {
                    self.table[slot] = i as u32;
                    self.of[i] = self.first.len();
                    self.first.push(i);
                    break;
                }
                if same(e as usize, i) {
                    self.of[i] = self.of[e as usize];
                    break;
                }
                slot = (slot + 1) & mask;
            }
        }
    }
}

/// Transitions of the distinct particles (see [`update_distinct`]).
struct CompactTransitions {
    obs: Vec<f32>,
    action: Vec<f32>,
    reward: Vec<f32>,
    next_obs: Vec<f32>,
    episode_end: Vec<bool>,
}

/// The belief update of every particle on its simulated transition, computed once per
/// distinct `(history, transition)`: particles with the same history since the root
/// have the same belief state, and the same transition gives them the same updated
/// state (a row's update does not depend on its batch: ARCHITECTURE.md, invariants).
/// Duplicates are common in the first steps (all K particles of a row start with one
/// history; discrete actions and rewards branch into few). When fewer than 3/4 of the
/// particles are distinct, the distinct ones are gathered, updated as one smaller
/// batch and scattered back; otherwise all are updated in place as before. Either way
/// the states are those of updating every particle, bit for bit. Then every
/// particle's history id becomes its distinct row's index. Once all particles are
/// distinct they stay so until resampling copies some (continuous rewards, e.g.
/// GLiBRL's, make them so after one step): the keys are then not even built.
fn update_distinct<B: PlanningBelief>(
    model: &B,
    belief: &mut B::State,
    c: &mut Chunk<B>,
    od: usize,
    aw: usize,
    p: usize,
) where
    B::State: Send + Sync,
{
    let tr = Transition {
        obs: &c.obs,
        action: &c.actions,
        reward: &c.rewards,
        next_obs: &c.next_obs,
        episode_end: &c.episode_end,
    };
    if c.all_distinct {
        // Distinct histories stay distinct: nothing to share, no keys to hash.
        model.update_sampled(belief, &tr, &mut c.pred);
        return;
    }
    let kw = 1 + 2 * od + aw + 2;
    for i in 0..p {
        let key = &mut c.keys[i * kw..(i + 1) * kw];
        key[0] = c.hist[i] as f32; // exact: ids are below the particle count
        let (o, rest) = key[1..].split_at_mut(od);
        o.copy_from_slice(&c.obs[i * od..(i + 1) * od]);
        let (a, rest) = rest.split_at_mut(aw);
        a.copy_from_slice(&c.actions[i * aw..(i + 1) * aw]);
        rest[0] = c.rewards[i];
        rest[1..1 + od].copy_from_slice(&c.next_obs[i * od..(i + 1) * od]);
        rest[1 + od] = if c.episode_end[i] { 1.0 } else { 0.0 };
    }
    let dist = &mut c.distinct;
    dist.find(&c.keys, kw, &[], 0, p);
    let u = dist.first.len();
    if 4 * u < 3 * p {
        let t = &mut c.compact_tr;
        for (j, &i) in dist.first.iter().enumerate() {
            t.obs[j * od..(j + 1) * od].copy_from_slice(&c.obs[i * od..(i + 1) * od]);
            t.action[j * aw..(j + 1) * aw].copy_from_slice(&c.actions[i * aw..(i + 1) * aw]);
            t.reward[j] = c.rewards[i];
            t.next_obs[j * od..(j + 1) * od].copy_from_slice(&c.next_obs[i * od..(i + 1) * od]);
            t.episode_end[j] = c.episode_end[i];
        }
        let mut compact = c.compact.take().expect("compact belief");
        model.gather(belief, &dist.first, &mut compact);
        model.update(
            &mut compact,
            &Transition {
                obs: &t.obs[..u * od],
                action: &t.action[..u * aw],
                reward: &t.reward[..u],
                next_obs: &t.next_obs[..u * od],
                episode_end: &t.episode_end[..u],
            },
        );
        model.gather(&compact, &dist.of[..p], belief);
        c.compact = Some(compact);
    } else {
        model.update_sampled(belief, &tr, &mut c.pred);
    }
    for (h, &j) in c.hist.iter_mut().zip(&dist.of[..p]) {
        *h = j as u32;
    }
    c.all_distinct = u == p;
}

/// The policy outputs (`c.policy`, unless `values_only`) and values (`c.next_values`)
/// at every particle's `c.obs` and `c.features`, evaluated once per distinct row.
fn evaluate_distinct<B: PlanningBelief, P: PolicyValue>(
    policy: &P,
    c: &mut Chunk<B>,
    od: usize,
    fd: usize,
    p: usize,
    values_only: bool,
    ps: &mut P::Scratch,
) where
    B::State: Send + Sync,
{
    let no = policy.num_outputs();
    let dist = &mut c.distinct;
    // Distinct histories (continuous rewards make every particle's its own after one
    // step) rarely share features: evaluating every particle is the same results
    // (rows are independent of their batch) without hashing them.
    let u = if c.all_distinct {
        p
    } else {
        dist.find(&c.obs, od, &c.features, fd, p);
        dist.first.len()
    };
    let eval = |obs: &[f32], f: &[f32], rows, pol: &mut [f32], val: &mut [f32], ps| {
        if values_only {
            policy.evaluate_values(obs, f, rows, pol, val, ps)
        } else {
            policy.evaluate(obs, f, rows, pol, val, ps)
        }
    };
    if u == p {
        eval(
            &c.obs,
            &c.features,
            p,
            &mut c.policy,
            &mut c.next_values,
            ps,
        );
        return;
    }
    for (j, &i) in dist.first.iter().enumerate() {
        c.tmp_obs[j * od..(j + 1) * od].copy_from_slice(&c.obs[i * od..(i + 1) * od]);
        c.tmp_features[j * fd..(j + 1) * fd].copy_from_slice(&c.features[i * fd..(i + 1) * fd]);
    }
    eval(
        &c.tmp_obs[..u * od],
        &c.tmp_features[..u * fd],
        u,
        &mut c.tmp_policy[..u * no],
        &mut c.tmp_values[..u],
        ps,
    );
    for (i, &j) in dist.of[..p].iter().enumerate() {
        if !values_only {
            c.policy[i * no..(i + 1) * no].copy_from_slice(&c.tmp_policy[j * no..(j + 1) * no]);
        }
        c.next_values[i] = c.tmp_values[j];
    }
}

/// `out[i] = x[src[i]]` for rows of width `w`.
fn gather_rows<T: Copy>(src: &[usize], x: &[T], w: usize, out: &mut [T]) {
    for (i, &s) in src.iter().enumerate() {
        out[i * w..(i + 1) * w].copy_from_slice(&x[s * w..(s + 1) * w]);
    }
}

/// Writes the per-row targets of a planned chunk.
#[allow(clippy::too_many_arguments)]
fn write_targets<B: PlanningBelief>(
    st: &SmcSettings,
    c: &mut Chunk<B>,
    discrete: bool,
    aw: usize,
    no: usize,
    target: &mut [f32],
    roots: &mut [f32],
    weights: &mut [f32],
    mean: &mut [f32],
    var: &mut [f32],
) where
    B::State: Send + Sync,
{
    let k = st.config.particles;
    roots.copy_from_slice(&c.roots);
    for r in 0..c.rows {
        normalise(&c.logw[r * k..(r + 1) * k], &mut c.w);
        for j in 0..k {
            weights[r * k + j] = c.w[j] as f32;
        }
        if discrete {
            let t = &mut target[r * no..(r + 1) * no];
            t.fill(0.0);
            for j in 0..k {
                t[c.roots[r * k + j] as usize] += c.w[j] as f32;
            }
        } else {
            for dj in 0..aw {
                let (mut m, mut m2) = (0.0f64, 0.0f64);
                for j in 0..k {
                    let a = c.roots[(r * k + j) * aw + dj] as f64;
                    m += c.w[j] * a;
                    m2 += c.w[j] * a * a;
                }
                mean[r * aw + dj] = m as f32;
                var[r * aw + dj] = (m2 - m * m).max(0.0) as f32;
            }
        }
    }
}

/// The actor-critic network (without recurrent memory) as the planner's policy and
/// value: its input is `[obs | features]`, normalised like the acting network's.
pub struct NetPolicy<'a> {
    pub net: &'a AgentNet,
    pub params: &'a Params,
    pub norm: Option<&'a InputNorm>,
}

/// Buffers of [`NetPolicy`].
pub struct NetScratch {
    x: Vec<f32>,
    net: Scratch,
}

impl PolicyValue for NetPolicy<'_> {
    type Scratch = NetScratch;

    fn scratch(&self, rows: usize) -> NetScratch {
        assert!(
            self.net.memory.is_none(),
            "planning needs a policy over belief features, not a recurrent one"
        );
        NetScratch {
            x: vec![0.0; rows * self.net.input_dim],
            net: self.net.scratch(rows),
        }
    }

    fn num_outputs(&self) -> usize {
        self.net.num_actions
    }

    fn log_std(&self) -> Option<&[f32]> {
        self.net.log_std.map(|s| self.params.get(s))
    }

    fn evaluate(
        &self,
        obs: &[f32],
        features: &[f32],
        rows: usize,
        policy: &mut [f32],
        values: &mut [f32],
        s: &mut NetScratch,
    ) {
        self.input(obs, features, rows, s);
        let id = self.net.input_dim;
        self.net.step(
            self.params,
            &s.x[..rows * id],
            rows,
            &mut [],
            &mut s.net,
            &mut policy[..rows * self.net.num_actions],
            &mut values[..rows],
        );
    }

    fn evaluate_values(
        &self,
        obs: &[f32],
        features: &[f32],
        rows: usize,
        _: &mut [f32],
        values: &mut [f32],
        s: &mut NetScratch,
    ) {
        self.input(obs, features, rows, s);
        let id = self.net.input_dim;
        self.net.values(
            self.params,
            &s.x[..rows * id],
            rows,
            &mut s.net,
            &mut values[..rows],
        );
    }
}

impl NetPolicy<'_> {
    /// The network input `[obs (normalised) | features]` of `rows` rows into `s.x`.
    fn input(&self, obs: &[f32], features: &[f32], rows: usize, s: &mut NetScratch) {
        let id = self.net.input_dim;
        let od = obs.len() / rows;
        let fd = id - od;
        for r in 0..rows {
            let x = &mut s.x[r * id..(r + 1) * id];
            x[..od].copy_from_slice(&obs[r * od..(r + 1) * od]);
            x[od..].copy_from_slice(&features[r * fd..(r + 1) * fd]);
            if let Some(n) = self.norm {
                n.normalize_row(x);
            }
        }
    }
}

/// A planner over whatever belief an actor holds, behind an object-safe interface.
pub trait PlanStep: Send {
    /// Plans for every row of `belief` (see [`Planner::plan`]).
    fn plan(
        &mut self,
        belief: &dyn BatchedBelief,
        policy: &NetPolicy<'_>,
        obs: &[f32],
        trial_step: &[u32],
        rngs: &mut [Rng],
        out: &mut PlanOut,
    );
}

/// [`PlanStep`] for beliefs of type `B` (held as [`Batched<B>`]) and the network policy.
pub struct NetPlanner<B: PlanningBelief>
where
    B::State: Send + Sync,
{
    settings: SmcSettings,
    dynamics: Box<dyn KnownDynamics>,
    rows: usize,
    threads: usize,
    planner: Option<Planner<B, NetScratch>>,
}

impl<B: PlanningBelief> NetPlanner<B>
where
    B::State: Send + Sync,
{
    pub fn new(
        settings: SmcSettings,
        dynamics: Box<dyn KnownDynamics>,
        rows: usize,
        threads: usize,
    ) -> Self {
        NetPlanner {
            settings,
            dynamics,
            rows,
            threads,
            planner: None,
        }
    }
}

impl<B> PlanStep for NetPlanner<B>
where
    B: PlanningBelief + Send + 'static,
    B::State: Send + Sync,
    B::Scratch: Send,
{
    fn plan(
        &mut self,
        belief: &dyn BatchedBelief,
        policy: &NetPolicy<'_>,
        obs: &[f32],
        trial_step: &[u32],
        rngs: &mut [Rng],
        out: &mut PlanOut,
    ) {
        let b = belief
            .as_any()
            .downcast_ref::<Batched<B>>()
            .expect("the planner was built for this belief type");
        let dynamics = &*self.dynamics;
        let planner = self.planner.get_or_insert_with(|| {
            Planner::new(
                self.settings.clone(),
                &b.model,
                policy,
                dynamics,
                self.rows,
                self.threads,
            )
        });
        planner.plan(
            &b.model, &b.state, obs, trial_step, policy, dynamics, rngs, out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ess_of_hand_worked_weights() {
        // Uniform: ESS = K.
        assert!((ess(&[0.0; 8]) - 8.0).abs() < 1e-12);
        // One particle carries everything.
        assert!((ess(&[0.0, f64::NEG_INFINITY, f64::NEG_INFINITY]) - 1.0).abs() < 1e-12);
        // w = (1, 2, 3, 4): (10)^2 / 30 = 10 / 3, whatever the common shift.
        let lw: Vec<f64> = [1.0f64, 2.0, 3.0, 4.0]
            .iter()
            .map(|w| w.ln() + 7.5)
            .collect();
        assert!((ess(&lw) - 10.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn systematic_resampling_of_hand_worked_weights() {
        // Weights 0.1, 0.2, 0.3, 0.4; u = 0.5: positions 0.125, 0.375, 0.625, 0.875 fall
        // in intervals [0, .1) [.1, .3) [.3, .6) [.6, 1): indices 1, 2, 3, 3.
        let w = [0.1, 0.2, 0.3, 0.4];
        let mut idx = [0; 4];
        systematic_resample(&w, 0.5, &mut idx);
        assert_eq!(idx, [1, 2, 3, 3]);
        // u = 0: positions 0, .25, .5, .75: indices 0, 1, 2, 3.
        systematic_resample(&w, 0.0, &mut idx);
        assert_eq!(idx, [0, 1, 2, 3]);
        // A zero-weight particle is never chosen.
        let w = [0.5, 0.0, 0.5, 0.0];
        for u in [0.0, 0.3, 0.99] {
            systematic_resample(&w, u, &mut idx);
            assert!(idx.iter().all(|&i| i == 0 || i == 2), "{idx:?}");
        }
    }

    #[test]
    fn normalised_weights_sum_to_one() {
        let mut out = [0.0; 3];
        normalise(&[-1000.0, -1001.0, -1000.0], &mut out);
        assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((out[0] - out[2]).abs() < 1e-15 && out[1] < out[0]);
    }
}
