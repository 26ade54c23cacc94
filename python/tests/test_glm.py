"""bamdp.glm against a NumPy implementation of the same MNIW formulas (docs/methods.md#glibrl)
on random cases, to 1e-9; the gradient also against central finite differences."""

from math import lgamma, log, pi

import numpy as np
import pytest

from bamdp import glm


def ln_multigamma(m, a):
    return m * (m - 1) / 4 * log(pi) + sum(lgamma(a - j / 2) for j in range(m))


def np_posterior(m0, l0_log, p0_log, nu0, c, y):
    """Λ_N = Λ0 + C'C, M_N = Λ_N^-1 (Λ0 M0 + C'Y), Ψ_N = Ψ0 + Y'Y + M0'Λ0 M0 - M_N'Λ_N M_N,
    ν_N = ν0 + N, and log p(Y | C)."""
    n, m = y.shape
    lam0 = np.diag(np.exp(l0_log))
    psi0 = np.diag(np.exp(p0_log))
    lam_n = lam0 + c.T @ c
    m_n = np.linalg.solve(lam_n, lam0 @ m0 + c.T @ y)
    psi_n = psi0 + y.T @ y + m0.T @ lam0 @ m0 - m_n.T @ lam_n @ m_n
    nu_n = nu0 + n
    logdet = lambda a: np.linalg.slogdet(a)[1]
    lml = (
        -n * m / 2 * log(pi)
        + m / 2 * (logdet(lam0) - logdet(lam_n))
        + nu0 / 2 * logdet(psi0)
        - nu_n / 2 * logdet(psi_n)
        + ln_multigamma(m, nu_n / 2)
        - ln_multigamma(m, nu0 / 2)
    )
    return lam_n, m_n, psi_n, nu_n, lml


def student_t_logpdf(yv, mean, scale, dof):
    m = len(mean)
    r = yv - mean
    q = r @ np.linalg.solve(scale, r)
    return (
        lgamma((dof + m) / 2)
        - lgamma(dof / 2)
        - m / 2 * log(dof * pi)
        - 0.5 * np.linalg.slogdet(scale)[1]
        - (dof + m) / 2 * np.log1p(q / dof)
    )


def random_case(rng, d, m, n):
    m0 = rng.normal(size=(d, m))
    l0 = rng.normal(scale=0.5, size=d)
    p0 = rng.normal(scale=0.5, size=m)
    nu0 = m + 1 + rng.uniform(0.5, 4.0)
    c = rng.normal(size=(n, d))
    y = c @ rng.normal(size=(d, m)) + 0.3 * rng.normal(size=(n, m))
    return m0, l0, p0, nu0, c, y


CASES = [(d, m, n, seed) for seed, (d, m, n) in enumerate([(1, 1, 3), (3, 1, 10), (4, 2, 7), (6, 3, 25), (2, 4, 1), (5, 2, 0)])]


@pytest.mark.parametrize("d,m,n,seed", CASES)
def test_posterior_and_log_marginal_match_numpy(d, m, n, seed):
    rng = np.random.default_rng(seed)
    m0, l0, p0, nu0, c, y = random_case(rng, d, m, n)
    prior = glm.MniwPrior(m0, l0, p0, nu0)
    stats = glm.Stats.from_rows(c, y) if n else glm.Stats(d, m)
    post = glm.posterior(prior, stats)
    lam_n, m_n, psi_n, nu_n, lml = np_posterior(m0, l0, p0, nu0, c, y)
    np.testing.assert_allclose(post.lambda_n, lam_n, rtol=0, atol=1e-9)
    np.testing.assert_allclose(post.m_n, m_n, rtol=0, atol=1e-9)
    np.testing.assert_allclose(post.psi_n, psi_n, rtol=0, atol=1e-9)
    assert post.nu_n == nu_n
    assert abs(post.log_marginal - lml) < 1e-9
    assert abs(glm.log_marginal(prior, stats) - lml) < 1e-9
    es = psi_n / (nu_n - m - 1) if nu_n > m + 1 else psi_n / (nu_n + m + 1)
    np.testing.assert_allclose(post.expected_sigma(), es, rtol=0, atol=1e-9)


@pytest.mark.parametrize("d,m,n,seed", CASES)
def test_student_t_predictive_matches_numpy(d, m, n, seed):
    rng = np.random.default_rng(100 + seed)
    m0, l0, p0, nu0, c, y = random_case(rng, d, m, n)
    prior = glm.MniwPrior(m0, l0, p0, nu0)
    stats = glm.Stats.from_rows(c, y) if n else glm.Stats(d, m)
    post = glm.posterior(prior, stats)
    lam_n, m_n, psi_n, nu_n, _ = np_posterior(m0, l0, p0, nu0, c, y)
    x = rng.normal(size=d)
    dof = nu_n - m + 1
    scale = psi_n * (1 + x @ np.linalg.solve(lam_n, x)) / dof
    pred = post.predictive(x)
    assert abs(pred.dof - dof) < 1e-12
    np.testing.assert_allclose(pred.mean, m_n.T @ x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(pred.scale, scale, rtol=0, atol=1e-9)
    yv = rng.normal(size=m)
    assert abs(pred.log_density(yv) - student_t_logpdf(yv, m_n.T @ x, scale, dof)) < 1e-9


@pytest.mark.parametrize("d,m,n,seed", CASES[:5])
def test_gradient_matches_finite_differences(d, m, n, seed):
    rng = np.random.default_rng(200 + seed)
    m0, l0, p0, nu0, c, y = random_case(rng, d, m, n)
    prior = glm.MniwPrior(m0, l0, p0, nu0)
    value, g = glm.log_marginal_and_grad(prior, glm.Stats.from_rows(c, y))
    f = lambda m0_, l0_, p0_, nu0_, c_, y_: np_posterior(m0_, l0_, p0_, nu0_, c_, y_)[4]
    assert abs(value - f(m0, l0, p0, nu0, c, y)) < 1e-9
    h = 1e-6

    def fd(arr_index, shape):
        out = np.zeros(shape)
        for idx in np.ndindex(*shape):
            args = [m0.copy(), l0.copy(), p0.copy(), nu0, c.copy(), y.copy()]
            plus, minus = [a.copy() if isinstance(a, np.ndarray) else a for a in args], [
                a.copy() if isinstance(a, np.ndarray) else a for a in args
            ]
            if shape == ():
                plus[arr_index] += h
                minus[arr_index] -= h
            else:
                plus[arr_index][idx] += h
                minus[arr_index][idx] -= h
            out[idx] = (f(*plus) - f(*minus)) / (2 * h)
        return out

    np.testing.assert_allclose(g.m0, fd(0, m0.shape), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g.lambda0_log_diag, fd(1, l0.shape), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g.psi0_log_diag, fd(2, p0.shape), rtol=1e-5, atol=1e-6)
    assert abs(g.nu0 - fd(3, ())) < 1e-5 * max(1, abs(g.nu0))
    np.testing.assert_allclose(g.features(c, y), fd(4, c.shape), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g.targets(c, y), fd(5, y.shape), rtol=1e-5, atol=1e-6)


def test_statistics_and_merge_match_numpy():
    rng = np.random.default_rng(7)
    c, y = rng.normal(size=(9, 3)), rng.normal(size=(9, 2))
    s = glm.Stats.from_rows(c[:4], y[:4])
    s.add_rows(c[4:6], y[4:6])
    s.merge(glm.Stats.from_rows(c[6:], y[6:]))
    assert s.n == 9
    np.testing.assert_allclose(s.ctc, c.T @ c, rtol=0, atol=1e-9)
    np.testing.assert_allclose(s.cty, c.T @ y, rtol=0, atol=1e-9)
    np.testing.assert_allclose(s.yty, y.T @ y, rtol=0, atol=1e-9)


def test_streaming_updates_equal_the_batch_posterior():
    rng = np.random.default_rng(11)
    d, m, rows, steps = 3, 2, 4, 12
    m0, l0, p0, nu0, _, _ = random_case(rng, d, m, 1)
    prior = glm.MniwPrior(m0, l0, p0, nu0)
    stream = glm.GlmStream(prior, rows)
    cs = rng.normal(size=(steps, rows, d))
    ys = rng.normal(size=(steps, rows, m))
    for t in range(steps):
        if t % 2:
            stream.update(cs[t], ys[t])
        else:
            for r in range(rows):
                stream.update_row(r, cs[t, r], ys[t, r])
    for r in range(rows):
        lam_n, m_n, psi_n, nu_n, _ = np_posterior(m0, l0, p0, nu0, cs[:, r], ys[:, r])
        np.testing.assert_allclose(stream.mean(r), m_n, rtol=0, atol=1e-9)
        np.testing.assert_allclose(stream.lambda_inv(r), np.linalg.inv(lam_n), rtol=0, atol=1e-9)
        np.testing.assert_allclose(stream.psi(r), psi_n, rtol=0, atol=1e-9)
        assert stream.nu(r) == nu_n and stream.n(r) == steps
        x = rng.normal(size=d)
        dof = nu_n - m + 1
        pred = stream.predictive(r, x)
        scale = psi_n * (1 + x @ np.linalg.solve(lam_n, x)) / dof
        np.testing.assert_allclose(pred.scale, scale, rtol=0, atol=1e-9)
    stream.reset_rows(prior, np.array([True, False, True, False]))
    assert [stream.n(r) for r in range(rows)] == [0, steps, 0, steps]
    np.testing.assert_allclose(stream.mean(0), m0, rtol=0, atol=0)


def test_posterior_draws_are_exact_in_distribution():
    """The mean of many draws of W approaches M_N, of Σ approaches E[Σ] (10 standard errors)."""
    rng = np.random.default_rng(3)
    d, m = 2, 2
    m0, l0, p0, _, c, y = random_case(rng, d, m, 30)
    prior = glm.MniwPrior(m0, l0, p0, 8.0)
    post = glm.posterior(prior, glm.Stats.from_rows(c, y))
    draws = [post.sample(seed) for seed in range(2000)]
    w = np.stack([a for a, _ in draws])
    s = np.stack([b for _, b in draws])
    for arr, target in ((w, post.m_n), (s, post.expected_sigma())):
        se = arr.std(axis=0) / np.sqrt(len(arr))
        assert np.all(np.abs(arr.mean(axis=0) - target) < 10 * se + 1e-12)
    # Same seed, same draw; the stream's draw of an identical posterior is a valid SPD Σ.
    np.testing.assert_array_equal(post.sample(5)[0], post.sample(5)[0])
    stream = glm.GlmStream(prior, 1)
    for t in range(len(c)):
        stream.update_row(0, c[t], y[t])
    _, sig = stream.sample(0, 1)
    assert np.all(np.linalg.eigvalsh(sig) > 0)


def test_bad_input_raises_value_error():
    prior = glm.MniwPrior.isotropic(2, 1, 1.0, 1.0, 3.0)
    with pytest.raises(ValueError, match="`nu0`"):
        glm.MniwPrior.isotropic(2, 3, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"invalid value .* for `y`: expected a float64 array of shape \(4, d\)"):
        glm.Stats.from_rows(np.zeros((4, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="`c`"):
        glm.Stats.from_rows(["a", "b"], np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"`c`: expected a float64 array of shape \(2,\)"):
        glm.posterior(prior, glm.Stats(2, 1)).predictive(np.zeros(3))
    with pytest.raises(ValueError):
        glm.posterior(prior, glm.Stats(3, 1))
    stream = glm.GlmStream(prior, 2)
    with pytest.raises(ValueError, match="`row`"):
        stream.mean(2)
    with pytest.raises(ValueError, match=r"`c`"):
        stream.update(np.zeros((3, 2)), np.zeros((3, 1)))
