"""bamdp.train and bamdp.load_agent: a short GridNavi run trained from Python, acted
with from Python, gives exactly what `bamdp eval` reports for the same seed; bad input
raises FileNotFoundError / ValueError with the CLI's messages; Ctrl-C saves the
checkpoint as the CLI does."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import bamdp
from conftest import REPO

NUM_TASKS = 40


@pytest.fixture(scope="module", params=["rl2", "varibad"])
def run_dir(request, tmp_path_factory):
    """A GridNavi run of 3 PPO updates (16 envs x 60 steps each)."""
    out = tmp_path_factory.mktemp(request.param) / "run"
    overrides = {"run.total_frames": 16 * 60 * 3, "eval.num_tasks": NUM_TASKS}
    if request.param == "varibad":
        overrides["run.num_envs"] = 16
    run = bamdp.train(REPO / f"configs/gridnavi/{request.param}.toml", out=out, overrides=overrides, quiet=True)
    assert run == str(out)
    return out


def python_eval(run, greedy=False):
    """`bamdp eval`'s protocol in Python: NUM_TASKS test trials, per-episode returns."""
    agent = bamdp.load_agent(run, greedy=greedy)
    assert agent.num_envs == NUM_TASKS and agent.env == "gridnavi"
    k = agent.episodes_per_trial
    env = bamdp.make_vec_env("gridnavi", agent.num_envs, split="test", seed=agent.seed)
    obs, _ = env.reset()
    returns = np.zeros((agent.num_envs, k))
    success = np.zeros((agent.num_envs, k), dtype=bool)
    actions_seen = []
    while True:
        actions = agent.act(obs)
        actions_seen.append(actions)
        step = env.step(actions)
        obs, reward, _, _, info = step
        agent.observe_step(step)
        rows = np.arange(agent.num_envs)
        returns[rows, info["episode_index"]] += reward.astype(np.float64)
        success[rows, info["episode_index"]] |= info["success"]
        if info["trial_end"].all():
            break
    return returns, success, np.stack(actions_seen)


@pytest.mark.parametrize("greedy", [False, True])
def test_load_agent_acts_as_cli_eval(run_dir, cli, greedy):
    args = ["eval", "--run", str(run_dir), "--json"] + (["--greedy"] if greedy else [])
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    returns, success, actions = python_eval(run_dir, greedy)
    assert report["num_tasks"] == NUM_TASKS
    np.testing.assert_allclose(returns.mean(axis=0), report["episode_returns"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(success.mean(axis=0), report["success_rate"], rtol=0, atol=1e-12)
    # The same agent loaded again takes the same actions (its streams are seeded).
    _, _, again = python_eval(run_dir, greedy)
    np.testing.assert_array_equal(actions, again)


def test_another_seed_samples_other_actions(run_dir):
    _, _, a = python_eval(run_dir)
    agent = bamdp.load_agent(run_dir, seed=12345)
    env = bamdp.make_vec_env("gridnavi", agent.num_envs, split="test", seed=1)
    obs, _ = env.reset()
    b = []
    for _ in range(len(a)):
        b.append(agent.act(obs))
        step = env.step(b[-1])
        obs = step[0]
        agent.observe_step(step)
    assert not np.array_equal(a, np.stack(b))


def test_agent_bad_input(run_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        bamdp.load_agent(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="cannot read run config"):
        bamdp.load_agent(empty)
    agent = bamdp.load_agent(run_dir, 3)
    with pytest.raises(ValueError, match=r"`obs`: expected a float32 array of shape \(3, 2\)"):
        agent.act(np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="`obs`"):
        agent.act(np.zeros((3, 2), dtype=np.int64))
    z = np.zeros(3, dtype=bool)
    with pytest.raises(ValueError, match="observe called without act"):
        agent.observe(np.zeros((3, 2), np.float32), np.zeros(3, np.float32), z, z, z)
    agent.act(np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="act called twice without observe"):
        agent.act(np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="`trial_end`"):
        agent.observe(np.zeros((3, 2), np.float32), np.zeros(3, np.float32), z, z, np.ones(3, bool))
    with pytest.raises(ValueError, match="`reward`"):
        agent.observe(np.zeros((3, 2), np.float32), np.zeros(2, np.float32), z, z, z)
    # Still usable after the rejected calls.
    agent.observe(np.zeros((3, 2), np.float32), np.zeros(3, np.float32), z, z, z)
    assert agent.act(np.zeros((3, 2), dtype=np.float32)).shape == (3,)


def test_train_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot read config file"):
        bamdp.train(tmp_path / "nope.toml", out=tmp_path / "r")
    with pytest.raises(ValueError, match="ppo.lr"):
        bamdp.train(REPO / "configs/gridnavi/rl2.toml", out=tmp_path / "r", overrides={"ppo.lr": -1.0})
    with pytest.raises(ValueError, match="--resume needs --out"):
        bamdp.train(resume=True)


def test_ctrl_c_saves_the_checkpoint_and_resume_continues(tmp_path):
    """SIGINT during bamdp.train: the checkpoint is saved, KeyboardInterrupt is raised,
    and Python's own Ctrl-C handling is back afterwards."""
    out = tmp_path / "run"
    code = f"""
import signal, sys, bamdp
try:
    bamdp.train({str(REPO / 'configs/gridnavi/rl2.toml')!r}, out={str(out)!r},
                overrides={{"run.checkpoint_every": 100000}}, quiet=True)
except KeyboardInterrupt as e:
    print("interrupted:", e, flush=True)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    sys.exit(3)
"""
    # The child starts with SIGINT at its default even when this test runs with SIGINT
    # ignored (a background job of a shell without job control): only then does Python
    # install its own Ctrl-C handler, which the test checks is back afterwards.
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    metrics = out / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stderr
    assert "checkpoint saved" in stdout
    updates = len(metrics.read_text().splitlines()) - 1
    # Resume for two more updates: the run continues from the saved update.
    total = (updates + 2) * 16 * 60
    bamdp.train(out=out, resume=True, overrides={"run.total_frames": total}, quiet=True)
    assert len(metrics.read_text().splitlines()) - 1 == updates + 2
