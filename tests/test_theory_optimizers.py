"""theory.optimizers: sign descent and Adam in the constant-kernel picture, against
torch.optim on a linear log-likelihood through the npo.losses kernels, and the derived rates
against long simulations of the exact scalar recursion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from npo.losses import ga_loss, npo_loss
from theory import (
    adam_eps_crossover,
    adam_ga_rate,
    adam_log_ratio,
    adam_npo_linear_rate,
    adam_ratio_lag,
    fit_divergence,
    npo_log_ratio,
    signgd_log_ratio,
)

G = np.abs(np.random.default_rng(1).standard_normal(16)) * 1e-2 + 1e-3  # grad_theta u, no zeros


def torch_run(grad, steps, beta, make_opt):
    """Train theta on the kernel with log pi = <g, theta> (u(0) = 0); return u_n, n = 0..steps."""
    g = torch.as_tensor(grad, dtype=torch.float64)
    theta = torch.zeros_like(g, requires_grad=True)
    opt = make_opt([theta])
    ref = torch.zeros(1, dtype=torch.float64)
    us = [0.0]
    for _ in range(steps):
        opt.zero_grad()
        logp = (g * theta).sum().reshape(1)
        loss = ga_loss(logp) if beta is None else npo_loss(logp, ref, beta=beta)
        loss.sum().backward()
        opt.step()
        us.append(float((g * theta.detach()).sum()))
    return np.array(us)


class SignSGD(torch.optim.Optimizer):
    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                p -= group["lr"] * torch.sign(p.grad)


@pytest.mark.parametrize("beta", [None, 0.1, 1.0, 10.0])
def test_sign_descent_is_linear_whatever_the_weight(beta):
    lr = 0.05
    u = torch_run(G, 200, beta, lambda p: SignSGD(p, lr))
    n = np.arange(201)
    np.testing.assert_allclose(u, signgd_log_ratio(n, lr=lr, l1=G.sum()), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("beta", [None, 0.3, 5.0])
def test_adam_without_memory_or_eps_is_sign_descent(beta):
    tr = adam_log_ratio(300, grad=G, lr=0.02, beta=beta, beta1=0.0, beta2=0.0, eps=0.0)
    np.testing.assert_allclose(
        tr.log_ratio, signgd_log_ratio(tr.steps, lr=0.02, l1=G.sum()), rtol=1e-13
    )
    np.testing.assert_allclose(tr.step_ratio, 1.0, rtol=1e-13)


@pytest.mark.parametrize("eps", [0.0, 1e-8, 1e-3])
@pytest.mark.parametrize("beta", [None, 0.5, 3.0])
def test_scalar_recursion_is_exactly_torch_adam(beta, eps):
    lr = 0.05
    ours = adam_log_ratio(300, grad=G, lr=lr, beta=beta, eps=eps).log_ratio
    ref = torch_run(G, 300, beta, lambda p: torch.optim.Adam(p, lr=lr, eps=eps))
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-13)


def test_ga_under_adam_has_the_exact_rate():
    for eps in (0.0, 1e-8, 1e-2):
        tr = adam_log_ratio(500, grad=G, lr=0.01, eps=eps)
        rate = adam_ga_rate(grad=G, lr=0.01, eps=eps)
        np.testing.assert_allclose(tr.log_ratio, -rate * tr.steps, rtol=1e-12)
    assert adam_ga_rate(grad=G, lr=0.01, eps=0.0) == pytest.approx(0.01 * G.sum(), rel=1e-15)


@settings(max_examples=20)
@given(st.floats(0.0, 0.9), st.floats(0.95, 0.999), st.floats(1e-5, 0.01))
def test_ratio_lag_matches_averages_of_a_geometric_sequence(beta1, beta2, frac):
    delta = frac * (-math.log(beta2) / 2)  # inside the steady-state range
    m = v = 0.0
    for _ in range(20000):  # the averages of W_k/W_n for W_k = e^{-delta k}, rescaled each step
        m = beta1 * m * math.exp(delta) + (1 - beta1)
        v = beta2 * v * math.exp(2 * delta) + (1 - beta2)
    expected = m / math.sqrt(v)
    assert adam_ratio_lag(delta, beta1=beta1, beta2=beta2) == pytest.approx(expected, rel=1e-6)
    assert adam_ratio_lag(0.0, beta1=beta1, beta2=beta2) == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize(("lr", "beta"), [(0.05, 1.0), (0.05, 4.0), (0.002, 1.0)])
def test_npo_under_adam_without_eps_diverges_linearly_at_the_predicted_rate(lr, beta):
    N = 20000
    tr = adam_log_ratio(N, grad=G, lr=lr, beta=beta, eps=0.0, beta2=0.99)
    c = adam_npo_linear_rate(lr=lr, l1=G.sum(), beta=beta, beta2=0.99)
    sim = -(tr.log_ratio[-1] - tr.log_ratio[N // 2]) / (N / 2)
    # c assumes the tail W ~ 2 e^{beta u}; at u ~ -4 (the slowest case) that is 0.1% off
    assert sim == pytest.approx(c, rel=2e-3)
    assert c <= lr * G.sum() and c < (1 - 0.99) / (2 * beta) * 1.001
    n = np.unique(np.geomspace(10, N, 60).astype(int)).astype(float)
    fit = fit_divergence(n, -tr.log_ratio[n.astype(int)])
    assert fit.verdict == "linear", fit.summary()


def test_linear_rate_limits():
    l1 = G.sum()
    small = adam_npo_linear_rate(lr=1e-7, l1=l1, beta=1.0)  # beta lr l1 << 1 - beta2: sign descent
    assert small == pytest.approx(1e-7 * l1, rel=1e-3)
    big = adam_npo_linear_rate(lr=10.0, l1=l1, beta=2.0)  # capped by beta2's memory
    assert big == pytest.approx((1 - 0.999) / (2 * 2.0), rel=1e-3)
    assert adam_npo_linear_rate(lr=0.1, l1=l1, beta=1.0, beta2=0.0) == pytest.approx(0.1 * l1)


def test_eps_brings_back_the_logarithmic_npo_flow():
    lr, beta, eps, N = 0.05, 2.0, 1e-4, 100_000
    tr = adam_log_ratio(N, grad=G, lr=lr, beta=beta, eps=eps, beta2=0.99)
    flat = adam_log_ratio(N, grad=G, lr=lr, beta=beta, eps=0.0, beta2=0.99)
    u = tr.log_ratio
    # late: gradient descent with step lr/eps, i.e. the NPO flow with K_eff = lr K / eps
    K_eff = lr * float(np.sum(G * G)) / eps
    flow = npo_log_ratio(np.array([N / 10, N]), beta=beta, K=K_eff)
    gaps = np.abs(u[[N // 10, N]] - flow) / np.abs(flow)
    assert gaps[1] < gaps[0] and gaps[1] < 0.01
    slope = -(u[N] - u[N // 10]) / math.log(10)
    assert slope == pytest.approx(1 / beta, rel=0.1)
    n = np.unique(np.geomspace(10, N, 60).astype(int))
    assert fit_divergence(n.astype(float), -u[n]).verdict == "logarithmic"
    assert fit_divergence(n.astype(float), -flat.log_ratio[n]).verdict == "linear"
    assert u[N] > 0.05 * flat.log_ratio[N]  # eps slowed the divergence twentyfold and more

    # eps takes over only below the predicted crossover, and soon after it
    ux = adam_eps_crossover(grad=G, beta=beta, eps=eps)

    def ratio_at(level):
        a, b = np.argmax(u < level), np.argmax(flat.log_ratio < level)
        return tr.step_ratio[a] / flat.step_ratio[b]

    assert ratio_at(ux) > 0.5 and ratio_at(ux - 2 / beta) < 0.3


def test_crossover_closed_form_for_equal_gradients():
    a, eps, beta = 0.01, 1e-4, 1.5
    ux = adam_eps_crossover(grad=np.full(5, a), beta=beta, eps=eps)
    assert ux == pytest.approx(math.log(eps / (2 * a - eps)) / beta, rel=1e-10)


def test_bad_input():
    with pytest.raises(ValueError, match=r"^lr must"):
        signgd_log_ratio(1.0, lr=0.0, l1=1.0)
    with pytest.raises(ValueError, match=r"^t must"):
        signgd_log_ratio(-1.0, lr=0.1, l1=1.0)
    with pytest.raises(ValueError, match=r"^beta must"):
        adam_log_ratio(10, grad=G, lr=0.1, beta=0.0)
    with pytest.raises(ValueError, match=r"^beta2 must"):
        adam_log_ratio(10, grad=G, lr=0.1, beta2=1.0)
    with pytest.raises(ValueError, match=r"^eps must"):
        adam_log_ratio(10, grad=G, lr=0.1, eps=-1e-8)
    with pytest.raises(ValueError, match="nonzero"):
        adam_log_ratio(10, grad=np.zeros(3), lr=0.1)
    with pytest.raises(ValueError, match=r"^grad must"):
        adam_log_ratio(10, grad=[1.0, math.nan], lr=0.1)
    with pytest.raises(ValueError, match="beta1\\^2 < beta2"):
        adam_ratio_lag(0.0, beta1=0.9, beta2=0.5)
    with pytest.raises(ValueError, match="eps dominates"):
        adam_eps_crossover(grad=[1e-6], beta=1.0, eps=1e-3)
