"""Statistics over seeds, defined once and used by experiments, tables, figures and tests.

- :func:`summarize`: ``{"mean", "std", "median", "q25", "q75", "seeds"}`` of (S, T) curves,
  ignoring NaN (failed runs).
- :func:`crossing`: "at forget distance x" means log-interpolated at the *median* curve's
  first crossing of x: the first recorded step where the median forget distance is <= x, with
  the step and the other metric interpolated linearly in ``log(forget distance)`` between that
  point and the one before (geometrically for the other metric, which is positive). A curve that
  never crosses gives ``None``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Crossing", "crossing", "median_curve", "summarize"]


def _nan_reduce(fn: Callable[..., np.ndarray], a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return fn(a, axis=0)


def median_curve(curves: np.ndarray) -> np.ndarray:
    """The median over seeds (axis 0) of (S, T) curves, ignoring NaN.

    Args:
        curves: one curve per seed, (S, T).

    Returns:
        The median curve, (T,).
    """
    return _nan_reduce(np.nanmedian, np.asarray(curves, dtype=np.float64))


def summarize(curves: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, std, median and interquartile band over seeds of (S, T) curves, ignoring NaN.

    Args:
        curves: one curve per seed, (S, T).

    Returns:
        ``{"mean", "std", "median", "q25", "q75"}``, each (T,), and ``"seeds"``, the curves.
    """
    a = np.asarray(curves, dtype=np.float64)
    return {
        "mean": _nan_reduce(np.nanmean, a),
        "std": _nan_reduce(np.nanstd, a),
        "median": median_curve(a),
        "q25": _nan_reduce(lambda x, axis: np.nanpercentile(x, 25, axis=axis), a),
        "q75": _nan_reduce(lambda x, axis: np.nanpercentile(x, 75, axis=axis), a),
        "seeds": a,
    }


@dataclass(frozen=True)
class Crossing:
    """Where the median forget distance first reaches ``level``."""

    level: float
    step: float
    other: float  # the other metric's median there (e.g. retain distance)


def crossing(
    steps: np.ndarray, forget: np.ndarray, other: np.ndarray, level: float
) -> Crossing | None:
    """The first crossing of ``level`` by the median forget curve, log-interpolated.

    Args:
        steps: the recorded steps, (T,).
        forget: forget-distance curves, (S, T).
        other: the curves read off at the crossing (e.g. retain distance), (S, T).
        level: the forget distance to reach, ``> 0``.

    Returns:
        The step and the median of ``other`` there, or None if the median never gets to
        ``level``.

    Raises:
        ValueError: if ``level`` is not positive.
    """
    if not level > 0:
        raise ValueError(f"level must be positive, got {level}")
    f, o = median_curve(forget), median_curve(other)
    below = np.flatnonzero(f <= level)
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return Crossing(level, float(steps[0]), float(o[0]))
    lf0, lf1 = np.log(f[i - 1]), np.log(max(f[i], 1e-300))
    frac = (lf0 - np.log(level)) / (lf0 - lf1) if lf0 != lf1 else 1.0
    step = steps[i - 1] + frac * (steps[i] - steps[i - 1])
    value = np.exp(np.log(o[i - 1]) + frac * (np.log(o[i]) - np.log(o[i - 1])))
    return Crossing(level, float(step), float(value))
