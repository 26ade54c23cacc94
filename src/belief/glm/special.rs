//! Special functions the MNIW marginal needs in f64: log-gamma, digamma and their
//! multivariate forms. `f64::ln_gamma` is not stable in std, so these are written
//! here: shift the argument up by the recurrence, then use the Stirling / asymptotic
//! series, which at x >= 10 is accurate to a few ulps.

const SHIFT_TO: f64 = 10.0;
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// ln Γ(x) for x > 0 (NaN otherwise).
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    let mut z = x;
    // Multiplying the shifted factors and taking one log keeps the rounding error of
    // the shift at one ulp of the log instead of one per step.
    let mut prod = 1.0;
    while z < SHIFT_TO {
        prod *= z;
        z += 1.0;
    }
    let zi = 1.0 / z;
    let zi2 = zi * zi;
    // Bernoulli terms B_2k / (2k (2k-1) z^(2k-1)), k = 1..7.
    let series = zi
        * (1.0 / 12.0
            + zi2
                * (-1.0 / 360.0
                    + zi2
                        * (1.0 / 1260.0
                            + zi2
                                * (-1.0 / 1680.0
                                    + zi2
                                        * (1.0 / 1188.0
                                            + zi2 * (-691.0 / 360_360.0 + zi2 / 156.0))))));
    (z - 0.5) * z.ln() - z + HALF_LN_2PI + series - prod.ln()
}

/// ψ(x) = d/dx ln Γ(x) for x > 0 (NaN otherwise).
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    let mut z = x;
    let mut acc = 0.0;
    while z < SHIFT_TO {
        acc -= 1.0 / z;
        z += 1.0;
    }
    let zi = 1.0 / z;
    let zi2 = zi * zi;
    // Bernoulli terms B_2k / (2k z^2k), k = 1..7.
    let series = zi2
        * (1.0 / 12.0
            + zi2
                * (-1.0 / 120.0
                    + zi2
                        * (1.0 / 252.0
                            + zi2
                                * (-1.0 / 240.0
                                    + zi2
                                        * (1.0 / 132.0
                                            + zi2 * (-691.0 / 32_760.0 + zi2 / 12.0))))));
    acc + z.ln() - 0.5 * zi - series
}

/// ln Γ_m(a) = m(m-1)/4 ln π + Σ_{j=1..m} ln Γ(a + (1-j)/2), for a > (m-1)/2.
pub fn ln_multigamma(m: usize, a: f64) -> f64 {
    let mut s = (m * m.saturating_sub(1)) as f64 / 4.0 * std::f64::consts::PI.ln();
    for j in 0..m {
        s += ln_gamma(a - 0.5 * j as f64);
    }
    s
}

/// d/da ln Γ_m(a) = Σ_{j=1..m} ψ(a + (1-j)/2).
pub fn multidigamma(m: usize, a: f64) -> f64 {
    (0..m).map(|j| digamma(a - 0.5 * j as f64)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_known_values() {
        let sqrt_pi_ln = 0.5 * std::f64::consts::PI.ln();
        assert!(
            (ln_gamma(0.5) - sqrt_pi_ln).abs() < 1e-14,
            "{:e}",
            ln_gamma(0.5) - sqrt_pi_ln
        );
        let mut fact = 1.0f64;
        for n in 1..30 {
            let want = fact.ln();
            let got = ln_gamma(n as f64);
            assert!(
                (got - want).abs() <= 1e-14 * want.abs().max(1.0),
                "{n}: {got} {want}"
            );
            fact *= n as f64;
        }
        // Γ(1e-3) = 999.4237724845955 (Abramowitz & Stegun recurrence Γ(x) = Γ(1+x)/x).
        assert!((ln_gamma(1e-3) - 999.423_772_484_595_5f64.ln()).abs() < 1e-13);
        // ln Γ(100.5): Stirling region, checked against the recurrence from Γ(0.5).
        let mut want = sqrt_pi_ln;
        let mut z = 0.5f64;
        while z < 100.0 {
            want += z.ln();
            z += 1.0;
        }
        assert!((ln_gamma(100.5) - want).abs() < 1e-12 * want);
    }

    #[test]
    fn digamma_known_values_and_derivative() {
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-15);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-14);
        for &x in &[0.01f64, 0.3, 1.7, 4.2, 9.9, 10.1, 33.0, 1e4] {
            let h = 1e-4 * x;
            let fd = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!(
                (digamma(x) - fd).abs() < 1e-7 * digamma(x).abs().max(1.0),
                "{x} {} {fd}",
                digamma(x)
            );
            // Recurrence ψ(x+1) = ψ(x) + 1/x straddles the shift threshold.
            assert!((digamma(x + 1.0) - digamma(x) - 1.0 / x).abs() < 1e-13 * (1.0 / x).max(1.0));
        }
    }
}
