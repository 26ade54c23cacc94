"""A bamdp agent behind MetaWorld's ``MetaLearningAgent`` protocol, so that
``metaworld.evaluation.metalearning_evaluation`` scores it unchanged.

MetaWorld's ``evaluation`` hands the agent only observations and done masks, while a
bamdp agent's memory or belief also needs the rewards. :class:`RecordOutcome` wraps the
evaluation envs and keeps each step's outcome for the agent to read; the evaluation
function itself is untouched::

    envs = bamdp.metaworld.RecordOutcome(metaworld.make_ml_envs_test("reach-v3", seed=0))
    agent = bamdp.metaworld.MetaWorldAgent("runs/ml1-reach-rl2-s1", envs)
    success, mean_return, per_task = metaworld.evaluation.metalearning_evaluation(agent, envs)

One trial of the bamdp agent spans the adaptation episodes and the evaluation episodes
(default 10 + 3, as ``bamdp eval --episodes-per-task 13``): the memory or belief built
while adapting carries into evaluation; ``init()`` starts fresh trials. ``adapt()``
takes MAML's inner step on each env's adaptation episodes (MAML runs, as ``bamdp
eval`` adapts them); the other methods adapt by acting, so it changes nothing for
them. ``greedy=True`` acts by the mode in the evaluation episodes only, as Meta-World+'s
agents do and as ``bamdp eval --protocol metaworld --greedy`` does. Episode ends are
read from the outcome's ``terminated`` / ``truncated``; the last observation of an ended
episode is not passed to the protocol, so the belief sees the next episode's first one
in its place.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np

from .agent import load_agent


class RecordOutcome(gym.vector.VectorWrapper):
    """Forwards everything to ``env`` and keeps the last ``step``'s outcome in
    :attr:`last` (``None`` after ``reset``)."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self.last: tuple | None = None

    def reset(self, **kwargs: Any):
        self.last = None
        return self.env.reset(**kwargs)

    def step(self, actions: Any):
        out = self.env.step(actions)
        self.last = out
        return out

    def call(self, name: str, *args: Any, **kwargs: Any):
        return self.env.call(name, *args, **kwargs)

    def get_attr(self, name: str):
        return self.env.get_attr(name)

    def set_attr(self, name: str, values: Any) -> None:
        self.env.set_attr(name, values)


class MetaWorldAgent:
    """MetaWorld's ``MetaLearningAgent`` protocol over a bamdp run (see the module doc)."""

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        envs: RecordOutcome,
        *,
        adaptation_episodes: int = 10,
        evaluation_episodes: int = 3,
        seed: int | None = None,
        greedy: bool = False,
    ) -> None:
        if not isinstance(envs, RecordOutcome):
            raise ValueError(
                f"invalid value {type(envs).__name__} for `envs`: expected the evaluation "
                "envs wrapped in bamdp.metaworld.RecordOutcome (evaluation passes no rewards)"
            )
        self.envs = envs
        self.agent = load_agent(
            run_dir,
            envs.num_envs,
            seed=seed,
            greedy=greedy,
            episodes_per_trial=adaptation_episodes + evaluation_episodes,
            # `adapt_action` samples, `eval_action` takes the mode (Meta-World+'s agents,
            # and `bamdp eval --protocol metaworld --greedy`).
            greedy_from_episode=adaptation_episodes,
        )
        self._k = self.agent.episodes_per_trial
        self._episodes = np.zeros(envs.num_envs, dtype=np.int64)
        self._pending: tuple | None = None
        self._acted = False
        self._observed = False
        self._new_trials = False

    # -- the protocol -------------------------------------------------------------
    def init(self) -> None:
        """Starts fresh trials on every row at the next action."""
        # The last evaluation step's outcome, before the envs are reset for adaptation.
        self._take_recorded()
        self._new_trials = self._acted

    def adapt_action(self, observations: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        return self._act(observations), {}

    def step(self, timestep: Any) -> None:
        self._pending = (
            timestep.reward,
            timestep.terminated,
            timestep.truncated,
            None,
        )

    def adapt(self) -> None:
        """MAML: the inner step on the adaptation episodes just played. Other methods:
        nothing to do (the belief or memory adapts while acting)."""
        if not self.agent.adapts_weights:
            return
        # The last adaptation step's outcome first (its next observation is recorded).
        if self._acted and not self._observed:
            self._observe_pending(np.asarray(self.envs.last[0]))
            self._observed = True
        self.agent.adapt()

    def eval_action(self, observations: np.ndarray) -> np.ndarray:
        self._take_recorded()
        return self._act(observations)

    def reset(self, env_mask: np.ndarray) -> None:
        """Nothing to do: episode ends come with the recorded outcome."""

    # -- bookkeeping ---------------------------------------------------------------
    def _take_recorded(self) -> None:
        last = self.envs.last
        if self._acted and not self._observed and self._pending is None and last is not None:
            _, reward, terminated, truncated, info = last
            success = info.get("success")
            if success is not None:
                success = np.asarray(success) >= 1.0
            self._pending = (reward, terminated, truncated, success)

    def _act(self, observations: np.ndarray) -> np.ndarray:
        obs = np.ascontiguousarray(observations, dtype=np.float32)
        if self._acted and not self._observed:
            self._observe_pending(obs)
        self._pending = None
        self._acted = True
        self._observed = False
        return self.agent.act(obs)

    def _observe_pending(self, obs: np.ndarray) -> None:
        if self._pending is None:
            raise ValueError(
                "MetaWorldAgent: an action was asked for before the outcome of the last "
                "one was recorded (wrap the envs in RecordOutcome and step them)"
            )
        reward, terminated, truncated, success = self._pending
        self._pending = None
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        if self._new_trials:
            truncated = np.ones_like(truncated)
        ended = terminated | truncated
        self._episodes += ended
        trial_end = ended & ((self._episodes >= self._k) | self._new_trials)
        self._episodes[trial_end] = 0
        self.agent.observe(
            np.ascontiguousarray(obs, dtype=np.float32),
            np.asarray(reward, dtype=np.float32),
            terminated,
            truncated,
            trial_end,
            None,
            None if success is None else np.asarray(success, dtype=bool),
        )
        self._new_trials = False
