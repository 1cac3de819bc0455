"""Atomic training checkpoints without pickles, the non-finite guard, and exact resumption.

``OUT/checkpoints/step-NNNNNN/`` holds

- ``model/``: ``save_pretrained`` safetensors and the tokenizer (loadable on its own);
- ``optimizer.safetensors`` + ``optimizer.json``: every optimizer-state tensor, keyed by
  parameter name, and the non-tensor state and parameter groups (exact floats in JSON);
- ``rng-<rank>.safetensors``: each process's torch CPU (and CUDA) generator state;
- ``trainer_state.json``: the step, the scheduler state and the run configuration.

A checkpoint is written into ``.tmp-step-NNNNNN`` and renamed into place only when complete,
so an interrupted write never leaves a half checkpoint. The guard keeps a NaN from ever
overwriting the last good one: a non-finite loss or gradient stops the step before the
optimizer changes the weights (:class:`NonFiniteLossError`), and :func:`save_checkpoint` checks
the weights before writing. The error names the cause it can see (non-finite weights, the
starting model, or the last update, i.e. the learning rate) and a checkpoint that resuming
from with a lower ``--lr`` can fix: a checkpoint whose own weights gave the non-finite value
is set aside as ``step-NNNNNN.nonfinite`` (kept, never resumed from). A write that fails (a
full disk) or is interrupted removes its temporary directory and leaves the previous
checkpoint intact. :func:`start_or_resume` checks the content digests
(:mod:`npo.llm.train.resume`), loads a checkpoint back exactly (weights, optimizer, scheduler,
RNG) or records the start of a new run.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from npo.errors import RunFailed, warn
from npo.llm.digests import read_json, write_model_meta
from npo.llm.saving import honor_umask, replace_dir, saving
from npo.llm.train.assemble import Setup, local_share
from npo.llm.train.log import truncate_log
from npo.llm.train.resume import apply_changes, check_digests, record_resume, run_paths
from npo.llm.train.statefiles import (
    load_model_weights,
    load_optimizer,
    load_rng,
    read_weights,
    save_optimizer,
    save_rng,
    write_state,
)
from npo.results import to_jsonable, write_json

__all__ = [
    "NonFiniteLossError",
    "all_finite",
    "interrupted_message",
    "latest_checkpoint",
    "list_checkpoints",
    "load_model_weights",
    "load_optimizer",
    "load_rng",
    "nonfinite_error",
    "read_weights",
    "resume_from",
    "save_checkpoint",
    "save_optimizer",
    "save_rng",
    "start_or_resume",
    "write_checkpoint",
]

_STEP_DIR = re.compile(r"step-(\d{6,})")


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first.

    Returns:
        ``[(step, path), ...]`` of the directories that hold a ``trainer_state.json``.
    """
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        m = _STEP_DIR.fullmatch(path.name)
        if m and (path / "trainer_state.json").is_file():
            found.append((int(m[1]), path))
    return sorted(found)


def latest_checkpoint(root: Path) -> tuple[int, Path] | None:
    """The newest complete checkpoint under ``root``.

    Returns:
        ``(step, path)``, or None when there is none.
    """
    found = list_checkpoints(root)
    return found[-1] if found else None


def step_dir(root: Path, step: int) -> Path:
    """The directory of step ``step``'s checkpoint.

    Returns:
        ``root/step-NNNNNN``.
    """
    return root / f"step-{step:06d}"


def prune(root: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest complete checkpoints (and stale temporaries)."""
    for _, path in list_checkpoints(root)[: -keep if keep else None]:
        shutil.rmtree(path, ignore_errors=True)
    for tmp in root.glob(".tmp-step-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def commit(tmp: Path, final: Path) -> None:
    """Rename a finished temporary checkpoint directory into place."""
    replace_dir(tmp, final)


def _previous(root: Path) -> str:
    last = latest_checkpoint(root)
    return f"the previous checkpoint {last[1]} is intact" if last else "no checkpoint exists yet"


def write_checkpoint(s: Setup, step: int) -> Path:
    """Write ``OUT/checkpoints/step-NNNNNN`` of run ``s`` atomically.

    Collective: every process calls it (state dicts may be gathered). A write that fails (disk
    full, read-only) or is interrupted removes the temporary directory; the previous
    checkpoint is kept until this one is complete.

    Returns:
        The checkpoint directory.

    Raises:
        RunFailed: the checkpoint could not be written (naming it, the cause and the previous
            checkpoint).
    """
    acc, root = s.accelerator, s.out_dir / "checkpoints"
    tmp, final = root / f".tmp-step-{step:06d}", step_dir(root, step)
    try:
        with saving(final):
            _write_checkpoint(s, step, tmp, final)
    except OSError as exc:
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise RunFailed(
            f"cannot write checkpoint {final}: {exc.strerror or exc}; {_previous(root)}; "
            "free the space (or fix the permissions) and continue with --resume"
        ) from exc
    except BaseException:
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _write_checkpoint(s: Setup, step: int, tmp: Path, final: Path) -> None:
    acc, root = s.accelerator, final.parent
    if acc.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    state_dict = acc.get_state_dict(s.model)
    osd = None
    if not s.deepspeed:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        raw = getattr(s.optimizer, "optimizer", s.optimizer)
        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        osd = get_optimizer_state_dict(s.model, raw, options=opts)
    if acc.is_main_process:
        s.unwrapped.save_pretrained(tmp / "model", state_dict=state_dict)
        s.tokenizer.save_pretrained(tmp / "model")
        write_model_meta(tmp / "model", s.tokenizer, **s.save_meta)
        if osd is not None:
            save_optimizer(osd, tmp)
        state = {
            "step": step,
            "scheduler": s.scheduler.state_dict(),
            "optimizer_saved": osd is not None,
            "world_size": acc.num_processes,
            "config": s.config,
            "digests": s.digests,
            "paths": run_paths(s.config),
        }
        write_state(tmp, state)
    save_rng(tmp, acc.process_index)
    acc.wait_for_everyone()
    if acc.is_main_process:
        honor_umask(tmp)
        commit(tmp, final)
        prune(root, s.config.keep_checkpoints)
    acc.wait_for_everyone()


# ---------------------------------------------------------------- the non-finite guard


class NonFiniteLossError(ValueError):
    """A step produced a NaN/inf loss, gradient or weights; the run stopped (exit status 1)."""

    exit_code = 1


def all_finite(acc: Any, value: torch.Tensor) -> bool:
    """Whether ``value`` is finite on every process (all-reduced).

    Returns:
        True when no process sees a NaN/inf.
    """
    flag = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    if acc.num_processes > 1:
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item() > 0)


def _weights_finite(s: Setup) -> bool:
    shares = (local_share(p.detach()) for p in s.unwrapped.parameters())
    finite = all(bool(torch.isfinite(p).all()) for p in shares)
    return all_finite(s.accelerator, torch.tensor(1.0 if finite else math.nan))


def _set_aside(s: Setup, step: int) -> str:
    # Move checkpoint `step` (whose weights gave the non-finite value) out of --resume's way.
    root = s.out_dir / "checkpoints"
    path = step_dir(root, step)
    if not path.is_dir():
        return ""
    target = path.with_name(f"{path.name}.nonfinite")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.nonfinite{n}")
    if s.accelerator.is_main_process:
        path.rename(target)
    s.accelerator.wait_for_everyone()
    return f"checkpoint {path} holds the weights that gave it and was set aside as {target.name}; "


def nonfinite_error(s: Setup, step: int, what: str, detail: str) -> NonFiniteLossError:
    """The error that stops run ``s`` at ``step``: the cause, and where to resume from.

    ``what`` is ``loss`` or ``gradient`` (computed at the weights after step ``step - 1``) or
    ``weights`` (after the update of ``step``). The cause named: non-finite weights; the
    starting model, when no update has happened yet (lowering ``--lr`` cannot help); else the
    last update, i.e. the learning rate. A checkpoint of exactly the weights that gave a
    non-finite loss or gradient is set aside (:func:`nonfinite_error` renames it
    ``step-NNNNNN.nonfinite``), so ``--resume`` continues from one before them. Collective.

    Returns:
        A :class:`NonFiniteLossError` to raise.
    """
    fresh = step == 1 and s.resumed_from is None  # the weights are the starting model's
    if what == "weights":
        cause = f"the update of step {step} made the weights non-finite (too high a --lr)"
    elif not _weights_finite(s):
        cause = f"the weights are non-finite after the update of step {step - 1} (too high a --lr)"
    elif fresh:
        cause = (
            "at the starting model's weights, before any update, so --lr is not the cause; "
            "check the model (its precision, --precision) and the data"
        )
    else:
        cause = f"after the update of step {step - 1} (too high a --lr, most likely)"
    aside = "" if what == "weights" or fresh else _set_aside(s, step - 1)
    last = latest_checkpoint(s.out_dir / "checkpoints")
    again = "--resume with a lower --lr starts this run again from step 0"
    if fresh:
        where = "no checkpoint was written"
    elif last is not None:
        where = (
            f"the last good checkpoint is {last[1]} (resume from it with --resume and a lower --lr)"
        )
    elif aside:
        where = f"no earlier checkpoint is kept ({again})"
    else:
        where = f"no checkpoint was written yet ({again})"
    return NonFiniteLossError(
        f"non-finite {what} at step {step} ({detail}); {cause}; the run stopped; {aside}{where}"
    )


def save_checkpoint(s: Setup, step: int) -> Path:
    """Check the weights are finite, then write the checkpoint of ``step`` atomically.

    A bad state is never saved. Collective: call on every process.

    Returns:
        The checkpoint directory (:func:`write_checkpoint`).

    Raises:
        NonFiniteLossError: a weight is NaN/inf on some process.
    """
    if not _weights_finite(s):
        raise nonfinite_error(s, step, "weights", "after the optimizer step; not checkpointed")
    return write_checkpoint(s, step)


# ---------------------------------------------------------------- resumption


def resume_from(s: Setup, step: int, path: Path, changes: dict | None = None) -> None:
    """Load weights, optimizer, scheduler and RNG state of checkpoint ``path`` (exact).

    The log keeps the records of steps up to ``step`` (a torn last line is dropped, with a
    warning); training continues after it. ``changes`` (the learning rate, schedule or length,
    :func:`~npo.llm.train.resume.resume_changes`) are applied and recorded.

    Raises:
        ValueError: the checkpoint has no optimizer state (written under DeepSpeed), or the run
            is now shorter than the checkpoint.
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    state = read_json(path / "trainer_state.json", "checkpoint state")
    if not state.get("optimizer_saved"):
        raise ValueError(
            f"{path} has no optimizer state (written under DeepSpeed); it cannot be resumed "
            "exactly; start a new run from its model/ directory instead"
        )
    if step > s.total_steps:
        raise ValueError(
            f"--resume: the run now has {s.total_steps} steps, fewer than the {step} of "
            f"{path}; raise --max-steps/--epochs"
        )
    if s.sharded:
        weights: dict[str, Any] = read_weights(path / "model")
        opts = StateDictOptions(full_state_dict=True, strict=False)
        set_model_state_dict(s.model, weights, options=opts)
    else:
        load_model_weights(s.unwrapped, path / "model")
    raw = getattr(s.optimizer, "optimizer", s.optimizer)
    osd = load_optimizer(path)
    if osd["state"]:
        set_optimizer_state_dict(s.model, raw, osd, options=StateDictOptions(full_state_dict=True))
    else:  # SGD without momentum keeps no tensors (torch's loader needs one for the device)
        for group, saved in zip(raw.param_groups, osd["param_groups"]):
            group.update({k: v for k, v in saved.items() if k != "params"})
    s.scheduler.load_state_dict(state["scheduler"])
    apply_changes(s.scheduler, raw, s.config, changes or {})
    load_rng(path, s.accelerator.process_index)
    s.start_step = s.resumed_from = step
    main = s.accelerator.is_main_process
    if main:
        truncate_log(s.out_dir, step, warn=warn)
    record_resume(s.out_dir, step, path, changes or {}, main=main)
    s.accelerator.print(f"resumed from {path} at step {step}")


def start_or_resume(
    s: Setup, latest: tuple[int, Path] | None, changes: dict | None = None
) -> Setup:
    """Resume ``s`` from checkpoint ``latest`` (``(step, path)``), or start a new run.

    A resume first compares the content digests of the model, tokenizer and data with the
    checkpoint's (:func:`~npo.llm.train.resume.check_digests`). A new run records its
    configuration in ``OUT/config.json``. Collective.

    Returns:
        ``s``, at its start step.
    """
    if latest is not None:
        state = read_json(latest[1] / "trainer_state.json", "checkpoint state")
        check_digests(state.get("digests") or {}, s.digests, latest[1])
        resume_from(s, *latest, changes=changes)
    elif s.accelerator.is_main_process:
        command = type(s.config).__name__
        write_json(s.out_dir / "config.json", {"command": command, **to_jsonable(s.config)})
    s.accelerator.wait_for_everyone()
    return s


def interrupted_message(out_dir: Path, step: int | None) -> str:
    """What Ctrl-C reports: where the run stopped and what ``--resume`` continues from.

    Args:
        out_dir: the run directory.
        step: the step in progress (None: before training started).

    Returns:
        ``"interrupted at step N; the last checkpoint is PATH; resume with --resume"`` (or
        that there is none).
    """
    last = latest_checkpoint(Path(out_dir) / "checkpoints")
    at = "before training started" if step is None else f"at step {step}"
    if last is None:
        return (
            f"interrupted {at}; no checkpoint was written; --resume starts the run again "
            "from step 0"
        )
    return f"interrupted {at}; the last checkpoint is {last[1]}; resume with --resume"
