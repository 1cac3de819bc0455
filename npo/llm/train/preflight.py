"""What ``finetune``/``unlearn`` check before reading data or loading a model, and ``--out``.

- :func:`check_run_inputs`: ``--out`` never is, contains or lies inside an input (the model,
  an adapter's base, the data, the IDK file, the tokenizer), the reference cache is usable and
  not inside an input, ``--max-length`` fits the model's positions;
- :func:`check_data`: the splits' content (copies, conflicting answers: warnings; a retain
  split that repeats the forget rows: refused);
- :func:`prepare_out`: the output directory, the checkpoint to resume from and the options
  the resume changes (:mod:`npo.llm.train.resume`); temporaries a killed run left behind
  (``OUT/.model.*``, ``OUT/checkpoints/.tmp-step-*``, ``OUT/.*.tmp``) are removed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from npo.errors import warn
from npo.llm.data import QASplit
from npo.llm.digests import adapter_base, read_json
from npo.llm.guard import (
    check_context,
    check_outputs,
    check_overlap,
    check_ref_cache,
    split_warnings,
)
from npo.llm.train.checkpoint import latest_checkpoint
from npo.llm.train.config import FinetuneConfig, TrainConfig, UnlearnConfig
from npo.llm.train.log import truncate_log
from npo.llm.train.resume import resume_changes
from npo.results import ensure_out_dir

__all__ = ["check_data", "check_run_inputs", "clean_stale", "prepare_out", "run_inputs"]


def run_inputs(config: TrainConfig) -> dict[str, Any]:
    """The paths a run reads, by option.

    Returns:
        ``{"--model": ..., "the base of --model": ..., "--data": ..., "--idk-file": ...,
        "--tokenizer": ...}`` (None where unset).
    """
    inputs: dict[str, Any] = {"--model": config.model, "--data": config.data}
    if config.model is not None and (Path(config.model) / "adapter_config.json").is_file():
        inputs["adapter base of --model"] = adapter_base(Path(config.model))
    if isinstance(config, UnlearnConfig):
        inputs["--idk-file"] = config.idk_file
    if isinstance(config, FinetuneConfig):
        inputs["--tokenizer"] = config.tokenizer
    return inputs


def check_run_inputs(config: TrainConfig) -> None:
    """Refuse outputs over inputs, a bad reference cache and a too long ``--max-length``.

    Raises:
        ValueError: one line naming the options and paths.
    """
    inputs = run_inputs(config)
    check_outputs({"--out": config.out}, inputs)
    if isinstance(config, UnlearnConfig):
        check_ref_cache(config.ref_cache, inputs)
    if config.model is not None:
        check_context(config.model, config.max_length, "--max-length")


def check_data(acc: Any, splits: list[QASplit], forget: QASplit | None, retain: QASplit | None):
    """Warn about copies and conflicting answers; refuse a retain split repeating forget rows.

    Args:
        acc: the accelerator (only the main process prints).
        splits: every split the run reads.
        forget: the forget split (unlearning).
        retain: the retain split it is paired with, if read.

    Raises:
        ValueError: from :func:`~npo.llm.guard.check_overlap`.
    """
    lines = [w for s in splits for w in split_warnings(s)]
    if forget is not None and retain is not None:
        lines += check_overlap(forget, retain)
    if acc.is_main_process:
        for line in lines:
            warn(line)


def clean_stale(out: Path) -> None:
    """Remove the temporaries an interrupted or killed run left in ``out``.

    ``.model.*``/``.init.*`` (a final save cut short), ``checkpoints/.tmp-step-*`` (a checkpoint
    write cut short) and ``.*.tmp`` files (an atomic write cut short); only names npo itself
    creates.
    """
    for pattern in (".model.*", ".init.*", "checkpoints/.tmp-step-*", ".*.tmp", "eval/.*.tmp"):
        for path in out.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def prepare_out(
    config: TrainConfig, acc: Any
) -> tuple[Path, tuple[int, Path] | None, dict[str, list]]:
    """The output directory, the checkpoint to resume from and the options the resume changes.

    Refuses to overwrite a run (without ``--resume``) and to resume with another configuration
    than :data:`~npo.llm.train.resume.RESUME_CHANGEABLE` allows.

    Returns:
        ``(out, (step, checkpoint) or None, {option: [old, new]})``.
    """
    out = ensure_out_dir(config.out)
    latest = latest_checkpoint(out / "checkpoints")
    if not config.resume:
        if latest is not None or (out / "log.jsonl").exists():
            raise ValueError(
                f"{out} already holds a run (log.jsonl or checkpoints); pass --resume to "
                "continue it, or choose another --out"
            )
        if acc.is_main_process:
            clean_stale(out)
        return out, None, {}
    if acc.is_main_process:
        clean_stale(out)
    if latest is None:
        acc.print(f"--resume: no checkpoint in {out}/checkpoints; starting from step 0")
        if acc.is_main_process:
            truncate_log(out, -1, warn=warn)  # the run starts over: its step-0 record too
        return out, None, {}
    state = read_json(latest[1] / "trainer_state.json", "checkpoint state")
    saved = state.get("config") if isinstance(state, dict) else None
    if not isinstance(saved, dict):
        raise ValueError(f"{latest[1] / 'trainer_state.json'} records no run configuration")
    return out, latest, resume_changes(saved, config, latest[1])
