"""Cache keys, cached JSON records and one-seed curve summaries of the studies.

Records live under a directory the study names.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from npo.results import to_jsonable, write_json

__all__ = ["cache_key", "cached_json", "one_seed"]


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


def one_seed(values: list[Any]) -> dict[str, Any]:
    """One run's curve in the summary form of :class:`npo.experiment.ExperimentResult`.

    With one seed, ``mean``, ``median``, ``q25`` and ``q75`` are the curve itself and ``std``
    is 0; None becomes NaN.

    Returns:
        ``{"mean", "std", "median", "q25", "q75"}`` (T,) arrays and ``"seeds"`` (1, T).
    """
    a = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return {"mean": a, "std": np.zeros_like(a), "median": a, "q25": a, "q75": a, "seeds": a[None]}
