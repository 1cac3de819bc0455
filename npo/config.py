"""Frozen-dataclass configs with command-line overrides (no Hydra).

:func:`add_dataclass_args` adds one ``--flag`` per field (help from ``field(metadata={"help":
...})``); :func:`dataclass_from_args` builds the config back, so its ``__post_init__``
validation runs on every CLI value.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

__all__ = ["add_dataclass_args", "dataclass_from_args"]

T = TypeVar("T")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_dataclass_args(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: tuple = (),
    prefix: str = "",
) -> None:
    """Add a ``--field-name`` option for each field of dataclass ``cls``.

    Defaults and help come from the fields (``field(metadata={"help": ...})``); booleans become
    ``--x/--no-x``, ``Literal`` types choices, tuples ``nargs="+"``, optional numbers accept
    ``none``.

    Args:
        parser: the parser (or argument group) to add to.
        cls: the dataclass.
        skip: field names to leave out.
        prefix: ``"eval-"`` names the options ``--eval-field-name`` (dest ``eval_field_name``),
            so two configs with a common field name can share a parser.

    Raises:
        TypeError: for a field type the command line cannot express.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, optional = _unwrap_optional(hints[f.name])
        default = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        flag = "--" + prefix + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"default": default, "dest": _dest(prefix, f.name)}
        doc = f.metadata.get("help", "")
        kwargs["help"] = f"{doc} (default: {default})" if doc else f"default: {default}"
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kwargs["choices"] = list(typing.get_args(tp))
        elif origin is tuple:
            inner = typing.get_args(tp)[0]
            kwargs.update(nargs="+", type=inner)
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported config type {tp!r}")
        if optional and "type" in kwargs:
            base = kwargs["type"]
            kwargs["type"] = lambda s, base=base: None if s.lower() == "none" else base(s)
        parser.add_argument(flag, **kwargs)


def _dest(prefix: str, name: str) -> str:
    return prefix.replace("-", "_") + name


def dataclass_from_args(
    cls: type[T], ns: argparse.Namespace, *, prefix: str = "", **extra: Any
) -> T:
    """Build ``cls`` from a parsed namespace, so its ``__post_init__`` validation runs.

    Args:
        cls: the dataclass given to :func:`add_dataclass_args`.
        ns: the parsed arguments.
        prefix: as given to :func:`add_dataclass_args`.
        **extra: field values that override the namespace's.

    Returns:
        The config instance (tuples restored from lists).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        dest = _dest(prefix, f.name)
        if not f.init or not hasattr(ns, dest):
            continue
        value = getattr(ns, dest)
        tp, _ = _unwrap_optional(hints[f.name])
        if typing.get_origin(tp) is tuple and value is not None:
            value = tuple(value)
        values[f.name] = value
    values.update(extra)
    return cls(**values)
