"""Saving models atomically: ``save_pretrained`` into a temporary directory, renamed into place.

:func:`save_model_dir` writes a model and its tokenizer (safetensors) with ``npo_model.json``
beside them (:mod:`npo.llm.digests`); :func:`saving` turns a failed write (a full or read-only
disk) into one error naming the path; :func:`honor_umask` gives what was written the modes
``mkdir``/``open`` would; :func:`replace_dir` swaps a finished directory into place.
:mod:`npo.llm.model` re-exports these names.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["honor_umask", "replace_dir", "save_model_dir", "saving"]


def save_model_dir(
    model: Any,
    tokenizer: Any,
    path: Path,
    *,
    state_dict: dict | None = None,
    base: str | os.PathLike | None = None,
    base_digest: str | None = None,
) -> Path:
    """``save_pretrained`` (safetensors) of model and tokenizer into ``path``, atomically.

    Written into a temporary sibling directory with ``npo_model.json`` (the tokenizer's digest;
    for an adapter, its ``base`` directory and that base's digest,
    :func:`~npo.llm.digests.write_model_meta`), then renamed into place with the modes the
    umask gives (as ``mkdir``/``open`` would). An interrupted or failed save leaves no
    temporary directory.

    Returns:
        ``path``.

    Raises:
        FileIOError: (an ``OSError``) naming ``path`` when the disk is full or read-only.
    """
    from npo.llm.digests import write_model_meta

    path = Path(path)
    with saving(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        with saving(path):
            model.save_pretrained(tmp, state_dict=state_dict)  # safetensors (the default)
            tokenizer.save_pretrained(tmp)
            write_model_meta(tmp, tokenizer, base=base, base_digest=base_digest)
            honor_umask(tmp)
            replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


@contextlib.contextmanager
def saving(path: str | os.PathLike) -> Iterator[None]:
    """Report a failed write inside the block as a :class:`~npo.errors.FileIOError` on ``path``.

    Python's ``OSError`` and the I/O errors of safetensors (whose code is only in the text,
    ``"(os error 28)"``) become one error naming ``path``; other errors pass unchanged.

    Yields:
        Nothing.
    """
    from safetensors import SafetensorError

    from npo.errors import io_error, os_error_from_message

    try:
        yield
    except OSError as exc:
        raise io_error(exc, path, "write") from exc
    except SafetensorError as exc:
        err = os_error_from_message(exc, path, "write")
        if err is None:
            raise
        raise err from exc


def honor_umask(folder: Path) -> None:
    """Give ``folder`` and the files in it the modes ``mkdir``/``open`` would (the umask's)."""
    from npo.results import creation_mode

    for p in folder.rglob("*"):
        p.chmod(creation_mode(directory=p.is_dir()))
    folder.chmod(creation_mode(directory=True))


def replace_dir(tmp: Path, path: Path) -> None:
    """Move directory ``tmp`` to ``path``, replacing an existing one (old one removed after)."""
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
