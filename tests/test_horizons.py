"""Horizon criteria (theory.regimes, theory.horizon) held against the flow they come from, the
seed spread of fit_divergence, and the flags the synthetic experiments print."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from theory import (
    HORIZON_BETA_U,
    adam_eps_crossover,
    fit_divergence,
    fit_divergence_seeds,
    npo_local_log_rate,
    npo_log_ratio,
)
from theory.horizon import (
    Horizon,
    adam_horizon,
    adam_regime,
    horizon_verdict,
    linear_horizon,
    npo_gd_horizon,
)
from theory.regimes import (
    RATE_CHANGE_MAX,
    local_exponent,
    local_log_rate,
    log_rate_change,
    npo_asymptotic_threshold,
    npo_decade_slope,
    npo_flow_log_rate,
    npo_flow_overshoot,
    npo_rate_change,
    npo_verdict_threshold,
)


@pytest.mark.parametrize("beta, K", [(0.1, 1.0), (1.0, 0.01), (4.0, 3.0)])
def test_flow_log_rate_of_beta_u_is_the_local_log_rate(beta, K):
    t = np.geomspace(1e-4, 1e9, 500)
    v = -beta * np.asarray(npo_log_ratio(t, beta=beta, K=K))
    np.testing.assert_allclose(
        npo_flow_log_rate(v), beta * np.asarray(npo_local_log_rate(t, beta=beta, K=K)), rtol=1e-10
    )


def _threshold_on_flow(tol: float) -> float:
    # the last time the flow's local log rate is off by more than tol, as beta|u| (beta = K = 1)
    t = np.geomspace(1e-3, 1e12, 400_001)
    rate = np.asarray(npo_local_log_rate(t, beta=1.0, K=1.0))
    last = np.flatnonzero(np.abs(rate - 1.0) > tol)[-1]
    return float(-npo_log_ratio(t[last + 1], beta=1.0, K=1.0))


@pytest.mark.parametrize(
    "tol, expected", [(0.2, 1.161), (0.1, 1.467), (0.05, 1.681), (0.02, 5.006)]
)
def test_asymptotic_threshold_is_where_the_flow_settles(tol, expected):
    assert npo_asymptotic_threshold(tol) == pytest.approx(expected, abs=1e-3)
    assert npo_asymptotic_threshold(tol) == pytest.approx(_threshold_on_flow(tol), abs=2e-3)


def test_overshoot_is_the_flows_maximum():
    v_m, over = npo_flow_overshoot()
    t = np.geomspace(1e-3, 1e6, 200_001)
    rate = np.asarray(npo_local_log_rate(t, beta=1.0, K=1.0))
    assert rate.max() - 1.0 == pytest.approx(over, rel=1e-6)
    assert -npo_log_ratio(t[np.argmax(rate)], beta=1.0, K=1.0) == pytest.approx(v_m, abs=1e-3)
    with pytest.raises(ValueError, match="tol"):
        npo_asymptotic_threshold(1.5)


def test_decade_slope_and_rate_change_read_the_flow():
    T = 1e4
    for v_end in (2.0, 3.3, 6.0):
        K = brentq(lambda k, v=v_end: -npo_log_ratio(T, beta=1.0, K=k) - v, 1e-9, 1e6)
        u_T, u_T10 = (-float(npo_log_ratio(t, beta=1.0, K=K)) for t in (T, T / 10))
        chord = (u_T - u_T10) / np.log(10)
        assert npo_decade_slope(v_end) == pytest.approx(chord, rel=1e-9)
        t = np.geomspace(T / 100, T, 400)
        d = -np.asarray(npo_log_ratio(t, beta=1.0, K=K))
        assert npo_rate_change(v_end) == pytest.approx(log_rate_change(t, d), rel=1e-3)
    assert npo_rate_change(HORIZON_BETA_U) < RATE_CHANGE_MAX  # the flag passes its own flow


def test_verdict_threshold_and_the_horizon_constant():
    v_star = npo_verdict_threshold()
    assert 3.0 <= v_star <= HORIZON_BETA_U, v_star
    frac = np.geomspace(1e-4, 1.0, 200)

    def verdict_at(v_end):
        s = v_end + np.expm1(v_end)
        return fit_divergence(frac, -np.asarray(npo_log_ratio(s * frac / 2, beta=1.0, K=1.0)))

    assert verdict_at(HORIZON_BETA_U).verdict == "logarithmic"
    assert verdict_at(v_star - 0.3).verdict != "logarithmic"
    assert abs(npo_decade_slope(HORIZON_BETA_U) - 1.0) < 0.05


def test_curve_statistics_on_known_curves():
    t = np.geomspace(1.0, 1e5, 300)
    assert log_rate_change(t, 2.0 + 0.5 * np.log(t)) == pytest.approx(1.0, rel=1e-9)
    assert log_rate_change(t, 3.0 + 2.0 * t) == pytest.approx(np.sqrt(10), rel=1e-3)
    assert np.isnan(log_rate_change(t, np.ones_like(t)))
    np.testing.assert_allclose(local_exponent(t, 5 * t**0.7)[1:-1], 0.7, rtol=1e-9)
    np.testing.assert_allclose(local_log_rate(t, 0.3 * np.log(t))[1:-1], 0.3, rtol=1e-9)
    assert np.isnan(local_exponent(t, -t)).all()
    with pytest.raises(ValueError, match="span at least a decade"):
        log_rate_change(t[:5], t[:5])


def test_eps_crossover_is_where_adams_normalized_share_is_one_half():
    g = np.abs(np.random.default_rng(3).standard_normal(50)) * 1e-2
    for eps in (1e-8, 1e-6, 1e-4):
        u_x = adam_eps_crossover(grad=g, beta=1.0, eps=eps)
        w = 2.0 / (1.0 + np.exp(-u_x))  # adiabatic averages: m^ = sqrt(v^) = W g
        m = g * w
        q = np.sum(m * m / (m + eps)) / np.sum(m)
        assert q == pytest.approx(0.5, abs=1e-9)
        assert adam_regime(q + 0.01, 0.05) == "crossover" and adam_regime(q - 0.01, 0.05) == "eps"


def test_adam_regimes_and_flags():
    assert adam_regime(0.99, 0.8) == "sign" and adam_regime(0.99, 0.05) == "capped"
    with pytest.raises(ValueError, match="q must lie in"):
        adam_regime(1.5, 0.1)
    capped = adam_horizon(0.99, 0.03, steps=1e4, eps_since=None, beta_abs_u=5.0)
    assert not capped.asymptotic and capped.short() == "not asymptotic (adam capped)"
    early = adam_horizon(0.2, 0.01, steps=1e5, eps_since=5e4, beta_abs_u=15.0)
    assert not early.asymptotic and "asymptotic from 1.8e+06" in early.label()
    late = adam_horizon(0.1, 0.01, steps=4e6, eps_since=5e4, beta_abs_u=20.0, rate_change=1.0)
    assert late.asymptotic and late.regime == "adam eps"


def test_gd_flags_and_verdicts():
    short = npo_gd_horizon(1.2)
    assert not short.asymptotic and short.short() == "not asymptotic (beta|u| = 1.20)"
    assert short.label().startswith("not asymptotic at this horizon (gd flow: beta|u| = 1.20")
    assert horizon_verdict("logarithmic", short) == short.label()
    rising = npo_gd_horizon(8.0, rate_change=1.7)
    assert not rising.asymptotic and "rises x1.70" in rising.label()
    assert npo_gd_horizon(8.0, rate_change=0.5).asymptotic  # approaching from above
    assert not npo_gd_horizon(8.0, rate_change=1.0, verdict="linear").asymptotic
    ok = npo_gd_horizon(5.0, rate_change=1.05, verdict="logarithmic")
    assert ok.asymptotic and horizon_verdict("logarithmic", ok) == "logarithmic"
    ga = linear_horizon("W = 1", "never vanishes")
    assert ga.asymptotic and ga.short() == "asymptotic"
    none = Horizon(True, "IDK+RT", "no forget-likelihood term", criterion=False)
    assert none.label().startswith("no horizon criterion") and none.short() == "no criterion"


def test_seed_fits_report_the_spread():
    t = np.geomspace(1.0, 1e4, 80)
    d = np.stack([b * np.log1p(t) for b in (0.5, 1.0, 2.0)] + [0.1 * t])
    d[1, -10:] = np.nan  # a run stopped early is fitted on its finite part
    fits = fit_divergence_seeds(t, d)
    assert fits.verdicts == ("logarithmic", "logarithmic", "logarithmic", "linear")
    singles = [fit_divergence(t[np.isfinite(r)], r[np.isfinite(r)]) for r in d]
    g = [f.growth_exponent for f in singles]
    assert fits.growth_exponent == pytest.approx((np.median(g), min(g), max(g)))
    assert fits.counts() == {"logarithmic": 3, "linear": 1}
    assert "3/4 logarithmic" in fits.summary() and "1/4 linear" in fits.summary()
    short = fit_divergence_seeds(t[:5], d[:, :5])
    assert all(v.startswith("undecided (need at least 8 points") for v in short.verdicts)
    with pytest.raises(ValueError, match=r"d must be \(S, P\)"):
        fit_divergence_seeds(t, d[0])


def test_adam_memory_horizon():
    from theory import Horizon, adam_memory_horizon, horizon_verdict

    short = adam_memory_horizon(300.0)
    assert not short.asymptotic and short.criterion
    assert "T = 300 steps vs 1/(1 - beta2) = 1000" in short.label()
    assert horizon_verdict("logarithmic", short).startswith("not asymptotic at this horizon")
    long = adam_memory_horizon(1000.0)
    assert isinstance(long, Horizon) and not long.criterion
    assert horizon_verdict("linear", long) == "linear"
    assert long.label().startswith("no horizon criterion")
    assert adam_memory_horizon(30.0, beta2=0.9).criterion is False  # memory 10 steps
    for bad in ({"steps": 0.0}, {"steps": 10.0, "beta2": 1.0}):
        with pytest.raises(ValueError):
            adam_memory_horizon(**bad)
