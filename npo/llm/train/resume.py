"""What ``--resume`` checks, and what it lets change.

A checkpoint's ``trainer_state.json`` records the run's configuration, the resolved paths (for
information) and content digests (:func:`run_digests`): the starting weights
(:func:`~npo.llm.train.reference.weights_digest`), the tokenizer
(:func:`~npo.llm.digests.tokenizer_digest`) and the token ids of every data source
(:meth:`~npo.llm.encoding.Encoded.digest`). A resume

- compares the digests, not the paths: ``--data data`` and ``--data /abs/data`` are the same
  run, a different dataset behind the same relative path is refused (:func:`check_digests`);
- refuses any other change of configuration, except :data:`RESUME_FREE` (bookkeeping: progress
  bars, checkpoint and evaluation cadence, the cache location) and :data:`RESUME_CHANGEABLE`
  (the learning rate, the schedule, the run's length: what the advice after a non-finite loss
  needs, and what extends a finished run), whose changes are applied
  (:func:`apply_changes`) and recorded in the log and on stderr (:func:`record_resume`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from npo.llm.digests import tokenizer_digest
from npo.llm.encoding import Encoded
from npo.llm.train.config import TrainConfig
from npo.llm.train.log import append_event
from npo.results import to_jsonable

__all__ = [
    "PATH_FIELDS",
    "RESUME_CHANGEABLE",
    "RESUME_FREE",
    "apply_changes",
    "check_digests",
    "record_resume",
    "resume_changes",
    "run_digests",
    "run_paths",
]

RESUME_FREE = frozenset(
    {
        "resume",
        "progress",
        "eval_every",
        "checkpoint_every",
        "keep_checkpoints",
        "drift_every",
        "ref_cache",
    }
)
RESUME_CHANGEABLE = ("lr", "lr_schedule", "warmup_epochs", "epochs", "max_steps")
PATH_FIELDS = frozenset({"data", "model", "out", "idk_file", "tokenizer"})


def resume_changes(saved: Mapping[str, Any], config: TrainConfig, where: Path) -> dict:
    """The changeable options that differ from a checkpoint's configuration.

    Args:
        saved: the checkpoint's recorded configuration.
        config: the configuration of this run.
        where: the checkpoint (for the message).

    Returns:
        ``{option: [old, new]}`` for the :data:`RESUME_CHANGEABLE` options that changed.

    Raises:
        ValueError: another option changed (paths are compared by content elsewhere).
    """
    now = to_jsonable(config)
    keys = (set(saved) | set(now)) - RESUME_FREE - PATH_FIELDS
    diff = sorted(k for k in keys if saved.get(k) != now.get(k))
    fixed = [k for k in diff if k not in RESUME_CHANGEABLE]
    if fixed:
        shown = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in fixed)
        allowed = ", ".join(f"--{k.replace('_', '-')}" for k in RESUME_CHANGEABLE)
        raise ValueError(
            f"--resume with a different configuration than {where} ({shown}); only {allowed} "
            "may change on resume"
        )
    return {k: [saved.get(k), now.get(k)] for k in diff}


def run_digests(weights: str, tokenizer: Any, store: Mapping[str, Encoded]) -> dict[str, Any]:
    """The content digests a checkpoint records.

    Args:
        weights: :func:`~npo.llm.train.reference.weights_digest` of the starting model.
        tokenizer: the run's tokenizer.
        store: the encoded data of each source.

    Returns:
        ``{"weights": ..., "tokenizer": ..., "data": {source: digest}}``.
    """
    return {
        "weights": weights,
        "tokenizer": tokenizer_digest(tokenizer),
        "data": {s: e.digest() for s, e in sorted(store.items())},
    }


def run_paths(config: TrainConfig) -> dict[str, str | None]:
    """The resolved paths of a run's inputs and outputs (recorded for information only).

    Returns:
        ``{option: absolute path}`` (``hf:`` sources as given; None for unset options).
    """
    out = {}
    for name in ("data", "model", "out", "idk_file", "tokenizer", "ref_cache"):
        value = getattr(config, name, None)
        if value is None or str(value).startswith("hf:"):
            out[name] = value
        else:
            out[name] = os.path.realpath(os.path.expanduser(str(value)))
    return out


_WHAT = {
    "weights": "the starting model's weights (--model)",
    "tokenizer": "the tokenizer",
}


def check_digests(saved: Mapping[str, Any], now: Mapping[str, Any], where: Path) -> None:
    """Refuse a resume whose model, tokenizer or data differ in content from the checkpoint's.

    Args:
        saved: the checkpoint's ``digests`` (a checkpoint without them passes).
        now: :func:`run_digests` of this run.
        where: the checkpoint (for the message).

    Raises:
        ValueError: naming what changed.
    """
    if not saved:
        return
    changed = [_WHAT[k] for k in ("weights", "tokenizer") if saved.get(k) != now.get(k)]
    before, after = saved.get("data") or {}, now.get("data") or {}
    for source in sorted(set(before) | set(after)):
        if before.get(source) != after.get(source):
            changed.append(f"the {source} data (tokens of --data)")
    if changed:
        raise ValueError(
            f"--resume from {where}: {', '.join(changed)} differ in content from what the "
            "checkpoint was trained on (paths do not matter, contents do); resume with the "
            "same inputs, or start a new run in another --out"
        )


def apply_changes(scheduler: Any, optimizer: Any, config: TrainConfig, changes: Mapping) -> None:
    """Put a changed learning rate or schedule into a resumed optimizer and scheduler.

    The scheduler was built from this run's configuration (its warm-up and length) and loaded
    with the checkpoint's step; its base rate becomes ``config.learning_rate`` when ``lr``
    changed, and each group's rate is recomputed for the step it resumes at.

    Args:
        scheduler: the run's ``LambdaLR`` (state loaded).
        optimizer: its optimizer (state loaded).
        config: this run's configuration.
        changes: from :func:`resume_changes`.
    """
    if not changes:
        return
    groups = optimizer.param_groups
    if "lr" in changes:
        scheduler.base_lrs = [config.learning_rate for _ in scheduler.base_lrs]
        for g in groups:
            g["initial_lr"] = config.learning_rate
    for g, base, fn in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas):
        g["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [g["lr"] for g in groups]


def record_resume(out_dir: Path, step: int, where: Path, changes: Mapping, *, main: bool) -> None:
    """Log a resume: an event record in ``log.jsonl``, and each change as a line on stderr.

    Args:
        out_dir: the run directory.
        step: the checkpoint's step.
        where: the checkpoint.
        changes: from :func:`resume_changes`.
        main: whether this is the main process (the only one that writes and prints).
    """
    if not main:
        return
    append_event(out_dir, "resume", step, checkpoint=str(where), changes=dict(changes))
    for key, (old, new) in changes.items():
        print(
            f"resume: --{key.replace('_', '-')} changed from {old} to {new} at step {step}",
            file=sys.stderr,
            flush=True,
        )
