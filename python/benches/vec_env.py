"""Cost of stepping bamdp's vector envs from Python against the same env stepped in a
Rust loop (docs/benchmarks.md, "Python package").

    python python/benches/vec_env.py [--envs gridnavi point_robot] [--rows 1 64] [--seconds 2]

For each env and batch size: the native step time per batch (the Rust loop, no Python),
the time of one `env.step(actions)` call from Python (Gymnasium API: fresh arrays and the
`info` dict every call), and their difference, the per-call overhead. Same actions, same
env; the median of 5 repeats.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np

import bamdp


def actions_for(env, rng, count):
    space = env.action_space
    space.seed(int(rng.integers(1 << 31)))
    acts = [space.sample() for _ in range(count)]
    as_f32 = np.stack([np.asarray(a, dtype=np.float32).reshape(-1) for a in acts])
    return acts, np.ascontiguousarray(as_f32)


def measure(name, rows, seconds):
    env = bamdp.make_vec_env(name, rows, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    acts, acts_f32 = actions_for(env, rng, 256)
    # Calibrate the number of steps to about `seconds / 10` per repeat.
    native = env.unwrapped._core.bench_native_steps(acts_f32, 1000) / 1000
    steps = max(1000, int(seconds / 10 / max(native, 1e-7)))
    native_s, python_s = [], []
    for _ in range(5):
        native_s.append(env.unwrapped._core.bench_native_steps(acts_f32, steps) / steps)
        step = env.step
        t = time.perf_counter()
        for i in range(steps):
            step(acts[i & 255])
        python_s.append((time.perf_counter() - t) / steps)
    return statistics.median(native_s), statistics.median(python_s)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=["gridnavi", "point_robot", "functions-2d"])
    p.add_argument("--rows", nargs="+", type=int, default=[1, 64])
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args()
    print(f"# bamdp {bamdp.__version__}, Python {platform.python_version()}, numpy {np.__version__}")
    print(f"{'env':<14} {'rows':>5} {'native us':>10} {'python us':>10} {'overhead us':>12} {'ratio':>6}")
    for name in args.envs:
        for rows in args.rows:
            native, python = measure(name, rows, args.seconds)
            print(
                f"{name:<14} {rows:>5} {native * 1e6:>10.2f} {python * 1e6:>10.2f} "
                f"{(python - native) * 1e6:>12.2f} {python / native:>6.1f}"
            )


if __name__ == "__main__":
    main()
