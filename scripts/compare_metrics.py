#!/usr/bin/env python3
"""Behaviour check for refactors: short training runs of fixed presets with one bamdp
binary, compared column by column (timing columns aside) against a reference folder.

    # record the reference with the binary before the change
    python3 scripts/compare_metrics.py --bamdp OLD/bamdp --out /tmp/ref
    # run the changed binary and compare
    python3 scripts/compare_metrics.py --bamdp target/release/bamdp --out /tmp/new \\
        --against /tmp/ref

Exit code 0 when every preset's metrics.csv matches the reference exactly (same columns
in the same order, same values as written), 1 otherwise.
"""

import argparse
import csv
import os
import subprocess
import sys

# Preset, frames: a few updates each, enough for the learned beliefs' first updates
# (GridNavi: 16 trials per 960-frame update, batches of 25 trials) and a checkpoint.
RUNS = [
    ("configs/gridnavi/rl2.toml", 3840),
    ("configs/gridnavi/varibad.toml", 3840),
    ("configs/gridnavi/glibrl.toml", 3840),
    ("configs/gridnavi/oracle.toml", 3840),
    ("configs/gridnavi/varibased.toml", 2880),
    ("configs/gridnavi/glibrl-smc.toml", 2880),
    ("configs/point_robot/varibad.toml", 6400),
]

# Columns that measure wall-clock time.
TIMING = {"fps", "wall_s", "rollout_s", "learn_s", "seconds"}


def run_name(preset):
    parts = preset.split("/")
    return parts[-2] + "-" + parts[-1].removesuffix(".toml")


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def compare(ref_path, new_path):
    """Differences between two metrics.csv files, as printable lines."""
    ref_cols, ref_rows = read(ref_path)
    new_cols, new_rows = read(new_path)
    if ref_cols != new_cols:
        return [f"columns differ: {ref_cols} vs {new_cols}"]
    if len(ref_rows) != len(new_rows):
        return [f"{len(ref_rows)} rows vs {len(new_rows)}"]
    diffs = []
    for i, (a, b) in enumerate(zip(ref_rows, new_rows)):
        for col, x, y in zip(ref_cols, a, b):
            if col not in TIMING and x != y:
                diffs.append(f"row {i + 1} {col}: {x} vs {y}")
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bamdp", required=True, help="the bamdp binary to run")
    ap.add_argument("--out", required=True, help="folder for this binary's run folders")
    ap.add_argument("--against", help="reference folder written by an earlier call")
    ap.add_argument("--only", help="run only presets whose name contains this")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    failed = False
    for preset, frames in RUNS:
        name = run_name(preset)
        if args.only and args.only not in name:
            continue
        out = os.path.join(args.out, name)
        cmd = [
            args.bamdp, "train", "--config", preset, "--out", out, "--force",
            "--set", f"run.total_frames={frames}",
            "--set", "run.checkpoint_every=2",
            "--set", "run.log_every=1000",
        ]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"{name}: training failed ({res.returncode}): {res.stderr.strip()}")
            failed = True
            continue
        if not args.against:
            print(f"{name}: written {out}/metrics.csv")
            continue
        diffs = compare(
            os.path.join(args.against, name, "metrics.csv"),
            os.path.join(out, "metrics.csv"),
        )
        if diffs:
            failed = True
            print(f"{name}: DIFFERENT ({len(diffs)} values)")
            for d in diffs[:10]:
                print("   ", d)
        else:
            print(f"{name}: identical")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
