"""theory.flows: the constant-tangent-kernel closed forms against their ODEs (central
differences), scipy's solve_ivp, Lambert W / Wright omega and 60-digit mpmath, at
hypothesis-drawn beta in [1e-3, 20], K in [1e-3, 10], t in [0, 1e12]."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from scipy.special import expit, lambertw, wrightomega

from theory import (
    ga_log_ratio,
    ga_time_to_divergence,
    npo_local_log_rate,
    npo_log_rate,
    npo_log_ratio,
    npo_log_ratio_asymptote,
    npo_log_ratio_bounds,
    npo_log_time_to_divergence,
    npo_time_to_divergence,
    npo_weight_along_flow,
)
from theory.flows import omega_shift

BETAS = st.floats(1e-3, 20.0)
KS = st.floats(1e-3, 10.0)
TIMES = st.floats(0.0, 1e12)


def rhs(beta, K):
    return lambda _t, u: -2.0 * K * expit(beta * u)


@given(BETAS, KS, TIMES)
def test_closed_form_satisfies_the_ode(beta, K, t):
    tau = 1.0 / (2 * beta * K)  # NPO's natural time unit
    h = 1e-4 * max(t, tau)
    t = max(t, 2 * h)
    u = npo_log_ratio(t, beta=beta, K=K)
    du = (npo_log_ratio(t + h, beta=beta, K=K) - npo_log_ratio(t - h, beta=beta, K=K)) / (2 * h)
    assert du == pytest.approx(-2 * K * expit(beta * u), rel=1e-6)


@settings(max_examples=25)
@given(BETAS, KS, st.floats(1e-3, 1e12))
def test_closed_form_agrees_with_solve_ivp(beta, K, t_end):
    ts = np.geomspace(t_end * 1e-6, t_end, 7)
    sol = solve_ivp(
        rhs(beta, K), (0.0, t_end), [0.0], t_eval=ts, method="DOP853", rtol=1e-11, atol=1e-12
    )
    assert sol.success
    np.testing.assert_allclose(npo_log_ratio(ts, beta=beta, K=K), sol.y[0], rtol=1e-6, atol=1e-9)


def test_against_lambert_w_wright_omega_and_mpmath():
    t = np.geomspace(1e-9, 1e12, 400)
    beta, K = 0.37, 2.5
    s = 2 * beta * K * t
    u = npo_log_ratio(t, beta=beta, K=K)
    moderate = s < 600  # the formula as written: exp(1 + s) must not overflow
    x = 1 + s[moderate]
    np.testing.assert_allclose(
        u[moderate], (lambertw(np.exp(x)).real - x) / beta, rtol=1e-9, atol=1e-12
    )
    big = s > 1.0  # wrightomega(1 + s) loses 1 + s's digits for tiny s
    np.testing.assert_allclose(u[big], -np.log(wrightomega(1 + s[big]).real) / beta, rtol=1e-13)
    with mpmath.workdps(60):
        for i in range(0, t.size, 37):
            ss = mpmath.mpf(s[i])
            ref = (mpmath.lambertw(mpmath.e ** (1 + ss)) - 1 - ss) / mpmath.mpf(beta)
            assert abs(u[i] - float(ref)) <= 4e-16 * abs(float(ref))


def test_omega_shift_on_the_whole_real_line():
    s = np.concatenate([-np.geomspace(1e12, 1e-20, 200), [0.0], np.geomspace(1e-20, 1e300, 300)])
    y = omega_shift(s)
    assert np.all(np.isfinite(y))
    resid = y + np.expm1(y) - s
    ok = np.abs(s) < 1e15
    # backward error: the residual divided by f'(y) = 1 + e^y is a few ulps of y
    back = np.abs(resid[ok]) / (1 + np.exp(y[ok]))
    assert np.all(back <= 4e-16 * np.maximum(np.abs(y[ok]), 1e-300))
    assert np.all(np.diff(y) >= 0)  # increasing in s
    # huge s: y = log(1 + s - y) to float precision
    np.testing.assert_allclose(y[~ok], np.log(s[~ok]) + np.log1p((1 - y[~ok]) / s[~ok]), rtol=1e-15)


@pytest.mark.parametrize("beta", [1e-3, 0.1, 1.0, 20.0])
@pytest.mark.parametrize("K", [1e-3, 1.0, 10.0])
def test_no_nan_or_overflow_at_huge_times(beta, K):
    t = np.array([1e12, 1e100, 1e300])
    with np.errstate(all="raise"):
        for f in (
            npo_log_ratio,
            npo_log_ratio_asymptote,
            npo_local_log_rate,
            npo_weight_along_flow,
        ):
            out = f(t, beta=beta, K=K)
            assert np.all(np.isfinite(out)), f.__name__
        lo, hi = npo_log_ratio_bounds(t, beta=beta, K=K)
    u = npo_log_ratio(t, beta=beta, K=K)
    assert np.all(lo <= u) and np.all(u <= hi)
    assert np.all(np.diff(u) < 0)


@given(BETAS, KS, TIMES)
def test_two_sided_bounds(beta, K, t):
    lo, hi = npo_log_ratio_bounds(t, beta=beta, K=K)
    u = npo_log_ratio(t, beta=beta, K=K)
    slack = 4e-15 * max(abs(u), 1e-300)
    assert lo - slack <= u <= hi + slack
    assert -K * t - slack <= u <= 0.0  # |u'| <= K: never faster than GA


@given(KS, st.floats(1e-2, 1e4))
def test_beta_to_zero_recovers_ga(K, t):
    ga = ga_log_ratio(t, K=K)
    errs = []
    for beta in (1e-4, 1e-6, 1e-8):
        err = abs(npo_log_ratio(t, beta=beta, K=K) - ga) / abs(ga)
        # u = -Kt + beta K^2 t^2 / 4 + ...: relative error <= beta K t / 2 (once beta K t <= 0.1)
        if beta * K * t <= 0.1:
            assert err <= beta * K * t / 2 + 1e-12
        errs.append(err)
    assert errs[-1] <= 1e-7 * max(1.0, K * t) + 1e-12


@given(BETAS, KS)
def test_asymptote_relative_error_goes_to_zero(beta, K):
    tau = 1.0 / (2 * beta * K)
    t = tau * np.geomspace(1e-1, 1e8, 10)
    u = npo_log_ratio(t, beta=beta, K=K)
    gap = np.abs(u - npo_log_ratio_asymptote(t, beta=beta, K=K))
    rel = gap / np.abs(u)
    assert np.all(np.diff(rel) < 0)
    assert rel[0] > 0.05 and rel[-1] < 1e-7
    # the exact bound: |u - asym| <= log(1+s) / (beta (1 + s - log(1+s))), so rel = O(1/s)
    s = 2 * beta * K * t
    assert np.all(
        gap <= np.log1p(s) / (beta * (1 + s - np.log1p(s))) * (1 + 1e-9) + 1e-14 * np.abs(u)
    )


@given(BETAS, KS, st.floats(0.0, 30.0))
def test_time_to_divergence_inverts_the_flow(beta, K, D):
    t = npo_time_to_divergence(D, beta=beta, K=K)
    if not math.isfinite(t):
        assert beta * D > 700
        return
    assert npo_log_ratio(t, beta=beta, K=K) == pytest.approx(-D, rel=1e-10, abs=1e-12)
    assert ga_log_ratio(ga_time_to_divergence(D, K=K), K=K) == pytest.approx(-D, rel=1e-14)
    if t > 0:
        assert npo_log_time_to_divergence(D, beta=beta, K=K) == pytest.approx(
            math.log(t), rel=1e-12, abs=1e-12
        )


@given(BETAS, KS)
def test_npo_over_ga_time_grows_like_exp_beta_d(beta, K):
    D = np.array([5.0, 10.0, 20.0, 40.0, 80.0]) / beta
    ratio = np.exp(npo_log_time_to_divergence(D, beta=beta, K=K)) / ga_time_to_divergence(D, K=K)
    # exactly (1 + expm1(beta D)/(beta D)) / 2 -> e^{beta D} / (2 beta D)
    np.testing.assert_allclose(ratio, (1 + np.expm1(beta * D) / (beta * D)) / 2, rtol=1e-12)
    # ratio * 2 beta D e^{-beta D} = 1 + (beta D - 1) e^{-beta D} -> 1
    normalized = ratio * 2 * beta * D * np.exp(-beta * D)
    np.testing.assert_allclose(normalized - 1, (beta * D - 1) * np.exp(-beta * D), atol=1e-12)
    assert abs(normalized[-1] - 1) < 1e-12
    # the log of the ratio grows linearly in D with slope beta
    slope = np.diff(np.log(ratio)) / np.diff(D)
    assert slope[-1] == pytest.approx(beta, rel=0.02)


def test_log_time_to_divergence_beyond_float_range():
    D = np.array([0.0, 1.0, 1e3, 1e6])
    log_t = npo_log_time_to_divergence(D, beta=1.0, K=1.0)
    assert log_t[0] == -np.inf and np.all(np.isfinite(log_t[1:]))
    assert log_t[-1] == pytest.approx(1e6 - math.log(2), rel=1e-12)
    with np.errstate(over="ignore"):
        assert npo_time_to_divergence(1e3, beta=1.0, K=1.0) == math.inf


@given(BETAS, KS, st.floats(1e-3, 1e10))
def test_local_rate_is_the_log_time_derivative(beta, K, t):
    h = 1e-5
    num = -(
        npo_log_ratio(t * math.exp(h), beta=beta, K=K)
        - npo_log_ratio(t * math.exp(-h), beta=beta, K=K)
    ) / (2 * h)
    assert npo_local_log_rate(t, beta=beta, K=K) == pytest.approx(num, rel=1e-5, abs=1e-9)


@given(BETAS, KS)
def test_long_time_rate_is_one_over_beta(beta, K):
    tau = 1.0 / (2 * beta * K)
    rate = npo_log_rate(beta)
    assert rate == pytest.approx(1.0 / beta, rel=1e-15)
    late = npo_local_log_rate(tau * np.array([1e4, 1e8, 1e16]), beta=beta, K=K)
    err = np.abs(late - rate) / rate
    assert np.all(np.diff(err) < 0) and err[-1] < 0.03
    # the slope of the closed form over two late decades, as the synthetic experiment fits it
    t = tau * np.array([1e10, 1e12])
    u = npo_log_ratio(t, beta=beta, K=K)
    assert -(u[1] - u[0]) / math.log(100) == pytest.approx(rate, rel=0.05)


def test_npo_log_rate_vectorized():
    np.testing.assert_allclose(npo_log_rate(np.array([0.1, 1.0, 4.0])), [10.0, 1.0, 0.25])


def test_weight_along_flow():
    t = np.array([0.0, 1.0, 1e6])
    w = npo_weight_along_flow(t, beta=2.0, K=0.5)
    np.testing.assert_allclose(w, 2 * expit(2.0 * npo_log_ratio(t, beta=2.0, K=0.5)), rtol=1e-13)
    assert w[0] == 1.0


def test_broadcasting():
    t = np.geomspace(1, 1e6, 5)[:, None]
    beta = np.array([0.1, 1.0, 10.0])
    u = npo_log_ratio(t, beta=beta, K=1.0)
    assert u.shape == (5, 3)
    for j, b in enumerate(beta):
        np.testing.assert_array_equal(u[:, j], npo_log_ratio(t[:, 0], beta=b, K=1.0))
    assert isinstance(npo_log_ratio(1.0, beta=1.0, K=1.0), float)


FUNCS = [
    (npo_log_ratio, {"t": 1.0, "beta": 1.0, "K": 1.0}),
    (npo_log_ratio_asymptote, {"t": 1.0, "beta": 1.0, "K": 1.0}),
    (npo_local_log_rate, {"t": 1.0, "beta": 1.0, "K": 1.0}),
    (npo_time_to_divergence, {"D": 1.0, "beta": 1.0, "K": 1.0}),
    (npo_log_time_to_divergence, {"D": 1.0, "beta": 1.0, "K": 1.0}),
    (ga_log_ratio, {"t": 1.0, "K": 1.0}),
    (ga_time_to_divergence, {"D": 1.0, "K": 1.0}),
]


@pytest.mark.parametrize(("fn", "good"), FUNCS, ids=[f.__name__ for f, _ in FUNCS])
def test_bad_input_names_the_argument(fn, good):
    pos = next(iter(good))
    fn(good[pos], **{k: v for k, v in good.items() if k != pos})  # the good call works
    bad_values = {
        "beta": [0.0, -1.0, math.nan, math.inf],
        "K": [0.0, -2.0, math.nan],
        "t": [-1.0, math.nan, math.inf, np.array([1.0, -1e-9])],
        "D": [-1.0, math.nan],
    }
    for name in good:
        for bad in bad_values[name]:
            args = dict(good, **{name: bad})
            first = args.pop(pos)
            with pytest.raises(ValueError, match=rf"^{name} must"):
                fn(first, **args)
    with pytest.raises(ValueError, match="must be a number"):
        fn("abc", **{k: v for k, v in good.items() if k != pos})
    with pytest.raises(ValueError, match="beta must"):
        npo_log_rate(0.0)
