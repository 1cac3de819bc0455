"""Deciding a divergence rate from a curve: linear (GA) or logarithmic (NPO)?

:func:`fit_divergence` takes a drift curve ``d(t)`` (e.g. parameter drift, forget KL or the
negated log-ratio) sampled on log-spaced times over at least two decades, and decides from
**scale-free** statistics, measured over the last ``late`` decades of times:

- the increment ratio ``rho = (d(4t) - d(2t)) / (d(2t) - d(t))``: 2 for linear growth
  ``a + b t`` whatever ``a``, ``2^p`` for a power law ``t^p``, and for ``b log(1 + t/tau)`` it
  falls from 2 (``t << tau``) to 1 (``t >> tau``; 1.26 at ``t = tau``). We report
  ``rate_exponent = log2(rho)``: 1 for linear, 0 for logarithmic.
- the local growth exponent ``d log d / d log t``: 1 for linear growth from zero, ``-> 0`` like
  ``1 / log t`` for logarithmic growth.

It also reports least-squares fits of ``d ~ a + b t`` and ``d ~ a + b log(1 + t/tau)`` with
``tau`` free (NPO's natural time unit, ``1/(2 beta K lr)``, is unknown in general, so a fixed
``log(1 + t)`` would be unit-dependent) and their R^2. The log family contains the line as
``tau -> inf``, so its R^2 is never lower: R^2 alone (especially over a short late window)
cannot separate the two and is not used for the verdict; ``log_fit.tau`` beyond the last time
is itself a sign of linear growth.

Verdict: ``"linear"`` if ``rate_exponent >= 0.8`` (read: *at least* linear; a superlinear
take-off such as GA's early in a run has a rate exponent above 1, reported alongside), ``"logarithmic"`` if ``rate_exponent <=
0.4`` and the local growth exponent is below 0.5, else ``"undecided"`` (intermediate power
laws, a logarithm still in its linear transient ``t <~ tau``, or a curve that does not grow).
Over one decade a slow power law ``t^p`` with ``p <= 0.4`` is indistinguishable from a
logarithm by these statistics, so "logarithmic" reads "grows at most like ``t^0.4`` locally,
with increments per doubling of time that do not grow".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["DivergenceFit", "LinearFit", "LogFit", "fit_divergence"]

LINEAR_MIN_EXPONENT = 0.8
LOG_MAX_EXPONENT = 0.4
LOG_MAX_GROWTH = 0.5


@dataclass(frozen=True)
class LinearFit:
    """``d ~ a + b t``."""

    a: float
    b: float
    r2: float


@dataclass(frozen=True)
class LogFit:
    """``d ~ a + b log(1 + t/tau)``."""

    a: float
    b: float
    tau: float
    r2: float


@dataclass(frozen=True)
class DivergenceFit:
    """Result of :func:`fit_divergence`. ``increment_ratio``/``growth_exponent`` are medians
    over the late window ``window`` = (first, last) time used."""

    verdict: str
    reason: str
    increment_ratio: float
    rate_exponent: float
    growth_exponent: float
    linear_fit: LinearFit
    log_fit: LogFit
    window: tuple[float, float]

    def summary(self) -> str:
        return (
            f"{self.verdict} (rate exponent {self.rate_exponent:.2f}, increment ratio "
            f"{self.increment_ratio:.2f}, growth exponent {self.growth_exponent:.2f}; "
            f"R2 linear {self.linear_fit.r2:.4f} / log {self.log_fit.r2:.4f}, "
            f"tau {self.log_fit.tau:.3g})"
        )


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if np.allclose(y, pred) else 0.0
    return 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot


def _lstsq(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    design = np.stack([np.ones_like(x), x], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(a), float(b), _r2(y, a + b * x)


def _fit_log(t: np.ndarray, d: np.ndarray) -> LogFit:
    def neg_r2(log_tau: float) -> float:
        return -_lstsq(np.log1p(t / np.exp(log_tau)), d)[2]

    lo, hi = np.log(t.min()) - 3 * np.log(10), np.log(t.max()) + 3 * np.log(10)
    grid = np.linspace(lo, hi, 61)
    best = grid[int(np.argmin([neg_r2(g) for g in grid]))]
    step = grid[1] - grid[0]
    res = minimize_scalar(
        neg_r2, bounds=(max(lo, best - step), min(hi, best + step)), method="bounded"
    )
    log_tau = float(res.x) if res.fun <= neg_r2(best) else float(best)
    a, b, r2 = _lstsq(np.log1p(t / np.exp(log_tau)), d)
    return LogFit(a, b, float(np.exp(log_tau)), r2)


def _validate(t, d) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(t, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    if t.ndim != 1 or d.shape != t.shape:
        raise ValueError(f"t and d must be 1-D of equal length, got shapes {t.shape} and {d.shape}")
    if t.size < 8:
        raise ValueError(f"need at least 8 points, got {t.size}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(d))):
        raise ValueError("t and d must be finite")
    if np.any(t <= 0) or np.any(np.diff(t) <= 0):
        raise ValueError("t must be positive and strictly increasing")
    if t[-1] / t[0] < 100.0:
        raise ValueError(
            f"t spans {t[-1] / t[0]:.3g}x (from {t[0]:g} to {t[-1]:g}); fit_divergence needs at "
            "least two decades of log-spaced times"
        )
    return t, d


def fit_divergence(t, d, *, late: float = 1.0, points: int = 9) -> DivergenceFit:
    """Classify the growth of ``d(t)`` as linear, logarithmic or undecided (module docstring).

    ``t``: positive increasing times over >= 2 decades; ``d``: the drift (same shape). Values
    between samples are interpolated linearly in ``log t``. ``late``: how many decades at the
    end of the range the statistics use (the increment ratio needs ``4t`` inside the range).
    """
    t, d = _validate(t, d)
    if not 0.1 <= late <= np.log10(t[-1] / t[0]) - np.log10(4.0):
        raise ValueError(f"late={late} must lie in [0.1, log10(t_max/t_min) - log10 4]")
    logt = np.log(t)

    def at(x: np.ndarray) -> np.ndarray:
        return np.interp(np.log(x), logt, d)

    t_hi = t[-1] / 4.0
    t0 = np.geomspace(t_hi / 10**late, t_hi, points)
    d1, d2, d4 = at(t0), at(2 * t0), at(4 * t0)
    inc1, inc2 = d2 - d1, d4 - d2
    scale = max(float(np.max(np.abs(d))), 1e-300)
    growing = bool(np.all(inc1 > 1e-9 * scale) and np.all(inc2 > -1e-9 * scale))
    rho = float(np.median(inc2 / np.where(inc1 > 0, inc1, np.nan))) if growing else float("nan")
    p = float(np.log2(rho)) if growing and rho > 0 else float("nan")

    tg = np.geomspace(t[-1] / 10**late, t[-1], points + 1)
    dg = at(tg)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.diff(np.log(dg)) / np.diff(np.log(tg)) if np.all(dg > 0) else np.array([np.nan])
    growth = float(np.median(g))

    lin = LinearFit(*_lstsq(t, d))
    logf = _fit_log(t, d)
    if not growing:
        verdict, reason = "undecided", "the curve does not grow over the late window"
    elif p >= LINEAR_MIN_EXPONENT:
        verdict, reason = "linear", f"rate exponent {p:.2f} >= {LINEAR_MIN_EXPONENT}"
    elif p <= LOG_MAX_EXPONENT and growth < LOG_MAX_GROWTH:
        verdict = "logarithmic"
        reason = f"rate exponent {p:.2f} <= {LOG_MAX_EXPONENT}, growth exponent {growth:.2f}"
    else:
        verdict = "undecided"
        reason = f"rate exponent {p:.2f}, growth exponent {growth:.2f}: between the two regimes"
    return DivergenceFit(verdict, reason, rho, p, growth, lin, logf, (float(t0[0]), float(t[-1])))
