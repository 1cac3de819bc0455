"""NPO in sympy: the loss, its derivatives and limits, its relation to DPO and SimNPO, and the
exact solutions of the flows of :mod:`theory.flows` and :mod:`theory.logistic_flow`.

Notation (Zhang et al. 2024, arXiv 2404.05868): ``R = log(pi_theta/pi_ref)`` the log-ratio of a
forget example (real), ``beta > 0``, ``t >= 0`` flow time, ``K > 0`` the constant squared
gradient norm ``||grad log pi||^2``. Every loss is minimised.

Each function returns a sympy expression in the module's symbols (:data:`R`, :data:`beta`, ...);
the tests assert ``simplify(a - b) == 0`` for every identity stated here and compare
``lambdify``-ed expressions with ``torch.autograd`` through the kernels of ``npo.losses``.
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
    "npo_time_to_divergence",
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
    """``1 / (1 + e^{-x})``."""
    return 1 / (1 + sp.exp(-x))


def npo_loss(r: sp.Expr = R, b: sp.Expr = beta) -> sp.Expr:
    """Paper Eq. 3 per example: ``L(R; beta) = (2/beta) log(1 + e^{beta R})``; ``L > 0``
    (``L -> 0`` only as ``R -> -inf``), ``L(0) = 2 ln2 / beta``."""
    return 2 / b * sp.log(1 + sp.exp(b * r))


def npo_weight(r: sp.Expr = R, b: sp.Expr = beta) -> sp.Expr:
    """``W = 2 sigmoid(beta R)``: ``grad L = W grad log pi`` (appendix sign, not Sec. 3's)."""
    return 2 * sigmoid(b * r)


def npo_loss_dR() -> sp.Expr:
    """``dL/dR``, derived by sympy; equals :func:`npo_weight` (``simplify`` gives 0)."""
    return sp.diff(npo_loss(), R)


def npo_loss_d2R() -> sp.Expr:
    """``d^2L/dR^2 = 2 beta sigmoid(beta R)(1 - sigmoid(beta R)) > 0``: L is convex in R."""
    return sp.diff(npo_loss(), R, 2)


def npo_loss_beta_inf_limit() -> sp.Expr:
    """``lim_{beta -> inf} L = 2 max(R, 0)``, assembled from sympy's limits for ``R > 0`` and
    ``R < 0`` (at ``R = 0``, ``L = 2 ln2/beta -> 0``)."""
    r = sp.Symbol("r", positive=True)
    pos = sp.limit(npo_loss(r), beta, sp.oo).subs(r, R)
    neg = sp.limit(npo_loss(-r), beta, sp.oo).subs(r, -R)
    return sp.Piecewise((pos, R > 0), (neg, True))


def dpo_eq2_loss(r_chosen: sp.Expr, r_rejected: sp.Expr, b: sp.Expr = beta) -> sp.Expr:
    """Paper Eq. 2, DPO with prefactor ``1/beta``: ``-(1/beta) log sigmoid(beta (R_w - R_l))``.

    Removing the chosen term (``R_w = 0``) and doubling gives NPO:
    ``2 * dpo_eq2_loss(0, R) == npo_loss(R)``. ``npo.losses.dpo_loss`` carries the ``2/beta``
    of the paper's code, i.e. it is ``2 * dpo_eq2_loss``.
    """
    return -1 / b * sp.log(sigmoid(b * (r_chosen - r_rejected)))


def simnpo_loss(logp: sp.Expr, length: sp.Expr, b: sp.Expr = beta, g: sp.Expr = gamma) -> sp.Expr:
    """SimNPO (arXiv 2410.07163): ``-(2/beta) log sigmoid(-(beta/|y|) log pi - gamma)``."""
    return -2 / b * sp.log(sigmoid(-(b / length) * logp - g))


def simnpo_weight(logp: sp.Expr, length: sp.Expr, b: sp.Expr = beta, g: sp.Expr = gamma) -> sp.Expr:
    """``d(simnpo_loss)/d log pi = (2/|y|) sigmoid((beta/|y|) log pi + gamma)``."""
    return 2 / length * sigmoid(b / length * logp + g)


# --- constant-tangent-kernel flow (theory.flows) -------------------------------------------


def npo_flow_solution() -> sp.Expr:
    """``u(t) = (W0(exp(1 + 2 beta K t)) - 1 - 2 beta K t) / beta`` (``W0`` principal Lambert W),
    the solution of ``u' = -2K sigmoid(beta u)``, ``u(0) = 0``."""
    x = 1 + 2 * beta * K * t
    return (sp.LambertW(sp.exp(x)) - x) / beta


def npo_flow_implicit(u: sp.Expr) -> sp.Expr:
    """The conserved quantity: ``u - e^{-beta u}/beta + 1/beta + 2 K t`` vanishes on the flow."""
    return u - sp.exp(-beta * u) / beta + 1 / beta + 2 * K * t


def npo_flow_parametric() -> tuple[sp.Symbol, sp.Expr, sp.Expr]:
    """The flow parametrised by ``w = W0(exp(1 + 2 beta K t)) >= 1`` (so ``w + log w = x``):
    returns ``(w, u(w), t(w))`` with ``u = -log(w)/beta`` and ``t = (w + log w - 1)/(2 beta K)``.
    In this form ``du/dt = (du/dw)/(dt/dw)`` simplifies to ``-2K sigmoid(beta u)`` exactly."""
    w = sp.Symbol("w", positive=True)
    return w, -sp.log(w) / beta, (w + sp.log(w) - 1) / (2 * beta * K)


def npo_time_to_divergence(D: sp.Expr) -> sp.Expr:
    """Flow time to reach ``u = -D``: solve the implicit equation for ``t``:
    ``(D + (e^{beta D} - 1)/beta) / (2K)``."""
    (sol,) = sp.solve(sp.Eq(npo_flow_implicit(-D), 0), t)
    return sp.simplify(sol)


# --- single-sample logistic flow (theory.logistic_flow) ------------------------------------


def ga_logistic_implicit(z: sp.Expr, z0: sp.Expr, k: sp.Expr) -> sp.Expr:
    """GA on one label-1 sample, ``z' = -k sigmoid(-z)``: ``z + e^z - (z0 + e^{z0} - k t)``
    vanishes on the flow; explicitly ``z = c - W0(e^c)``, ``c = z0 + e^{z0} - k t``."""
    return z + sp.exp(z) - (z0 + sp.exp(z0) - k * t)


def logistic_npo_dt_dp(b: sp.Expr = beta) -> sp.Expr:
    """``2k dt/dp`` along the NPO flow ``z' = -k W(z) sigmoid(-z)`` written in the forget
    probability ``p = sigmoid(z)`` (``W = 2 p^beta/(p^beta + p0^beta)``), derived here from
    ``dz/dp = 1/(p(1-p))``: ``-(p^beta + p0^beta) / (p^{beta+1} (1-p)^2)``."""
    z = sp.log(p / (1 - p))
    w = 2 * p**b / (p**b + p0**b)
    return sp.simplify(-2 * sp.diff(z, p) / (w * (1 - p)))


def logistic_npo_integrand_split(b: sp.Expr = beta) -> sp.Expr:
    """``-2k dt/dp`` split into GA's part and NPO's extra part:
    ``1/(p(1-p)^2) + p0^beta / (p^{beta+1}(1-p)^2)``."""
    return 1 / (p * (1 - p) ** 2) + p0**b / (p ** (b + 1) * (1 - p) ** 2)


@lru_cache(maxsize=64)
def logistic_npo_antiderivative(n: int) -> sp.Expr:
    """For integer ``beta = n >= 1``, an antiderivative ``A(p)`` of
    :func:`logistic_npo_integrand_split`, so that ``2 k t = A(p0) - A(p)`` exactly.

    Derived with ``sympy.apart`` (partial fractions in ``p``) and integrated term by term, with
    ``int dp/(p - 1) = log(1 - p)`` on ``0 < p < 1``. Contains ``log p``, ``log(1-p)`` and
    powers of ``p`` and ``1 - p``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    x = sp.Symbol("x", positive=True)
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.apart(logistic_npo_integrand_split(n).subs(p, x), x)):
        out += _integrate_partial_fraction(term, x)
    return out.subs(x, p)


def _integrate_partial_fraction(term: sp.Expr, x: sp.Symbol) -> sp.Expr:
    """Integrate ``c x^{-j}`` or ``c (x - 1)^{-j}`` on ``0 < x < 1`` (real logarithms)."""
    coeff, rest = term.as_independent(x, as_Add=False)
    base, expo = rest.as_base_exp()
    j = -expo
    if base == x:
        return coeff * (sp.log(x) if j == 1 else x ** (1 - j) / (1 - j))
    if sp.simplify(base - (x - 1)) == 0:
        return coeff * (sp.log(1 - x) if j == 1 else (x - 1) ** (1 - j) / (1 - j))
    raise ValueError(f"unexpected partial fraction {term}")
