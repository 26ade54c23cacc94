"""Reference for tests/mujoco_native.rs: plays MetaWorld episodes through the Python
bridge's own simulator code (`MetaWorldFamily` of python/bamdp_envs/worker.py, i.e.
metaworld 3.1.1's benchmark objects and envs) and writes the split's task vectors and
every step's float32 observation, float32 reward and success flag, as the bridge sends
them.

Input (stdin, JSON): {"benchmark": "ML1", "task": "reach-v3", "split": "train"|"test",
 "bench_seed": int, "episodes": [{"task_index": int, "steps": int, "directed": bool}],
 "seed": int}
Actions are uniform in [-1, 1] (float32, NumPy generator seeded with "seed"); in a
"directed" episode the first three move the hand toward the task's goal, so the
success flag is exercised. The actions are written out for the port to replay.

Output (stdout, little-endian binary): u32 tasks, u32 vec_len, f64 vectors; then per
episode: u32 steps, f32 first_obs[39], and per step f32 action[4], f32 obs[39],
f32 reward, u8 flags (2 = success).
"""
import json
import os
import pickle
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
from bamdp_envs.worker import MetaWorldFamily  # noqa: E402


def main():
    spec = json.load(sys.stdin)
    fam = MetaWorldFamily(spec["benchmark"], spec["task"], spec["split"], spec["bench_seed"])
    vecs = [pickle.loads(t.data)["rand_vec"] for t in fam.tasks]
    out = bytearray(struct.pack("<II", len(vecs), len(vecs[0])))
    for v in vecs:
        out += np.asarray(v, dtype="<f8").tobytes()
    rng = np.random.default_rng(spec["seed"])
    row = fam.new_row()
    od = fam.obs_dim
    obs = np.zeros((1, od), dtype="<f4")
    rew = np.zeros(1, dtype="<f4")
    flags = np.zeros(1, dtype=np.uint8)
    for ep in spec["episodes"]:
        ti = ep["task_index"]
        fam.set_task(row, ti, 0.0)
        first = np.asarray(fam.reset(row, 0), dtype="<f4")
        goal = np.asarray(vecs[ti][-3:])
        out += struct.pack("<I", ep["steps"]) + first.tobytes()
        cur = first
        for _ in range(ep["steps"]):
            a = rng.uniform(-1.0, 1.0, size=4).astype("<f4")
            if ep["directed"]:
                a[:3] = np.clip(np.clip((goal - cur[:3]) * 50.0, -1.0, 1.0) + 0.05 * a[:3], -1.0, 1.0)
            a = a.astype("<f4")
            fam.step_rows([row], a[None], obs, rew, flags)
            out += a.tobytes() + obs.tobytes() + rew.tobytes() + flags.tobytes()
            cur = obs[0].copy()
    sys.stdout.buffer.write(bytes(out))


if __name__ == "__main__":
    main()
