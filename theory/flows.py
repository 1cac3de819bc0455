"""Exact gradient flows of GA and NPO in the constant-tangent-kernel picture.

One forget example with log-ratio ``u = log(pi_theta/pi_ref)``, ``u(0) = 0``, whose gradient
has constant squared norm ``K``: GA's flow is ``u(t) = -K t``, NPO's solves
``u' = -2K sigmoid(beta u)`` in closed form (a Lambert W, evaluated overflow-free by
:func:`omega_shift`) and falls like ``-(1/beta) log t``. Flow time ``t`` is ``lr * n`` after
``n`` gradient-descent steps. The derivation, the exact bounds and the time to divergence are
on the page :doc:`/theory/flows`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
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


def omega_shift(s: ArrayLike, *, log_s: Any = None) -> np.ndarray:
    """Solve ``y + expm1(y) = s`` for real ``s``, vectorized.

    The root is ``y = omega(1 + s) = log W0(e^{1+s})``, with ``omega`` the Wright omega
    function (``omega + log omega = x``). ``f(y) = y + expm1(y) - s`` is increasing and
    convex. For ``0 <= s <= 1e15``: Halley iterations (cubic) from ``s/2 - s^2/16 + s^3/192``
    (``s <= 1/2``) or ``log1p(s - log1p(s/2))`` (one step of ``y = log(1 + s - y)``), about
    three passes. For ``s < 0``: Newton from ``min(s/2, s + 1)``, where ``f >= 0``, which
    decreases monotonically to the root. For ``s > 1e15`` the root is
    ``log(1 + s - y) = log s + log1p((1 - y)/s)``, computed from ``log_s`` when given, so
    ``s`` itself may overflow to ``inf``. ``exp`` is never taken of anything larger than
    ``y``.

    Args:
        s: the right-hand side, any shape.
        log_s: ``log s`` where ``s > 1e15``: a callable returning it on a boolean mask, or
            an array broadcastable to ``s``; None computes ``log(s)``.

    Returns:
        ``y`` with the shape of ``s`` (float64).
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


def _s_and_log_s(t: ArrayLike, beta: ArrayLike, K: ArrayLike) -> tuple:
    """The validated inputs and ``s = 2 beta K t`` (which may overflow to inf).

    Returns:
        ``(s, log_s, beta)``, where ``log_s`` is a callable giving ``log s`` on a mask,
        computed from the logs of the factors (only where needed: it costs four passes).
    """
    t = nonnegative("t", t)
    beta = positive("beta", beta)
    K = positive("K", K)
    with np.errstate(over="ignore"):
        s = 2.0 * beta * K * t

    def log_s(mask: np.ndarray) -> np.ndarray:
        parts = [np.broadcast_to(x, s.shape)[mask] for x in (beta, K, t)]
        return np.log(2.0) + np.log(parts[0]) + np.log(parts[1]) + np.log(parts[2])

    return s, log_s, beta


def _s_and_log_s_array(t: ArrayLike, beta: ArrayLike, K: ArrayLike) -> tuple:
    s, log_s, beta = _s_and_log_s(t, beta, K)
    with np.errstate(divide="ignore"):
        return s, log_s(np.ones(s.shape, dtype=bool)).reshape(s.shape), beta


def ga_log_ratio(t: ArrayLike, *, K: ArrayLike) -> np.ndarray | float:
    """GA's flow ``u(t) = -K t`` (``u' = -K``, ``u(0) = 0``).

    Args:
        t: flow time ``>= 0`` (array-like; broadcast with ``K``).
        K: squared gradient norm ``||grad_theta log pi||^2 > 0``.

    Returns:
        ``u(t)``, a float for scalar inputs, else an array of the broadcast shape.
    """
    t = nonnegative("t", t)
    K = positive("K", K)
    return scalar_out(-K * t)


def npo_log_ratio(t: ArrayLike, *, beta: ArrayLike, K: ArrayLike) -> np.ndarray | float:
    """NPO's flow ``u' = -2K sigmoid(beta u)``, ``u(0) = 0``, in closed form.

    ``u(t) = (W0(exp(1 + 2 beta K t)) - 1 - 2 beta K t) / beta`` (``W0`` the principal
    Lambert W), evaluated overflow-free as ``-omega_shift(2 beta K t) / beta``. Finite for any
    finite input; ``-> -K t`` (GA) as ``beta -> 0``.

    Args:
        t: flow time ``>= 0``.
        beta: NPO's inverse temperature ``> 0``.
        K: squared gradient norm ``> 0``. All three broadcast.

    Returns:
        ``u(t)``, a float for scalar inputs, else an array of the broadcast shape.
    """
    s, log_s, beta = _s_and_log_s(t, beta, K)
    return scalar_out(-omega_shift(s, log_s=log_s) / beta)


def npo_weight_along_flow(t: ArrayLike, *, beta: ArrayLike, K: ArrayLike) -> np.ndarray | float:
    """NPO's weight ``W = 2 sigmoid(beta u(t))`` along its flow.

    ``W = 2 / (1 + e^v)`` with ``v = -beta u``: 1 at ``t = 0``, ``~ 1/(beta K t)`` for large
    ``t``.

    Args:
        t: flow time ``>= 0``.
        beta: NPO's inverse temperature ``> 0``.
        K: squared gradient norm ``> 0``. All three broadcast.

    Returns:
        ``W`` in ``(0, 1]``, a float for scalar inputs, else an array.
    """
    s, log_s, beta = _s_and_log_s(t, beta, K)
    return scalar_out(2.0 * expit(-omega_shift(s, log_s=log_s)))


def npo_log_ratio_asymptote(t: ArrayLike, *, beta: ArrayLike, K: ArrayLike) -> np.ndarray | float:
    """The large-``t`` asymptote ``-(1/beta) log(1 + 2 beta K t)`` of :func:`npo_log_ratio`.

    It is a lower bound on ``u(t)``, with absolute error
    ``<= log(1+s) / (beta (1 + s - log(1+s)))``, ``s = 2 beta K t``: the relative error is
    ``O(1/s) -> 0``.

    Args:
        t: flow time ``>= 0``.
        beta: NPO's inverse temperature ``> 0``.
        K: squared gradient norm ``> 0``. All three broadcast.

    Returns:
        The asymptote, a float for scalar inputs, else an array.
    """
    s, log_s, beta = _s_and_log_s_array(t, beta, K)
    return scalar_out(-_log1p_s(s, log_s) / beta)


def npo_log_ratio_bounds(
    t: ArrayLike, *, beta: ArrayLike, K: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided bounds ``lo <= npo_log_ratio(t) <= hi``.

    ``lo = -(1/beta) log(1+s)`` (the asymptote), ``hi = -(1/beta) log(1 + s - log(1+s))``,
    ``s = 2 beta K t``; from ``v = log(1 + s - v)`` and ``0 <= v <= log(1+s)``.

    Args:
        t: flow time ``>= 0``.
        beta: NPO's inverse temperature ``> 0``.
        K: squared gradient norm ``> 0``. All three broadcast.

    Returns:
        ``(lo, hi)``, two arrays of the broadcast shape.
    """
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


def npo_local_log_rate(t: ArrayLike, *, beta: ArrayLike, K: ArrayLike) -> np.ndarray | float:
    """The exact local divergence rate of NPO's flow per unit ``log t``.

    ``-du/dlog t = t * 2K sigmoid(beta u(t))``: 0 at ``t = 0``, ``-> 1/beta`` as
    ``t -> inf`` (:func:`npo_log_rate`). GA's is ``K t``, unbounded.

    Args:
        t: flow time ``>= 0``.
        beta: NPO's inverse temperature ``> 0``.
        K: squared gradient norm ``> 0``. All three broadcast.

    Returns:
        The rate, a float for scalar inputs, else an array.
    """
    s, log_s, beta = _s_and_log_s_array(t, beta, K)
    v = omega_shift(s, log_s=log_s)
    # t * 2K * sigmoid(-v) = (s / beta) / (1 + e^v); v = log(1 + s - v) gives e^v = 1 + s - v.
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = np.where(s > _LARGE, 1.0 / (1.0 + (2.0 - v) * np.exp(-log_s)), s / (2.0 + s - v))
    return scalar_out(ratio / beta)


def npo_log_rate(beta: ArrayLike) -> np.ndarray | float:
    """NPO's predicted long-time divergence rate, ``lim -du/dlog t = 1/beta``.

    In the constant-kernel flow ``u(t) = -(1/beta) log t + O(1)`` whatever ``K`` (which only
    shifts the curve along ``log t``), so a plot of the negated log-ratio against ``log t``
    has slope ``1/beta``; GA's has none (its drift is linear in ``t``). For the parameter drift
    of Theorem 2 (:mod:`theory.logistic`),
    ``||X(theta_t - theta_init)|| ~ (sqrt(n_f)/beta) log t``: the same ``1/beta`` per sample.
    The synthetic ``beta-rate`` experiment overlays this curve.

    Args:
        beta: NPO's inverse temperature ``> 0`` (array-like).

    Returns:
        ``1/beta``, a float for a scalar, else an array.
    """
    beta = positive("beta", beta)
    return scalar_out(1.0 / beta)


def ga_time_to_divergence(D: ArrayLike, *, K: ArrayLike) -> np.ndarray | float:
    """The flow time for GA to reach ``u = -D``: ``t_GA(D) = D / K``.

    Args:
        D: divergence ``>= 0`` (array-like).
        K: squared gradient norm ``> 0``.

    Returns:
        ``t_GA(D)``, a float for scalar inputs, else an array.
    """
    D = nonnegative("D", D)
    K = positive("K", K)
    return scalar_out(D / K)


def npo_time_to_divergence(D: ArrayLike, *, beta: ArrayLike, K: ArrayLike) -> np.ndarray | float:
    """The flow time for NPO to reach ``u = -D``.

    ``t_NPO(D) = (D + (e^{beta D} - 1)/beta) / (2K)``, the implicit solution at ``u = -D``.
    ``t_NPO/t_GA = (1 + expm1(beta D)/(beta D)) / 2`` grows like ``e^{beta D} / (2 beta D)``:
    exponentially slower divergence. ``inf`` once ``beta D > ~709`` (float64 overflow); use
    :func:`npo_log_time_to_divergence` there.

    Args:
        D: divergence ``>= 0``.
        beta: NPO's inverse temperature ``> 0``.
        K: squared gradient norm ``> 0``. All three broadcast.

    Returns:
        ``t_NPO(D)``, a float for scalar inputs, else an array.
    """
    D = nonnegative("D", D)
    beta = positive("beta", beta)
    K = positive("K", K)
    with np.errstate(over="ignore"):
        return scalar_out((D + np.expm1(beta * D) / beta) / (2.0 * K))


def npo_log_time_to_divergence(
    D: ArrayLike, *, beta: ArrayLike, K: ArrayLike
) -> np.ndarray | float:
    """The logarithm of :func:`npo_time_to_divergence`, finite for every finite ``D > 0``.

    ``log(D + expm1(beta D)/beta) - log(2K)``, evaluated as a log-sum-exp (``-inf`` at
    ``D = 0``).

    Args:
        D: divergence ``>= 0``.
        beta: NPO's inverse temperature ``> 0``.
        K: squared gradient norm ``> 0``. All three broadcast.

    Returns:
        ``log t_NPO(D)``, a float for scalar inputs, else an array.
    """
    D = nonnegative("D", D)
    beta = positive("beta", beta)
    K = positive("K", K)
    x = beta * D
    with np.errstate(divide="ignore"):
        # expm1(x) = e^x (1 - e^{-x}), so
        # log(D + expm1(x)/beta) = logaddexp(log D, log expm1(x) - log beta)
        log_em1 = np.where(
            x > 30.0, x + np.log1p(-np.exp(-x)), np.log(np.expm1(np.minimum(x, 30.0)))
        )
        out = np.logaddexp(np.log(D), log_em1 - np.log(beta)) - np.log(2.0 * K)
    return scalar_out(out)
