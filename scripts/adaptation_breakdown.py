#!/usr/bin/env python3
"""Where an agent's adaptation succeeds or fails, from `bamdp eval --trials-csv` files.

For each file (one trained agent's meta-test), splits the trials by what happened in
episode 1 and reports, as a markdown table:

- found in ep 1: the share of trials whose first episode succeeded;
- kept: of those, the share that succeed again in every later episode (exploiting
  what the first episode revealed);
- found later: of the trials whose first episode failed, the share that succeed in
  the last episode (continued search);
- never: the share of trials with no success in any episode;
- success ep 1 / last, return ep 1 / last: the plain means, for reference.

Usage: scripts/adaptation_breakdown.py NAME=trials.csv [NAME=trials.csv ...]
(stdlib only; NAME labels the row, default: the file name; files may be gzipped,
`.csv.gz`).
"""

import csv
import gzip
import math
import sys


def wilson(k, n):
    """95% Wilson score interval of a proportion k / n, as (lo, hi)."""
    if n == 0:
        return (math.nan, math.nan)
    z = 1.96
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def share(k, n):
    if n == 0:
        return "-"
    lo, hi = wilson(k, n)
    return f"{k / n:.3f} [{lo:.3f}, {hi:.3f}] (n = {n})"


def breakdown(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"{path}: no trials")
    succ_cols = sorted(
        (c for c in rows[0] if c.startswith("success_ep")), key=lambda c: int(c[10:])
    )
    ret_cols = sorted(
        (c for c in rows[0] if c.startswith("return_ep")), key=lambda c: int(c[9:])
    )
    if not succ_cols:
        raise SystemExit(f"{path}: no success columns (the env reports no success)")
    s = [[r[c] == "1" for c in succ_cols] for r in rows]
    n = len(s)
    found = [t for t in s if t[0]]
    missed = [t for t in s if not t[0]]
    kept = sum(all(t[1:]) for t in found)
    later = sum(t[-1] for t in missed)
    never = sum(not any(t) for t in s)
    mean = lambda col: sum(float(r[col]) for r in rows) / n
    return {
        "n": n,
        "found": share(len(found), n),
        "kept": share(kept, len(found)),
        "later": share(later, len(missed)),
        "never": share(never, n),
        "succ": f"{sum(t[0] for t in s) / n:.3f} / {sum(t[-1] for t in s) / n:.3f}",
        "ret": f"{mean(ret_cols[0]):.2f} / {mean(ret_cols[-1]):.2f}",
    }


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    print(
        "| agent | trials | found in ep 1 | kept (of found) | found later (of missed) "
        "| never | success ep 1 / last | return ep 1 / last |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for arg in argv:
        name, _, path = arg.rpartition("=")
        b = breakdown(path)
        print(
            f"| {name or path} | {b['n']} | {b['found']} | {b['kept']} | {b['later']} "
            f"| {b['never']} | {b['succ']} | {b['ret']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
