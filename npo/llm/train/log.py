"""The run's log and the evaluation hooks whose values join it.

``OUT/log.jsonl`` holds one JSON record per optimizer step (``step`` from 1; a record of step
0 holds what the hooks returned before training), written through
:func:`npo.results.append_jsonl` / :func:`npo.results.write_jsonl`. An :data:`EvalHook` is
called with a :class:`HookContext` at step 0, every ``eval_every`` steps and at the end; the
mapping it returns is merged into that step's record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from npo.llm.train.config import TrainConfig
from npo.results import append_jsonl, write_jsonl

__all__ = ["LOG_FILE", "EvalHook", "HookContext", "append_log", "read_log", "truncate_log"]

LOG_FILE = "log.jsonl"


@dataclass
class HookContext:
    """What an evaluation hook sees.

    ``model`` is the unwrapped Hugging Face model, in eval mode under ``torch.no_grad()`` during
    the call; hooks run on every process.
    """

    step: int
    epoch: float
    model: Any
    tokenizer: Any
    accelerator: Any
    config: TrainConfig
    out_dir: Path
    device: torch.device


EvalHook = Callable[[HookContext], Mapping[str, Any] | None]
"""The type of an evaluation hook, which returns values to merge into the log record."""


def read_log(out_dir: str | Path) -> list[dict[str, Any]]:
    """The per-step records of ``OUT/log.jsonl``.

    Returns:
        The records in file order (empty without a log).
    """
    path = Path(out_dir) / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_log(out_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one record to ``OUT/log.jsonl`` (NaN/inf become null)."""
    append_jsonl(out_dir / LOG_FILE, record)


def truncate_log(out_dir: Path, step: int) -> None:
    """Keep the records of steps <= ``step`` (a resumed run rewrites the rest)."""
    records = [r for r in read_log(out_dir) if r.get("step", 0) <= step]
    write_jsonl(out_dir / LOG_FILE, records)
