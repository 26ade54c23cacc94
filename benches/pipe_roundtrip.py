"""Cost of waking another process through a pipe on this machine: two processes
ping-pong 100-byte messages; prints the mean round trip. Run it plain (the processes
usually land on different cores) and under `taskset -c 0` (one core) to see what a
cross-core wake-up costs (docs/benchmarks.md, Python simulator bridge).

The mode says who waits by checking the pipe (non-blocking reads in a loop, never
letting the core idle) instead of blocking in `read`: `block` (neither: the default),
`spin-responder` (the child), `spin-both`. The bridge's spin-then-block waiting
(`BAMDP_ENV_SPIN_US`) is built on the difference.

    python3 benches/pipe_roundtrip.py [block|spin-responder|spin-both]
    taskset -c 0 python3 benches/pipe_roundtrip.py
"""
import os
import sys
import time

N = 20000
mode = sys.argv[1] if len(sys.argv) > 1 else "block"
if mode not in ("block", "spin-responder", "spin-both"):
    sys.exit("mode: block, spin-responder or spin-both")


def receive(fd, spin):
    if not spin:
        return os.read(fd, 100)
    while True:
        try:
            return os.read(fd, 100)
        except BlockingIOError:
            pass


to_child_r, to_child_w = os.pipe()
to_parent_r, to_parent_w = os.pipe()
if os.fork() == 0:
    spin = mode != "block"
    os.set_blocking(to_child_r, not spin)
    for _ in range(N):
        receive(to_child_r, spin)
        os.write(to_parent_w, b"x" * 100)
    os._exit(0)
spin = mode == "spin-both"
os.set_blocking(to_parent_r, not spin)
start = time.perf_counter()
for _ in range(N):
    os.write(to_child_w, b"y" * 100)
    receive(to_parent_r, spin)
elapsed = time.perf_counter() - start
os.wait()
print(f"{mode}: pipe round trip: {elapsed / N * 1e6:.1f} us")
