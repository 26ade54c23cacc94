"""Reference for tests/mujoco_native.rs: plays one row of a MuJoCo meta-task through the
Python bridge's own simulator code (`MujocoFamily` of python/bamdp_envs/worker.py, i.e.
gymnasium's v5 envs on the installed MuJoCo) and writes, per episode, the state
gymnasium reset to (so the native port can start from the same state: its reset noise
comes from bamdp's streams, not NumPy's) and every step's float32 observation, float32
reward and flags, exactly as the bridge sends them.

Input (stdin, JSON): {"env": "cheetah-vel"|"cheetah-dir"|"ant-dir", "task": float,
 "seeds": [int per episode], "episode_len": int, "act_dim": int,
 "actions": "<hex of little-endian float32 actions, act_dim per step>"}
Episodes end at episode_len steps or when the env terminates (Ant), as in bamdp.

Output (stdout, little-endian binary): u32 nq, nv, obs_dim; then per episode:
u32 steps, f64 qpos[nq], f64 qvel[nv], f32 first_obs[obs_dim], and per step
f32 obs[obs_dim], f32 reward, u8 flags (1 = terminated).
"""
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
from bamdp_envs.worker import TERMINATED, MujocoFamily  # noqa: E402


def main():
    spec = json.load(sys.stdin)
    ad = spec["act_dim"]
    acts = np.frombuffer(bytes.fromhex(spec["actions"]), dtype="<f4").reshape(-1, ad)
    fam = MujocoFamily(spec["env"])
    row = fam.new_row()
    fam.set_task(row, 0, spec["task"])
    data = row["data"]
    od = fam.obs_dim
    out = bytearray(struct.pack("<III", data.qpos.size, data.qvel.size, od))
    obs = np.zeros((1, od), dtype="<f4")
    rew = np.zeros(1, dtype="<f4")
    flags = np.zeros(1, dtype=np.uint8)
    i = 0
    for seed in spec["seeds"]:
        if i >= len(acts):
            break
        first = np.asarray(fam.reset(row, seed), dtype="<f4")
        head = data.qpos.astype("<f8").tobytes() + data.qvel.astype("<f8").tobytes()
        steps = bytearray()
        n = 0
        while n < spec["episode_len"] and i < len(acts):
            fam.step_rows([row], acts[i : i + 1], obs, rew, flags)
            steps += obs.tobytes() + rew.tobytes() + flags.tobytes()
            i += 1
            n += 1
            if flags[0] & TERMINATED:
                break
        out += struct.pack("<I", n) + head + first.tobytes() + steps
    sys.stdout.buffer.write(bytes(out))


if __name__ == "__main__":
    main()
