"""Array checks of the vectorized theory functions, in the message style of
:mod:`npo.validate` (which holds the scalar checks): each raises ``ValueError`` naming the
offending argument."""

from __future__ import annotations

from typing import Any

import numpy as np

from npo.validate import integer

__all__ = ["as_array", "finite", "nonnegative", "positive", "positive_int", "scalar_out"]


def as_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a non-empty float64 array (``ValueError`` naming ``name`` if not numeric)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers, got {value!r}") from None
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    return arr


def finite(name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array of finite values."""
    arr = as_array(name, value)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {_show(arr, ~np.isfinite(arr))}")
    return arr


def positive(name: str, value: Any) -> np.ndarray:
    """Finite and > 0 (e.g. ``beta``, ``K``, ``lr``)."""
    arr = finite(name, value)
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be a finite positive number, got {_show(arr, arr <= 0)}")
    return arr


def nonnegative(name: str, value: Any) -> np.ndarray:
    """Finite and >= 0 (e.g. times ``t``, divergences ``D``)."""
    arr = finite(name, value)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {_show(arr, arr < 0)}")
    return arr


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (booleans and non-integral floats are refused)."""
    return integer(name, value, minimum=minimum)


def scalar_out(out: np.ndarray) -> Any:
    """A 0-d result as a Python float, anything else unchanged."""
    return float(out) if np.ndim(out) == 0 else out


def _show(arr: np.ndarray, bad: np.ndarray) -> str:
    first = float(arr[bad].flat[0])
    return repr(first) if arr.ndim == 0 else f"an array containing {first!r}"
