//! `varibad`: a GRU encoder gives q(m | history) = N(mu, diag sigma^2), trained as a
//! VAE on the trial's rewards from a buffer of recent trials (several VAE updates per
//! policy update, [`VaeLearner`]); the policy reads (s, mu, log sigma^2) with no
//! gradient into the encoder. With `improver = "smc"` this is VariBASeD.

use super::Method;
use crate::belief::learner::BeliefLearner;
use crate::belief::trial_learner::{TrialLearner, TrialModel, TrialSettings};
use crate::belief::trials::TrialRecord;
use crate::belief::variational::{
    ElboDraw, GruPath, RewardDecoderKind, VaeStats, VaribadModel, VaribadSpec,
};
use crate::belief::{Batched, BatchedBelief};
use crate::config::Config;
use crate::env::{ActionSpace, EnvSpec, KnownDynamics};
use crate::error::UserError;
use crate::improve::smc::{NetPlanner, PlanStep, SmcSettings};
use crate::nn::Params;
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
        let v = &cfg.varibad;
        let opt = |n: usize| (n > 0).then_some(n);
        let vae = Vae {
            model: varibad_model(cfg, spec)?,
            subsample_elbos: opt(v.subsample_elbos),
            subsample_decodes: opt(v.subsample_decodes),
        };
        let settings = TrialSettings {
            lr: v.lr,
            num_updates: v.num_updates,
            batch_trials: v.batch_trials,
            buffer_trials: v.buffer_trials,
        };
        Ok(Some(Box::new(VaeLearner::for_env(
            vae,
            settings,
            spec,
            rows,
            Rng::stream(cfg.seed, streams::VAE, 0),
            "varibad",
        ))))
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
        num_cells,
        config: v.clone(),
    };
    Ok(VaribadModel::new(
        vspec,
        &mut Rng::stream(cfg.seed, streams::INIT, 1),
    ))
}

/// VariBAD's VAE objective for [`TrialLearner`]: the model and the ELBO's sub-sampling.
pub struct Vae {
    pub model: VaribadModel,
    /// ELBO terms sampled per trial (`None`: all).
    pub subsample_elbos: Option<usize>,
    /// Decodes sampled per ELBO term (`None`: all).
    pub subsample_decodes: Option<usize>,
}

/// The VAE side of VariBAD: the canonical model, its optimiser and its trials.
pub type VaeLearner = TrialLearner<Vae>;

/// Chunks a VAE batch's gradient is computed in (independent of the thread count).
const VAE_CHUNKS: usize = 2;

impl TrialModel for Vae {
    fn columns(&self) -> &'static [&'static str] {
        &["vae_loss", "vae_reconstruction", "vae_kl"]
    }
    fn params(&self) -> &Params {
        &self.model.params
    }
    fn params_mut(&mut self) -> &mut Params {
        &mut self.model.params
    }
    fn loss_and_grad(
        &self,
        trials: &[&TrialRecord],
        rng: &mut Rng,
        threads: usize,
        stats: &mut [f64],
        steps: usize,
    ) -> Vec<f32> {
        // The batch's gradient in a fixed number of chunks, noise drawn in order,
        // computed on up to `threads` threads and summed in order: identical results
        // for any thread count.
        let per = trials.len().div_ceil(VAE_CHUNKS.min(trials.len()));
        let chunks: Vec<(&[&TrialRecord], ElboDraw)> = trials
            .chunks(per)
            .map(|c| {
                let draw = ElboDraw::sample(
                    c[0].len(),
                    c.len(),
                    self.model.spec.config.latent,
                    rng,
                    self.subsample_elbos,
                    self.subsample_decodes,
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
        let mut grad = vec![0.0f32; model.params.len()];
        for ((c, _), (chunk, g)) in chunks.iter().zip(&results) {
            grad.iter_mut().zip(g).for_each(|(a, b)| *a += b);
            // Reconstruction and KL are per-trial means over the chunk.
            let w = c.len() as f64 / n as f64 / steps as f64;
            stats[0] += chunk.loss / steps as f64;
            stats[1] += chunk.reconstruction * w;
            stats[2] += chunk.kl * w;
        }
        grad
    }
}
