//! `bamdp::stats` against rliable itself (python/requirements.txt installs it): the same
//! scores through tests/support/rliable_reference.py. Point estimates must agree
//! exactly; bootstrap intervals within Monte-Carlo error of the two resamplers.

use bamdp::stats::{self, Bootstrap, Scores};
use std::process::Command;

/// Resamples on the Python side (rliable is slow: ~2 s per 1000 for four statistics).
const PY_REPS: usize = 2000;
/// Resamples on our side: many, so nearly all of the difference is rliable's error.
const RS_REPS: usize = 40_000;

fn matrix(rows: &[&[f64]]) -> Scores {
    let tasks = rows[0].len();
    Scores::new(
        rows.len(),
        tasks,
        rows.iter().flat_map(|r| r.to_vec()).collect(),
    )
    .unwrap()
}

fn json_rows(s: &Scores) -> serde_json::Value {
    (0..s.runs())
        .map(|r| (0..s.tasks()).map(|t| s.get(r, t)).collect::<Vec<_>>())
        .collect()
}

/// Monte-Carlo standard error of a bootstrap 2.5% / 97.5% percentile from `reps`
/// resamples, for a bootstrap distribution with standard deviation `sd` (normal
/// approximation: sqrt(p (1 - p) / reps) / phi(z_p) * sd).
fn percentile_se(sd: f64, reps: usize) -> f64 {
    let p: f64 = 0.025;
    let phi_z = (-0.5f64 * 1.959_964f64.powi(2)).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (p * (1.0 - p) / reps as f64).sqrt() / phi_z * sd
}

fn sd(xs: &[f64]) -> f64 {
    let m = stats::mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// Within 4 standard errors of both resamplers combined, plus half a lattice step
/// (`step`): the statistics take discrete values, and percentiles interpolate between them.
fn assert_close(what: &str, ours: f64, theirs: f64, sd: f64, step: f64) {
    let se = (percentile_se(sd, PY_REPS).powi(2) + percentile_se(sd, RS_REPS).powi(2)).sqrt();
    let tol = 4.0 * se + 0.5 * step;
    assert!(
        (ours - theirs).abs() <= tol,
        "{what}: ours {ours} vs rliable {theirs} (tolerance {tol}, bootstrap sd {sd})"
    );
}

#[test]
fn matches_rliable() {
    // Two methods, 3 tasks, 5 and 7 runs, with ties inside and across methods.
    let x = matrix(&[
        &[0.1, 0.5, 0.9],
        &[0.2, 0.5, 0.8],
        &[0.3, 0.6, 0.7],
        &[0.3, 0.4, 1.0],
        &[0.0, 0.5, 0.9],
    ]);
    let y = matrix(&[
        &[0.2, 0.4, 0.9],
        &[0.2, 0.3, 0.6],
        &[0.1, 0.6, 0.5],
        &[0.4, 0.4, 0.7],
        &[0.0, 0.2, 0.9],
        &[0.25, 0.45, 0.8],
        &[0.3, 0.5, 0.6],
    ]);
    let taus = [0.0, 0.25, 0.5, 0.75];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("scores.json");
    let data = serde_json::json!({
        "x": json_rows(&x), "y": json_rows(&y), "taus": taus, "reps": PY_REPS,
    });
    std::fs::write(&input, data.to_string()).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/rliable_reference.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .arg(&input)
        .output()
        .expect("python3 runs (install python/requirements.txt)");
    assert!(
        out.status.success(),
        "rliable reference failed (pip install -r python/requirements.txt):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| r[k].as_f64().unwrap();
    let pair = |k: &str| (r[k][0].as_f64().unwrap(), r[k][1].as_f64().unwrap());

    // Point estimates: the same arithmetic, so equal up to summation order.
    let iqm = |s: &Scores| stats::iqm(s.values());
    assert!(
        (iqm(&x) - f("iqm_x")).abs() < 1e-12,
        "{} {}",
        iqm(&x),
        f("iqm_x")
    );
    assert!((iqm(&y) - f("iqm_y")).abs() < 1e-12);
    let poi = stats::probability_of_improvement(&x, &y);
    assert!((poi - f("poi")).abs() < 1e-12, "{poi} {}", f("poi"));
    let profile = stats::performance_profile(&x, &taus);
    for (i, p) in profile.iter().enumerate() {
        assert!((p - r["profile_x"][i].as_f64().unwrap()).abs() < 1e-12);
    }

    // Intervals. IQM of 15 (21) values moves in steps of 0.1 / 9 (0.05 / 11) or less.
    let boot = Bootstrap {
        reps: RS_REPS,
        level: 0.95,
        seed: 1,
    };
    for (name, s, step) in [("x", &x, 0.1 / 9.0), ("y", &y, 0.05 / 11.0)] {
        let ci = boot.interval(s, iqm);
        let spread = sd(&boot.distribution(s, iqm));
        let (lo, hi) = pair(&format!("iqm_{name}_ci"));
        assert_close(&format!("IQM {name} lower"), ci.lo, lo, spread, step);
        assert_close(&format!("IQM {name} upper"), ci.hi, hi, spread, step);
    }
    let ci = boot.interval_pair(&x, &y, stats::probability_of_improvement);
    let draws: Vec<f64> = {
        // The spread of the probability-of-improvement bootstrap, from a smaller run.
        let small = Bootstrap { reps: 4000, ..boot };
        let mut v = Vec::new();
        for seed in 0..4 {
            let b = Bootstrap { seed, ..small };
            let c = b.interval_pair(&x, &y, stats::probability_of_improvement);
            v.push((c.hi - c.lo) / (2.0 * 1.959_964));
        }
        v
    };
    let poi_sd = stats::mean(&draws);
    let (lo, hi) = pair("poi_ci");
    // POI per task moves in steps of 1 / (5 * 7 * 2), averaged over 3 tasks.
    let step = 1.0 / (70.0 * 3.0);
    assert_close("POI lower", ci.lo, lo, poi_sd, step);
    assert_close("POI upper", ci.hi, hi, poi_sd, step);
    // Profile intervals: fractions of 15 scores.
    let cis = boot.intervals(&x, |s| stats::performance_profile(s, &taus));
    for (i, ci) in cis.iter().enumerate() {
        let lo = r["profile_x_ci"][0][i].as_f64().unwrap();
        let hi = r["profile_x_ci"][1][i].as_f64().unwrap();
        let p = profile[i];
        let spread = (p * (1.0 - p) / 15.0).sqrt().max(1.0 / 15.0);
        assert_close(
            &format!("profile[{i}] lower"),
            ci.lo,
            lo,
            spread,
            1.0 / 15.0,
        );
        assert_close(
            &format!("profile[{i}] upper"),
            ci.hi,
            hi,
            spread,
            1.0 / 15.0,
        );
    }
}
