#!/usr/bin/env python3
"""Print the "MetaWorld ML10 at a glance" rows of docs/results.md from kept run records.

    python3 scripts/metaworld_table.py FOLDER [FOLDER ...] [--solved 0.05]

Every eval.json under the FOLDERs that holds a MetaWorld-protocol evaluation
(`bamdp eval --protocol metaworld`, or the final evaluation of `bamdp sweep` on a
MetaWorld benchmark) gives one markdown row:

    method | seed | meta-test success [95% CI] | training classes' success |
    success, trial episode 1 / 10 | classes solved (success > --solved) | frames |
    wall-clock | record

The interval is the evaluation's own (95% over tasks, within the seed). The training
classes' success is the same protocol on training tasks (eval-train.json beside
eval.json: `bamdp sweep` writes it, or `bamdp eval --split train --protocol metaworld`),
"-" without one; both are averaged per class, then over classes (MetaWorld's headline). "Trial episode
1 / 10" are the success rates of the first and the last adaptation episode. Frames and
wall-clock come from the run's metrics.csv (its last row) when the folder holds one;
evaluation-only records (eval.json alone) show "-". The seed is read from run.json, else
from the folder's name (seed-N...). Nothing is recomputed: the script only reads what the
runs wrote, so the table regenerates from the files kept under docs/results/.
Settings changed for the evaluation only (`bamdp eval --set`, recorded as "overrides")
are named beside the method.
"""

import argparse
import csv
import json
import os
import re
import sys


def records(roots):
    for root in roots:
        for here, dirs, files in os.walk(root):
            dirs.sort()
            if "eval.json" in files:
                yield here


def seed_of(folder):
    try:
        with open(os.path.join(folder, "run.json")) as f:
            return str(json.load(f)["seed"])
    except (OSError, KeyError, ValueError):
        match = re.search(r"seed-(\d+)", os.path.basename(folder))
        return match.group(1) if match else "?"


def budget_of(folder):
    try:
        with open(os.path.join(folder, "metrics.csv")) as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return "-", "-"
    if not rows:
        return "-", "-"
    last = rows[-1]
    return f"{float(last['frames']):.2g}", f"{float(last['wall_s']) / 3600:.1f} h"


def class_mean(protocol):
    """MetaWorld's headline: the mean over classes of each class's success."""
    rate = protocol.get("class_success_rate")
    return protocol["success_rate"] if rate is None else rate


def train_success(folder):
    try:
        with open(os.path.join(folder, "eval-train.json")) as f:
            protocol = json.load(f).get("metaworld")
    except OSError:
        return "-"
    return "-" if protocol is None else f"{class_mean(protocol):.3f}"


def row(folder, solved_above):
    with open(os.path.join(folder, "eval.json")) as f:
        report = json.load(f)
    protocol = report.get("metaworld")
    if protocol is None:
        return None
    adaptation = protocol["adaptation_episodes"]
    episodes = report["success_rate"]
    solved = [
        f"{c['class'].removesuffix('-v3')} {c['success_rate']:.3f}"
        for c in protocol["per_class"]
        if c["success_rate"] > solved_above
    ]
    mean, half = class_mean(protocol), protocol["success_rate_ci95"]
    frames, wall = budget_of(folder)
    method = report["method"]
    if report.get("overrides"):
        method += f" (evaluated with {', '.join(report['overrides'])})"
    if report.get("greedy"):
        method += " (evaluation episodes by the mode)"
    return (
        f"| {method} | {seed_of(folder)} "
        f"| {mean:.3f} [{max(mean - half, 0.0):.3f}, {min(mean + half, 1.0):.3f}] "
        f"| {train_success(folder)} "
        f"| {episodes[0]:.3f} / {episodes[adaptation - 1]:.3f} "
        f"| {', '.join(solved) or 'none'} | {frames} | {wall} | {folder} |"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--solved", type=float, default=0.05,
                        help="a class counts as solved above this success rate")
    args = parser.parse_args()
    missing = [f for f in args.folders if not os.path.isdir(f)]
    if missing:
        print(f"error: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    print("| method | seed | meta-test success [95% CI] | training classes' success "
          "| success, trial episode 1 / 10 | classes solved | frames | wall-clock | record |")
    print("|---|---|---|---|---|---|---|---|---|")
    for folder in records(args.folders):
        line = row(folder, args.solved)
        if line:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
