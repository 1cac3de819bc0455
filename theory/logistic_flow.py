"""Exact gradient flows of GA and NPO on one logistic sample.

One forget sample with label 1, logit ``z = <x, theta>``, forget probability
``p = sigmoid(z)``, ``z(0) = z0``; gradient flow with learning rate ``eta`` moves the logit at
``z' = -k dL/dz`` with ``k = eta ||x||^2`` (``t`` counts steps of size ``eta``). GA's flow is
a Lambert W (``p`` decays like ``e^{-kt}``); NPO's is an integral in ``p``, elementary for
integer ``beta`` and evaluated by quadrature otherwise (``p`` decays like ``t^{-1/beta}``).
The derivation is on the page :doc:`/theory/logistic_flow`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.special import log_expit

from theory._validate import finite, nonnegative, positive, scalar_out
from theory.flows import omega_shift

__all__ = [
    "logistic_ga_logit",
    "logistic_ga_logit_asymptote",
    "logistic_npo_logit",
    "logistic_npo_logit_asymptote",
    "logistic_npo_time",
]

_EPS = np.finfo(np.float64).eps


def logistic_ga_logit(t: ArrayLike, *, z0: ArrayLike, k: ArrayLike) -> np.ndarray | float:
    """GA's flow on one logistic sample: the logit ``z(t)`` solving ``z + e^z = z0 + e^{z0} - k t``.

    Args:
        t: flow time ``>= 0``.
        z0: initial logit (finite).
        k: ``eta ||x||^2 > 0``. All three broadcast.

    Returns:
        ``z(t)``, a float for scalar inputs, else an array.
    """
    t = nonnegative("t", t)
    z0 = finite("z0", z0)
    k = positive("k", k)
    return scalar_out(omega_shift(z0 + np.expm1(z0) - k * t))


def logistic_ga_logit_asymptote(t: ArrayLike, *, z0: ArrayLike, k: ArrayLike) -> np.ndarray | float:
    """GA's asymptote ``z ~ z0 + e^{z0} - k t`` as ``t -> inf`` (absolute error ``~ e^z``).

    Args:
        t: flow time ``>= 0``.
        z0: initial logit (finite).
        k: ``eta ||x||^2 > 0``. All three broadcast.

    Returns:
        The asymptote, a float for scalar inputs, else an array.
    """
    t = nonnegative("t", t)
    z0 = finite("z0", z0)
    k = positive("k", k)
    return scalar_out(z0 + np.exp(z0) - k * t)


def logistic_npo_logit_asymptote(
    t: ArrayLike, *, z0: ArrayLike, k: ArrayLike, beta: ArrayLike
) -> np.ndarray | float:
    """NPO's asymptote ``z ~ -(1/beta) log(2 beta k t / p0^beta)`` as ``t -> inf``.

    Equivalently ``log p0 - log(2 beta k t)/beta``; the absolute (hence relative) error
    ``-> 0`` as ``t -> inf``.

    Args:
        t: flow time ``> 0``.
        z0: initial logit (finite).
        k: ``eta ||x||^2 > 0``.
        beta: NPO's inverse temperature ``> 0``. All four broadcast.

    Returns:
        The asymptote, a float for scalar inputs, else an array.
    """
    t = positive("t", t)
    z0 = finite("z0", z0)
    k = positive("k", k)
    beta = positive("beta", beta)
    return scalar_out(log_expit(z0) - np.log(2.0 * beta * k * t) / beta)


def _beta_int(beta: float) -> int | None:
    # beta as an int if it is one (to 1e-12 relative), else None
    n = round(beta)
    return n if n >= 1 and abs(beta - n) <= 1e-12 * n else None


def logistic_npo_logit(
    t: ArrayLike, *, z0: float, k: float, beta: float, method: str = "auto"
) -> np.ndarray | float:
    """NPO's flow on one logistic sample: the logit ``z(t)``, ``z(0) = z0``.

    Args:
        t: flow time ``>= 0`` (array-like).
        z0: initial logit (a finite scalar).
        k: ``eta ||x||^2 > 0`` (a scalar).
        beta: NPO's inverse temperature ``> 0`` (a scalar).
        method: ``"closed"`` (integer ``beta`` only: the sympy-derived antiderivative,
            inverted by safeguarded Newton, vectorized), ``"quad"`` (any ``beta``: quadrature
            and Brent, one root per time point, ~10 ms each) or ``"auto"`` (closed when
            ``beta`` is an integer).

    Returns:
        ``z(t)``, a float for a scalar ``t``, else an array of its shape.

    Raises:
        ValueError: for an invalid argument, or ``"closed"`` with a non-integer ``beta``.
    """
    t = nonnegative("t", t)
    z0, k, beta = _scalars(z0=z0, k=k, beta=beta)
    n = _beta_int(beta)
    if method not in ("auto", "closed", "quad"):
        raise ValueError(f"method must be 'auto', 'closed' or 'quad', got {method!r}")
    if method == "closed" and n is None:
        raise ValueError(f"method='closed' needs an integer beta, got beta={beta!r}")
    lp0 = float(log_expit(z0))
    if method == "quad" or n is None:
        V = np.vectorize(lambda ti: _solve_v_quad(ti, lp0, k, beta), otypes=[float])(t)
    else:
        V = _solve_v_closed(t, lp0, k, n)
    log_p = lp0 - V / beta
    z = np.where(t == 0.0, z0, log_p - np.log(-np.expm1(log_p)))
    return scalar_out(z)


def logistic_npo_time(
    z: ArrayLike, *, z0: float, k: float, beta: float, method: str = "auto"
) -> np.ndarray | float:
    """The flow time at which NPO's logit reaches ``z <= z0``: the implicit solution.

    Args:
        z: the logit reached, ``<= z0`` (array-like).
        z0: initial logit (a finite scalar).
        k: ``eta ||x||^2 > 0`` (a scalar).
        beta: NPO's inverse temperature ``> 0`` (a scalar).
        method: ``"closed"`` (integer ``beta`` only), ``"quad"`` or ``"auto"``, as in
            :func:`logistic_npo_logit`.

    Returns:
        The flow time, a float for a scalar ``z``, else an array of its shape.

    Raises:
        ValueError: for an invalid argument or a ``z`` above ``z0``.
    """
    z = finite("z", z)
    z0, k, beta = _scalars(z0=z0, k=k, beta=beta)
    if np.any(z > z0):
        raise ValueError(f"z must be <= z0 = {z0} (the NPO flow only decreases the logit)")
    if method not in ("auto", "closed", "quad"):
        raise ValueError(f"method must be 'auto', 'closed' or 'quad', got {method!r}")
    lp0 = float(log_expit(z0))
    V = beta * (lp0 - log_expit(z))
    n = _beta_int(beta)
    if method == "closed" and n is None:
        raise ValueError(f"method='closed' needs an integer beta, got beta={beta!r}")
    if method == "quad" or n is None:
        two_kbt = np.vectorize(lambda v: np.exp(_log_two_kbt_quad(v, lp0, beta)), otypes=[float])
        return scalar_out(two_kbt(V) / (2.0 * k * beta))
    return scalar_out(_closed_two_kt(V, lp0, n) / (2.0 * k))


def _scalars(**kw: Any) -> tuple[float, float, float]:
    z0 = finite("z0", kw["z0"])
    k = positive("k", kw["k"])
    beta = positive("beta", kw["beta"])
    for name, arr in (("z0", z0), ("k", k), ("beta", beta)):
        if arr.ndim != 0:
            raise ValueError(f"{name} must be a scalar here, got shape {arr.shape}")
    return float(z0), float(k), float(beta)


# --- general beta: quadrature in V = beta log(p0/p) -----------------------------------------


def _log_two_kbt_quad(V: float, lp0: float, beta: float) -> float:
    # log(2 k beta t) at V (-inf at V = 0)
    if V <= 0.0:
        return -np.inf

    def f(v: float) -> float:
        one_minus_q = -np.expm1(lp0 - v / beta)
        return (np.exp(v - V) + np.exp(-V)) / one_minus_q**2

    pts = [max(V - 1.0, 0.0)] if V > 2.0 else None
    val, _ = quad(f, 0.0, V, epsabs=0.0, epsrel=1e-13, limit=200, points=pts)
    return V + np.log(val)


def _bracket(t: Any, lp0: float, k: float, beta: float) -> tuple[Any, Any]:
    one_minus_p0 = -np.expm1(lp0)
    return np.log1p(k * beta * t * one_minus_p0**2), np.log1p(2.0 * k * beta * t)


def _solve_v_quad(t: float, lp0: float, k: float, beta: float) -> float:
    if t == 0.0:
        return 0.0
    lo, hi = _bracket(t, lp0, k, beta)
    target = np.log(2.0 * k * beta * t)
    g = lambda v: _log_two_kbt_quad(v, lp0, beta) - target  # noqa: E731
    if hi - lo <= 4 * _EPS * hi:
        return float(hi)
    return float(brentq(g, lo, hi, xtol=1e-300, rtol=4 * _EPS, maxiter=200))


# --- integer beta: the sympy-derived closed form ---------------------------------------------


@lru_cache(maxsize=32)
def _antiderivative_fn(n: int) -> Any:
    # A(p, q, log p, log q, p0) lambdified from theory.symbolic.logistic_npo_antiderivative,
    # with q = 1 - p passed separately (no cancellation in 1 - p for p near 1)
    import sympy as sp

    from theory.symbolic import logistic_npo_antiderivative, p, p0

    q, lp, lq = sp.symbols("q lp lq")
    expr = logistic_npo_antiderivative(n)
    expr = expr.xreplace({sp.log(1 - p): lq, sp.log(p): lp, p - 1: -q})
    return sp.lambdify((p, q, lp, lq, p0), expr, modules="numpy")


def _closed_two_kt(V: Any, lp0: float, n: int) -> np.ndarray:
    # 2 k t = A(p0) - A(p) with log p = lp0 - V/n
    A = _antiderivative_fn(n)
    p0 = np.exp(lp0)
    log_p = lp0 - np.asarray(V, dtype=np.float64) / n
    a0 = A(p0, -np.expm1(lp0), lp0, np.log(-np.expm1(lp0)), p0)
    q = -np.expm1(log_p)
    return a0 - A(np.exp(log_p), q, log_p, np.log(q), p0)


def _solve_v_closed(t: np.ndarray, lp0: float, k: float, n: int) -> np.ndarray:
    # Newton on G(V) = A(p0) - A(p(V)) - 2kt (increasing and convex in V) from the upper end
    # of the exact bracket, clamped to the bracket; monotone convergence
    lo, hi = _bracket(t, lp0, k, float(n))
    V = hi.copy()
    target = 2.0 * k * t
    for _ in range(200):
        G = _closed_two_kt(V, lp0, n) - target
        one_minus_p = -np.expm1(lp0 - V / n)
        dG = (1.0 + np.exp(V)) / (n * one_minus_p**2)
        new = np.clip(V - G / dG, lo, hi)
        done = np.abs(new - V) <= 4 * _EPS * np.maximum(V, 1e-300)
        V = new
        if np.all(done):
            break
    return V
