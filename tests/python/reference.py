"""Reference for tests/python_bridge.rs: drives the same simulators directly from
Python, without bamdp's worker, for given tasks, reset seeds and actions, and prints
observations, rewards and success flags as JSON (float32 values, as bamdp sees them).

Input (stdin, JSON): {"env": "cheetah-vel"|"cheetah-dir"|"ant-dir"|"ml1-reach"|...,
 "bench_seed": int, "split": "train"|"test", "episode_len": int,
 "rows": [{"task_index": int, "task_value": float, "seeds": [int per episode],
           "actions": [[float32 ...] per step]}]}
Each row plays one trial-less sequence: episode e is reset with seeds[e] and lasts
episode_len steps (MuJoCo rewards follow VariBAD's formulas, written out here again).
"""
import json
import sys

import numpy as np


def mujoco_rows(spec):
    from gymnasium.envs.mujoco.ant_v5 import AntEnv
    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

    out = []
    for row in spec["rows"]:
        if spec["env"] == "ant-dir":
            env = AntEnv(include_cfrc_ext_in_observation=False)
        else:
            env = HalfCheetahEnv()
        g = row["task_value"]
        obs_l, rew_l, term_l = [], [], []
        ep = 0
        obs, _ = env.reset(seed=row["seeds"][0])
        obs_l.append(np.float32(obs).tolist())
        t = 0
        for a in row["actions"]:
            a = np.asarray(a, dtype=np.float32)
            d = env.unwrapped.data
            if spec["env"] == "ant-dir":
                xy0 = d.body("torso").xpos[:2].copy()
                obs, _, term, _, _ = env.step(a)
                v = (d.body("torso").xpos[:2] - xy0) / env.unwrapped.dt
                r = (v[0] * np.cos(g) + v[1] * np.sin(g)) - 0.5 * np.sum(np.square(a)) \
                    - 0.5e-3 * np.sum(np.square(np.clip(d.cfrc_ext, -1, 1))) + 1.0
            else:
                x0 = float(d.qpos[0])
                obs, _, term, _, _ = env.step(a)
                v = (float(d.qpos[0]) - x0) / env.unwrapped.dt
                c = 0.05 * np.sum(np.square(a))
                r = (-abs(v - g) if spec["env"] == "cheetah-vel" else g * v) - c
            rew_l.append(float(np.float32(r)))
            term_l.append(bool(term))
            t += 1
            if term or t == spec["episode_len"]:
                ep += 1
                t = 0
                obs, _ = env.reset(seed=row["seeds"][ep])
            obs_l.append(np.float32(obs).tolist())
        out.append({"obs": obs_l, "reward": rew_l, "terminated": term_l})
    return out


def metaworld_rows(spec):
    import metaworld

    name = spec["env"]
    seed = spec["bench_seed"]
    if name.startswith("ml1-"):
        bench = metaworld.ML1(name[4:] + "-v3", seed=seed)
    elif name == "ml10":
        bench = metaworld.ML10(seed=seed)
    else:
        bench = metaworld.ML45(seed=seed)
    classes = bench.train_classes if spec["split"] == "train" else bench.test_classes
    tasks = bench.train_tasks if spec["split"] == "train" else bench.test_tasks
    out = []
    for row in spec["rows"]:
        task = tasks[row["task_index"]]
        env = classes[task.env_name](reward_function_version="v2")
        env.set_task(task)
        obs, _ = env.reset()
        obs_l, rew_l, succ_l = [np.float32(obs).tolist()], [], []
        t = 0
        for a in row["actions"]:
            obs, r, _, _, info = env.step(np.asarray(a, dtype=np.float32))
            rew_l.append(float(np.float32(r)))
            succ_l.append(bool(info["success"] >= 1.0))
            t += 1
            if t == spec["episode_len"]:
                t = 0
                obs, _ = env.reset()
            obs_l.append(np.float32(obs).tolist())
        out.append({"obs": obs_l, "reward": rew_l, "success": succ_l})
    return out


def split_names(spec):
    import metaworld

    bench = {"ml10": metaworld.ML10, "ml45": metaworld.ML45}[spec["env"]](seed=spec["bench_seed"])
    return {
        "train": [t.env_name for t in bench.train_tasks],
        "test": [t.env_name for t in bench.test_tasks],
        "train_classes": list(bench.train_classes.keys()),
        "test_classes": list(bench.test_classes.keys()),
    }


def main():
    spec = json.load(sys.stdin)
    if spec.get("mode") == "splits":
        res = split_names(spec)
    elif spec["env"] in ("cheetah-vel", "cheetah-dir", "ant-dir"):
        res = mujoco_rows(spec)
    else:
        res = metaworld_rows(spec)
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
