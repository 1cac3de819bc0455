"""What reproduces a result: the record every results file carries under ``"provenance"``.

:func:`provenance` collects the package version, the git commit of the checkout npo runs from
(when it runs from one), the Python and library versions (read from the installed
distributions' metadata, so nothing heavy is imported), and what the caller knows: the
resolved configuration, the seed, the world size and per-device batch, content digests and
resolved paths. Nothing in it changes between two runs of the same command on the same
checkout (no time stamps, no host names), so results stay byte-identical.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["LIBRARIES", "git_commit", "library_versions", "provenance"]

LIBRARIES = (
    "torch",
    "transformers",
    "accelerate",
    "numpy",
    "safetensors",
    "tokenizers",
    "peft",
    "scipy",
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries results depend on (None: not installed).

    Returns:
        ``{distribution: version}`` for :data:`LIBRARIES`.
    """
    return {name: _version(name) for name in LIBRARIES}


@functools.lru_cache(maxsize=1)
def git_commit() -> dict[str, Any] | None:
    """The commit of the git checkout this package runs from, and whether it has local changes.

    Returns:
        ``{"commit": sha, "dirty": bool}``, or None outside a checkout or without git.
    """
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": sha, "dirty": bool(status.strip())}


def provenance(**known: Any) -> dict[str, Any]:
    """The provenance record of a result.

    Args:
        **known: what the caller knows, recorded as given (e.g. ``config``, ``seed``,
            ``world_size``, ``per_device_batch``, ``digests``, ``paths``); None values kept, so
            a missing field reads as unknown rather than absent.

    Returns:
        ``{"npo_version", "git", "python", "libraries", **known}``.
    """
    return {
        "npo_version": _version("npo"),
        "git": git_commit(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        **known,
    }
