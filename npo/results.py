"""The one place that writes result files: JSON, PNG figures (with their config JSON beside
them) and Markdown, atomically, into a directory the caller names. No pickles.

Each package's writer (``synthetic/figures.py``-style) and :mod:`npo.cli` call these.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "ensure_out_dir",
    "to_jsonable",
    "write_figure",
    "write_json",
]


def ensure_out_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and check it is a writable directory (``ValueError`` if not)."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create output directory {str(out)!r}: {exc.strerror}") from None
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"output directory {str(out)!r} is not a writable directory")
    return out


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file in the same directory, then rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, numpy/torch arrays and scalars to JSON types; NaN/inf -> None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` (see :func:`to_jsonable`) as indented JSON."""
    text = json.dumps(to_jsonable(obj), indent=1, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def write_figure(fig: Any, out_dir: str | os.PathLike, name: str, config: Any = None) -> Path:
    """Save ``fig`` as ``out_dir/name.png``; if ``config`` is given, write it beside the PNG as
    ``out_dir/name.config.json``. Returns the PNG path."""
    import io

    out = ensure_out_dir(out_dir)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    png = atomic_write_bytes(out / f"{name}.png", buf.getvalue())
    if config is not None:
        write_json(out / f"{name}.config.json", config)
    return png
