"""Cost of waking another process through a pipe on this machine: two processes
ping-pong 100-byte messages; prints the mean round trip. Run it plain (the processes
usually land on different cores) and under `taskset -c 0` (one core) to see what a
cross-core wake-up costs (docs/benchmarks.md, Python simulator bridge).

    python3 benches/pipe_roundtrip.py
    taskset -c 0 python3 benches/pipe_roundtrip.py
"""
import os
import time

N = 20000
to_child_r, to_child_w = os.pipe()
to_parent_r, to_parent_w = os.pipe()
if os.fork() == 0:
    for _ in range(N):
        os.read(to_child_r, 100)
        os.write(to_parent_w, b"x" * 100)
    os._exit(0)
start = time.perf_counter()
for _ in range(N):
    os.write(to_child_w, b"y" * 100)
    os.read(to_parent_r, 100)
elapsed = time.perf_counter() - start
os.wait()
print(f"pipe round trip: {elapsed / N * 1e6:.1f} us")
