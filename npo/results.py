"""The one place that writes result files, atomically, into a directory the caller names.

JSON, JSON Lines, PNG figures (with their config JSON beside them) and Markdown; no pickles.

Every package and :mod:`npo.cli` write through these functions; :func:`write_result` writes an
experiment's :class:`~npo.experiment.ExperimentResult` as ``NAME.png`` + ``NAME.json`` +
``NAME.md``. Only numpy (and matplotlib, inside :func:`write_result`) is imported.
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

from npo.errors import io_error

__all__ = [
    "append_jsonl",
    "atomic_write_bytes",
    "atomic_write_text",
    "creation_mode",
    "ensure_out_dir",
    "markdown_table",
    "to_jsonable",
    "write_figure",
    "write_json",
    "write_jsonl",
    "write_result",
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


def _umask() -> int:
    # The process's umask, read without changing it where Linux reports it.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_all(fd: int, data: bytes) -> None:
    # os.write until every byte is written (a short write is not an error).
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def creation_mode(directory: bool = False) -> int:
    """The permission bits ``open()`` / ``mkdir()`` would give a new file or directory.

    ``0o666`` (files) or ``0o777`` (directories) without the bits of the umask. Temporary
    files and directories (``mkstemp``, ``mkdtemp``) are created private (``0o600``/``0o700``);
    what is renamed into place gets these bits first.

    Args:
        directory: the mode of a directory instead of a file.

    Returns:
        The mode, e.g. ``0o644`` / ``0o755`` under umask ``022``.
    """
    return (0o777 if directory else 0o666) & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file in the same directory, then rename it into place.

    The file gets the mode ``open()`` would give it (:func:`creation_mode`). An interrupted or
    failed write leaves the previous file (if any) intact and no temporary file behind.

    Args:
        path: the file to write.
        data: its new contents.

    Returns:
        ``path``.

    Raises:
        FileIOError: (an ``OSError``) naming ``path``, e.g. on a full disk.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise io_error(exc, path, "write") from exc
    try:
        try:
            _write_all(fd, data)
            os.fchmod(fd, creation_mode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise io_error(exc, path, "write") from exc
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` as UTF-8 to ``path`` (see :func:`atomic_write_bytes`)."""
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
    """Save ``fig`` as ``out_dir/name.png``, with ``config`` beside it as JSON.

    Args:
        fig: a matplotlib Figure.
        out_dir: the output directory (created if needed).
        name: the file stem.
        config: if given, written as ``out_dir/name.config.json``.

    Returns:
        The PNG's path.
    """
    import io

    out = ensure_out_dir(out_dir)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    png = atomic_write_bytes(out / f"{name}.png", buf.getvalue())
    if config is not None:
        write_json(out / f"{name}.config.json", config)
    return png


def _jsonl_line(record: Any) -> str:
    return json.dumps(to_jsonable(record), allow_nan=False) + "\n"


def write_jsonl(path: str | os.PathLike, records: Any) -> Path:
    """Atomically write ``records`` as JSON Lines, one object per line.

    Args:
        path: the file to write (replaced atomically).
        records: an iterable of JSON-able objects (see :func:`to_jsonable`).

    Returns:
        The path written.
    """
    return atomic_write_text(path, "".join(_jsonl_line(r) for r in records))


def append_jsonl(path: str | os.PathLike, record: Any) -> Path:
    """Append one record as a JSON line to ``path`` (created if absent).

    Args:
        path: the JSON Lines file.
        record: a JSON-able object (see :func:`to_jsonable`).

    Returns:
        The path written.

    Raises:
        FileIOError: (an ``OSError``) naming ``path``, e.g. on a full disk; the line may be
            cut short (a torn last line, which a resumed run drops).
    """
    path = Path(path)
    line = _jsonl_line(record).encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # umask applies
        try:
            _write_all(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        raise io_error(exc, path, "append to") from exc
    return path


def _cell(value: Any, column: str = "") -> str:
    if value is None:  # crossings that never happen; otherwise not applicable
        return "never" if "_at_0." in column else "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: list[dict]) -> str:
    """A Markdown table of ``rows`` (the columns of the first row; floats to 4 digits).

    Args:
        rows: one dict per row.

    Returns:
        The table's text ("" for no rows).
    """
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c), c) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_result(
    result: Any, out_dir: str | os.PathLike, plot: Any, extra: Mapping[str, Any] | None = None
) -> list[Path]:
    """Write an experiment's figure(s), JSON and Markdown summary into ``out_dir``.

    ``plot(result)`` returns a Figure, or ``{suffix: Figure}`` written as
    ``NAME{suffix}.png``; the JSON is :meth:`~npo.experiment.ExperimentResult.to_json` (plus
    ``extra``'s keys, e.g. ``provenance``), the Markdown the table and notes.

    Args:
        result: an :class:`~npo.experiment.ExperimentResult`.
        out_dir: the output directory (created if needed).
        plot: the experiment's plot function.
        extra: further top-level keys of the JSON.

    Returns:
        The paths written: the PNGs, then the JSON and the Markdown file.
    """
    import matplotlib.pyplot as plt

    out = ensure_out_dir(out_dir)
    drawn = plot(result)
    figures = drawn if isinstance(drawn, dict) else {"": drawn}
    pngs = []
    for suffix, fig in figures.items():
        try:
            pngs.append(write_figure(fig, out, f"{result.name}{suffix}"))
        finally:
            plt.close(fig)
    js = write_json(out / f"{result.name}.json", {**result.to_json(), **(extra or {})})
    md = [f"# {result.name}", "", markdown_table(result.table), ""]
    md += [f"- {n}" for n in result.notes]
    names = ", ".join(f"`{p.name}`" for p in pngs)
    md += ["", f"Figures: {names}; data: `{js.name}`.", ""]
    mdp = atomic_write_text(out / f"{result.name}.md", "\n".join(md))
    return [*pngs, js, mdp]
