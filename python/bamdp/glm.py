"""Exact Bayesian generalised linear models with a Matrix-Normal-Inverse-Wishart prior
(bamdp's GLiBRL belief mathematics, docs/methods.md#glibrl), in float64 on NumPy arrays.

Model: ``Y = C W + E`` with features ``C`` (N x d), targets ``Y`` (N x m), rows of ``E``
~ N(0, Sigma); ``Sigma ~ IW(Psi0, nu0)``, ``W | Sigma ~ MN(M0, Lambda0^-1, Sigma)``, with
diagonal ``Lambda0`` and ``Psi0`` given by their logs (:class:`MniwPrior`).

- :class:`Stats`: the additive sufficient statistics C'C, C'Y, Y'Y, N;
- :func:`posterior` -> :class:`Posterior`: M_N, Lambda_N, Psi_N, nu_N, E[Sigma], the
  Student-t predictive (:class:`StudentT`) and exact draws;
- :func:`log_marginal`, :func:`log_marginal_and_grad`: log p(Y | C) and its analytic
  gradient (:class:`MarginalGrad`, also carried to the rows of C and Y);
- :class:`GlmStream`: many posteriors advanced one (c, y) pair at a time by rank-1 updates.

Array arguments may be any array-like of numbers; they are converted to float64 (a copy
only when they are not already float64 NumPy arrays; C-contiguous ones are read in place). Wrong shapes raise ``ValueError``.

>>> import numpy as np
>>> from bamdp import glm
>>> x = np.linspace(0, 2.5, 6)
>>> c = np.stack([x, np.ones_like(x)], axis=1)
>>> y = (2 * x - 1)[:, None]
>>> prior = glm.MniwPrior.isotropic(2, 1, lambda0=1e-2, psi0=1e-2, nu0=3.0)
>>> post = glm.posterior(prior, glm.Stats.from_rows(c, y))
>>> bool(np.allclose(post.m_n[:, 0], [2, -1], atol=0.05))
True
"""

from __future__ import annotations

from . import _native

__all__ = [
    "MniwPrior",
    "Stats",
    "Posterior",
    "StudentT",
    "MarginalGrad",
    "GlmStream",
    "posterior",
    "log_marginal",
    "log_marginal_and_grad",
]

MniwPrior = _native.MniwPrior
Stats = _native.Stats
Posterior = _native.Posterior
StudentT = _native.StudentT
MarginalGrad = _native.MarginalGrad
GlmStream = _native.GlmStream
posterior = _native.posterior
log_marginal = _native.log_marginal
log_marginal_and_grad = _native.log_marginal_and_grad
