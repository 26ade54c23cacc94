#!/usr/bin/env python3
"""Copy what results need from run folders into the repository (docs/results/...).

    python3 scripts/keep_runs.py SWEEP_DIR DEST [--rows 200]

For every run folder under SWEEP_DIR (a folder holding config.toml and metrics.csv),
writes DEST/<same relative path>/ with:
  config.toml, eval.json, eval-train.json,
  eval.csv, classes.csv                        copied as they are (when present; the
                                               report's per-class heat maps weight
                                               every update's trials, so classes.csv
                                               is not thinned);
  run.json                                     copied, with the machine's paths in its
                                               command line made relative (the binary
                                               as `bamdp`, the sweep folder as
                                               `sweeps/<its name>`, files of this
                                               repository from its root);
  metrics.csv                                  thinned to at most --rows rows (evenly
                                               spaced, always keeping the last one),
so `bamdp report DEST --out ...` redraws the tables and curves without the
checkpoints, TensorBoard files and full-resolution metrics (megabytes per run).
"""

import argparse
import csv
import json
import os
import shutil
import sys

KEPT = ["config.toml", "eval.json", "eval-train.json", "eval.csv", "classes.csv"]


def run_dirs(root):
    for here, dirs, files in os.walk(root):
        dirs.sort()
        if "config.toml" in files and "metrics.csv" in files:
            dirs.clear()
            yield here


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def relative(arg, sweep_root, sweep_name):
    """A command-line argument without the machine's folders in it."""
    arg = arg.replace(sweep_root, sweep_name)
    if os.path.isabs(arg) and os.path.commonpath([arg, REPO]) == REPO:
        return os.path.relpath(arg, REPO)
    return arg


def keep_provenance(src, dst, sweep):
    with open(src) as f:
        run = json.load(f)
    root = os.path.abspath(sweep)
    named = "sweeps/" + os.path.basename(root.rstrip("/"))
    command = run.get("command") or []
    if command:
        command[0] = "bamdp"
    run["command"] = [relative(a, root, named) if isinstance(a, str) else a for a in command]
    tmp = dst + ".tmp"
    with open(tmp, "w") as f:
        json.dump(run, f, indent=2)
        f.write("\n")
    os.replace(tmp, dst)


def thin(src, dst, rows):
    with open(src, newline="") as f:
        table = list(csv.reader(f))
    if not table:
        raise SystemExit(f"{src}: empty metrics file")
    header, body = table[0], table[1:]
    if len(body) > rows:
        step = len(body) / rows
        picked = sorted({int(i * step) for i in range(rows)} | {len(body) - 1})
        body = [body[i] for i in picked]
    tmp = dst + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(body)
    os.replace(tmp, dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dest")
    ap.add_argument("--rows", type=int, default=200)
    a = ap.parse_args()
    if a.rows < 2:
        sys.exit("--rows: at least 2")
    if not os.path.isdir(a.src):
        sys.exit(f"{a.src}: no such folder")
    n = 0
    for d in run_dirs(a.src):
        out = os.path.join(a.dest, os.path.relpath(d, a.src))
        os.makedirs(out, exist_ok=True)
        for name in KEPT:
            if os.path.isfile(os.path.join(d, name)):
                shutil.copyfile(os.path.join(d, name), os.path.join(out, name))
        if os.path.isfile(os.path.join(d, "run.json")):
            keep_provenance(os.path.join(d, "run.json"), os.path.join(out, "run.json"), a.src)
        thin(os.path.join(d, "metrics.csv"), os.path.join(out, "metrics.csv"), a.rows)
        n += 1
    print(f"{n} run folders kept in {a.dest}")


if __name__ == "__main__":
    main()
