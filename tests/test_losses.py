"""The loss kernels: golden values, hypothesis properties, limits and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from npo.losses import (
    LOSSES,
    dpo_loss,
    ga_loss,
    kl_loss,
    nll_loss,
    npo_loss,
    npo_weight,
    simnpo_loss,
)

finite = st.floats(-60.0, 60.0, allow_nan=False)
betas = st.floats(1e-3, 1e3, allow_nan=False)


def vec(elements=finite, n=None):
    n = st.integers(1, 16) if n is None else n
    return n.flatmap(lambda k: arrays(np.float64, k, elements=elements))


def t64(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


@pytest.mark.parametrize("beta", [0.01, 0.1, 1.0, 7.5])
def test_golden_values_at_reference(beta):
    x = torch.tensor([-3.0, 0.0, 12.5], dtype=torch.float64)
    assert torch.allclose(npo_loss(x, x, beta=beta), torch.full_like(x, 2 * math.log(2) / beta))
    assert torch.equal(npo_weight(x, x, beta=beta), torch.ones_like(x))


def test_golden_values_by_hand():
    # beta=1, R=log 3: L = 2 log(1 + 3) = 2 log 4, W = 2 * 3/4 = 1.5
    pol, ref = (
        torch.tensor([math.log(3.0)], dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
    )
    assert npo_loss(pol, ref, beta=1.0).item() == pytest.approx(2 * math.log(4.0), rel=1e-14)
    assert npo_weight(pol, ref, beta=1.0).item() == pytest.approx(1.5, rel=1e-14)
    assert ga_loss(pol).item() == pol.item() and nll_loss(pol).item() == -pol.item()
    assert kl_loss(pol).item() == pol.item()


@given(vec(), vec(), betas)
def test_npo_loss_nonnegative(p, r, beta):
    n = min(len(p), len(r))
    assert bool((npo_loss(t64(p[:n]), t64(r[:n]), beta=beta) >= 0).all())


@given(vec(), betas)
def test_npo_gradient_is_the_weight(r, beta):
    pol = t64(r).requires_grad_()
    ref = torch.zeros_like(pol)
    (g,) = torch.autograd.grad(npo_loss(pol, ref, beta=beta).sum(), pol)
    w = npo_weight(pol.detach(), ref, beta=beta)
    assert torch.allclose(g, w, rtol=1e-10, atol=1e-12)


@given(vec(st.floats(-1e4, 1e4)), betas)
def test_weight_in_range_and_monotone(r, beta):
    r = np.sort(r)
    w = npo_weight(t64(r), torch.zeros(len(r), dtype=torch.float64), beta=beta)
    assert bool(((w >= 0) & (w <= 2)).all())
    assert bool((w[1:] >= w[:-1]).all())
    big = npo_weight(t64([1e4]), t64([0.0]), beta=max(beta, 1.0))
    assert big.item() == 2.0  # rounds to exactly 2


@given(st.floats(-30, 30))
def test_beta_to_zero_recovers_ga(r):
    """W = 1 + beta R / 2 + O(beta^3) and L - 2ln2/beta = R + beta R^2 / 4 + O(beta^3)."""
    pol, ref = t64([r]), t64([0.0])
    errs_w, errs_l = [], []
    for beta in (1e-2, 1e-3, 1e-4):
        w = npo_weight(pol, ref, beta=beta).item()
        shifted = npo_loss(pol, ref, beta=beta).item() - 2 * math.log(2) / beta
        errs_w.append(abs(w - 1.0))
        errs_l.append(abs(shifted - r))
        assert abs(w - 1.0) <= beta * abs(r) / 2 + 1e-12
        assert abs(shifted - r) <= beta * r * r / 4 + 1e-9
    assert errs_w[-1] <= errs_w[0] and errs_l[-1] <= errs_l[0] + 1e-9


@given(st.floats(-30, 30))
def test_beta_to_infinity_is_twice_hinge(r):
    """L - 2 max(R, 0) = (2/beta) softplus(-beta |R|) lies in [0, 2 ln2 / beta]."""
    pol, ref = t64([r]), t64([0.0])
    for beta in (1.0, 10.0, 1e3):
        gap = npo_loss(pol, ref, beta=beta).item() - 2 * max(r, 0.0)
        assert -1e-12 <= gap <= 2 * math.log(2) / beta + 1e-12


@given(vec(st.floats(-1e4, 1e4), n=st.integers(1, 8)), st.floats(1e-3, 50.0))
def test_float32_extremes_are_finite(r, beta):
    pol = torch.as_tensor(r, dtype=torch.float32).requires_grad_()
    ref = torch.zeros_like(pol)
    loss = npo_loss(pol, ref, beta=beta)
    (g,) = torch.autograd.grad(loss.sum(), pol)
    assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(g).all())
    lengths = torch.full_like(pol, 3.0)
    assert bool(torch.isfinite(simnpo_loss(pol, lengths, beta=beta)).all())
    assert bool(torch.isfinite(dpo_loss(pol, ref, ref, pol, beta=beta)).all())


@given(vec(n=st.integers(2, 12)), st.randoms(use_true_random=False), betas)
def test_permutation_equivariance(r, rnd, beta):
    perm = list(range(len(r)))
    rnd.shuffle(perm)
    pol, ref = t64(r), t64(r[::-1].copy())
    idx = torch.tensor(perm)
    lengths = torch.arange(1, len(r) + 1, dtype=torch.float64)
    for kernel in (
        lambda p, q, n: npo_loss(p, q, beta=beta),
        lambda p, q, n: simnpo_loss(p, n, beta=beta, gamma=0.3),
        lambda p, q, n: dpo_loss(q, p, p, q, beta=beta),
    ):
        assert torch.equal(kernel(pol, ref, lengths)[idx], kernel(pol[idx], ref[idx], lengths[idx]))


@given(vec(), betas)
def test_dpo_without_chosen_side_is_npo(r, beta):
    """With the chosen log-ratio at zero, the paper's DPO (times 2) equals NPO."""
    pol, ref = t64(r), torch.zeros(len(r), dtype=torch.float64)
    zero = torch.zeros_like(pol)
    assert torch.allclose(dpo_loss(zero, zero, pol, ref, beta=beta), npo_loss(pol, ref, beta=beta))


@given(vec(st.floats(-200, 0)), st.floats(0.01, 10), st.floats(-2, 2))
def test_simnpo_gradient(r, beta, gamma):
    pol = t64(r).requires_grad_()
    lengths = torch.arange(1, len(r) + 1, dtype=torch.float64)
    (g,) = torch.autograd.grad(simnpo_loss(pol, lengths, beta=beta, gamma=gamma).sum(), pol)
    expected = (2 / lengths) * torch.sigmoid((beta / lengths) * pol.detach() + gamma)
    assert torch.allclose(g, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "x", None])
def test_bad_beta_is_rejected(bad):
    x = torch.zeros(2)
    for call in (
        lambda: npo_loss(x, x, beta=bad),
        lambda: npo_weight(x, x, beta=bad),
        lambda: simnpo_loss(x, x + 1, beta=bad),
        lambda: dpo_loss(x, x, x, x, beta=bad),
    ):
        with pytest.raises(ValueError, match="beta must be a finite positive number"):
            call()


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"shape mismatch: policy_logps=\(3,\), ref_logps=\(2,\)"):
        npo_loss(torch.zeros(3), torch.zeros(2), beta=1.0)
    with pytest.raises(ValueError, match="shape mismatch"):
        dpo_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(1), beta=1.0)


def test_simnpo_rejects_empty_sequences():
    with pytest.raises(ValueError, match="lengths > 0"):
        simnpo_loss(torch.zeros(2), torch.tensor([1.0, 0.0]), beta=1.0)


def test_registry_holds_the_function_objects():
    assert LOSSES["npo"].fn is npo_loss and LOSSES["ga"].fn is ga_loss
    assert LOSSES["dpo"].fn is dpo_loss and LOSSES["simnpo"].fn is simnpo_loss
    assert {k for k, v in LOSSES.items() if v.linear} == {"ga", "nll", "kl"}


@pytest.mark.parametrize("x", [19.0, 20.5, 41.0, 700.0, 1e4])
def test_npo_exact_beyond_softplus_threshold(x):
    """F.softplus returns x itself above 20; the kernel must keep log(1 + e^x) and sigmoid."""
    pol = torch.tensor([x], dtype=torch.float64, requires_grad=True)
    ref = torch.zeros(1, dtype=torch.float64)
    loss = npo_loss(pol, ref, beta=1.0)
    (g,) = torch.autograd.grad(loss.sum(), pol)
    assert loss.item() == pytest.approx(2 * (x + math.log1p(math.exp(-x))), rel=1e-15)
    assert g.item() == pytest.approx(2 / (1 + math.exp(-x)), rel=1e-15)
    assert g.item() < 2.0 or x > 37  # not rounded to exactly 2 while 2 sigmoid(x) < 2
