//! `varibad`: a GRU encoder gives q(m | history) = N(mu, diag sigma^2), trained as a
//! VAE on the trial's rewards from a buffer of recent trials (several VAE updates per
//! policy update, [`VaeLearner`]); the policy reads (s, mu, log sigma^2) with no
//! gradient into the encoder. With `improver = "smc"` this is VariBASeD.

use super::Method;
use crate::belief::learner::{check_layout, BeliefLearner, LearnerState, TrialStore};
use crate::belief::trials::TrialRecord;
use crate::belief::variational::{
    ElboDraw, GruPath, RewardDecoderKind, VaeStats, VaribadModel, VaribadSpec,
};
use crate::belief::{Batched, BatchedBelief, Transition};
use crate::codec;
use crate::config::{Config, VaribadConfig};
use crate::env::{ActionSpace, EnvSpec, KnownDynamics};
use crate::error::{StateError, UserError};
use crate::improve::smc::{NetPlanner, PlanStep, SmcSettings};
use crate::nn::{Adam, Params};
use crate::rng::{streams, Rng};

pub struct Varibad;

impl Method for Varibad {
    fn name(&self) -> &'static str {
        "varibad"
    }
    fn about(&self) -> &'static str {
        "VariBAD: GRU encoder q(m | history) trained as a VAE on the trial's rewards; the policy sees (s, mu, log var), PPO"
    }
    fn belief(
        &self,
        cfg: &Config,
        spec: &EnvSpec,
        rows: usize,
    ) -> Result<Option<Box<dyn BatchedBelief>>, UserError> {
        Ok(Some(Box::new(Batched::new(
            varibad_model(cfg, spec)?,
            rows,
        ))))
    }
    fn learner(
        &self,
        cfg: &Config,
        spec: &EnvSpec,
        rows: usize,
    ) -> Result<Option<Box<dyn BeliefLearner>>, UserError> {
        let model = varibad_model(cfg, spec)?;
        Ok(Some(Box::new(VaeLearner {
            adam: Adam::new(model.params.len(), 1e-8),
            trials: TrialStore::new(
                cfg.varibad.buffer_trials,
                rows,
                spec.obs_dim,
                spec.action.width(),
                Rng::stream(cfg.seed, streams::VAE, 0),
            ),
            model,
            settings: cfg.varibad.clone(),
        })))
    }
    fn planner(
        &self,
        _spec: &EnvSpec,
        settings: SmcSettings,
        dynamics: Box<dyn KnownDynamics>,
        rows: usize,
        threads: usize,
    ) -> Option<Box<dyn PlanStep>> {
        Some(Box::new(NetPlanner::<VaribadModel>::new(
            settings, dynamics, rows, threads,
        )))
    }
}

/// The VariBAD model a config describes, initialised deterministically from the seed.
pub fn varibad_model(cfg: &Config, spec: &EnvSpec) -> Result<VaribadModel, UserError> {
    let v = &cfg.varibad;
    let num_cells = match (v.reward_decoder, spec.grid_cells()) {
        (RewardDecoderKind::Multihead, Some(cells)) => cells,
        (RewardDecoderKind::Multihead, None) => {
            return Err(UserError::invalid(
                "varibad.reward_decoder",
                "multihead",
                &format!(
                    "`mlp` for env {:?} (the multi-head decoder needs a grid: env gridnavi)",
                    spec.name
                ),
            ))
        }
        (RewardDecoderKind::Mlp, _) => 0,
    };
    let vspec = VaribadSpec {
        obs_dim: spec.obs_dim,
        action_dim: spec.action.input_width(),
        continuous_actions: matches!(spec.action, ActionSpace::Continuous { .. }),
        state_embed: v.state_embed,
        action_embed: v.action_embed,
        reward_embed: v.reward_embed,
        gru_hidden: v.gru_hidden,
        latent: v.latent,
        decoder_hidden: v.decoder_hidden.clone(),
        num_cells,
        reward_decoder: v.reward_decoder,
        reward_input_state: v.reward_input_state,
        reward_input_action: v.reward_input_action,
        reward_loss_coeff: v.reward_loss_coeff,
        decode_state: v.decode_state,
        state_loss_coeff: v.state_loss_coeff,
        state_decoder_hidden: v.state_decoder_hidden.clone(),
        kl_weight: v.kl_weight,
        kl_to_prior: v.kl_to_prior,
        kl_sum_over_trials: v.kl_sum_over_trials,
    };
    Ok(VaribadModel::new(
        vspec,
        &mut Rng::stream(cfg.seed, streams::INIT, 1),
    ))
}

/// The VAE side of VariBAD: the canonical model, its optimiser and its trials.
pub struct VaeLearner {
    pub model: VaribadModel,
    pub adam: Adam,
    pub trials: TrialStore,
    pub settings: VaribadConfig,
}

/// Chunks a VAE batch's gradient is computed in (independent of the thread count).
const VAE_CHUNKS: usize = 2;

impl VaeLearner {
    /// The configured number of VAE updates on batches from the buffer (none until it
    /// holds a full batch). Returns the mean statistics, if any update ran.
    pub fn train(&mut self, threads: usize) -> Option<VaeStats> {
        let v = &self.settings;
        if self.trials.buffer.len() < v.batch_trials {
            return None;
        }
        let opt = |n: usize| (n > 0).then_some(n);
        let latent = self.model.spec.latent;
        let rng = &mut self.trials.rng;
        let mut mean = VaeStats::default();
        for _ in 0..v.num_updates {
            let idx = self.trials.buffer.sample(v.batch_trials, rng);
            let trials = self.trials.buffer.gather(&idx);
            // The batch's gradient in a fixed number of chunks, noise drawn in order,
            // computed on up to `threads` threads and summed in order: identical
            // results for any thread count.
            let per = trials.len().div_ceil(VAE_CHUNKS.min(trials.len()));
            let chunks: Vec<(&[&TrialRecord], ElboDraw)> = trials
                .chunks(per)
                .map(|c| {
                    let draw = ElboDraw::sample(
                        c[0].len(),
                        c.len(),
                        latent,
                        rng,
                        opt(v.subsample_elbos),
                        opt(v.subsample_decodes),
                    );
                    (c, draw)
                })
                .collect();
            let model = &self.model;
            let n = trials.len();
            let results: Vec<(VaeStats, Vec<f32>)> = if threads > 1 && chunks.len() > 1 {
                std::thread::scope(|s| {
                    let handles: Vec<_> = chunks
                        .iter()
                        .map(|(c, d)| {
                            s.spawn(move || model.chunk_loss_and_grad(c, d, GruPath::Fused, n))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("VAE gradient thread"))
                        .collect()
                })
            } else {
                chunks
                    .iter()
                    .map(|(c, d)| model.chunk_loss_and_grad(c, d, GruPath::Fused, n))
                    .collect()
            };
            let mut grad = vec![0.0f32; self.model.params.len()];
            for ((c, _), (stats, g)) in chunks.iter().zip(&results) {
                grad.iter_mut().zip(g).for_each(|(a, b)| *a += b);
                let w = c.len() as f64 / n as f64 / v.num_updates as f64;
                mean.loss += stats.loss / v.num_updates as f64;
                mean.reconstruction += stats.reconstruction * w;
                mean.kl += stats.kl * w;
                mean.state_reconstruction += stats.state_reconstruction * w;
            }
            self.adam.step(&mut self.model.params.data, &grad, v.lr);
        }
        Some(mean)
    }
}

impl BeliefLearner for VaeLearner {
    fn columns(&self) -> &'static [&'static str] {
        &["vae_loss", "vae_reconstruction", "vae_kl"]
    }
    fn record(&mut self, step: &Transition<'_>, trial_end: &[bool]) {
        self.trials.record(step, trial_end);
    }
    fn update(&mut self, threads: usize) -> Option<Vec<f64>> {
        self.train(threads)
            .map(|s| vec![s.loss, s.reconstruction, s.kl])
    }
    fn params(&self) -> &Params {
        &self.model.params
    }
    fn trials(&self) -> &TrialStore {
        &self.trials
    }
    fn trials_mut(&mut self) -> &mut TrialStore {
        &mut self.trials
    }
    fn batch_trials(&self) -> usize {
        self.settings.batch_trials
    }
    fn save_state(&self) -> LearnerState {
        LearnerState {
            params: self.model.params.clone(),
            adam: self.adam.clone(),
            rest: codec::encode(&self.trials),
        }
    }
    fn load_state(&mut self, state: LearnerState) -> Result<(), StateError> {
        check_layout(&state.params, &self.model.params, "varibad")?;
        self.trials = codec::decode(&state.rest, "VAE trials")?;
        self.model.params = state.params;
        self.adam = state.adam;
        Ok(())
    }
}
