"""MetaWorld's own `metalearning_evaluation` (metaworld 3.1.1, unchanged) scores a bamdp
run through bamdp.metaworld.MetaWorldAgent, and agrees with `bamdp eval --protocol
metaworld` on the same run: a 1-update ml1-reach RL2 run, the real MetaWorld test envs.
About a minute on 2 cores (MetaWorld steps in Python at ~2 ms a step)."""

import json
import pickle
import tomllib
from pathlib import Path

import metaworld
import metaworld.evaluation
import numpy as np
import pytest

import bamdp
import bamdp.metaworld
from conftest import REPO

SEED = 1  # the run's seed: bamdp's ml1-reach plays metaworld.ML1("reach-v3", seed=1)


@pytest.fixture(scope="module")
def reach_run(tmp_path_factory):
    return bamdp.train(
        REPO / "configs/ml1-reach/rl2.toml",
        out=tmp_path_factory.mktemp("mw") / "run",
        overrides={
            "run.num_envs": 2,
            "run.steps_per_update": 500,
            "run.total_frames": 1000,
            "ppo.minibatches": 1,
            # Small networks: the comparison acts for 50 tasks x 1,000 steps.
            "policy.hidden": [32, 32],
            "rl2.gru_hidden": 32,
        },
        quiet=True,
    )


def test_metalearning_evaluation_runs_a_bamdp_agent(reach_run):
    raw = metaworld.make_ml_envs_test("reach-v3", seed=0, meta_batch_size=2)
    with pytest.raises(ValueError, match="RecordOutcome"):
        bamdp.metaworld.MetaWorldAgent(reach_run, raw)
    envs = bamdp.metaworld.RecordOutcome(raw)
    agent = bamdp.metaworld.MetaWorldAgent(reach_run, envs, adaptation_episodes=1, evaluation_episodes=1)
    assert agent.agent.episodes_per_trial == 2 and agent.agent.num_envs == envs.num_envs
    success, mean_return, per_task = metaworld.evaluation.metalearning_evaluation(
        agent, envs, num_evals=2, adaptation_steps=1, adaptation_episodes=1, evaluation_episodes=1
    )
    assert set(per_task) == {"reach-v3"}
    assert 0.0 <= success <= 1.0 and mean_return > 0.0


def test_metalearning_evaluation_agrees_with_the_cli_protocol(reach_run, cli):
    """Aligned: one env (meta_batch_size=1), so MetaWorld's per-round count of the
    first evaluation episodes to end is the per-task rate `bamdp eval --protocol
    metaworld` reports; actions by the mode on both sides (`--greedy`, which under this
    protocol covers the evaluation episodes only: with no adaptation episode no action is
    drawn, so MetaWorld's shuffled task order cannot give the two sides different action
    streams), the memory carried across the two evaluation episodes, and bamdp's native
    ml1-reach is MetaWorld's simulation bit for bit (tests/mujoco_native.rs). MetaWorld
    shuffles the order of its 50 test tasks; we read which ones it played and compare
    those tasks' rows of bamdp's report: equal success, returns equal up to float32
    rewards."""
    rounds, adapt, evaluate = 3, 0, 2
    with open(Path(reach_run) / "config.toml", "rb") as f:
        assert tomllib.load(f)["seed"] == SEED
    envs = bamdp.metaworld.RecordOutcome(
        metaworld.make_ml_envs_test("reach-v3", seed=SEED, meta_batch_size=1)
    )
    agent = bamdp.metaworld.MetaWorldAgent(
        reach_run, envs, adaptation_episodes=adapt, evaluation_episodes=evaluate, greedy=True
    )
    success, mean_return, per_task = metaworld.evaluation.metalearning_evaluation(
        agent,
        envs,
        num_evals=rounds,
        adaptation_steps=1,
        adaptation_episodes=adapt,
        evaluation_episodes=evaluate,
    )
    # The tasks MetaWorld played: its first `rounds` of the shuffled list.
    (order,) = envs.get_attr("tasks")
    assert envs.get_attr("current_task_idx") == (rounds - 1,)
    test_vecs = [pickle.loads(t.data)["rand_vec"] for t in metaworld.ML1("reach-v3", seed=SEED).test_tasks]
    played = []
    for t in order[:rounds]:
        vec = pickle.loads(t.data)["rand_vec"]
        (index,) = [i for i, v in enumerate(test_vecs) if np.array_equal(v, vec)]
        played.append(index)

    out = cli(
        "eval", "--run", str(reach_run), "--protocol", "metaworld", "--greedy", "--json",
        "--adaptation-episodes", str(adapt), "--evaluation-episodes", str(evaluate),
        "--num-tasks", "50",
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["metaworld"]
    rows = {r["task"]: r for r in report["per_task"]}
    assert sorted(rows) == list(range(50))
    ours_success = [rows[i]["success_rate"] for i in played]
    ours_return = [rows[i]["mean_return"] for i in played]
    assert success == pytest.approx(np.mean(ours_success), abs=1e-12)
    assert set(per_task) == {"reach-v3"} and per_task["reach-v3"] == pytest.approx(success, abs=1e-12)
    assert mean_return == pytest.approx(np.mean(ours_return), rel=1e-5)


def test_metalearning_evaluation_adapts_a_maml_run(tmp_path):
    """MAML adapts its weights in `adapt()` (the inner step `bamdp eval` takes; exactness
    against it is tests/maml.rs): with the same action streams, the evaluation episodes
    differ from those of the same agent whose `adapt()` is skipped."""
    run = bamdp.train(
        REPO / "configs/ml1-reach/maml.toml",
        out=tmp_path / "maml",
        overrides={
            "maml.meta_batch": 2,
            "maml.episodes_per_task": 1,
            "maml.post_episodes": 1,
            "maml.hidden": [16],
            "run.total_frames": 2000,
        },
        quiet=True,
    )

    class NoAdapt(bamdp.metaworld.MetaWorldAgent):
        def adapt(self) -> None:
            pass

    def score(cls):
        envs = bamdp.metaworld.RecordOutcome(
            metaworld.make_ml_envs_test("reach-v3", seed=SEED, meta_batch_size=1)
        )
        agent = cls(run, envs, adaptation_episodes=1, evaluation_episodes=1)
        assert agent.agent.adapts_weights and agent.agent.method == "maml"
        return metaworld.evaluation.metalearning_evaluation(
            agent, envs, num_evals=1, adaptation_episodes=1, evaluation_episodes=1
        )

    adapted, unadapted = score(bamdp.metaworld.MetaWorldAgent), score(NoAdapt)
    assert 0.0 <= adapted[0] <= 1.0 and adapted[1] > 0.0
    assert adapted[1] != unadapted[1], "adapt() left the weights unchanged"
