"""Exact gradient flows of GA and NPO in the constant-tangent-kernel picture.

Model-agnostic picture (Zhang et al. 2024, Sec. 4 intuition, made exact): one forget example
with log-ratio ``u = log(pi_theta/pi_ref)``, ``u(0) = 0``, whose gradient has constant squared
norm ``||grad_theta log pi||^2 = K``. Gradient flow ``theta' = -grad L`` on a loss with
``dL/du = W(u)`` moves the log-ratio at ``u' = -K W(u)``:

- GA (``W = 1``): ``u(t) = -K t``.
- NPO (``W = 2 sigmoid(beta u)``): ``u' = -2K sigmoid(beta u)``. Separating variables,
  ``u - e^{-beta u}/beta = -1/beta - 2K t``, explicitly
  ``u(t) = (W0(exp(1 + 2 beta K t)) - 1 - 2 beta K t) / beta`` with ``W0`` the principal
  Lambert W. With ``v = -beta u >= 0`` and ``s = 2 beta K t`` this is ``v + expm1(v) = s``
  (``v = log W0(e^{1+s})``), which :func:`omega_shift` solves by monotone Newton iterations
  without ever forming ``exp(1 + s)``; for ``s > 1e15`` it uses ``v = log(1 + s - v)``
  evaluated from ``log s``.

Time ``t`` is flow time: gradient descent with step ``lr`` after ``n`` steps sits at
``t = lr * n`` (equivalently pass ``K * lr`` as ``K`` and steps as ``t``).

Consequences, all exact: ``-(1/beta) log(1+s) <= u(t) <= -(1/beta) log(1 + s - log(1+s))``,
so ``u ~ -(1/beta) log(1 + 2 beta K t)`` with absolute error
``<= log(1+s) / (beta (1 + s - log(1+s)))`` (relative error ``O(1/s)``); NPO's local rate
``-du/dlog t = 2 K t sigmoid(beta u) -> 1/beta`` (:func:`npo_log_rate`); reaching
``u = -D`` takes ``t_NPO(D) = (D + (e^{beta D} - 1)/beta) / (2K)`` against ``t_GA = D/K``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from theory._validate import nonnegative, positive, scalar_out

__all__ = [
    "ga_log_ratio",
    "ga_time_to_divergence",
    "npo_local_log_rate",
    "npo_log_rate",
    "npo_log_ratio",
    "npo_log_ratio_asymptote",
    "npo_log_ratio_bounds",
    "npo_log_time_to_divergence",
    "npo_time_to_divergence",
    "npo_weight_along_flow",
    "omega_shift",
]

_LARGE = 1e15  # above this s, v = log(1 + s - v) from log s (two fixed-point steps suffice)
_EPS = np.finfo(np.float64).eps


def omega_shift(s, *, log_s=None) -> np.ndarray:
    """Solve ``y + expm1(y) = s`` for real ``s`` (vectorised): ``y = omega(1 + s)`` where
    ``omega`` is the Wright omega function (``omega + log omega = x``), ``= log W0(e^{1+s})``.

    ``f(y) = y + expm1(y) - s`` is increasing and convex. For ``0 <= s <= 1e15``: Halley
    iterations (cubic) from ``s/2 - s^2/16 + s^3/192`` (``s <= 1/2``) or
    ``log1p(s - log1p(s/2))`` (one step of ``y = log(1 + s - y)``), about three passes. For
    ``s < 0``: Newton from ``min(s/2, s + 1)``, where ``f >= 0``, which decreases monotonically
    to the root. For ``s > 1e15`` the root is ``log(1 + s - y) = log s + log1p((1 - y)/s)``,
    computed from ``log_s`` (a callable returning ``log s`` on a boolean mask, or an array)
    when given, so ``s`` itself may overflow to ``inf``. ``exp`` is never taken of anything
    larger than ``y``.
    """
    s = np.asarray(s, dtype=np.float64)
    y = np.empty_like(s)
    big = s > _LARGE
    if np.any(big):
        if log_s is None:
            ls = np.log(s[big])
        elif callable(log_s):
            ls = log_s(big)
        else:
            ls = np.broadcast_to(log_s, s.shape)[big]
        yb = ls
        for _ in range(3):
            yb = ls + np.log1p((1.0 - yb) * np.exp(-ls))
        y[big] = yb
    neg = s < 0
    mid = ~(big | neg)
    if np.all(mid):
        return _halley(s)
    if np.any(mid):
        y[mid] = _halley(s[mid])
    if np.any(neg):
        y[neg] = _newton_negative(s[neg])
    return y


def _halley(s: np.ndarray) -> np.ndarray:
    y = np.empty_like(s)
    small = s <= 0.5
    ss = s[small]
    y[small] = ss * (0.5 + ss * (-1.0 / 16.0 + ss / 192.0))
    sb = s[~small]
    y[~small] = np.log1p(sb - np.log1p(0.5 * sb))
    for _ in range(50):
        em1 = np.expm1(y)
        f = y + em1
        f -= s
        fp = em1 + 2.0  # f' = 1 + e^y; f'' = e^y
        den = 2.0 * fp * fp
        den -= f * (em1 + 1.0)
        step = 2.0 * f * fp
        step /= den
        y -= step
        if np.all(np.abs(step) <= 4 * _EPS * np.abs(y)):
            break
    return y


def _newton_negative(s: np.ndarray) -> np.ndarray:
    y = np.minimum(0.5 * s, s + 1.0)
    for _ in range(100):
        step = (y + np.expm1(y) - s) / (1.0 + np.exp(y))
        y = y - step
        if np.all(np.abs(step) <= 4 * _EPS * np.abs(y)):
            break
    return y


def _s_and_log_s(t, beta, K):
    """``s = 2 beta K t`` (may overflow to inf) and a callable giving ``log s`` on a mask,
    computed from the logs of the factors (only where needed: it costs four passes)."""
    t = nonnegative("t", t)
    beta = positive("beta", beta)
    K = positive("K", K)
    with np.errstate(over="ignore"):
        s = 2.0 * beta * K * t

    def log_s(mask: np.ndarray) -> np.ndarray:
        parts = [np.broadcast_to(x, s.shape)[mask] for x in (beta, K, t)]
        return np.log(2.0) + np.log(parts[0]) + np.log(parts[1]) + np.log(parts[2])

    return s, log_s, beta


def _s_and_log_s_array(t, beta, K):
    s, log_s, beta = _s_and_log_s(t, beta, K)
    with np.errstate(divide="ignore"):
        return s, log_s(np.ones(s.shape, dtype=bool)).reshape(s.shape), beta


def ga_log_ratio(t, *, K) -> np.ndarray | float:
    """GA flow: ``u(t) = -K t`` (``u' = -K``, ``u(0) = 0``). Vectorised over ``t``, ``K``."""
    t = nonnegative("t", t)
    K = positive("K", K)
    return scalar_out(-K * t)


def npo_log_ratio(t, *, beta, K) -> np.ndarray | float:
    """NPO flow ``u' = -2K sigmoid(beta u)``, ``u(0) = 0``, in closed form:
    ``u(t) = (W0(exp(1 + 2 beta K t)) - 1 - 2 beta K t) / beta``, evaluated overflow-free as
    ``-omega_shift(2 beta K t) / beta`` (module docstring). Vectorised (broadcasting) over
    ``t >= 0``, ``beta > 0``, ``K > 0``; finite for any finite input, ``-> -K t`` as
    ``beta -> 0`` (GA)."""
    s, log_s, beta = _s_and_log_s(t, beta, K)
    return scalar_out(-omega_shift(s, log_s=log_s) / beta)


def npo_weight_along_flow(t, *, beta, K) -> np.ndarray | float:
    """NPO's weight ``W = 2 sigmoid(beta u(t))`` along the flow, ``= 2 / (1 + e^v)`` with
    ``v = -beta u``: 1 at ``t = 0``, ``~ 1/(beta K t)`` for large ``t``."""
    s, log_s, beta = _s_and_log_s(t, beta, K)
    return scalar_out(2.0 * expit(-omega_shift(s, log_s=log_s)))


def npo_log_ratio_asymptote(t, *, beta, K) -> np.ndarray | float:
    """Large-``t`` asymptote ``-(1/beta) log(1 + 2 beta K t)`` of :func:`npo_log_ratio`: a lower
    bound on it, with absolute error ``<= log(1+s) / (beta (1 + s - log(1+s)))``,
    ``s = 2 beta K t``, so the relative error is ``O(1/s) -> 0``."""
    s, log_s, beta = _s_and_log_s_array(t, beta, K)
    return scalar_out(-_log1p_s(s, log_s) / beta)


def npo_log_ratio_bounds(t, *, beta, K) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided bounds ``(lo, hi)`` with ``lo <= npo_log_ratio <= hi``:
    ``lo = -(1/beta) log(1+s)`` (the asymptote), ``hi = -(1/beta) log(1 + s - log(1+s))``,
    ``s = 2 beta K t``. From ``v = log(1 + s - v)`` and ``0 <= v <= log(1+s)``."""
    s, log_s, beta = _s_and_log_s_array(t, beta, K)
    l1 = _log1p_s(s, log_s)
    with np.errstate(over="ignore", invalid="ignore"):
        inner = np.where(
            s > _LARGE, log_s + np.log1p((1.0 - l1) * np.exp(-log_s)), np.log1p(s - l1)
        )
    return -l1 / beta, -inner / beta


def _log1p_s(s: np.ndarray, log_s: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(s > _LARGE, log_s + np.log1p(np.exp(-log_s)), np.log1p(s))


def npo_local_log_rate(t, *, beta, K) -> np.ndarray | float:
    """Exact local divergence rate of the NPO flow per unit ``log t``:
    ``-du/dlog t = t * 2K sigmoid(beta u(t))``. 0 at ``t = 0``, ``-> 1/beta`` as ``t -> inf``
    (:func:`npo_log_rate`); GA's is ``K t``, unbounded."""
    s, log_s, beta = _s_and_log_s_array(t, beta, K)
    v = omega_shift(s, log_s=log_s)
    # t * 2K * sigmoid(-v) = (s / beta) / (1 + e^v); v = log(1 + s - v) gives e^v = 1 + s - v.
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = np.where(s > _LARGE, 1.0 / (1.0 + (2.0 - v) * np.exp(-log_s)), s / (2.0 + s - v))
    return scalar_out(ratio / beta)


def npo_log_rate(beta) -> np.ndarray | float:
    """Predicted long-time divergence rate of NPO: ``lim -du/dlog t = 1/beta``.

    In the constant-kernel flow ``u(t) = -(1/beta) log t + O(1)`` whatever ``K`` (which only
    shifts the curve along ``log t``), so a plot of the negated log-ratio against ``log t`` has
    slope ``1/beta``; GA's has none (its drift is linear in ``t``). For the parameter drift of
    Theorem 2 (:mod:`theory.logistic`), ``||X(theta_t - theta_init)|| ~ (sqrt(n_f)/beta) log t``,
    the same ``1/beta`` per sample. This is the curve the synthetic beta-rate experiment
    overlays. Vectorised over ``beta > 0``.
    """
    beta = positive("beta", beta)
    return scalar_out(1.0 / beta)


def ga_time_to_divergence(D, *, K) -> np.ndarray | float:
    """Flow time for GA to reach ``u = -D``: ``t_GA(D) = D / K``. Vectorised, ``D >= 0``."""
    D = nonnegative("D", D)
    K = positive("K", K)
    return scalar_out(D / K)


def npo_time_to_divergence(D, *, beta, K) -> np.ndarray | float:
    """Flow time for NPO to reach ``u = -D``: ``t_NPO(D) = (D + (e^{beta D} - 1)/beta) / (2K)``
    (the implicit solution at ``u = -D``). ``t_NPO/t_GA = (1 + expm1(beta D)/(beta D)) / 2``
    grows like ``e^{beta D} / (2 beta D)``: exponentially slower divergence. ``inf`` once
    ``beta D > ~709`` (float64 overflow); use :func:`npo_log_time_to_divergence` there."""
    D = nonnegative("D", D)
    beta = positive("beta", beta)
    K = positive("K", K)
    with np.errstate(over="ignore"):
        return scalar_out((D + np.expm1(beta * D) / beta) / (2.0 * K))


def npo_log_time_to_divergence(D, *, beta, K) -> np.ndarray | float:
    """``log t_NPO(D)``, finite for every finite ``D > 0`` (``-inf`` at ``D = 0``):
    ``log(D + expm1(beta D)/beta) - log(2K)`` evaluated as a log-sum-exp."""
    D = nonnegative("D", D)
    beta = positive("beta", beta)
    K = positive("K", K)
    x = beta * D
    with np.errstate(divide="ignore"):
        # expm1(x) = e^x (1 - e^{-x}); log(D + expm1(x)/beta) = logaddexp(log D, log expm1(x) - log beta)
        log_em1 = np.where(
            x > 30.0, x + np.log1p(-np.exp(-x)), np.log(np.expm1(np.minimum(x, 30.0)))
        )
        out = np.logaddexp(np.log(D), log_em1 - np.log(beta)) - np.log(2.0 * K)
    return scalar_out(out)
