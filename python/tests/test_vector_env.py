"""bamdp.make_vec_env: Gymnasium's API checks that apply to vector envs, the trial
structure in `info`, and bad input raising ValueError with the CLI's messages."""

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.utils.passive_env_checker import check_action_space, check_observation_space
from gymnasium.vector import AutoresetMode

import bamdp

NATIVE_ENVS = ["gridnavi", "point_robot", "point_robot_sparse", "functions-1d", "functions-2d-norm"]


@pytest.mark.parametrize("name", NATIVE_ENVS)
def test_spaces_and_reset(name):
    env = bamdp.make_vec_env(name, 5, seed=3)
    assert isinstance(env, gym.vector.VectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    check_observation_space(env.single_observation_space)
    check_action_space(env.single_action_space)
    assert env.observation_space.shape == (5, *env.single_observation_space.shape)
    obs, info = env.reset(seed=1)
    assert isinstance(info, dict)
    assert obs.dtype == np.float32 and obs in env.observation_space
    actions = env.action_space.sample()
    assert actions in env.action_space
    obs, reward, terminated, truncated, info = env.step(actions)
    assert obs in env.observation_space
    assert reward.shape == (5,) and reward.dtype == np.float32
    assert terminated.dtype == np.bool_ and truncated.dtype == np.bool_
    for key in ("trial_end", "episode_index", "task_id"):
        assert info[key].shape == (5,) and info["_" + key].all()


@pytest.mark.parametrize("name", NATIVE_ENVS)
def test_seeded_reset_and_step_are_deterministic(name):
    env = bamdp.make_vec_env(name, 4, seed=0)
    runs = []
    for _ in range(2):
        env.action_space.seed(123)
        obs0, _ = env.reset(seed=123)
        steps = [env.step(env.action_space.sample()) for _ in range(30)]
        runs.append((obs0, steps, json.dumps(env.state())))
    assert data_equivalence(runs[0][0], runs[1][0], exact=True)
    assert data_equivalence(runs[0][1], runs[1][1], exact=True)
    assert runs[0][2] == runs[1][2]
    # Another seed draws other tasks; an unseeded reset continues the streams (once
    # the trials have begun: a reset keeps tasks nobody has played yet).
    env.reset(seed=124)
    other = json.dumps(env.state())
    assert other != runs[1][2]
    env.reset()
    assert json.dumps(env.state()) == other
    env.step(env.action_space.sample())
    env.reset()
    assert json.dumps(env.state()) != other
    # make_vec_env(seed=s) equals reset(seed=s).
    fresh = bamdp.make_vec_env(name, 4, seed=124)
    fresh.reset()
    env.reset(seed=124)
    assert json.dumps(fresh.state()) == json.dumps(env.state())


def test_returned_data_is_never_reused():
    env = bamdp.make_vec_env("gridnavi", 3, seed=0)
    calls = [env.reset(seed=5)]
    for _ in range(20):
        obs, _, _, _, info = env.step(env.action_space.sample())
        calls.append((obs, info))
    from gymnasium.utils.passive_env_checker import data_shares_objects

    for i in range(len(calls)):
        for j in range(i + 1, len(calls)):
            assert not data_shares_objects(calls[i][0], calls[j][0])
            assert not data_shares_objects(calls[i][1], calls[j][1])


def test_gridnavi_trial_structure():
    """GridNavi: 15 steps x 4 episodes. Every 15th step truncates (SAME_STEP reset to the
    start cell, final_obs the last cell); the 60th ends the trial and a new task_id starts."""
    n = 6
    env = bamdp.make_vec_env("gridnavi", n, split="test", seed=9)
    assert (env.episode_len, env.episodes_per_trial) == (15, 4)
    obs, _ = env.reset()
    start = obs.copy()
    rng = np.random.default_rng(0)
    for t in range(1, 2 * 60 + 1):
        obs, reward, terminated, truncated, info = env.step(rng.integers(0, 5, size=n))
        episode = (t - 1) // 15 % 4
        assert not terminated.any()
        assert (truncated == (t % 15 == 0)).all()
        assert (info["trial_end"] == (t % 60 == 0)).all()
        assert (info["episode_index"] == episode).all()
        assert (info["task_id"] == (t - 1) // 60 * n + np.arange(n)).all()
        if t % 15 == 0:
            assert info["_final_obs"].all()
            np.testing.assert_array_equal(obs, start)
        else:
            assert "final_obs" not in info
        assert np.all((reward == np.float32(1.0)) | (reward == np.float32(-0.1)))


def test_goal_is_fixed_within_a_trial_and_redrawn_after():
    env = bamdp.make_vec_env("gridnavi", 8, seed=2)
    env.reset()
    goals = [env.state()["goal"]]
    for t in range(1, 181):
        env.step(np.zeros(8, dtype=np.int64))
        if t % 60 == 59:
            goals.append(env.state()["goal"])
    assert goals[0] == goals[1] and goals[1] != goals[2] and goals[2] != goals[3]


def test_functions_episode_len_option():
    env = bamdp.make_vec_env("functions-1d", 2, episode_len=7, episodes_per_trial=3)
    assert (env.episode_len, env.episodes_per_trial) == (7, 3)
    env.reset()
    ends = [env.step(np.zeros((2, 1), dtype=np.float32))[3][0] for _ in range(21)]
    assert [i + 1 for i, e in enumerate(ends) if e] == [7, 14, 21]


def test_continuous_actions_in_place_and_float64():
    env = bamdp.make_vec_env("point_robot", 3, seed=1)
    a32 = np.full((3, 2), 0.05, dtype=np.float32)
    env.reset(seed=1)
    o32 = env.step(a32)[0]
    env.reset(seed=1)
    o64 = env.step(a32.astype(np.float64))[0]
    np.testing.assert_array_equal(o32, o64)
    env.reset(seed=1)
    strided = np.full((3, 4), 0.05, dtype=np.float32)[:, ::2]
    np.testing.assert_array_equal(env.step(strided)[0], o32)


def test_bad_input_raises_value_error_with_the_cli_message():
    with pytest.raises(ValueError, match=r'invalid value "grid" for `env`: expected one of: gridnavi, '):
        bamdp.make_vec_env("grid", 4)
    with pytest.raises(ValueError, match=r'invalid value "val" for `--split`: expected one of: train, test'):
        bamdp.make_vec_env("gridnavi", 4, split="val")
    with pytest.raises(ValueError, match="`num_envs`"):
        bamdp.make_vec_env("gridnavi", 0)
    with pytest.raises(ValueError, match="`options`"):
        bamdp.make_vec_env("gridnavi", 2, horizon=3)
    with pytest.raises(ValueError, match="functions.episode_len"):
        bamdp.make_vec_env("functions-1d", 2, episode_len=10**6)
    env = bamdp.make_vec_env("gridnavi", 4)
    env.reset()
    with pytest.raises(ValueError, match=r"`actions`: expected an integer array of 4 action indices in 0..5"):
        env.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r'invalid value "5" for `actions`'):
        env.step(np.array([0, 1, 2, 5]))
    with pytest.raises(ValueError, match="`actions`"):
        env.step(np.array(["a", "b", "c", "d"]))
    with pytest.raises(ValueError, match="`actions`"):
        env.step(np.zeros(4, dtype=np.float64))
    cont = bamdp.make_vec_env("point_robot", 2)
    cont.reset()
    with pytest.raises(ValueError, match=r"`actions`: expected a float32 array of shape \(2, 2\)"):
        cont.step(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="finite"):
        cont.step(np.full((2, 2), np.nan, dtype=np.float32))
    # The env is still usable after every rejected call.
    assert env.step(np.zeros(4, dtype=np.int64))[0].shape == (4, 2)


def test_env_names_lists_the_cli_envs():
    names = bamdp.env_names()
    assert "gridnavi" in names and "ml1-<task>" in names
