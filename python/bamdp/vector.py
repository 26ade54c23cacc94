"""bamdp's batched environments as a :class:`gymnasium.vector.VectorEnv`.

Every row plays BAMDP *trials*: ``episodes_per_trial`` consecutive episodes of one task.
Episodes end by their time limit (``truncated``) or a true terminal state
(``terminated``); the row then resets itself in the same step (Gymnasium's
``AutoresetMode.SAME_STEP``: ``obs`` is the first observation of the next episode and
``info["final_obs"]`` the last one of the ended episode). A trial ends with its last
episode, and only then is a new task drawn. ``info`` carries the trial structure on
every step:

- ``trial_end`` (bool): the episode that ended here was the trial's last;
- ``episode_index`` (uint32): index within the trial of the episode this step belonged to;
- ``task_id`` (int64): the trial this step belongs to, unique per (row, trial) since the
  last ``reset``: ``trial * num_envs + row``; a new task is drawn for every trial;
- ``success`` (bool, envs with a success signal).
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from . import _native


class BamdpVectorEnv(gym.vector.VectorEnv):
    """A batch of ``num_envs`` bamdp environments (see the module docstring).

    Build it with :func:`bamdp.make_vec_env`. Observations are float32 arrays of shape
    ``(num_envs, obs_dim)``; rewards float32 ``(num_envs,)``. Actions: an integer array
    of ``num_envs`` indices for discrete envs, a float32 ``(num_envs, dim)`` array for
    continuous ones (read in place when C-contiguous; float64 is converted).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        name: str,
        num_envs: int,
        split: str = "train",
        seed: int = 0,
        *,
        episodes_per_trial: int | None = None,
        episode_len: int | None = None,
    ) -> None:
        _check_int("num_envs", num_envs, 1)
        _check_int("seed", seed, 0)
        self._core = _native.VecEnvCore(
            name, num_envs, split, seed, episodes_per_trial, episode_len
        )
        core = self._core
        self.name = name
        self.split = split
        self.num_envs = num_envs
        self.episode_len = core.episode_len
        self.episodes_per_trial = core.episodes_per_trial
        self.has_success = core.has_success
        self.single_observation_space = spaces.Box(
            -np.inf, np.inf, (core.obs_dim,), np.float32, seed=seed
        )
        if core.num_actions > 0:
            self.single_action_space = spaces.Discrete(core.num_actions, seed=seed)
        else:
            self.single_action_space = spaces.Box(
                core.action_low, core.action_high, (core.action_dim,), np.float32, seed=seed
            )
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.action_space.seed(seed)
        self._np_random, self._np_random_seed = seeding.np_random(seed)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts a fresh trial on every row: a row whose trial has begun gets a new
        task, a row whose trial has not keeps the task it drew (no task is skipped
        unplayed). With ``seed`` the batch is rebuilt from that seed, so everything
        after equals ``make_vec_env(..., seed=seed)``; without, the rows continue their
        own random streams."""
        if options:
            raise ValueError(
                f"invalid value {sorted(options)!r} for `options`: expected no options "
                "(set episodes_per_trial and episode_len in make_vec_env)"
            )
        if seed is not None:
            _check_int("seed", seed, 0)
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        obs = self._core.reset(seed)
        return obs, {}

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not isinstance(actions, np.ndarray):
            actions = np.asarray(actions)
        (
            obs,
            reward,
            terminated,
            truncated,
            trial_end,
            success,
            episode_index,
            task_id,
            final_obs,
            ended,
        ) = self._core.step(actions)
        # One fresh mask per call: keys present on every row (Gymnasium's `_key` convention).
        every_row = np.ones(self.num_envs, dtype=bool)
        info: dict[str, Any] = {
            "trial_end": trial_end,
            "_trial_end": every_row,
            "episode_index": episode_index,
            "_episode_index": every_row,
            "task_id": task_id,
            "_task_id": every_row,
        }
        if success is not None:
            info["success"] = success
            info["_success"] = every_row
        if final_obs is not None:
            info["final_obs"] = final_obs
            info["_final_obs"] = ended
        return obs, reward, terminated, truncated, info

    def state(self) -> dict[str, Any]:
        """The batch's full state: tasks, positions, counters and random streams (the
        object a bamdp checkpoint stores)."""
        return json.loads(self._core.state_json())

    def simulator_versions(self) -> dict[str, str]:
        """Versions of the external simulators behind this batch (empty for native envs)."""
        return dict(self._core.versions())

    def __repr__(self) -> str:
        return f"BamdpVectorEnv({self.name!r}, num_envs={self.num_envs}, split={self.split!r})"


def _check_int(key: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(
            f"invalid value {value!r} for `{key}`: expected an integer >= {low}"
        )


def make_vec_env(
    name: str, num_envs: int, split: str = "train", seed: int = 0, **options: Any
) -> BamdpVectorEnv:
    """A :class:`BamdpVectorEnv` of ``num_envs`` rows of env ``name`` (``bamdp.env_names()``
    lists them) drawing tasks from ``split`` ("train" or "test"), seeded like
    ``bamdp train`` / ``bamdp eval`` seed theirs.

    Options: ``episodes_per_trial`` (default: the env's), ``episode_len`` (the
    ``functions-*`` envs' horizon, ``functions.episode_len``).
    """
    allowed = {"episodes_per_trial", "episode_len"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(
            f"invalid value {unknown[0]!r} for `options`: expected one of: "
            + ", ".join(sorted(allowed))
        )
    return BamdpVectorEnv(name, num_envs, split, seed, **options)
