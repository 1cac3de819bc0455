"""Input validation shared by the theory functions: arrays of finite values with a sign
condition, and a ``ValueError`` that names the offending argument."""

from __future__ import annotations

import numpy as np

__all__ = ["as_array", "finite", "nonnegative", "positive", "positive_int", "scalar_out"]


def as_array(name: str, value) -> np.ndarray:
    """``value`` as a float64 array; ``ValueError`` naming ``name`` if it is not numeric."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers, got {value!r}") from None
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    return arr


def finite(name: str, value) -> np.ndarray:
    """``value`` as a float64 array of finite values (``ValueError`` naming ``name`` if not)."""
    arr = as_array(name, value)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {_show(arr, ~np.isfinite(arr))}")
    return arr


def positive(name: str, value) -> np.ndarray:
    """Finite and > 0 (e.g. ``beta``, ``K``, ``lr``)."""
    arr = finite(name, value)
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be positive, got {_show(arr, arr <= 0)}")
    return arr


def nonnegative(name: str, value) -> np.ndarray:
    """Finite and >= 0 (e.g. times ``t``, divergences ``D``)."""
    arr = finite(name, value)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be nonnegative, got {_show(arr, arr < 0)}")
    return arr


def positive_int(name: str, value, *, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (booleans and non-integral floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def scalar_out(out: np.ndarray):
    """A 0-d result as a Python float, anything else unchanged."""
    return float(out) if np.ndim(out) == 0 else out


def _show(arr: np.ndarray, bad: np.ndarray) -> str:
    first = float(arr[bad].flat[0])
    return repr(first) if arr.ndim == 0 else f"an array containing {first!r}"
