"""Deciding a divergence rate from a curve: linear (GA) or logarithmic (NPO)?

:func:`fit_divergence` takes a drift curve ``d(t)`` (parameter drift, forget KL, negated
log-ratio) on log-spaced times over at least two decades and decides from scale-free
statistics over the last decades: the increment ratio ``(d(4t) - d(2t)) / (d(2t) - d(t))``
(2 for linear growth, falling to 1 for logarithmic growth) and the local growth exponent
``d log d / d log t``. Least-squares fits of a line and of ``a + b log(1 + t/tau)`` are
reported but do not decide. :func:`fit_divergence_seeds` fits every seed's curve and reports
the spread of the exponents. The statistics, the thresholds and what the verdicts mean are on
the page :doc:`/theory/divergence`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize_scalar

__all__ = [
    "DivergenceFit",
    "LinearFit",
    "LogFit",
    "SeedFits",
    "fit_divergence",
    "fit_divergence_seeds",
]

LINEAR_MIN_EXPONENT = 0.8
LOG_MAX_EXPONENT = 0.4
LOG_MAX_GROWTH = 0.5


@dataclass(frozen=True)
class LinearFit:
    """A least-squares fit ``d ~ a + b t`` and its ``R^2``."""

    a: float
    b: float
    r2: float


@dataclass(frozen=True)
class LogFit:
    """A least-squares fit ``d ~ a + b log(1 + t/tau)`` (``tau`` free) and its ``R^2``."""

    a: float
    b: float
    tau: float
    r2: float


@dataclass(frozen=True)
class DivergenceFit:
    """The result of :func:`fit_divergence`.

    ``verdict`` is ``"linear"``, ``"logarithmic"`` or ``"undecided"``, ``reason`` says why;
    ``increment_ratio`` and ``growth_exponent`` are medians over the late window ``window``
    (first and last time used), ``rate_exponent = log2(increment_ratio)``.
    """

    verdict: str
    reason: str
    increment_ratio: float
    rate_exponent: float
    growth_exponent: float
    linear_fit: LinearFit
    log_fit: LogFit
    window: tuple[float, float]

    def summary(self) -> str:
        """One line: the verdict and the statistics behind it.

        Returns:
            The line.
        """
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


def _validate(t: ArrayLike, d: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
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


def fit_divergence(
    t: ArrayLike, d: ArrayLike, *, late: float = 1.0, points: int = 9
) -> DivergenceFit:
    """Classify the growth of ``d(t)`` as linear, logarithmic or undecided.

    Values between samples are interpolated linearly in ``log t``. The verdict is
    ``"linear"`` if the rate exponent is ``>= 0.8``, ``"logarithmic"`` if it is ``<= 0.4``
    and the growth exponent is below 0.5, else ``"undecided"`` (:doc:`/theory/divergence`).

    Args:
        t: positive, strictly increasing times spanning at least two decades, shape ``(P,)``
            with ``P >= 8``.
        d: the drift at those times, shape ``(P,)``.
        late: how many decades at the end of the range the statistics use (the increment
            ratio needs ``4t`` inside the range).
        points: number of log-spaced times the statistics are taken at.

    Returns:
        The verdict with its statistics and both least-squares fits.

    Raises:
        ValueError: for shapes, non-finite values, times that do not increase or span less
            than two decades, or ``late`` outside ``[0.1, log10(t_max/t_min) - log10 4]``.
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


def _spread(x: list[float]) -> tuple[float, float, float]:
    a = np.asarray([v for v in x if np.isfinite(v)], dtype=np.float64)
    if a.size == 0:
        return (float("nan"),) * 3
    return float(np.median(a)), float(a.min()), float(a.max())


@dataclass(frozen=True)
class SeedFits:
    """:func:`fit_divergence` on every seed's curve, from :func:`fit_divergence_seeds`.

    ``fits`` holds one fit per seed (None where a seed's curve could not be fitted, its
    ``verdicts`` entry then says why); ``growth_exponent`` and ``rate_exponent`` are
    ``(median, min, max)`` over the seeds that were fitted.
    """

    fits: tuple[DivergenceFit | None, ...]
    verdicts: tuple[str, ...]
    growth_exponent: tuple[float, float, float]
    rate_exponent: tuple[float, float, float]

    def counts(self) -> dict[str, int]:
        """How many seeds got each verdict.

        Returns:
            ``{verdict: count}``, unfittable seeds counted as ``"undecided"``.
        """
        out: dict[str, int] = {}
        for f in self.fits:
            key = "undecided" if f is None else f.verdict
            out[key] = out.get(key, 0) + 1
        return out

    def summary(self) -> str:
        """One line: the growth exponent's spread and the verdicts per seed.

        Returns:
            E.g. ``"growth exponent 0.12 [0.10, 0.15] over 3 seeds; 3/3 logarithmic"``.
        """
        med, lo, hi = self.growth_exponent
        n = len(self.fits)
        counts = ", ".join(f"{c}/{n} {v}" for v, c in sorted(self.counts().items()))
        return f"growth exponent {med:.2f} [{lo:.2f}, {hi:.2f}] over {n} seeds; {counts}"


def fit_divergence_seeds(t: ArrayLike, d: ArrayLike, **kw: Any) -> SeedFits:
    """:func:`fit_divergence` on each seed's curve, with the spread of the exponents.

    Each row of ``d`` is fitted on its own finite points (a run stopped early has NaN from
    then on); a row that cannot be fitted (fewer than 8 finite points, or less than two
    decades of them) gets ``None`` and its reason.

    Args:
        t: positive, strictly increasing times, shape ``(P,)``.
        d: one curve per seed, shape ``(S, P)``.
        **kw: ``late`` and ``points`` of :func:`fit_divergence`.

    Returns:
        The fits and the ``(median, min, max)`` of the growth and rate exponents.

    Raises:
        ValueError: if ``d`` is not 2-D with ``t``'s length.
    """
    t = np.asarray(t, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or t.ndim != 1 or d.shape[1] != t.size:
        raise ValueError(f"d must be (S, P) with P = len(t), got {d.shape} for t {t.shape}")
    fits: list[DivergenceFit | None] = []
    verdicts: list[str] = []
    for row in d:
        ok = np.isfinite(row)
        try:
            fit = fit_divergence(t[ok], row[ok], **kw)
        except ValueError as exc:
            fits.append(None)
            verdicts.append(f"undecided ({exc})")
            continue
        fits.append(fit)
        verdicts.append(fit.verdict)
    return SeedFits(
        tuple(fits),
        tuple(verdicts),
        _spread([f.growth_exponent for f in fits if f is not None]),
        _spread([f.rate_exponent for f in fits if f is not None]),
    )
