"""Ray driver of `bamdp sweep --ray`: runs each run of a sweep as a Ray task.

bamdp starts this script as `python3 bamdp_sweep_ray.py JOBS.json`; JOBS.json holds
the address, the sweep folder, the bamdp executable's path and one entry per run
(its resolved config, its folder below the sweep folder and the CPUs it reserves).

Each task gets the run's resolved config and the run folder as it stands (empty,
or partial with its checkpoint) and runs `bamdp sweep-run` in a temporary folder on
its node: train or resume, then meta-test into eval.json. The finished (or
interrupted) folder comes back as a tar archive and replaces the one in the sweep
folder, so a rerun continues from the last checkpoint that came back.

The bamdp executable travels to the nodes through Ray's object store (one copy per
node, cached under the node's temporary folder by its hash), so nodes need Python,
Ray and, for MuJoCo / MetaWorld envs, python/requirements.txt, but no bamdp install.

Output: one line per settled run, `RESULT <status> <relative folder>`, status
finished / interrupted / failed. Exit codes: 0 all settled; 2 a usage problem (Ray
missing, address unreachable), with a one-line message on stderr.
"""
import hashlib
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile

EXIT_INTERRUPTED = 3


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def reachable(address, timeout=5.0):
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        fail(f"--ray address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:6379")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError as e:
        fail(f"cannot reach the Ray cluster at {address}: {e} (is `ray start --head` running there?)")


def pack(folder):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                if not name.startswith("."):
                    tar.add(os.path.join(folder, name), arcname=name)
    return buf.getvalue()


def unpack(data, folder):
    os.makedirs(folder, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(folder, filter="data")


def binary_on_node(exe_bytes, digest):
    cache = os.path.join(tempfile.gettempdir(), f"bamdp-bin-{digest[:16]}")
    path = os.path.join(cache, "bamdp")
    if not os.path.isfile(path):
        os.makedirs(cache, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(exe_bytes)
        os.chmod(tmp, os.stat(tmp).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(tmp, path)
    return path


def run_one(exe_bytes, digest, config_text, seed, archive, env_vars):
    work = tempfile.mkdtemp(prefix="bamdp-run-")
    try:
        run = os.path.join(work, "run")
        if archive:
            unpack(archive, run)
        config = os.path.join(work, "config.toml")
        with open(config, "w") as f:
            f.write(config_text)
        exe = binary_on_node(exe_bytes, digest)
        env = dict(os.environ, **env_vars)
        proc = subprocess.run(
            [exe, "sweep-run", "--config", config, "--seed", str(seed), "--out", run],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        if os.path.isdir(run):
            with open(os.path.join(run, "train.log"), "ab") as log:
                log.write(proc.stdout)
        status = "finished" if proc.returncode == 0 else (
            "interrupted" if proc.returncode == EXIT_INTERRUPTED else "failed")
        return status, pack(run), proc.stdout[-2000:].decode("utf-8", "replace")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def replace_folder(data, target):
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    fresh = tempfile.mkdtemp(prefix=".incoming-", dir=parent)
    unpack(data, fresh)
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(prefix=".old-", dir=parent)
        os.rmdir(old)
        os.rename(target, old)
    os.rename(fresh, target)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    try:
        import ray
    except ImportError:
        fail("--ray needs the Python package `ray` (pip install -r python/requirements.txt)")
    address = spec.get("address") or os.environ.get("RAY_ADDRESS")
    if address and address != "auto" and "://" not in address:
        reachable(address)
    if address:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    else:
        ray.init(num_cpus=spec.get("local_cpus"), logging_level="ERROR", log_to_driver=False,
                 include_dashboard=False)
    with open(spec["bamdp"], "rb") as f:
        exe = f.read()
    digest = hashlib.sha256(exe).hexdigest()
    exe_ref = ray.put(exe)
    task = ray.remote(run_one)
    pending = {}
    for job in spec["jobs"]:
        target = os.path.join(spec["out"], job["relative"])
        archive = pack(target) if os.path.isdir(target) else b""
        ref = task.options(num_cpus=job["num_cpus"], max_retries=0).remote(
            exe_ref, digest, job["config"], job["seed"], archive, job.get("env", {}))
        pending[ref] = job
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        target = os.path.join(spec["out"], job["relative"])
        try:
            status, archive, tail = ray.get(done[0])
        except Exception as e:  # the task itself died (node lost, ...)
            status, archive, tail = "failed", None, str(e)
        if archive:
            replace_folder(archive, target)
        if status == "failed":
            print(tail, file=sys.stderr)
        print(f"RESULT {status} {job['relative']}", flush=True)


if __name__ == "__main__":
    main()
