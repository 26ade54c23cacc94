"""Trained runs from Python: :func:`train` runs ``bamdp train``; :func:`load_agent` turns
a run folder into an :class:`Agent` that acts on a batch of observations exactly as
``bamdp eval`` does (same networks, beliefs, action random streams).

An agent keeps a memory or belief per row across the episodes of a trial, so it has to
see what happened after each action: alternate :meth:`Agent.act` and
:meth:`Agent.observe` (or :meth:`Agent.observe_step` with the outputs of a
:class:`bamdp.BamdpVectorEnv` step).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from . import _native


def train(
    config_path: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
) -> str:
    """Runs the same trainer as ``bamdp train --config CONFIG_PATH --out OUT --set k=v ...``
    and returns the run folder.

    ``overrides`` maps config keys to values (``{"run.total_frames": 20000}``), like
    ``--set``. The GIL is released while it trains. Ctrl-C saves the checkpoint as the
    CLI does (continue with ``resume=True, out=...``) and then raises
    ``KeyboardInterrupt``. Bad configs or flags raise ``ValueError`` (a missing file
    ``FileNotFoundError``) with the CLI's message.
    """
    sets = [f"{k}={_toml_value(v)}" for k, v in (overrides or {}).items()]
    run, interrupted = _native.train(
        None if config_path is None else os.fspath(config_path),
        None if out is None else os.fspath(out),
        sets,
        resume,
        force,
        quiet,
    )
    if interrupted:
        raise KeyboardInterrupt(
            f"training interrupted: checkpoint saved in {run}; continue with "
            f"bamdp.train(out={str(run)!r}, resume=True)"
        )
    return str(run)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return repr(v)


class Agent:
    """A trained run acting for ``num_envs`` rows (see :func:`load_agent`)."""

    def __init__(self, core: _native.AgentCore) -> None:
        self._core = core
        self.num_envs: int = core.rows
        self.obs_dim: int = core.obs_dim
        self.episodes_per_trial: int = core.episodes_per_trial
        self.method: str = core.method
        self.env: str = core.env
        self.seed: int = core.seed
        self.frames_trained: int = core.frames_trained
        #: Whether :meth:`adapt` changes the weights (MAML runs).
        self.adapts_weights: bool = core.adapts_weights

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions for ``obs`` (``(num_envs, obs_dim)`` float32; float64 is converted):
        int64 ``(num_envs,)`` for discrete envs, float32 ``(num_envs, dim)`` otherwise.
        The first call starts every row's trial at ``obs``; later calls must pass the
        observations given to the last :meth:`observe`."""
        return self._core.act(obs)

    def observe(
        self,
        obs: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        trial_end: np.ndarray,
        final_obs: np.ndarray | None = None,
        success: np.ndarray | None = None,
    ) -> None:
        """What followed the last actions: next observations (already reset where an
        episode ended), rewards, and per row whether the episode terminated, was
        truncated, and was the trial's last (the belief resets there). ``final_obs``:
        the last observation of each ended episode (default ``obs``)."""
        self._core.observe(
            obs, reward, terminated, truncated, trial_end, final_obs, success
        )

    def adapt(self) -> None:
        """MAML runs: the inner policy-gradient step on each row's steps since its trial
        started or the last ``adapt`` (its adaptation episodes), as ``bamdp eval`` takes
        it; the row acts with the adapted weights until its trial ends. Other methods
        adapt by acting (memory or belief): nothing to do. Call it after an
        :meth:`observe`, before the next :meth:`act`."""
        self._core.adapt()

    def observe_step(self, step: tuple) -> None:
        """:meth:`observe` with the tuple a :class:`bamdp.BamdpVectorEnv` step returned."""
        obs, reward, terminated, truncated, info = step
        self._core.observe(
            obs,
            reward,
            terminated,
            truncated,
            info["trial_end"],
            info.get("final_obs"),
            info.get("success"),
        )

    def __repr__(self) -> str:
        return (
            f"Agent(method={self.method!r}, env={self.env!r}, num_envs={self.num_envs}, "
            f"frames_trained={self.frames_trained})"
        )


def load_agent(
    run_dir: str | os.PathLike[str],
    num_envs: int | None = None,
    *,
    seed: int | None = None,
    greedy: bool = False,
    episodes_per_trial: int | None = None,
    greedy_from_episode: int = 0,
) -> Agent:
    """The latest checkpoint of the run folder ``run_dir`` as an :class:`Agent`.

    Defaults are ``bamdp eval``'s: ``num_envs = min(eval.num_tasks, 256)`` rows, the
    run's seed for the action streams, sampled actions (``greedy=True`` takes the most
    likely one, from episode ``greedy_from_episode`` of each trial on, 0-based), the
    env's episodes per trial. A missing folder raises ``FileNotFoundError``; a broken one
    ``ValueError``.
    """
    core = _native.AgentCore(
        os.fspath(run_dir), num_envs, seed, greedy, episodes_per_trial, greedy_from_episode
    )
    return Agent(core)
