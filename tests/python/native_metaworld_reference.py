"""Reference for tests/mujoco_native.rs: plays MetaWorld episodes through the Python
bridge's own simulator code (`MetaWorldFamily` of python/bamdp_envs/worker.py, i.e.
metaworld 3.1.1's benchmark objects and envs) and writes both splits' task lists and
every step's float32 observation, float32 reward and success flag, as the bridge sends
them.

Input (stdin, JSON): {"benchmark": "ML1"|"ML10"|"ML45", "task": "reach-v3" (ML1 only),
 "split": "train"|"test", "bench_seed": int,
 "episodes": [{"task_index": int, "steps": int, "directed": "goal"|"object"|null}],
 "seed": int}
Actions are uniform in [-1, 1] (float32, NumPy generator seeded with "seed"); in a
directed episode the first three move the hand toward the task's goal (the last three
values of its random vector) or toward the observed object, so that success and the
grasp branches are exercised. The actions are written out for the port to replay.

Output (stdout, little-endian binary): for the train then the test split: u32 tasks,
then per task u32 name_len, name, u32 vec_len, f64 vector; then per episode (on
"split"): u32 steps, f32 first_obs[39], and per step f32 action[4], f32 obs[39], f32
reward, u8 flags (2 = success), f64 info[6] (`float()` of MetaWorld's info entries
INFO_KEYS, taken from the env's own step through a wrapper of its class's `step`).
"""
import json
import os
import pickle
import struct
import sys

import metaworld
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
from bamdp_envs.worker import MetaWorldFamily  # noqa: E402


INFO_KEYS = ("near_object", "grasp_success", "grasp_reward", "in_place_reward",
             "obj_to_target", "unscaled_reward")
LAST = {}


def record_info(cls):
    """Wraps `cls.step` so that the last step's info dict is kept in LAST."""
    step = cls.step
    if getattr(step, "_records", False):
        return

    def wrapped(self, action):
        out = step(self, action)
        LAST["info"] = out[4]
        return out

    wrapped._records = True
    cls.step = wrapped


def main():
    spec = json.load(sys.stdin)
    seed = spec["bench_seed"]
    # Build the benchmark once; the family below reuses it.
    if spec["benchmark"] == "ML1":
        bench = metaworld.ML1(spec["task"], seed=seed)
        metaworld.ML1 = type("ML1", (), {"ENV_NAMES": metaworld.ML1.ENV_NAMES, "__new__": lambda *a, **k: bench})
    else:
        name = spec["benchmark"]
        bench = getattr(metaworld, name)(seed=seed)
        setattr(metaworld, name, type(name, (), {"__new__": lambda *a, **k: bench}))
    out = bytearray()
    for tasks in (bench.train_tasks, bench.test_tasks):
        out += struct.pack("<I", len(tasks))
        for t in tasks:
            name = t.env_name.encode()
            v = np.asarray(pickle.loads(t.data)["rand_vec"], dtype="<f8")
            out += struct.pack("<I", len(name)) + name + struct.pack("<I", len(v)) + v.tobytes()
    fam = MetaWorldFamily(spec["benchmark"], spec.get("task"), spec["split"], seed)
    vecs = [pickle.loads(t.data)["rand_vec"] for t in fam.tasks]
    for cls in fam.classes.values():
        record_info(cls)
    rng = np.random.default_rng(spec["seed"])
    row = fam.new_row()
    obs = np.zeros((1, fam.obs_dim), dtype="<f4")
    rew = np.zeros(1, dtype="<f4")
    flags = np.zeros(1, dtype=np.uint8)
    for ep in spec["episodes"]:
        ti = ep["task_index"]
        fam.set_task(row, ti, 0.0)
        first = np.asarray(fam.reset(row, 0), dtype="<f4")
        out += struct.pack("<I", ep["steps"]) + first.tobytes()
        cur = first
        for _ in range(ep["steps"]):
            a = rng.uniform(-1.0, 1.0, size=4).astype("<f4")
            to = ep["directed"]
            if to:
                aim = np.asarray(vecs[ti][-3:]) if to == "goal" else cur[4:7].astype(np.float64)
                a[:3] = np.clip(np.clip((aim - cur[:3]) * 50.0, -1.0, 1.0) + 0.05 * a[:3], -1.0, 1.0)
            a = a.astype("<f4")
            fam.step_rows([row], a[None], obs, rew, flags)
            out += a.tobytes() + obs.tobytes() + rew.tobytes() + flags.tobytes()
            info = LAST.pop("info")
            out += np.array([float(info[k]) for k in INFO_KEYS], dtype="<f8").tobytes()
            cur = obs[0].copy()
    sys.stdout.buffer.write(bytes(out))


if __name__ == "__main__":
    main()
