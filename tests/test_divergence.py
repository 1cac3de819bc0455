"""fit_divergence: the verdicts on curves whose growth is known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theory import fit_divergence

T = np.geomspace(1.0, 1e4, 60)


@given(st.floats(0.0, 50.0), st.floats(1e-3, 1e3), st.floats(0.0, 0.01), st.integers(0, 99))
def test_linear_growth_is_linear(a, b, noise, seed):
    rng = np.random.default_rng(seed)
    d = a + b * T
    d = d * (1 + noise * rng.standard_normal(T.size))
    fit = fit_divergence(T, d)
    assert fit.verdict == "linear", fit.summary()
    assert abs(fit.rate_exponent - 1.0) < 0.1


@given(st.floats(1e-2, 10.0), st.floats(1e-3, 50.0), st.floats(0.0, 5.0))
def test_log_growth_is_logarithmic(tau, b, a):
    fit = fit_divergence(T, a + b * np.log1p(T / tau))
    assert fit.verdict == "logarithmic", fit.summary()
    assert fit.rate_exponent < 0.4
    assert fit.log_fit.r2 > 0.999999
    assert fit.log_fit.tau == pytest.approx(tau, rel=1e-2)
    assert fit.log_fit.b == pytest.approx(b, rel=1e-2)


def test_log_in_its_linear_transient_is_not_called_logarithmic():
    fit = fit_divergence(T, np.log1p(T / 1e5))  # t << tau everywhere: looks linear
    assert fit.verdict == "linear"
    assert fit.log_fit.tau > T[-1]


@pytest.mark.parametrize("p", [0.55, 0.65])
def test_intermediate_power_laws_are_undecided(p):
    assert fit_divergence(T, T**p).verdict == "undecided"


def test_flat_curve_is_undecided():
    fit = fit_divergence(T, np.full(T.size, 3.0))
    assert fit.verdict == "undecided" and "does not grow" in fit.reason


@given(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3))
def test_scale_free(ct, cd):
    d = np.log1p(T / 3.0)
    ref = fit_divergence(T, d)
    fit = fit_divergence(ct * T, cd * d)
    assert fit.verdict == ref.verdict
    assert fit.rate_exponent == pytest.approx(ref.rate_exponent, abs=1e-9)
    assert fit.growth_exponent == pytest.approx(ref.growth_exponent, abs=1e-9)
    assert fit.log_fit.tau == pytest.approx(ct * ref.log_fit.tau, rel=1e-2)


def test_bad_input():
    with pytest.raises(ValueError, match="two decades"):
        fit_divergence(np.geomspace(1, 50, 20), np.arange(20.0))
    with pytest.raises(ValueError, match="strictly increasing"):
        fit_divergence(T[::-1], T)
    with pytest.raises(ValueError, match="finite"):
        fit_divergence(T, np.full(T.size, np.nan))
    with pytest.raises(ValueError, match="equal length"):
        fit_divergence(T, T[:-1])
    with pytest.raises(ValueError, match="late"):
        fit_divergence(T, T, late=5.0)
