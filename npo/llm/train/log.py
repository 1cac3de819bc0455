"""The run's log and the evaluation hooks whose values join it.

``OUT/log.jsonl`` holds one JSON record per optimizer step (``step`` from 1; a record of step
0 holds what the hooks returned before training), written through
:func:`npo.results.append_jsonl` / :func:`npo.results.write_jsonl`. *Event* records carry an
``"event"`` key instead of metrics (``{"event": "resume", "step": N, "changes": {...}}``: a
resume and the options it changed); :func:`read_log` leaves them out unless asked.

A line cut short by a crash or a full disk during an append (a *torn* last line) is dropped
when the run resumes (:func:`truncate_log`, with a warning); any other malformed line is an
error naming the file and the line. An :data:`EvalHook` is
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

__all__ = [
    "LOG_FILE",
    "EvalHook",
    "HookContext",
    "append_event",
    "append_log",
    "read_log",
    "truncate_log",
]

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


def _parse(path: Path) -> tuple[list[dict[str, Any]], bool]:
    # The records of a log file and whether its last line was torn (dropped).
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        from npo.errors import io_error

        raise io_error(exc, path, "read") from exc
    lines = text.split("\n")
    records: list[dict[str, Any]] = []
    torn = False
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            last = all(not rest.strip() for rest in lines[i:])
            if last and not text.endswith("\n"):
                torn = True  # an append cut short: nothing after it, no newline
                continue
            raise ValueError(
                f"{path}:{i}: malformed log record ({exc.msg.removesuffix(' at')} at column "
                f"{exc.colno}); only a torn last line is dropped on --resume"
            ) from None
        if not isinstance(rec, dict):
            raise ValueError(f"{path}:{i}: a log record must be a JSON object")
        records.append(rec)
    return records, torn


def read_log(out_dir: str | Path, *, events: bool = False) -> list[dict[str, Any]]:
    """The per-step records of ``OUT/log.jsonl``.

    Args:
        out_dir: the run directory.
        events: also return the event records (resumes).

    Returns:
        The records in file order (empty without a log).

    Raises:
        ValueError: a malformed line (naming the file and line), or a torn last line (a run
            interrupted mid-append; ``--resume`` drops it).
    """
    path = Path(out_dir) / LOG_FILE
    if not path.is_file():
        return []
    records, torn = _parse(path)
    if torn:
        raise ValueError(
            f"{path}: the last line is cut short (the run was interrupted while writing it); "
            "--resume drops it"
        )
    return [r for r in records if events or "event" not in r]


def append_log(out_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one record to ``OUT/log.jsonl`` (NaN/inf become null)."""
    append_jsonl(out_dir / LOG_FILE, record)


def append_event(out_dir: Path, event: str, step: int, **fields: Any) -> None:
    """Append an event record ``{"event": event, "step": step, **fields}`` to the log."""
    append_jsonl(out_dir / LOG_FILE, {"event": event, "step": step, **fields})


def truncate_log(
    out_dir: Path, step: int, *, warn: Callable[[str], None] | None = None
) -> tuple[int, int]:
    """Keep the records of steps <= ``step`` (a resumed run rewrites the rest).

    A torn last line is dropped. The file is rewritten atomically (a full disk leaves it as it
    was); ``warn`` is told what was dropped.

    Args:
        out_dir: the run directory.
        step: the checkpoint's step.
        warn: called with a one-line message when lines are dropped.

    Returns:
        ``(torn lines dropped, records after step dropped)``.
    """
    path = Path(out_dir) / LOG_FILE
    if not path.is_file():
        return 0, 0
    records, torn = _parse(path)
    kept = [r for r in records if r.get("step", 0) <= step]
    dropped = len(records) - len(kept)
    if torn or dropped:
        write_jsonl(path, kept)
        if warn is not None:
            parts = ["1 torn last line (an interrupted append)"] if torn else []
            if dropped:
                parts.append(f"{dropped} records after step {step}")
            warn(f"{path}: dropped {' and '.join(parts)}; kept {len(kept)} records")
    return int(torn), dropped
