#!/usr/bin/env python3
"""Learning curves of training runs as a markdown table: sample and runtime efficiency.

Usage: scripts/curves.py PREFIX... (each PREFIX names runs PREFIX-s1, PREFIX-s2, ...
under runs/). For each method, at fractions of the frame budget, prints the trial
return during training (mean over seeds of the mean over updates in the surrounding
5% window of frames) and the wall-clock seconds at that point (mean over seeds), so
return can be read against frames and against time.
"""
import csv
import glob
import re
import sys

FRACTIONS = [0.1, 0.25, 0.5, 1.0]


def load(path):
    rows = list(csv.DictReader(open(path)))
    return [(float(r["frames"]), float(r["wall_s"]), float(r["return_trial"])) for r in rows]


print("| method | seeds | " + " | ".join(f"{int(f*100)}% of frames: return / wall s" for f in FRACTIONS) + " |")
print("|---|---|" + "---|" * len(FRACTIONS))
for prefix in sys.argv[1:]:
    paths = sorted(glob.glob(f"runs/{prefix}-s*/metrics.csv"))
    # Only PREFIX-s<digits>: `glibrl` must not pick up `glibrl-smc` runs.
    paths = [p for p in paths if re.fullmatch(re.escape(prefix) + r"-s\d+", p.split("/")[1])]
    runs = [load(p) for p in paths]
    runs = [r for r in runs if r]
    if not runs:
        continue
    total = min(r[-1][0] for r in runs)
    cells = []
    for f in FRACTIONS:
        target = f * total
        rets, walls = [], []
        for r in runs:
            window = [x for x in r if abs(x[0] - target) <= 0.05 * total]
            if not window:
                continue
            rets.append(sum(x[2] for x in window) / len(window))
            walls.append(min(r, key=lambda x: abs(x[0] - target))[1])
        cells.append(f"{sum(rets)/len(rets):.2f} / {sum(walls)/len(walls):.0f}")
    print(f"| {prefix} | {len(runs)} | " + " | ".join(cells) + " |")
