"""theory.symbolic: every identity by ``simplify(a - b) == 0``, and the lambdified expressions
against torch.autograd through the kernels of npo.losses (high-precision mpmath evaluation on
the sympy side, so no float cancellation in ``log(1 + e^x)`` hides a disagreement)."""

from __future__ import annotations

import math

import mpmath
import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from npo.losses import dpo_loss, npo_loss, npo_weight, simnpo_loss
from theory import symbolic as S

R_VALS = st.floats(-30.0, 30.0, allow_nan=False)
BETAS = st.floats(1e-3, 20.0, allow_nan=False)


def zero(expr: sp.Expr) -> bool:
    return sp.simplify(expr) == 0


def mp_fn(args, expr):
    """Evaluate ``expr`` with 400 significant digits: ``log(1 + e^x)`` at ``x = -600`` keeps
    its ~1e-261 correction exactly (the float64 inputs are converted exactly)."""
    f = sp.lambdify(args, expr, modules="mpmath")

    def call(*xs):
        with mpmath.workdps(400):
            return float(f(*[mpmath.mpf(x) for x in xs]))

    return call


def t64(x: float) -> torch.Tensor:
    return torch.tensor([x], dtype=torch.float64, requires_grad=True)


# --- identities ---------------------------------------------------------------------------


def test_derivative_is_the_weight():
    assert zero(S.npo_loss_dR() - S.npo_weight())
    # and the weight is not something else that happens to simplify (the check can fail)
    assert not zero(S.npo_loss_dR() - S.sigmoid(S.beta * S.R))


def test_second_derivative_is_positive_logistic_variance():
    sig = S.sigmoid(S.beta * S.R)
    assert zero(S.npo_loss_d2R() - 2 * S.beta * sig * (1 - sig))
    assert zero(S.npo_loss_d2R() - sp.diff(S.npo_weight(), S.R))


def test_loss_value_at_reference_and_lower_bound():
    assert zero(S.npo_loss().subs(S.R, 0) - 2 * sp.log(2) / S.beta)
    assert S.npo_loss().is_positive is True
    r = sp.Symbol("r", positive=True)
    assert sp.limit(S.npo_loss(-r), r, sp.oo) == 0  # the bound 0 is the infimum


def test_proposition_1_beta_to_zero():
    assert zero(sp.limit(S.npo_loss() - 2 * sp.log(2) / S.beta, S.beta, 0) - S.R)
    assert sp.limit(S.npo_weight(), S.beta, 0) == 1


def test_beta_to_infinity_is_twice_the_hinge():
    lim = S.npo_loss_beta_inf_limit()
    r = sp.Symbol("r", positive=True)
    assert zero(lim.subs(S.R, r) - 2 * r)
    assert lim.subs(S.R, -r) == 0
    assert zero(sp.Piecewise((2 * S.R, S.R > 0), (0, True)) - lim)


def test_npo_is_twice_dpo_without_the_chosen_term():
    assert zero(2 * S.dpo_eq2_loss(0, S.R) - S.npo_loss())
    assert not zero(S.dpo_eq2_loss(0, S.R) - S.npo_loss())


def test_simnpo_weight_is_its_derivative():
    lp, n = sp.Symbol("lp", real=True), sp.Symbol("n", positive=True)
    assert zero(sp.diff(S.simnpo_loss(lp, n), lp) - S.simnpo_weight(lp, n))


def test_flow_solution_solves_the_ode_and_the_implicit_equation():
    w, u, t = S.npo_flow_parametric()
    assert zero(sp.diff(u, w) / sp.diff(t, w) + 2 * S.K * S.sigmoid(S.beta * u))
    assert zero(S.npo_flow_implicit(u).subs(S.t, t))
    assert zero(u.subs(w, 1))  # u(0) = 0: w = 1 at t = 0
    assert zero(t.subs(w, 1))
    # the Lambert-W form equals the parametric one: w = W0(e^x) satisfies w + log w = x
    x = 1 + 2 * S.beta * S.K * S.t
    for val in (0.0, 0.3, 7.0, 200.0):
        num = {S.beta: sp.Rational(7, 10), S.K: sp.Rational(13, 10), S.t: sp.nsimplify(val)}
        wv = sp.LambertW(sp.exp(x)).subs(num).evalf(40)
        assert abs(wv + sp.log(wv) - x.subs(num)) < 1e-30
        closed = S.npo_flow_solution().subs(num).evalf(40)
        assert abs(closed - u.subs({w: wv, S.beta: num[S.beta]})) < 1e-30


def test_time_to_divergence_formula():
    D = sp.Symbol("D", positive=True)
    expected = (D + (sp.exp(S.beta * D) - 1) / S.beta) / (2 * S.K)
    assert zero(S.npo_time_to_divergence_expr(D) - expected)


def test_ga_logistic_implicit_is_conserved_along_the_flow():
    z, z0, k = sp.Symbol("z", real=True), sp.Symbol("z0", real=True), sp.Symbol("k", positive=True)
    dLdz = sp.diff(sp.log(S.sigmoid(z)), z)  # GA loss log p, label 1
    inv = S.ga_logistic_implicit(z, z0, k)
    assert zero(sp.diff(inv, z) * (-k * dLdz) + sp.diff(inv, S.t))
    assert zero(inv.subs({z: z0, S.t: 0}))


def test_logistic_npo_dt_dp_and_split():
    assert zero(S.logistic_npo_dt_dp() + S.logistic_npo_integrand_split())


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_logistic_npo_antiderivative(n):
    A = S.logistic_npo_antiderivative(n)
    assert zero(sp.diff(A, S.p) - S.logistic_npo_integrand_split(n))
    assert not A.has(sp.I)


def test_antiderivative_bad_n():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n must be"):
            S.logistic_npo_antiderivative(bad)


# --- lambdified expressions against autograd through npo.losses -----------------------------


@given(R_VALS, BETAS)
def test_npo_loss_and_derivatives_match_autograd(r, beta):
    L = mp_fn((S.R, S.beta), S.npo_loss())
    dL = mp_fn((S.R, S.beta), S.npo_loss_dR())
    d2L = mp_fn((S.R, S.beta), S.npo_loss_d2R())
    pol = t64(r)
    loss = npo_loss(pol, torch.zeros(1, dtype=torch.float64), beta=beta)
    (g,) = torch.autograd.grad(loss.sum(), pol, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), pol)
    # exact everywhere, also for beta R > 20 where F.softplus's threshold would cut corners
    assert loss.item() == pytest.approx(L(r, beta), rel=1e-12, abs=1e-300)
    assert g.item() == pytest.approx(dL(r, beta), rel=1e-12, abs=1e-300)
    assert h.item() == pytest.approx(d2L(r, beta), rel=1e-9, abs=1e-290)
    w = npo_weight(pol.detach(), torch.zeros(1, dtype=torch.float64), beta=beta)
    assert w.item() == pytest.approx(mp_fn((S.R, S.beta), S.npo_weight())(r, beta), rel=1e-12)


@given(R_VALS, R_VALS, BETAS)
def test_dpo_eq2_matches_the_kernel(rw, rl, beta):
    eq2 = mp_fn((S.R, sp.Symbol("rl"), S.beta), S.dpo_eq2_loss(S.R, sp.Symbol("rl")))
    zero_t = torch.zeros(1, dtype=torch.float64)
    kern = dpo_loss(t64(rw).detach(), zero_t, t64(rl).detach(), zero_t, beta=beta)
    assert kern.item() == pytest.approx(2 * eq2(rw, rl, beta), rel=1e-11, abs=1e-300)
    # chosen side at its reference: the kernel is npo_loss on the rejected side
    dpo0 = dpo_loss(zero_t, zero_t, t64(rl).detach(), zero_t, beta=beta)
    npo = npo_loss(t64(rl).detach(), zero_t, beta=beta).item()
    assert dpo0.item() == pytest.approx(npo, rel=1e-12, abs=1e-300)


@given(st.floats(-200.0, 0.0), st.integers(1, 64), BETAS, st.floats(-3.0, 3.0))
def test_simnpo_weight_matches_autograd(logp, length, beta, gamma):
    pol = t64(logp)
    loss = simnpo_loss(pol, torch.tensor([length]), beta=beta, gamma=gamma)
    (g,) = torch.autograd.grad(loss.sum(), pol)
    lp, n = sp.Symbol("lp"), sp.Symbol("n")
    w = mp_fn((lp, n, S.beta, S.gamma), S.simnpo_weight(lp, n))
    assert g.item() == pytest.approx(w(logp, length, beta, gamma), rel=1e-11, abs=1e-300)


def test_proposition_1_numerically_with_the_kernel():
    r = torch.linspace(-5, 5, 11, dtype=torch.float64)
    zero_t = torch.zeros_like(r)
    gaps = [
        (npo_loss(r, zero_t, beta=b) - 2 * math.log(2) / b - r).abs().max().item()
        for b in (1e-2, 1e-4)
    ]
    # the sympy series: L - 2 ln2/beta = R + beta R^2/4 + O(beta^3)
    series = sp.series(S.npo_loss() - 2 * sp.log(2) / S.beta, S.beta, 0, 2).removeO()
    assert zero(series - S.R - S.beta * S.R**2 / 4)
    assert gaps[0] == pytest.approx(1e-2 * 25 / 4, rel=1e-2)
    assert gaps[1] == pytest.approx(1e-4 * 25 / 4, rel=1e-2)
