//! Exact Bayesian generalised linear models with a Matrix-Normal-Inverse-Wishart
//! prior (docs/methods.md#glibrl): the GLiBRL belief's mathematics, in f64 on plain row-major
//! slices, independent of any network or training loop.
//!
//! Model: Y = C W + E with C `N x d` features, Y `N x m` targets, rows of E ~ N(0, Σ);
//! Σ ~ IW(Ψ0, ν0), W | Σ ~ MN(M0, Λ0^{-1}, Σ) ([`MniwPrior`], diagonal Λ0 and Ψ0
//! through their logs). This module owns:
//! - [`Stats`]: the additive sufficient statistics C'C, C'Y, Y'Y, N;
//! - [`posterior`] / [`Posterior`]: M_N, Λ_N, Ψ_N, ν_N with their Cholesky factors,
//!   E[Σ], the Student-t predictive ([`StudentT`]) and exact posterior draws;
//! - [`log_marginal`] and [`log_marginal_and_grad`]: log p(Y | C) and its analytic
//!   gradient ([`GlmGrad`]) with respect to the statistics and the prior, with
//!   [`features_grad`] / [`targets_grad`] carrying it to the rows of C and Y;
//! - [`TrialBatchLoss`]: the training loss over a batch of trials and context
//!   prefixes, with exact gradients, allocation-free in its loop;
//! - [`GlmStream`]: the batched acting-time belief, advanced by rank-1 updates.
//!
//! ```
//! use bamdp::belief::glm::{log_marginal, posterior, GlmStream, MniwPrior, Stats};
//!
//! // y = 2 x - 1 (+ small noise), features c = [x, 1], one target.
//! let xs = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5];
//! let noise = [0.01, -0.02, 0.0, 0.015, -0.01, 0.005];
//! let c: Vec<f64> = xs.iter().flat_map(|&x| [x, 1.0]).collect();
//! let y: Vec<f64> = xs.iter().zip(noise).map(|(&x, e)| 2.0 * x - 1.0 + e).collect();
//!
//! let prior = MniwPrior::isotropic(2, 1, 1e-2, 1e-2, 3.0)?;
//! let stats = Stats::from_rows(2, 1, &c, &y, xs.len())?;
//! let post = posterior(&prior, &stats)?;
//! assert!((post.m_n[0] - 2.0).abs() < 0.05 && (post.m_n[1] + 1.0).abs() < 0.05);
//!
//! // The same posterior, one row at a time (what an agent does while acting).
//! let mut stream = GlmStream::new(&prior, 1)?;
//! for t in 0..xs.len() {
//!     stream.update_row(0, &c[2 * t..2 * t + 2], &y[t..t + 1]);
//! }
//! assert!((stream.mean_row(0)[0] - post.m_n[0]).abs() < 1e-9);
//!
//! // Evidence of the data, and the predictive at x = 3.
//! let lml = log_marginal(&prior, &stats)?;
//! assert!(lml.is_finite() && (lml - post.log_marginal).abs() < 1e-12);
//! let pred = post.predictive(&[3.0, 1.0])?;
//! assert!((pred.mean[0] - 5.0).abs() < 0.1);
//! assert!(pred.log_density(&[5.0]) > pred.log_density(&[6.0]));
//! # Ok::<(), bamdp::belief::glm::GlmError>(())
//! ```

mod error;
mod eval;
mod linalg;
mod marginal;
mod posterior;
mod prior;
mod rank1;
mod sample;
pub mod special;
mod stats;
mod stream;
mod trials;

pub use error::GlmError;
pub use marginal::{
    features_grad, log_marginal, log_marginal_and_grad, targets_grad, GlmGrad, PriorGrad,
};
pub use posterior::{posterior, Posterior, StudentT};
pub use prior::MniwPrior;
pub use sample::{chi_square, gamma, gamma_from, SampleScratch};
pub use stats::Stats;
pub use stream::{GlmStream, StreamSampleScratch};
pub use trials::{trials_loss_and_grad, GlmScalar, TrialBatchLoss};
