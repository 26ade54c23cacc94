"""Raw-simulator baselines for docs/benchmarks.md (Python bridge section): env steps per
second of the same simulators bamdp's workers run, driven by a plain Python loop
(`loop`, one process; `--procs P` runs P such processes at once and sums them) or by
gymnasium's AsyncVectorEnv (`async`, `--procs` subprocess workers). Random actions
in [-1, 1], episodes reset at the same horizons as bamdp (200 MuJoCo, 500 MetaWorld).

    python3 benches/python_raw.py loop  --env cheetah-vel --rows 8 --procs 2 --seconds 20
    python3 benches/python_raw.py async --env ml1-reach   --rows 8 --procs 2 --seconds 20
"""
import argparse
import multiprocessing as mp
import time

import numpy as np


def make(env):
    if env == "cheetah-vel":
        from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

        return HalfCheetahEnv(), 200
    import metaworld

    b = metaworld.ML1(env[4:] + "-v3", seed=0)
    e = b.train_classes[env[4:] + "-v3"](reward_function_version="v2")
    e.set_task(b.train_tasks[0])
    return e, 500


def loop(env_name, rows, seconds, q=None):
    envs, horizon = zip(*[make(env_name) for _ in range(rows)])
    horizon = horizon[0]
    for e in envs:
        e.reset(seed=0)
    rng = np.random.default_rng(0)
    ad = envs[0].action_space.shape[0]
    t = 0
    steps = 0
    start = time.perf_counter()
    cpu0 = time.process_time()
    while time.perf_counter() - start < seconds:
        acts = rng.uniform(-1, 1, size=(rows, ad)).astype(np.float32)
        for e, a in zip(envs, acts):
            if env_name == "cheetah-vel":
                # The meta-task's reward, as the worker computes it (VariBAD's formula).
                d = e.unwrapped.data
                x0 = float(d.qpos[0])
                e.step(a)
                v = (float(d.qpos[0]) - x0) / e.unwrapped.dt
                _ = -abs(v - 1.5) - 0.05 * np.sum(np.square(a))
            else:
                e.step(a)
        steps += rows
        t += 1
        if t == horizon:
            t = 0
            for e in envs:
                e.reset()
    rate = steps / (time.perf_counter() - start)
    cpu = time.process_time() - cpu0
    if q is not None:
        q.put((rate, steps, cpu))
    return rate, steps, cpu


class _Fixed:
    """Wraps one env with a fixed horizon for the vector env."""


def async_vec(env_name, rows, procs, seconds):
    import gymnasium as gym

    horizon = 200 if env_name == "cheetah-vel" else 500

    def thunk():
        e, _ = make(env_name)
        return gym.wrappers.TimeLimit(e, horizon) if env_name == "cheetah-vel" else e

    # AsyncVectorEnv runs one env per subprocess; `procs` is reported, rows = subprocesses.
    vec = gym.vector.AsyncVectorEnv([thunk for _ in range(rows)],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    ad = vec.single_action_space.shape[0]
    steps, t = 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        vec.step(rng.uniform(-1, 1, size=(rows, ad)).astype(np.float32))
        steps += rows
        t += 1
        if env_name != "cheetah-vel" and t == horizon - 1:
            vec.reset()
            t = 0
    rate = steps / (time.perf_counter() - start)
    vec.close()
    return rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["loop", "async"])
    ap.add_argument("--env", default="cheetah-vel")
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=20)
    a = ap.parse_args()
    if a.mode == "loop":
        if a.procs == 1:
            res = [loop(a.env, a.rows, a.seconds)]
        else:
            q = mp.Queue()
            ps = [mp.Process(target=loop, args=(a.env, a.rows // a.procs, a.seconds, q)) for _ in range(a.procs)]
            for p in ps:
                p.start()
            res = [q.get() for _ in ps]
            for p in ps:
                p.join()
        rate = sum(r[0] for r in res)
        per_cpu = sum(r[1] for r in res) / sum(r[2] for r in res)
        print(f"loop env={a.env} rows={a.rows} procs={a.procs}: {rate:.0f} steps/s wall, "
              f"{per_cpu:.0f} steps per CPU-second")
    else:
        rate = async_vec(a.env, a.rows, a.procs, a.seconds)
        print(f"async env={a.env} rows={a.rows} procs={a.procs}: {rate:.0f} steps/s wall")


if __name__ == "__main__":
    main()
