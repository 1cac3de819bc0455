"""theory.logistic_flow: the single-sample GA and NPO flows against their ODEs, against
solve_ivp with the velocity taken by autograd through npo.losses / npo.logprobs, against the
Lambert-W form, and against each other (closed form vs quadrature)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from scipy.special import expit, lambertw, log_expit

from npo.logprobs import class_logprobs
from npo.losses import ga_loss, npo_loss
from theory import (
    logistic_ga_logit,
    logistic_ga_logit_asymptote,
    logistic_npo_logit,
    logistic_npo_logit_asymptote,
    logistic_npo_time,
)

Z0 = st.floats(-5.0, 5.0)
KS = st.floats(1e-3, 10.0)
BETAS = st.floats(1e-3, 20.0)


def kernel_velocity(z0: float, k: float, beta: float | None):
    """``z' = -k dL/dz`` with ``dL/dz`` by autograd through the project's kernels."""
    ref = class_logprobs(torch.tensor([z0], dtype=torch.float64), torch.ones(1))

    def f(_t, z):
        zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        logp = class_logprobs(zt, torch.ones(1))
        loss = ga_loss(logp) if beta is None else npo_loss(logp, ref, beta=beta)
        (g,) = torch.autograd.grad(loss.sum(), zt)
        return -k * g.numpy()

    return f


def integrate(z0, k, beta, ts):
    sol = solve_ivp(
        kernel_velocity(z0, k, beta),
        (0.0, float(ts[-1])),
        [z0],
        t_eval=ts,
        method="DOP853",
        rtol=1e-12,
        atol=1e-12,
    )
    assert sol.success
    return sol.y[0]


@given(Z0, KS, st.floats(0.0, 1e12))
def test_ga_satisfies_its_ode_and_lambert_form(z0, k, t):
    h = 1e-5 * max(t, 1.0 / k)
    t = max(t, 2 * h)
    z = logistic_ga_logit(t, z0=z0, k=k)
    dz = (logistic_ga_logit(t + h, z0=z0, k=k) - logistic_ga_logit(t - h, z0=z0, k=k)) / (2 * h)
    assert dz == pytest.approx(-k * expit(-z), rel=1e-5, abs=1e-9 * k)
    c = z0 + math.exp(z0) - k * t
    if c < 600:  # the formula as written: exp(c) must not overflow
        assert z == pytest.approx(c - lambertw(math.exp(c)).real, rel=1e-10, abs=1e-10)


@settings(max_examples=15)
@given(Z0, st.floats(1e-2, 10.0))
def test_ga_agrees_with_solve_ivp(z0, k):
    ts = np.geomspace(1e-3, 1e3, 7) / k
    np.testing.assert_allclose(
        logistic_ga_logit(ts, z0=z0, k=k), integrate(z0, k, None, ts), rtol=1e-6, atol=1e-8
    )


@settings(max_examples=20)
@given(Z0, KS, st.integers(1, 6))
def test_npo_closed_form_equals_quadrature_for_integer_beta(z0, k, n):
    t = np.concatenate([[0.0], np.geomspace(1e-3, 1e12, 9)])
    closed = logistic_npo_logit(t, z0=z0, k=k, beta=n, method="closed")
    quad = logistic_npo_logit(t, z0=z0, k=k, beta=float(n), method="quad")
    np.testing.assert_allclose(closed, quad, rtol=1e-9, atol=1e-10)
    assert closed[0] == z0 and np.all(np.diff(closed) < 0)


@settings(max_examples=15)
@given(Z0, st.floats(1e-2, 10.0), st.one_of(st.integers(1, 5).map(float), st.floats(0.05, 8.0)))
def test_npo_agrees_with_solve_ivp(z0, k, beta):
    ts = np.geomspace(1e-2, 1e4, 7) / k
    np.testing.assert_allclose(
        logistic_npo_logit(ts, z0=z0, k=k, beta=beta),
        integrate(z0, k, beta, ts),
        rtol=1e-6,
        atol=1e-8,
    )


@settings(max_examples=30)
@given(Z0, KS, BETAS, st.floats(0.0, 1e12))
def test_npo_satisfies_its_ode(z0, k, beta, t):
    h = 1e-4 * max(t, 1.0 / k)
    t = max(t, 2 * h)
    z = logistic_npo_logit(np.array([t - h, t, t + h]), z0=z0, k=k, beta=beta)
    w = 2 * expit(beta * (log_expit(z[1]) - log_expit(z0)))
    v = -k * w * expit(-z[1])
    assert (z[2] - z[0]) / (2 * h) == pytest.approx(v, rel=1e-5, abs=1e-12 * k)


@settings(max_examples=30)
@given(Z0, KS, BETAS, st.floats(1e-3, 1e9))
def test_time_is_the_inverse_of_the_logit(z0, k, beta, t):
    z = logistic_npo_logit(t, z0=z0, k=k, beta=beta)
    if z0 - z < 1e-9:  # nothing moved at float precision: the inverse is ill-conditioned
        return
    assert logistic_npo_time(z, z0=z0, k=k, beta=beta) == pytest.approx(t, rel=1e-7)


@pytest.mark.parametrize("beta", [0.25, 1.0, 3.0, 10.0])
@pytest.mark.parametrize("z0", [-2.0, 0.0, 3.0])
def test_asymptotes_and_decay_rates(beta, z0):
    k = 0.5
    t = np.geomspace(1e4, 1e12, 5)
    z = logistic_npo_logit(t, z0=z0, k=k, beta=beta)
    err = np.abs(z - logistic_npo_logit_asymptote(t, z0=z0, k=k, beta=beta))
    # the error is O(p) = O(t^{-1/beta}): -> 0, slowly for large beta
    assert np.all(np.diff(err) < 0) and err[-1] < err[0] / 5
    assert err[-1] / abs(z[-1]) < (0.01 if beta <= 3 else 0.05)
    # forget probability p = sigmoid(z) decays like t^(-1/beta)
    slope = np.diff(log_expit(z)) / np.diff(np.log(t))
    assert slope[-1] == pytest.approx(-1 / beta, rel=0.02)
    # GA: p ~ e^{-kt}, z + kt -> z0 + e^{z0}
    tg = (z0 + math.exp(z0) + np.array([5.0, 10.0, 20.0])) / k  # z near -5, -10, -20
    zg = logistic_ga_logit(tg, z0=z0, k=k)
    gap = np.abs(zg - logistic_ga_logit_asymptote(tg, z0=z0, k=k))
    np.testing.assert_allclose(gap, np.exp(zg), rtol=1e-3)  # z = c - W(e^c) ~ c - e^c


def test_npo_is_far_slower_than_ga():
    t = np.array([10.0, 100.0, 1000.0])
    ga = logistic_ga_logit(t, z0=0.0, k=1.0)
    npo = logistic_npo_logit(t, z0=0.0, k=1.0, beta=1.0)
    assert np.all(npo > ga) and ga[-1] < -990 and npo[-1] > -10


def test_bad_input():
    with pytest.raises(ValueError, match=r"^beta must"):
        logistic_npo_logit(1.0, z0=0.0, k=1.0, beta=0.0)
    with pytest.raises(ValueError, match=r"^k must"):
        logistic_npo_logit(1.0, z0=0.0, k=-1.0, beta=1.0)
    with pytest.raises(ValueError, match=r"^t must"):
        logistic_npo_logit(-1.0, z0=0.0, k=1.0, beta=1.0)
    with pytest.raises(ValueError, match=r"^z0 must"):
        logistic_ga_logit(1.0, z0=math.nan, k=1.0)
    with pytest.raises(ValueError, match=r"^t must"):
        logistic_ga_logit(math.inf, z0=0.0, k=1.0)
    with pytest.raises(ValueError, match="integer beta"):
        logistic_npo_logit(1.0, z0=0.0, k=1.0, beta=1.5, method="closed")
    with pytest.raises(ValueError, match="method"):
        logistic_npo_logit(1.0, z0=0.0, k=1.0, beta=1.0, method="euler")
    with pytest.raises(ValueError, match="z must be <= z0"):
        logistic_npo_time(1.0, z0=0.0, k=1.0, beta=1.0)
    with pytest.raises(ValueError, match="scalar"):
        logistic_npo_logit(1.0, z0=np.zeros(2), k=1.0, beta=1.0)
