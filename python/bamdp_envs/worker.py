"""The worker process bamdp starts for Python simulators: owns a slice of a batch's
rows (one simulator per row), the task families (MuJoCo HalfCheetah-Vel/-Dir and
Ant-Dir on gymnasium's v5 envs; MetaWorld ML1/ML10/ML45), and the worker side of the
binary pipe protocol documented in docs/python-bridge.md.

bamdp (Rust) decides everything random: which task a row plays and the seed of every
episode's reset. This process only simulates, so a batch is reproducible and a crashed
worker can be replaced without losing the random streams.

Run by bamdp as `python3 -u -c <this file>` (or `python3 -m bamdp_envs.worker`) with
the protocol on stdin/stdout. Never print to stdout here: it is the data channel.
"""

import json
import os
import signal
import select
import struct
import sys
import time

PROTOCOL_VERSION = 2
INSTALL = "pip install -r python/requirements.txt"

# Flag bits of a step reply.
TERMINATED = 1
SUCCESS = 2


def _missing(package, err):
    return {
        "kind": "missing_package",
        "package": package,
        "message": str(err),
        "install": INSTALL,
    }


class MujocoFamily:
    """HalfCheetah-Vel, HalfCheetah-Dir and Ant-Dir with VariBAD's task distributions
    and rewards (lmzintgraf/varibad, environments/mujoco/*.py), simulated by
    gymnasium's current v5 envs. The task is one float: the target velocity
    (cheetah-vel), the direction +-1 (cheetah-dir) or Ant-Dir's goal angle in radians
    (VariBAD's {-1, 1}, used as an angle: direction (cos g, sin g))."""

    def __init__(self, name):
        # The packages in the order a user would install them, so the message names the
        # top-level package that is missing.
        try:
            import gymnasium
            import mujoco
            import numpy as np
        except ImportError as e:
            pkg = (getattr(e, "name", None) or "gymnasium").split(".")[0]
            raise _Fatal(_missing("gymnasium[mujoco]" if pkg == "gymnasium" else pkg, e))
        self.np = np
        self.name = name
        if name in ("cheetah-vel", "cheetah-dir"):
            from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

            self.make = lambda: HalfCheetahEnv()
        elif name == "ant-dir":
            from gymnasium.envs.mujoco.ant_v5 import AntEnv

            # VariBAD's ant observes qpos[2:] and qvel (27 values), no contact forces.
            self.make = lambda: AntEnv(include_cfrc_ext_in_observation=False)
        else:
            raise _Fatal({"kind": "bad_env", "message": f"unknown MuJoCo env {name!r}"})
        probe = self.make()
        self.obs_dim = int(probe.observation_space.shape[0])
        self.act_dim = int(probe.action_space.shape[0])
        self.act_low = float(probe.action_space.low.min())
        self.act_high = float(probe.action_space.high.max())
        probe.close()
        self.versions = {
            "gymnasium": gymnasium.__version__,
            "mujoco": mujoco.__version__,
            "numpy": np.__version__,
        }

    def num_tasks(self):
        return 0  # continuous task space: bamdp sends the task value itself

    def new_row(self):
        env = self.make()
        # The simulator state and the step length never change object / value.
        return {"env": env, "task": 0.0, "data": env.unwrapped.data, "dt": env.unwrapped.dt}

    def set_task(self, row, task_index, task_value):
        row["task"] = float(task_value)

    def reset(self, row, seed):
        obs, _ = row["env"].reset(seed=int(seed))
        return obs

    def step_rows(self, rows, acts, obs_out, rew_out, flags_out):
        """Steps `rows[j]` with `acts[j]` (float32) and writes its observation, reward
        and flags to row j of the outputs. The control costs of all rows are computed
        at once (per-row NumPy calls cost more than a HalfCheetah step's tenth); each
        row's value is the same float32 sum as for that row alone."""
        np = self.np
        ant = self.name == "ant-dir"
        ctrl = (0.5 if ant else 0.5 * 1e-1) * np.square(acts).sum(axis=1)
        vel_task = self.name == "cheetah-vel"
        for j, row in enumerate(rows):
            data = row["data"]
            task = row["task"]
            if ant:
                before = data.body("torso").xpos[:2].copy()
            else:
                before = float(data.qpos[0])
            obs, _, terminated, _, _ = row["env"].step(acts[j])
            if ant:
                vel = (data.body("torso").xpos[:2] - before) / row["dt"]
                forward = vel[0] * np.cos(task) + vel[1] * np.sin(task)
                contact = 0.5 * 1e-3 * np.sum(np.square(np.clip(data.cfrc_ext, -1.0, 1.0)))
                reward = forward - ctrl[j] - contact + 1.0
            else:
                vel = (float(data.qpos[0]) - before) / row["dt"]
                reward = (-abs(vel - task) if vel_task else task * vel) - ctrl[j]
            obs_out[j] = obs
            rew_out[j] = reward
            flags_out[j] = TERMINATED if terminated else 0


class MetaWorldFamily:
    """MetaWorld's ML1 / ML10 / ML45 benchmarks with their own train/test task lists
    (`metaworld.ML1(name, seed)` etc.); a task index selects one `Task` of the split's
    list. One simulator per row and class, reused when a row returns to a class."""

    def __init__(self, benchmark, task, split, seed):
        try:
            import metaworld
            import gymnasium
            import mujoco
            import numpy as np
        except ImportError as e:
            pkg = (getattr(e, "name", None) or "metaworld").split(".")[0]
            raise _Fatal(_missing(pkg, e))
        from importlib.metadata import version

        self.np = np
        if benchmark == "ML1":
            if task not in metaworld.ML1.ENV_NAMES:
                raise _Fatal(
                    {
                        "kind": "bad_env",
                        "message": "an ML1 task of MetaWorld v3, one of: "
                        + ", ".join("ml1-" + n[: -len("-v3")] for n in metaworld.ML1.ENV_NAMES),
                    }
                )
            bench = metaworld.ML1(task, seed=seed)
        elif benchmark == "ML10":
            bench = metaworld.ML10(seed=seed)
        elif benchmark == "ML45":
            bench = metaworld.ML45(seed=seed)
        else:
            raise _Fatal({"kind": "bad_env", "message": f"unknown benchmark {benchmark!r}"})
        self.classes = bench.train_classes if split == "train" else bench.test_classes
        self.tasks = bench.train_tasks if split == "train" else bench.test_tasks
        self.pool = {}  # class name -> free simulators
        name0 = self.tasks[0].env_name
        probe = self._take(name0)
        self.obs_dim = int(probe.observation_space.shape[0])
        self.act_dim = int(probe.action_space.shape[0])
        self.act_low = float(probe.action_space.low.min())
        self.act_high = float(probe.action_space.high.max())
        self.horizon = int(probe.max_path_length)
        self._give(name0, probe)
        self.task_names = [t.env_name for t in self.tasks]
        self.versions = {
            "metaworld": version("metaworld"),
            "mujoco": mujoco.__version__,
            "gymnasium": gymnasium.__version__,
            "numpy": np.__version__,
            "metaworld_reward_version": "v2",
        }

    def _take(self, name):
        free = self.pool.get(name)
        if free:
            return free.pop()
        return self.classes[name](reward_function_version="v2")

    def _give(self, name, env):
        self.pool.setdefault(name, []).append(env)

    def num_tasks(self):
        return len(self.tasks)

    def new_row(self):
        return {"env": None, "name": None}

    def set_task(self, row, task_index, task_value):
        task = self.tasks[task_index]
        if row["name"] != task.env_name:
            if row["env"] is not None:
                self._give(row["name"], row["env"])
            row["env"] = self._take(task.env_name)
            row["name"] = task.env_name
        row["env"].set_task(task)

    def reset(self, row, seed):
        # MetaWorld's reset is deterministic given the task (the seed is ignored).
        obs, _ = row["env"].reset()
        return obs

    def step_rows(self, rows, acts, obs_out, rew_out, flags_out):
        """Steps `rows[j]` with `acts[j]`; writes observation, reward and flags to row j."""
        for j, row in enumerate(rows):
            obs, reward, terminated, _, info = row["env"].step(acts[j])
            obs_out[j] = obs
            rew_out[j] = reward
            flags_out[j] = (TERMINATED if terminated else 0) | (
                SUCCESS if info.get("success", 0.0) >= 1.0 else 0
            )


class _Fatal(Exception):
    def __init__(self, payload):
        super().__init__(payload.get("message", ""))
        self.payload = payload


class FrameReader:
    """Length-prefixed frames from a file descriptor, read with raw `os.read` into one
    buffer: several queued frames (a pipelined batch sends the next step before this
    one's reply is read) arrive in one system call.

    Before blocking for more input it checks the pipe for up to `spin` seconds (set
    from the init frame's `spin_us`), yielding the core between checks: a process that
    blocks lets its core idle, and waking an idle core costs tens of microseconds on a
    virtual machine, more than a small simulation step (docs/benchmarks.md)."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()
        self.pos = 0
        self.spin = 0.0
        self._fds = [fd]

    def _spin(self):
        start = time.perf_counter()
        while not select.select(self._fds, (), (), 0)[0]:
            if time.perf_counter() - start > self.spin:
                return
            os.sched_yield()

    def read_frame(self):
        while True:
            avail = len(self.buf) - self.pos
            if avail >= 4:
                (n,) = struct.unpack_from("<I", self.buf, self.pos)
                if avail >= 4 + n:
                    start = self.pos + 4
                    self.pos = start + n
                    return bytes(self.buf[start : start + n])
            if self.spin > 0:
                self._spin()
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise EOFError
            if self.pos:
                del self.buf[: self.pos]
                self.pos = 0
            self.buf += chunk


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_frame(fd, payload):
    # One write: the reader wakes once per frame, not once for the header and again
    # for the payload.
    _write_all(fd, struct.pack("<I", len(payload)) + payload)


def serve(inp, out):
    """Serve one batch slice until a quit frame or the end of input."""
    out_fd = out.fileno()  # every frame is written with one os.write (_write_all)
    np = None
    try:
        first = inp.read_frame()
        if first[:1] != b"I":
            raise _Fatal({"kind": "protocol", "message": "first frame must be init"})
        cfg = json.loads(first[1:].decode())
        inp.spin = float(cfg.get("spin_us", 0)) * 1e-6
        if cfg.get("protocol") != PROTOCOL_VERSION:
            raise _Fatal(
                {
                    "kind": "protocol",
                    "message": f"protocol {cfg.get('protocol')} != worker {PROTOCOL_VERSION}",
                }
            )
        if cfg["family"] == "metaworld":
            fam = MetaWorldFamily(cfg["benchmark"], cfg.get("task"), cfg["split"], cfg["bench_seed"])
        else:
            fam = MujocoFamily(cfg["env"])
        import numpy as np

        rows = [fam.new_row() for _ in range(cfg["rows"])]
        hello = {
            "obs_dim": fam.obs_dim,
            "act_dim": fam.act_dim,
            "act_low": fam.act_low,
            "act_high": fam.act_high,
            "num_tasks": fam.num_tasks(),
            "versions": dict(fam.versions, python=sys.version.split()[0]),
            "pid": os.getpid(),
        }
        if isinstance(fam, MetaWorldFamily):
            hello["task_names"] = fam.task_names
            hello["horizon"] = fam.horizon
        _write_frame(out_fd, b"H" + json.dumps(hello).encode())
    except _Fatal as e:
        _write_frame(out_fd, b"E" + json.dumps(e.payload).encode())
        return 1
    except EOFError:
        return 0

    n = len(rows)
    od, ad = fam.obs_dim, fam.act_dim
    reset_rec = struct.Struct("<IBIdQ")
    step_head = struct.Struct("<II")
    replies = {}

    def reply_for(start, count, m):
        """The step reply for `count` rows from `start` with `m` reset observations,
        preallocated once per shape and filled in place (length prefix, op,
        observations, rewards, flags, reset observations): no per-step allocation of
        reply bytes, and one write per reply, so bamdp's reader wakes once."""
        key = (start, count, m)
        if key not in replies:
            body = 1 + count * (4 * od + 4 + 1) + m * 4 * od
            buf = bytearray(4 + body)
            struct.pack_into("<I", buf, 0, body)
            buf[4:5] = b"O"
            o = 5
            obs = np.frombuffer(buf, dtype="<f4", count=count * od, offset=o).reshape(count, od)
            o += 4 * count * od
            rew = np.frombuffer(buf, dtype="<f4", count=count, offset=o)
            o += 4 * count
            flags = np.frombuffer(buf, dtype=np.uint8, count=count, offset=o)
            o += count
            first = np.frombuffer(buf, dtype="<f4", count=m * od, offset=o).reshape(m, od)
            replies[key] = (buf, obs, rew, flags, first)
        return replies[key]

    def reset_row(r, new_task, task_index, task_value, seed):
        if new_task:
            fam.set_task(rows[r], task_index, task_value)
        return fam.reset(rows[r], seed)

    while True:
        try:
            frame = inp.read_frame()
        except EOFError:
            return 0
        op = frame[:1]
        try:
            if op == b"T":
                # Step rows start..start+count, then reset the rows whose episode bamdp
                # knows ends at this step (its time limit), so those resets cost no
                # extra round trip.
                start, count = step_head.unpack_from(frame, 1)
                o = 1 + step_head.size
                acts = np.frombuffer(frame, dtype="<f4", count=count * ad, offset=o).reshape(count, ad)
                o += 4 * count * ad
                (m,) = struct.unpack_from("<I", frame, o)
                o += 4
                buf, obs_buf, rew_buf, flag_buf, first_buf = reply_for(start, count, m)
                fam.step_rows(rows[start : start + count], acts, obs_buf, rew_buf, flag_buf)
                for j in range(m):
                    r, new_task, ti, tv, seed = reset_rec.unpack_from(frame, o + j * reset_rec.size)
                    first_buf[j] = reset_row(r, new_task, ti, tv, seed)
                _write_all(out_fd, buf)
            elif op == b"R":
                (m,) = struct.unpack_from("<I", frame, 1)
                res = np.zeros((m, od), dtype="<f4")
                for j in range(m):
                    r, new_task, ti, tv, seed = reset_rec.unpack_from(frame, 5 + j * reset_rec.size)
                    res[j] = reset_row(r, new_task, ti, tv, seed)
                _write_frame(out_fd, b"r" + res.tobytes())
            elif op == b"P":
                # Replay: reset a row, then apply k recorded actions (exact resume).
                r, new_task, ti, tv, seed = reset_rec.unpack_from(frame, 1)
                (k,) = struct.unpack_from("<I", frame, 1 + reset_rec.size)
                acts = np.frombuffer(frame, dtype="<f4", offset=5 + reset_rec.size).reshape(k, ad)
                o = np.asarray(reset_row(r, new_task, ti, tv, seed), dtype="<f4")[None]
                rew1, flags1 = np.zeros(1, dtype="<f4"), np.zeros(1, dtype=np.uint8)
                for a in acts:
                    fam.step_rows(rows[r : r + 1], a[None], o, rew1, flags1)
                _write_frame(out_fd, b"r" + o.tobytes())
            elif op == b"Q":
                return 0
            elif op == b"Z":
                # Test hook: simulate a hung simulator.
                time.sleep(1e6)
            else:
                raise _Fatal({"kind": "protocol", "message": f"unknown op {op!r}"})
        except _Fatal as e:
            _write_frame(out_fd, b"E" + json.dumps(e.payload).encode())
            return 1
        except BrokenPipeError:
            return 0
        except Exception as e:  # a simulator error: report it; bamdp restarts us
            _write_frame(out_fd, b"E" + json.dumps({"kind": "exception", "message": repr(e)}).encode())
            return 1


def main():
    # Ctrl-C goes to bamdp, which shuts workers down by closing their input.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp = FrameReader(sys.stdin.fileno())
    out = sys.stdout.buffer
    # Keep stray prints (from simulators) off the data channel.
    sys.stdout = sys.stderr
    try:
        code = serve(inp, out)
    except BrokenPipeError:
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
