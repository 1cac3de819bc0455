"""theory.discrete: gradient-descent recursions against the flows, and the proven gap bounds
checked numerically (hypothesis over step sizes, including steps far beyond stability)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from npo.losses import npo_loss
from theory import (
    ga_log_ratio,
    ga_log_ratio_gd,
    logistic_ga_gd,
    logistic_ga_gd_gap_bound,
    logistic_ga_logit,
    logistic_npo_gd,
    logistic_npo_gd_gap_bound,
    logistic_npo_logit,
    npo_gd_gap_bound,
    npo_log_ratio,
    npo_log_ratio_gd,
)

BETAS = st.floats(1e-3, 20.0)
KS = st.floats(1e-3, 10.0)
LRS = st.floats(1e-4, 10.0)


def test_npo_recursion_is_gradient_descent_on_the_kernel():
    """u_{n+1} = u_n - lr K dL/du, with dL/du by autograd through npo.losses.npo_loss."""
    beta, K, lr = 0.7, 2.0, 0.3
    u = torch.zeros(1, dtype=torch.float64)
    ref = torch.zeros(1, dtype=torch.float64)
    ours = npo_log_ratio_gd(50, beta=beta, K=K, lr=lr)
    for n in range(50):
        assert u.item() == pytest.approx(ours[n], rel=1e-13, abs=1e-15)
        x = u.clone().requires_grad_()
        (g,) = torch.autograd.grad(npo_loss(x, ref, beta=beta).sum(), x)
        u = u - lr * K * g


@given(KS, LRS)
def test_ga_discrete_is_the_flow(K, lr):
    n = np.arange(101)
    np.testing.assert_allclose(
        ga_log_ratio_gd(100, K=K, lr=lr), ga_log_ratio(lr * n, K=K), rtol=1e-14
    )


@settings(max_examples=40)
@given(BETAS, KS, LRS)
def test_npo_gap_bound(beta, K, lr):
    N = 400
    u = npo_log_ratio_gd(N, beta=beta, K=K, lr=lr)
    n = np.arange(N + 1)
    flow = npo_log_ratio(lr * n, beta=beta, K=K)
    gap = flow - u
    slack = 1e-12 * np.maximum(1.0, np.abs(flow))
    assert np.all(gap >= -slack)  # the iterates run ahead of the flow
    assert np.all(gap <= npo_gd_gap_bound(n, beta=beta, K=K, lr=lr) + slack)
    assert np.all(gap <= lr * K + slack)


def test_npo_gap_bound_is_nearly_tight():
    """The bound is not vacuous: with beta lr K large the first step lands at -lr K while the
    flow only reaches about -(1/beta) log(2 beta K lr): the gap is > 90% of the bound."""
    beta, K, lr = 20.0, 1.0, 10.0
    u = npo_log_ratio_gd(2000, beta=beta, K=K, lr=lr)
    n = np.arange(2001)
    gap = npo_log_ratio(lr * n, beta=beta, K=K) - u
    bound = npo_gd_gap_bound(n, beta=beta, K=K, lr=lr)
    assert np.max(gap[1:] / bound[1:]) > 0.9


def test_broadcast_recursions():
    u = npo_log_ratio_gd(10, beta=np.array([0.5, 1.0, 2.0]), K=1.0, lr=0.1)
    assert u.shape == (11, 3)
    np.testing.assert_array_equal(u[:, 1], npo_log_ratio_gd(10, beta=1.0, K=1.0, lr=0.1))


@settings(max_examples=40)
@given(st.floats(-5.0, 5.0), KS)
def test_logistic_ga_gap_bound(z0, k):
    N = 300
    z = logistic_ga_gd(N, z0=z0, k=k)
    flow = logistic_ga_logit(np.arange(N + 1.0), z0=z0, k=k)
    gap = z - flow
    slack = 1e-9 * np.maximum(1.0, np.abs(flow))
    assert np.all(gap >= -slack)  # GA iterates lag behind the flow
    assert np.all(gap <= logistic_ga_gd_gap_bound(z, z0=z0, k=k) + slack)
    assert np.all(gap <= k * math.exp(z0) + slack)


@settings(max_examples=25)
@given(st.floats(1e-1, 20.0), st.floats(0.01, 1.0), st.floats(1e-3, 1.0))
def test_logistic_npo_gap_bound(beta, frac_p0, frac_k):
    p0 = frac_p0 * beta / (beta + 2)  # the bound's condition p0 <= beta/(beta+2)
    z0 = math.log(p0 / (1 - p0))
    k = frac_k / (2 * max(beta, 1.0))  # and 2 k max(beta, 1) <= 1
    N = 150
    z = logistic_npo_gd(N, z0=z0, k=k, beta=beta)
    flow = logistic_npo_logit(np.arange(N + 1.0), z0=z0, k=k, beta=beta)
    gap = flow - z
    bound = logistic_npo_gd_gap_bound(z0=z0, k=k, beta=beta)
    assert np.all(gap >= -1e-9) and np.all(gap <= bound + 1e-9)


def test_logistic_npo_recursion_is_gradient_descent_on_the_kernel():
    """z_{n+1} = z_n - k dL/dz with L = npo_loss(log sigmoid(z), log sigmoid(z0)), by autograd."""
    z = logistic_npo_gd(3, z0=0.5, k=0.2, beta=2.0)
    zt = torch.tensor([z[1]], dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.logsigmoid(torch.tensor([0.5], dtype=torch.float64))
    loss = npo_loss(torch.nn.functional.logsigmoid(zt), ref, beta=2.0)
    (g,) = torch.autograd.grad(loss.sum(), zt)
    assert z[2] == pytest.approx(z[1] - 0.2 * g.item(), rel=1e-14)


def test_logistic_npo_bound_refuses_outside_its_conditions():
    with pytest.raises(ValueError, match="beta/\\(beta\\+2\\)"):
        logistic_npo_gd_gap_bound(z0=2.0, k=0.1, beta=1.0)
    with pytest.raises(ValueError, match="2 k max"):
        logistic_npo_gd_gap_bound(z0=-2.0, k=0.6, beta=1.0)


def test_bad_input():
    with pytest.raises(ValueError, match=r"^n_steps must"):
        npo_log_ratio_gd(-1, beta=1.0, K=1.0, lr=0.1)
    with pytest.raises(ValueError, match=r"^n_steps must"):
        npo_log_ratio_gd(2.5, beta=1.0, K=1.0, lr=0.1)
    with pytest.raises(ValueError, match=r"^lr must"):
        npo_log_ratio_gd(10, beta=1.0, K=1.0, lr=0.0)
    with pytest.raises(ValueError, match=r"^beta must"):
        logistic_npo_gd(10, z0=0.0, k=1.0, beta=-1.0)
    with pytest.raises(ValueError, match=r"^K must"):
        ga_log_ratio_gd(10, K=math.nan, lr=0.1)
    with pytest.raises(ValueError, match=r"^n must"):
        npo_gd_gap_bound(-1, beta=1.0, K=1.0, lr=0.1)
