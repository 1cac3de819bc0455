"""Input validation, one style for the whole project.

Every check raises ``ValueError`` whose message names the argument (``"lr must be a finite
positive number, got -1.0"``), so the command line can print it as one ``npo: error: ...``
line.

Each check returns the value as a Python ``float``/``int``; :func:`check_fields` applies them
to fields of a (frozen) dataclass in its ``__post_init__``. The array checks of the vectorized
theory functions (``theory._validate``) give the same messages. Only the standard library is
imported, so the kernels can use these checks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = [
    "check_fields",
    "finite",
    "integer",
    "nonnegative",
    "one_of",
    "positive",
    "unit_interval",
]


def _number(name: str, value: Any, what: str) -> float:
    """``float(value)``, or ``ValueError("{name} must be {what}, got ...")`` for a non-number."""
    if not isinstance(value, bool):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{name} must be {what}, got {value!r}")


def finite(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number.

    Args:
        name: the argument's name, used in the message.
        value: the value to check.

    Returns:
        ``float(value)``.

    Raises:
        ValueError: if ``value`` is not a finite number.
    """
    x = _number(name, value, "finite")
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return x


def positive(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number ``> 0`` (``beta``, ``lr``, ``K``).

    Args:
        name: the argument's name, used in the message.
        value: the value to check.

    Returns:
        ``float(value)``.

    Raises:
        ValueError: if ``value`` is not a finite positive number.
    """
    x = _number(name, value, "a finite positive number")
    if not (math.isfinite(x) and x > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return x


def nonnegative(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number ``>= 0`` (weight decay, dropout).

    Args:
        name: the argument's name, used in the message.
        value: the value to check.

    Returns:
        ``float(value)``.

    Raises:
        ValueError: if ``value`` is not a finite number ``>= 0``.
    """
    x = _number(name, value, "a finite number >= 0")
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return x


def unit_interval(name: str, value: Any) -> float:
    """``value`` as a float if it lies in ``[0, 1)`` (Adam's ``beta1``/``beta2``).

    Args:
        name: the argument's name, used in the message.
        value: the value to check.

    Returns:
        ``float(value)``.

    Raises:
        ValueError: if ``value`` is not in ``[0, 1)``.
    """
    x = _number(name, value, "a number in [0, 1)")
    if not 0.0 <= x < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return x


def integer(name: str, value: Any, *, minimum: int | None = None) -> int:
    """``value`` as an int if it is an integer of at least ``minimum``.

    An integral float is accepted, a bool is not.

    Args:
        name: the argument's name, used in the message.
        value: the value to check.
        minimum: the smallest value allowed (None: no bound).

    Returns:
        ``int(value)``.

    Raises:
        ValueError: if ``value`` is not an integer ``>= minimum``.
    """
    bound = "" if minimum is None else f" >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer{bound}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be{bound}, got {value!r}")
    return int(value)


def one_of(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``.

    Args:
        name: the argument's name, used in the message.
        value: the value to check.
        choices: the allowed values.

    Returns:
        ``value``.

    Raises:
        ValueError: naming the valid choices otherwise.
    """
    allowed = list(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_fields(obj: Any, **rules: Iterable[str]) -> None:
    """Apply scalar checks to fields of ``obj``; a field whose value is None is skipped.

    Each keyword names a rule and lists field names: ``positive``, ``nonnegative``,
    ``finite``, ``unit_interval``, ``integer`` (any integer), or ``at_least_N`` (an integer
    ``>= N``, e.g. ``at_least_1``). Example, in a dataclass's ``__post_init__``::

        check_fields(self, at_least_1=("epochs", "batch_size"), positive=("lr",))

    Args:
        obj: the object (usually a dataclass instance) whose attributes are checked.
        **rules: rule name -> field names.

    Raises:
        ValueError: from the first failing check, naming the field.
    """
    for rule, names in rules.items():
        for name in names:
            value = getattr(obj, name)
            if value is None:
                continue
            if rule.startswith("at_least_"):
                integer(name, value, minimum=int(rule[len("at_least_") :]))
            elif rule == "integer":
                integer(name, value)
            elif rule in _SCALAR:
                _SCALAR[rule](name, value)
            else:
                raise TypeError(f"check_fields: unknown rule {rule!r}")


_SCALAR = {
    "positive": positive,
    "nonnegative": nonnegative,
    "finite": finite,
    "unit_interval": unit_interval,
}
