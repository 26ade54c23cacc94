"""bamdp from Python: Bayes-adaptive deep RL (meta-RL) with batched environments, an
exact MNIW belief library and trained agents (docs/python.md).

- :func:`make_vec_env`: bamdp's batched envs as a ``gymnasium.vector.VectorEnv`` whose
  ``info`` carries the trial structure (episode end vs trial end) and task ids;
- :mod:`bamdp.glm`: the MNIW generalised-linear-model library on NumPy arrays;
- :func:`train`: the ``bamdp train`` trainer; :func:`load_agent`: a trained run acting on
  batches of observations; :class:`bamdp.metaworld.MetaWorldAgent`: the same agent behind
  MetaWorld's ``MetaLearningAgent`` protocol.
"""

from __future__ import annotations

from . import _native, glm
from .agent import Agent, load_agent, train
from .vector import BamdpVectorEnv, make_vec_env

__version__: str = _native.__version__

__all__ = [
    "Agent",
    "BamdpVectorEnv",
    "env_names",
    "glm",
    "load_agent",
    "make_vec_env",
    "train",
]


def env_names() -> dict[str, str]:
    """The environments bamdp knows, name -> one-line description (``bamdp envs``)."""
    return dict(_native.env_names())
