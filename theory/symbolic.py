"""NPO in sympy: the loss, its limits, DPO and SimNPO, and the exact solutions of the flows.

The flows are those of :mod:`theory.flows` and :mod:`theory.logistic_flow`.
Notation (Zhang et al. 2024, arXiv 2404.05868): ``R = log(pi_theta/pi_ref)`` the log-ratio of a
forget example (real), ``beta > 0``, ``t >= 0`` flow time, ``K > 0`` the constant squared
gradient norm ``||grad log pi||^2``. Every loss is minimized.

Each function returns a sympy expression in the module's symbols (``R``, ``beta``, ...); the
tests assert ``simplify(a - b) == 0`` for every identity stated here and compare
``lambdify``-ed expressions with ``torch.autograd`` through the kernels of :mod:`npo.losses`.
The identities are collected, as math, on the page :doc:`/theory/loss`; the flows on
:doc:`/theory/flows` and :doc:`/theory/logistic_flow`.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

__all__ = [
    "K",
    "R",
    "beta",
    "dpo_eq2_loss",
    "ga_logistic_implicit",
    "gamma",
    "logistic_npo_antiderivative",
    "logistic_npo_dt_dp",
    "logistic_npo_integrand_split",
    "npo_flow_implicit",
    "npo_flow_parametric",
    "npo_flow_solution",
    "npo_loss",
    "npo_loss_beta_inf_limit",
    "npo_loss_d2R",
    "npo_loss_dR",
    "npo_time_to_divergence_expr",
    "npo_weight",
    "p",
    "p0",
    "sigmoid",
    "simnpo_loss",
    "simnpo_weight",
    "t",
]

R = sp.Symbol("R", real=True)
beta = sp.Symbol("beta", positive=True)
t = sp.Symbol("t", nonnegative=True)
K = sp.Symbol("K", positive=True)
gamma = sp.Symbol("gamma", real=True)
#: forget probability ``p = sigmoid(z)`` and its initial value (single-sample logistic flow)
p = sp.Symbol("p", positive=True)
p0 = sp.Symbol("p0", positive=True)


def sigmoid(x: sp.Expr) -> sp.Expr:
    """The logistic function.

    Args:
        x: a sympy expression.

    Returns:
        ``1 / (1 + e^{-x})``.
    """
    return 1 / (1 + sp.exp(-x))


def npo_loss(r: sp.Expr = R, b: sp.Expr = beta) -> sp.Expr:
    """NPO's loss per example (paper Eq. 3).

    ``L > 0`` (``L -> 0`` only as ``R -> -inf``) and ``L(0) = 2 ln2 / beta``.

    Args:
        r: the log-ratio ``R``.
        b: ``beta``.

    Returns:
        ``L(R; beta) = (2/beta) log(1 + e^{beta R})``.
    """
    return 2 / b * sp.log(1 + sp.exp(b * r))


def npo_weight(r: sp.Expr = R, b: sp.Expr = beta) -> sp.Expr:
    """NPO's gradient weight: ``grad L = W grad log pi`` (the appendix's sign, not Sec. 3's).

    Args:
        r: the log-ratio ``R``.
        b: ``beta``.

    Returns:
        ``W = 2 sigmoid(beta R)``.
    """
    return 2 * sigmoid(b * r)


def npo_loss_dR() -> sp.Expr:
    """The derivative of :func:`npo_loss` in ``R``, derived by sympy.

    Returns:
        ``dL/dR``; it equals :func:`npo_weight` (``simplify`` of the difference gives 0).
    """
    return sp.diff(npo_loss(), R)


def npo_loss_d2R() -> sp.Expr:
    """The second derivative of :func:`npo_loss` in ``R``: ``L`` is convex in ``R``.

    Returns:
        ``d^2L/dR^2``, equal to ``2 beta sigmoid(beta R)(1 - sigmoid(beta R)) > 0``.
    """
    return sp.diff(npo_loss(), R, 2)


def npo_loss_beta_inf_limit() -> sp.Expr:
    """The limit of :func:`npo_loss` as ``beta -> inf``.

    Assembled from sympy's limits for ``R > 0`` and ``R < 0`` (at ``R = 0``,
    ``L = 2 ln2/beta -> 0``).

    Returns:
        ``2 max(R, 0)``, as a ``Piecewise``.
    """
    r = sp.Symbol("r", positive=True)
    pos = sp.limit(npo_loss(r), beta, sp.oo).subs(r, R)
    neg = sp.limit(npo_loss(-r), beta, sp.oo).subs(r, -R)
    return sp.Piecewise((pos, R > 0), (neg, True))


def dpo_eq2_loss(r_chosen: sp.Expr, r_rejected: sp.Expr, b: sp.Expr = beta) -> sp.Expr:
    """DPO as in the paper's Eq. 2, with prefactor ``1/beta``.

    Removing the chosen term (``R_w = 0``) and doubling gives NPO:
    ``2 * dpo_eq2_loss(0, R) == npo_loss(R)``. :func:`npo.losses.dpo_loss` carries the
    ``2/beta`` of the paper's code, i.e. it is ``2 * dpo_eq2_loss``.

    Args:
        r_chosen: the chosen response's log-ratio ``R_w``.
        r_rejected: the rejected response's log-ratio ``R_l``.
        b: ``beta``.

    Returns:
        ``-(1/beta) log sigmoid(beta (R_w - R_l))``.
    """
    return -1 / b * sp.log(sigmoid(b * (r_chosen - r_rejected)))


def simnpo_loss(logp: sp.Expr, length: sp.Expr, b: sp.Expr = beta, g: sp.Expr = gamma) -> sp.Expr:
    """SimNPO's loss (arXiv 2410.07163): reference-free and length-normalized.

    Args:
        logp: ``log pi(y|x)``.
        length: ``|y|``.
        b: ``beta``.
        g: the margin ``gamma``.

    Returns:
        ``-(2/beta) log sigmoid(-(beta/|y|) log pi - gamma)``.
    """
    return -2 / b * sp.log(sigmoid(-(b / length) * logp - g))


def simnpo_weight(logp: sp.Expr, length: sp.Expr, b: sp.Expr = beta, g: sp.Expr = gamma) -> sp.Expr:
    """SimNPO's gradient weight, the derivative of :func:`simnpo_loss` in ``log pi``.

    Args:
        logp: ``log pi(y|x)``.
        length: ``|y|``.
        b: ``beta``.
        g: the margin ``gamma``.

    Returns:
        ``(2/|y|) sigmoid((beta/|y|) log pi + gamma)``.
    """
    return 2 / length * sigmoid(b / length * logp + g)


# --- constant-tangent-kernel flow (theory.flows) -------------------------------------------


def npo_flow_solution() -> sp.Expr:
    """The solution of NPO's flow ``u' = -2K sigmoid(beta u)``, ``u(0) = 0``.

    Returns:
        ``u(t) = (W0(exp(1 + 2 beta K t)) - 1 - 2 beta K t) / beta`` (``W0`` the principal
        Lambert W).
    """
    x = 1 + 2 * beta * K * t
    return (sp.LambertW(sp.exp(x)) - x) / beta


def npo_flow_implicit(u: sp.Expr) -> sp.Expr:
    """The implicit form of NPO's flow: a quantity that vanishes on it.

    Args:
        u: the log-ratio.

    Returns:
        ``u - e^{-beta u}/beta + 1/beta + 2 K t``.
    """
    return u - sp.exp(-beta * u) / beta + 1 / beta + 2 * K * t


def npo_flow_parametric() -> tuple[sp.Symbol, sp.Expr, sp.Expr]:
    """NPO's flow parametrized by ``w = W0(exp(1 + 2 beta K t)) >= 1`` (so ``w + log w = x``).

    In this form ``du/dt = (du/dw)/(dt/dw)`` simplifies to ``-2K sigmoid(beta u)`` exactly.

    Returns:
        ``(w, u(w), t(w))`` with ``u = -log(w)/beta`` and ``t = (w + log w - 1)/(2 beta K)``.
    """
    w = sp.Symbol("w", positive=True)
    return w, -sp.log(w) / beta, (w + sp.log(w) - 1) / (2 * beta * K)


def npo_time_to_divergence_expr(D: sp.Expr) -> sp.Expr:
    """NPO's flow time to reach ``u = -D``, solved by sympy from :func:`npo_flow_implicit`.

    The numerical version is :func:`theory.flows.npo_time_to_divergence`.

    Args:
        D: the divergence (a positive symbol or number).

    Returns:
        ``(D + (e^{beta D} - 1)/beta) / (2K)``, simplified.
    """
    (sol,) = sp.solve(sp.Eq(npo_flow_implicit(-D), 0), t)
    return sp.simplify(sol)


# --- single-sample logistic flow (theory.logistic_flow) ------------------------------------


def ga_logistic_implicit(z: sp.Expr, z0: sp.Expr, k: sp.Expr) -> sp.Expr:
    """The implicit form of GA's flow ``z' = -k sigmoid(-z)`` on one label-1 sample.

    Explicitly ``z = c - W0(e^c)`` with ``c = z0 + e^{z0} - k t``.

    Args:
        z: the logit.
        z0: its initial value.
        k: ``eta ||x||^2``.

    Returns:
        ``z + e^z - (z0 + e^{z0} - k t)``, which vanishes on the flow.
    """
    return z + sp.exp(z) - (z0 + sp.exp(z0) - k * t)


def logistic_npo_dt_dp(b: sp.Expr = beta) -> sp.Expr:
    """``2k dt/dp`` along NPO's flow ``z' = -k W(z) sigmoid(-z)``, in the forget probability.

    With ``p = sigmoid(z)`` and ``W = 2 p^beta/(p^beta + p0^beta)``, derived here from
    ``dz/dp = 1/(p(1-p))``.

    Args:
        b: ``beta``.

    Returns:
        ``-(p^beta + p0^beta) / (p^{beta+1} (1-p)^2)``, simplified.
    """
    z = sp.log(p / (1 - p))
    w = 2 * p**b / (p**b + p0**b)
    return sp.simplify(-2 * sp.diff(z, p) / (w * (1 - p)))


def logistic_npo_integrand_split(b: sp.Expr = beta) -> sp.Expr:
    """``-2k dt/dp`` split into GA's part and NPO's extra part.

    Args:
        b: ``beta``.

    Returns:
        ``1/(p(1-p)^2) + p0^beta / (p^{beta+1}(1-p)^2)``.
    """
    return 1 / (p * (1 - p) ** 2) + p0**b / (p ** (b + 1) * (1 - p) ** 2)


@lru_cache(maxsize=64)
def logistic_npo_antiderivative(n: int) -> sp.Expr:
    """An antiderivative ``A(p)`` of :func:`logistic_npo_integrand_split` for integer ``beta``.

    Derived with ``sympy.apart`` (partial fractions in ``p``) and integrated term by term, with
    ``int dp/(p - 1) = log(1 - p)`` on ``0 < p < 1``, so that ``2 k t = A(p0) - A(p)``
    exactly.

    Args:
        n: the integer ``beta >= 1``.

    Returns:
        ``A(p)``, made of ``log p``, ``log(1-p)`` and powers of ``p`` and ``1 - p``.

    Raises:
        ValueError: if ``n`` is not an integer ``>= 1``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    x = sp.Symbol("x", positive=True)
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.apart(logistic_npo_integrand_split(n).subs(p, x), x)):
        out += _integrate_partial_fraction(term, x)
    return out.subs(x, p)


def _integrate_partial_fraction(term: sp.Expr, x: sp.Symbol) -> sp.Expr:
    # integrate c x^{-j} or c (x - 1)^{-j} on 0 < x < 1 (real logarithms)
    coeff, rest = term.as_independent(x, as_Add=False)
    base, expo = rest.as_base_exp()
    j = -expo
    if base == x:
        return coeff * (sp.log(x) if j == 1 else x ** (1 - j) / (1 - j))
    if sp.simplify(base - (x - 1)) == 0:
        return coeff * (sp.log(1 - x) if j == 1 else (x - 1) ** (1 - j) / (1 - j))
    raise ValueError(f"unexpected partial fraction {term}")
