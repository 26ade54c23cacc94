#!/usr/bin/env python3
"""Test-time planning budget K (and temperature eta) of trained VariBASeD agents: a
table of trial returns.

Reads the JSON of `bamdp eval --run RUN --set smc.particles=K [--set smc.eta=E] --json`
saved as DIR/<variant>-seed-<s>-test-K<k>[-eta<E>].json (variant = the training budget,
e.g. K16; no eta in the name: the run's own) and prints, per training variant and test
setting, the mean trial return over seeds, each seed's, and the paired difference to
the training setting with a 95% percentile-bootstrap interval over seeds (10,000
resamples, fixed seed). Also checks that evaluating at the training K reproduces the
run's own eval.json when RUNS (the sweep folder) is given.

Usage: python3 scripts/test_time_k.py DIR [RUNS]
"""
import json
import random
import re
import sys
from pathlib import Path


def trial_return(path):
    return sum(json.loads(Path(path).read_text())["episode_returns"])


def bootstrap(diffs, n=10_000, seed=0):
    rng = random.Random(seed)
    means = sorted(
        sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(n)
    )
    return means[int(0.025 * n)], means[int(0.975 * n) - 1]


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    d = Path(sys.argv[1])
    pat = re.compile(r"(K\d+)-seed-(\d+)-test-K(\d+)(?:-eta([0-9.]+))?\.json$")
    table = {}
    for f in sorted(d.glob("*.json")):
        m = pat.search(f.name)
        if m:
            v, s, k, eta = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
            table.setdefault(v, {}).setdefault((k, eta or ""), {})[s] = trial_return(f)
    print("| trained at | tested at K | eta | mean trial return | per seed | difference to the training setting [95% CI over seeds] |")
    print("|---|---|---|---|---|---|")
    for v in sorted(table, key=lambda v: int(v[1:])):
        train_k = int(v[1:])
        base = table[v].get((train_k, ""), {})
        for k, eta in sorted(table[v], key=lambda ke: (ke[1] != "", ke[1], ke[0])):
            row = table[v][(k, eta)]
            seeds = sorted(row)
            mean = sum(row.values()) / len(row)
            per = ", ".join(f"{row[s]:.2f}" for s in seeds)
            own = k == train_k and eta == ""
            if own or not all(s in base for s in seeds):
                diff = "(training setting)" if own else ""
            else:
                diffs = [row[s] - base[s] for s in seeds]
                lo, hi = bootstrap(diffs)
                diff = f"{sum(diffs) / len(diffs):+.2f} [{lo:+.2f}, {hi:+.2f}]"
            print(f"| K = {train_k} | {k} | {eta or 'as trained'} | {mean:.2f} | {per} | {diff} |")
    if len(sys.argv) == 3:
        runs = Path(sys.argv[2])
        for v in table:
            for s, got in table[v].get((int(v[1:]), ""), {}).items():
                # RUNS/<variant>/<env>/varibased/seed-<s>: any env
                for own in sorted(runs.glob(f"{v}/*/varibased/seed-{s}/eval.json")):
                    want = trial_return(own)
                    status = "reproduced" if got == want else f"DIFFERS ({want})"
                    print(f"{v} seed {s} at its training K: {got:.4f} {status}")


if __name__ == "__main__":
    main()
