"""rliable's statistics on the scores in a JSON file, printed as JSON.

Reference for tests/stats_rliable.rs: `python3 rliable_reference.py scores.json`.
Input: {"x": [[run0 task0, task1, ...], ...], "y": [[...]], "taus": [...], "reps": N}.
"""
import json
import sys

import numpy as np
from rliable import library as rly
from rliable import metrics


def main():
    with open(sys.argv[1]) as f:
        data = json.load(f)
    x = np.asarray(data["x"], dtype=np.float64)
    y = np.asarray(data["y"], dtype=np.float64)
    taus = np.asarray(data["taus"], dtype=np.float64)
    reps = int(data["reps"])
    # rliable's StratifiedBootstrap draws from numpy's global generator.
    np.random.seed(0)
    iqm = lambda s: np.array([metrics.aggregate_iqm(s)])
    points, cis = rly.get_interval_estimates({"x": x, "y": y}, iqm, reps=reps)
    poi_point, poi_ci = rly.get_interval_estimates(
        {"xy": (x, y)}, lambda a, b: np.array([metrics.probability_of_improvement(a, b)]), reps=reps
    )
    profiles, profile_cis = rly.create_performance_profile({"x": x}, taus, reps=reps)
    out = {
        "iqm_x": float(points["x"][0]),
        "iqm_y": float(points["y"][0]),
        "iqm_x_ci": [float(cis["x"][0][0]), float(cis["x"][1][0])],
        "iqm_y_ci": [float(cis["y"][0][0]), float(cis["y"][1][0])],
        "poi": float(poi_point["xy"][0]),
        "poi_ci": [float(poi_ci["xy"][0][0]), float(poi_ci["xy"][1][0])],
        "profile_x": [float(v) for v in profiles["x"]],
        "profile_x_ci": [[float(v) for v in profile_cis["x"][0]], [float(v) for v in profile_cis["x"][1]]],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
