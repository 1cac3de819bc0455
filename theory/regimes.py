"""Criteria from the theory for when a run shows its asymptotic divergence rate.

NPO under gradient descent (and SGD, momentum), in the constant-kernel flow of
:mod:`theory.flows`: with ``v = beta |u|`` the exact flow has
``beta (-du/dlog t) = 1 - (2 - v)/(e^v + 1)`` (:func:`npo_flow_log_rate`); the local log rate
is within 10% of ``1/beta`` from ``v = 1.47`` on (:func:`npo_asymptotic_threshold`), and an
end-of-run estimator (a late log-slope, :func:`~theory.divergence.fit_divergence`) reads the
asymptote once ``beta |u(T)| >= 3.3`` (:data:`HORIZON_BETA_U`, above
:func:`npo_verdict_threshold`) and the log rate has stopped rising (:func:`log_rate_change`
at most :data:`RATE_CHANGE_MAX`). The curve statistics :func:`local_log_rate` and
:func:`local_exponent` measure the same on a run. Everything returns numbers (no model);
:mod:`theory.horizon` turns them into flags. The derivations are on the page
:doc:`/theory/horizons`.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq
from scipy.special import expit

from theory._validate import nonnegative, positive, scalar_out
from theory.divergence import fit_divergence
from theory.flows import omega_shift

__all__ = [
    "HORIZON_BETA_U",
    "RATE_CHANGE_MAX",
    "local_exponent",
    "local_log_rate",
    "log_rate_change",
    "npo_asymptotic_threshold",
    "npo_decade_slope",
    "npo_flow_log_rate",
    "npo_flow_overshoot",
    "npo_rate_change",
    "npo_verdict_threshold",
]

#: ``beta |u(T)|`` an end-of-run verdict on NPO's flow needs (``npo_verdict_threshold()``
#: is 3.19; the last decade's log-slope is then within 3% of ``1/beta``).
HORIZON_BETA_U = 3.3
#: the largest ratio of the last two half-decade log-slopes of an asymptotic run (the exact
#: flow has 1.14 at ``beta |u(T)| = 3.3`` and tends to 1).
RATE_CHANGE_MAX = 1.25


def npo_flow_log_rate(beta_abs_u: ArrayLike) -> np.ndarray | float:
    """``beta (-du/dlog t)`` on NPO's exact flow, as a function of ``v = beta |u|``.

    With ``s = 2 beta K t`` the flow has ``v + expm1(v) = s`` (:func:`theory.flows.npo_log_ratio`)
    and ``-du/dlog t = t 2K sigmoid(-v)``, so ``beta (-du/dlog t) = s / (1 + e^v)
    = 1 - (2 - v)/(e^v + 1)``: 0 at ``v = 0``, below 1 for ``v < 2``, a small overshoot
    above 1 beyond (:func:`npo_flow_overshoot`), and 1 as ``v -> inf``. It equals
    ``beta * npo_local_log_rate(t, beta=beta, K=K)`` at the ``t`` where ``beta |u(t)| = v``.

    Args:
        beta_abs_u: ``v = beta |u| >= 0``, any shape.

    Returns:
        The rate times ``beta``, a float for a scalar, else an array.
    """
    v = nonnegative("beta_abs_u", beta_abs_u)
    # = (v + expm1(v)) / (1 + e^v), written without cancellation at small v or overflow
    return scalar_out(v * expit(-v) + np.tanh(0.5 * v))


def npo_flow_overshoot() -> tuple[float, float]:
    """Where and by how much NPO's local log rate overshoots ``1/beta``.

    ``(v - 2)/(e^v + 1)`` is largest where ``e^v + 1 = (v - 2) e^v``, i.e. ``v_m = 3 + e^{-v_m}``
    (``v_m = 3.0475``), and its value there is ``e^{-v_m} = 0.0475``.

    Returns:
        ``(v_m, overshoot)``: the rate times ``beta`` peaks at ``1 + overshoot``.
    """
    v_m = float(brentq(lambda v: v - 3.0 - np.exp(-v), 3.0, 4.0, xtol=1e-15))
    return v_m, float(np.exp(-v_m))


def npo_asymptotic_threshold(tol: float = 0.1) -> float:
    """The ``v = beta |u|`` past which NPO's local log rate stays within ``tol`` of ``1/beta``.

    ``|beta (-du/dlog t) - 1| = |v - 2| / (e^v + 1)``: below ``v = 2`` the rate approaches 1
    from below, so for ``tol`` above the overshoot ``e^{-v_m}`` the threshold is the root of
    ``(2 - v)/(e^v + 1) = tol`` on ``(0, 2)`` (1.16 at 20%, 1.47 at 10%, 1.68 at 5%); for a
    smaller ``tol`` it is the root of ``(v - 2)/(e^v + 1) = tol`` past ``v_m`` (5.01 at 2%).

    Args:
        tol: the relative tolerance, in ``(0, 1)``.

    Returns:
        The threshold on ``beta |u|``.

    Raises:
        ValueError: for ``tol`` outside ``(0, 1)``.
    """
    tol = float(positive("tol", tol))
    if tol >= 1.0:
        raise ValueError(f"tol must lie in (0, 1), got {tol}")
    v_m, overshoot = npo_flow_overshoot()
    if tol >= overshoot:
        return float(brentq(lambda v: (2.0 - v) * expit(-v) - tol, 0.0, 2.0, xtol=1e-14))
    return float(brentq(lambda v: (v - 2.0) * expit(-v) - tol, v_m, 800.0, xtol=1e-14))


def _v_at(s: np.ndarray) -> np.ndarray:
    return omega_shift(s)


def npo_decade_slope(beta_abs_u: ArrayLike) -> np.ndarray | float:
    """``beta`` times the exact flow's log-slope over the last decade, given ``v(T) = beta |u(T)|``.

    The chord ``(v(T) - v(T/10)) / log 10``, with ``v(T/10)`` the root of
    ``v + expm1(v) = s_T/10`` and ``s_T = v(T) + expm1(v(T))``: what a late log-slope over one
    decade reads on the flow (0.87 at ``v(T) = 2.65``, 0.97 at 3.3, 1.03 at 4).

    Args:
        beta_abs_u: ``v(T) >= 0``, any shape.

    Returns:
        The slope times ``beta``, a float for a scalar, else an array.
    """
    v = nonnegative("beta_abs_u", beta_abs_u)
    with np.errstate(over="ignore"):
        s = v + np.expm1(v)
    return scalar_out((v - _v_at(s / 10.0)) / np.log(10.0))


def npo_rate_change(beta_abs_u: ArrayLike) -> np.ndarray | float:
    """The exact flow's ratio of its last two half-decade log-slopes, given ``v(T)``.

    ``(v(T) - v(T/sqrt 10)) / (v(T/sqrt 10) - v(T/10))``: the statistic of
    :func:`log_rate_change` on the flow itself (1.69 at ``v(T) = 2``, 1.14 at 3.3, 1.03 at 4;
    it tends to 1).

    Args:
        beta_abs_u: ``v(T) > 0``, any shape.

    Returns:
        The ratio, a float for a scalar, else an array.
    """
    v = positive("beta_abs_u", beta_abs_u)
    with np.errstate(over="ignore"):
        s = v + np.expm1(v)
    mid = _v_at(s / np.sqrt(10.0))
    return scalar_out((v - mid) / (mid - _v_at(s / 10.0)))


@functools.lru_cache(maxsize=1)
def npo_verdict_threshold() -> float:
    """The smallest ``beta |u(T)|`` at which ``fit_divergence`` calls NPO's exact flow logarithmic.

    :func:`~theory.divergence.fit_divergence` on the flow sampled at 200 log-spaced times
    over four decades ending at ``T``, for ``v(T)`` on a grid of step 0.1 in ``[1, 8]``, then
    bisected to 0.005 where the verdict turns: 3.19.
    Computed once per process (about 0.3 s).

    Returns:
        The threshold on ``beta |u(T)|``.
    """
    frac = np.geomspace(1e-4, 1.0, 200)

    def is_log(v_end: float) -> bool:
        s_end = v_end + np.expm1(v_end)
        return fit_divergence(frac, _v_at(s_end * frac)).verdict == "logarithmic"

    grid = np.arange(1.0, 8.0001, 0.1)
    ok = np.array([is_log(float(v)) for v in grid])
    last_bad = int(np.flatnonzero(~ok)[-1]) if not ok.all() else -1
    if last_bad == grid.size - 1:
        raise RuntimeError("fit_divergence never says logarithmic on the flow up to beta|u| = 8")
    lo, hi = (float(grid[last_bad]), float(grid[last_bad + 1])) if last_bad >= 0 else (0.5, 1.0)
    while hi - lo > 0.005:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if is_log(mid) else (mid, hi)
    return hi


def log_rate_change(t: ArrayLike, d: ArrayLike) -> float:
    """The ratio of a curve's log-slopes over the last two half decades.

    ``(d(T) - d(T/sqrt 10)) / (d(T/sqrt 10) - d(T/10))``, with ``d`` interpolated linearly in
    ``log t``: 1 for ``a + b log t``, ``sqrt(10) = 3.16`` for a line ``a + b t``. NaN when the
    middle increment is not positive (a curve that does not grow).

    Args:
        t: positive, increasing times spanning at least a decade, shape ``(P,)``.
        d: the curve, shape ``(P,)``.

    Returns:
        The ratio.

    Raises:
        ValueError: for shapes, non-finite values, or times spanning less than a decade.
    """
    t = positive("t", t)
    d = np.asarray(d, dtype=np.float64)
    if t.ndim != 1 or d.shape != t.shape:
        raise ValueError(f"t and d must be 1-D of equal length, got {t.shape} and {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("d must be finite")
    if np.any(np.diff(t) <= 0) or t[-1] / t[0] < 10.0:
        raise ValueError("t must increase and span at least a decade")
    end = t[-1]
    d0, d1, d2 = np.interp(np.log([end / 10.0, end / np.sqrt(10.0), end]), np.log(t), d)
    first = d1 - d0
    if not first > 1e-12 * max(abs(d2), 1e-300):
        return float("nan")
    return float((d2 - d1) / first)


def local_log_rate(t: ArrayLike, d: ArrayLike) -> np.ndarray:
    """The local log rate ``d d / d log t`` of curves, by centered differences in ``log t``.

    For NPO's ``d = -u`` it tends to ``1/beta`` in the logarithmic regime and grows like ``t``
    in a linear one.

    Args:
        t: positive, increasing times, shape ``(P,)`` with ``P >= 2``.
        d: curves, shape ``(..., P)``.

    Returns:
        The rate, shape of ``d``.
    """
    t = positive("t", t)
    return np.gradient(np.asarray(d, dtype=np.float64), np.log(t), axis=-1)


def local_exponent(t: ArrayLike, d: ArrayLike) -> np.ndarray:
    """The local growth exponent ``d log d / d log t`` of curves, by centered differences.

    1 for linear growth (from zero), 0 for a constant, ``1/log t``-like for a logarithm;
    NaN where ``d <= 0``.

    Args:
        t: positive, increasing times, shape ``(P,)`` with ``P >= 2``.
        d: curves, shape ``(..., P)``.

    Returns:
        The exponent, shape of ``d``.
    """
    t = positive("t", t)
    d = np.asarray(d, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logd = np.where(d > 0, np.log(np.where(d > 0, d, 1.0)), np.nan)
    return np.gradient(logd, np.log(t), axis=-1)
