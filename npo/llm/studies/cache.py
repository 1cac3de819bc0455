"""Cache keys and cached JSON records of the studies (under a directory the study names)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from npo.results import to_jsonable, write_json

__all__ = ["cache_key", "cached_json"]


def cache_key(*parts: Any) -> str:
    """A short hash of JSON-able ``parts`` (dataclasses and arrays converted).

    Returns:
        16 hex digits.
    """
    text = json.dumps(to_jsonable(parts), sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def cached_json(path: Path, run: Callable[[], Any]) -> Any:
    """The JSON at ``path`` if an earlier run left it, else ``run()``'s, written there first.

    Returns:
        The parsed record (what a later call reads back).
    """
    if path.is_file():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, run())
    return json.loads(path.read_text())
