#!/usr/bin/env python3
"""Aggregates `bamdp eval --json` outputs into the markdown table of docs/results.md.

Input: lines "<run-name> <json>" (as written by the loop in docs/results.md). Output:
per method, the mean over seeds of each episode's meta-test return, with a 95% interval
over seeds (t-distribution), and the mean success rate per episode.
"""
import json
import statistics
import sys
from collections import defaultdict

T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}

runs = defaultdict(list)
for line in sys.stdin:
    if not line.strip():
        continue
    name, payload = line.split(" ", 1)
    runs[name.rsplit("-s", 1)[0]].append(json.loads(payload))

k_eps = max(len(r["episode_returns"]) for rs in runs.values() for r in rs)
print("| method | seeds | " + " | ".join(f"episode {k}" for k in range(1, k_eps + 1))
      + f" | success ep 1 / {k_eps} |")
print("|---|---|" + "---|" * (k_eps + 1))
for method, reports in runs.items():
    n = len(reports)
    cells = []
    for k in range(len(reports[0]["episode_returns"])):
        xs = [r["episode_returns"][k] for r in reports]
        m = statistics.mean(xs)
        ci = T95[n - 1] * statistics.stdev(xs) / n**0.5 if n > 1 else float("nan")
        cells.append(f"{m:.2f} ± {ci:.2f}")
    s1 = statistics.mean(r["success_rate"][0] for r in reports)
    s4 = statistics.mean(r["success_rate"][-1] for r in reports)
    print(f"| {method} | {n} | " + " | ".join(cells) + f" | {100*s1:.0f}% / {100*s4:.0f}% |")
