"""MetaWorld's own `metalearning_evaluation` (metaworld 3.1.1, unchanged) scores a bamdp
run through bamdp.metaworld.MetaWorldAgent: a 1-update ml1-reach RL2 run, the real
MetaWorld test envs. About 45 s on 2 cores (a worker process starts MetaWorld)."""

import metaworld
import metaworld.evaluation
import pytest

import bamdp
import bamdp.metaworld
from conftest import REPO


def test_metalearning_evaluation_runs_a_bamdp_agent(tmp_path):
    run = bamdp.train(
        REPO / "configs/ml1-reach/rl2.toml",
        out=tmp_path / "run",
        overrides={"run.num_envs": 2, "run.steps_per_update": 500, "run.total_frames": 1000, "ppo.minibatches": 1},
        quiet=True,
    )
    raw = metaworld.make_ml_envs_test("reach-v3", seed=0, meta_batch_size=2)
    with pytest.raises(ValueError, match="RecordOutcome"):
        bamdp.metaworld.MetaWorldAgent(run, raw)
    envs = bamdp.metaworld.RecordOutcome(raw)
    agent = bamdp.metaworld.MetaWorldAgent(run, envs, adaptation_episodes=1, evaluation_episodes=1)
    assert agent.agent.episodes_per_trial == 2 and agent.agent.num_envs == envs.num_envs
    success, mean_return, per_task = metaworld.evaluation.metalearning_evaluation(
        agent, envs, num_evals=2, adaptation_steps=1, adaptation_episodes=1, evaluation_episodes=1
    )
    assert set(per_task) == {"reach-v3"}
    assert 0.0 <= success <= 1.0 and mean_return > 0.0
