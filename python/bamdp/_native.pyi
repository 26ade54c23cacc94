"""Type stubs of bamdp's compiled module (python/bamdp-py). Use the documented wrappers
in bamdp, bamdp.glm and bamdp.vector; this module is their implementation."""

from os import PathLike
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

def env_names() -> list[tuple[str, str]]: ...

class VecEnvCore:
    obs_dim: int
    num_actions: int
    action_dim: int
    action_low: float
    action_high: float
    episode_len: int
    episodes_per_trial: int
    has_success: bool
    name: str
    split: str
    num_envs: int
    def __init__(
        self,
        name: str,
        num_envs: int,
        split: str = "train",
        seed: int = 0,
        episodes_per_trial: int | None = None,
        episode_len: int | None = None,
    ) -> None: ...
    def reset(self, seed: int | None = None) -> npt.NDArray[np.float32]: ...
    def step(
        self, actions: npt.NDArray[Any]
    ) -> tuple[
        npt.NDArray[np.float32],  # obs
        npt.NDArray[np.float32],  # reward
        npt.NDArray[np.bool_],  # terminated
        npt.NDArray[np.bool_],  # truncated
        npt.NDArray[np.bool_],  # trial_end
        npt.NDArray[np.bool_] | None,  # success (None without a success signal)
        npt.NDArray[np.uint32],  # episode_index
        npt.NDArray[np.int64],  # task_id
        npt.NDArray[np.float32] | None,  # final_obs (None unless an episode ended)
        npt.NDArray[np.bool_] | None,  # ended rows (None unless an episode ended)
    ]: ...
    def bench_native_steps(self, actions: npt.NDArray[np.float32], steps: int) -> float: ...
    def state_json(self) -> str: ...
    def versions(self) -> list[tuple[str, str]]: ...

class AgentCore:
    rows: int
    obs_dim: int
    num_actions: int
    action_dim: int
    episodes_per_trial: int
    method: str
    env: str
    seed: int
    frames_trained: int
    adapts_weights: bool
    def __init__(
        self,
        run: str | PathLike[str],
        rows: int | None = None,
        seed: int | None = None,
        greedy: bool = False,
        episodes_per_trial: int | None = None,
        greedy_from_episode: int = 0,
    ) -> None: ...
    def act(self, obs: npt.ArrayLike) -> npt.NDArray[Any]: ...
    def observe(
        self,
        obs: npt.ArrayLike,
        reward: npt.ArrayLike,
        terminated: npt.NDArray[np.bool_],
        truncated: npt.NDArray[np.bool_],
        trial_end: npt.NDArray[np.bool_],
        final_obs: npt.ArrayLike | None = None,
        success: npt.NDArray[np.bool_] | None = None,
    ) -> None: ...
    def adapt(self) -> None: ...

def train(
    config: str | PathLike[str] | None = None,
    out: str | PathLike[str] | None = None,
    overrides: list[str] = ...,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
) -> tuple[str, bool]: ...

Array = npt.NDArray[np.float64]

class MniwPrior:
    d: int
    m: int
    m0: Array
    lambda0_log_diag: Array
    psi0_log_diag: Array
    nu0: float
    def __init__(
        self, m0: npt.ArrayLike, lambda0_log_diag: npt.ArrayLike, psi0_log_diag: npt.ArrayLike, nu0: float
    ) -> None: ...
    @staticmethod
    def isotropic(d: int, m: int, lambda0: float, psi0: float, nu0: float) -> MniwPrior: ...

class Stats:
    d: int
    m: int
    n: float
    ctc: Array
    cty: Array
    yty: Array
    def __init__(self, d: int, m: int) -> None: ...
    @staticmethod
    def from_rows(c: npt.ArrayLike, y: npt.ArrayLike) -> Stats: ...
    def add_rows(self, c: npt.ArrayLike, y: npt.ArrayLike) -> None: ...
    def merge(self, other: Stats) -> None: ...

class StudentT:
    dof: float
    mean: Array
    scale: Array
    def log_density(self, y: npt.ArrayLike) -> float: ...

class Posterior:
    d: int
    m: int
    n: float
    m_n: Array
    lambda_n: Array
    psi_n: Array
    nu_n: float
    log_det_lambda_n: float
    log_det_psi_n: float
    log_marginal: float
    def expected_sigma(self) -> Array: ...
    def predictive(self, c: npt.ArrayLike) -> StudentT: ...
    def sample(self, seed: int) -> tuple[Array, Array]: ...

class MarginalGrad:
    ctc: Array
    cty: Array
    yty: Array
    m0: Array
    lambda0_log_diag: Array
    psi0_log_diag: Array
    nu0: float
    def features(self, c: npt.ArrayLike, y: npt.ArrayLike) -> Array: ...
    def targets(self, c: npt.ArrayLike, y: npt.ArrayLike) -> Array: ...

class GlmStream:
    rows: int
    d: int
    m: int
    def __init__(self, prior: MniwPrior, rows: int) -> None: ...
    def update_row(self, r: int, c: npt.ArrayLike, y: npt.ArrayLike) -> None: ...
    def update(self, c: npt.ArrayLike, y: npt.ArrayLike) -> None: ...
    def reset_rows(self, prior: MniwPrior, mask: npt.ArrayLike) -> None: ...
    def mean(self, r: int) -> Array: ...
    def lambda_inv(self, r: int) -> Array: ...
    def psi(self, r: int) -> Array: ...
    def nu(self, r: int) -> float: ...
    def n(self, r: int) -> float: ...
    def expected_sigma(self, r: int) -> Array: ...
    def predictive(self, r: int, c: npt.ArrayLike) -> StudentT: ...
    def sample(self, r: int, seed: int) -> tuple[Array, Array]: ...

def posterior(prior: MniwPrior, stats: Stats) -> Posterior: ...
def log_marginal(prior: MniwPrior, stats: Stats) -> float: ...
def log_marginal_and_grad(prior: MniwPrior, stats: Stats) -> tuple[float, MarginalGrad]: ...
