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
the weights before writing. :func:`start_or_resume` loads a checkpoint back exactly (weights,
optimizer, scheduler, RNG) or records the start of a new run.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from npo.llm.model import replace_dir
from npo.llm.train.assemble import Setup, local_share
from npo.llm.train.log import truncate_log
from npo.results import atomic_write_bytes, to_jsonable, write_json

__all__ = [
    "NonFiniteLossError",
    "all_finite",
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


# ---------------------------------------------------------------- optimizer state


def save_optimizer(osd: dict[str, Any], folder: Path) -> None:
    """Write a full optimizer state dict (``state`` keyed by parameter name).

    Tensors go to ``optimizer.safetensors``, everything else (exact floats) to
    ``optimizer.json``.
    """
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, dict[str, Any]] = {}
    for name, entries in osd["state"].items():
        state[name] = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{name}/{key}"] = value.detach().cpu().contiguous().clone()
                state[name][key] = "__tensor__"
            else:
                state[name][key] = value
    atomic_write_bytes(folder / "optimizer.safetensors", save(tensors))
    meta = {"state": state, "param_groups": osd["param_groups"]}
    atomic_write_bytes(folder / "optimizer.json", json.dumps(meta, indent=1).encode())


def load_optimizer(folder: Path) -> dict[str, Any]:
    """The state dict written by :func:`save_optimizer`.

    Returns:
        ``{"state": ..., "param_groups": ...}`` with the tensors in place.
    """
    from safetensors.torch import load_file

    tensors = load_file(folder / "optimizer.safetensors")
    meta = json.loads((folder / "optimizer.json").read_text())
    state = {
        name: {k: tensors[f"{name}/{k}"] if v == "__tensor__" else v for k, v in entries.items()}
        for name, entries in meta["state"].items()
    }
    return {"state": state, "param_groups": meta["param_groups"]}


# ---------------------------------------------------------------- RNG


def save_rng(folder: Path, rank: int) -> None:
    """Write this process's torch CPU (and CUDA) generator states to ``rng-<rank>``."""
    from safetensors.torch import save

    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda{i}"] = s
    atomic_write_bytes(folder / f"rng-{rank}.safetensors", save(states))


def load_rng(folder: Path, rank: int) -> None:
    """Restore the generator states of ``rng-<rank>`` (``rng-0`` if there are more ranks now)."""
    from safetensors.torch import load_file

    path = folder / f"rng-{rank}.safetensors"
    if not path.is_file():  # resumed with more processes than were saved
        path = folder / "rng-0.safetensors"
    states = load_file(path)
    torch.set_rng_state(states["cpu"])
    if torch.cuda.is_available():
        cuda = [states[k] for k in sorted(states) if k.startswith("cuda")]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# ---------------------------------------------------------------- model weights


def read_weights(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of the ``*.safetensors`` files of a saved model directory.

    Returns:
        ``{name: tensor}`` on the CPU.

    Raises:
        ValueError: the directory has no safetensors weights.
    """
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        out.update(load_file(f))
    if not out:
        raise ValueError(f"checkpoint {model_dir} has no safetensors weights")
    return out


def load_model_weights(model: torch.nn.Module, model_dir: Path) -> None:
    """Load a checkpoint's ``save_pretrained`` weights into ``model`` (unwrapped, in place).

    Plain models: every parameter must be present except aliases of tied ones. LoRA (peft)
    models: the adapter weights.
    """
    weights = read_weights(model_dir)
    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(model, weights)
        extra = getattr(result, "unexpected_keys", None)
        if extra:
            raise ValueError(f"{model_dir}: unexpected adapter weights {extra[:5]}")
        return
    missing, unexpected = model.load_state_dict(weights, strict=False)
    seen: dict[int, str] = {}
    aliases = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            aliases.add(name)
        seen.setdefault(id(p), name)
    missing = [k for k in missing if k not in aliases]
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {model_dir} does not fit the model: missing {missing[:5]}, "
            f"unexpected {list(unexpected)[:5]}"
        )


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Write ``trainer_state.json`` (step, scheduler, configuration)."""
    write_json(folder / "trainer_state.json", state)


def write_checkpoint(s: Setup, step: int) -> Path:
    """Write ``OUT/checkpoints/step-NNNNNN`` of run ``s`` atomically.

    Collective: every process calls it (state dicts may be gathered).

    Returns:
        The checkpoint directory.
    """
    acc, root = s.accelerator, s.out_dir / "checkpoints"
    tmp = root / f".tmp-step-{step:06d}"
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
        if osd is not None:
            save_optimizer(osd, tmp)
        state = {
            "step": step,
            "scheduler": s.scheduler.state_dict(),
            "optimizer_saved": osd is not None,
            "world_size": acc.num_processes,
            "config": s.config,
        }
        write_state(tmp, state)
    save_rng(tmp, acc.process_index)
    acc.wait_for_everyone()
    final = step_dir(root, step)
    if acc.is_main_process:
        commit(tmp, final)
        prune(root, s.config.keep_checkpoints)
    acc.wait_for_everyone()
    return final


# ---------------------------------------------------------------- the non-finite guard


class NonFiniteLossError(ValueError):
    """A step produced a NaN/inf loss or gradient; the weights were not updated."""


def all_finite(acc: Any, value: torch.Tensor) -> bool:
    """Whether ``value`` is finite on every process (all-reduced).

    Returns:
        True when no process sees a NaN/inf.
    """
    flag = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    if acc.num_processes > 1:
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item() > 0)


def nonfinite_error(s: Setup, step: int, what: str, detail: str) -> NonFiniteLossError:
    """The error that stops run ``s`` at ``step``, naming the last good checkpoint.

    Returns:
        A :class:`NonFiniteLossError` to raise.
    """
    last = latest_checkpoint(s.out_dir / "checkpoints")
    where = f"the last good checkpoint is {last[1]}" if last else "no checkpoint was written yet"
    return NonFiniteLossError(
        f"non-finite {what} at step {step} ({detail}); the run stopped; {where} "
        "(resume from it with --resume and a lower --lr)"
    )


def save_checkpoint(s: Setup, step: int) -> Path:
    """Check the weights are finite, then write the checkpoint of ``step`` atomically.

    A bad state is never saved. Collective: call on every process.

    Returns:
        The checkpoint directory (:func:`write_checkpoint`).

    Raises:
        NonFiniteLossError: a weight is NaN/inf on some process.
    """
    shares = (local_share(p.detach()) for p in s.unwrapped.parameters())
    finite = all(bool(torch.isfinite(p).all()) for p in shares)
    if not all_finite(s.accelerator, torch.tensor(1.0 if finite else math.nan)):
        raise nonfinite_error(s, step, "weights", "after the optimizer step; not checkpointed")
    return write_checkpoint(s, step)


# ---------------------------------------------------------------- resumption


def resume_from(s: Setup, step: int, path: Path) -> None:
    """Load weights, optimizer, scheduler and RNG state of checkpoint ``path`` (exact).

    The log keeps the records of steps up to ``step``; training continues after it.

    Raises:
        ValueError: the checkpoint has no optimizer state (written under DeepSpeed).
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    state = json.loads((path / "trainer_state.json").read_text())
    if not state.get("optimizer_saved"):
        raise ValueError(
            f"{path} has no optimizer state (written under DeepSpeed); it cannot be resumed "
            "exactly; start a new run from its model/ directory instead"
        )
    if s.sharded:
        weights: dict[str, Any] = read_weights(path / "model")
        opts = StateDictOptions(full_state_dict=True, strict=False)
        set_model_state_dict(s.model, weights, options=opts)
    else:
        load_model_weights(s.unwrapped, path / "model")
    raw = getattr(s.optimizer, "optimizer", s.optimizer)
    set_optimizer_state_dict(
        s.model, raw, load_optimizer(path), options=StateDictOptions(full_state_dict=True)
    )
    s.scheduler.load_state_dict(state["scheduler"])
    load_rng(path, s.accelerator.process_index)
    s.start_step = s.resumed_from = step
    if s.accelerator.is_main_process:
        truncate_log(s.out_dir, step)
    s.accelerator.print(f"resumed from {path} at step {step}")


def start_or_resume(s: Setup, latest: tuple[int, Path] | None) -> Setup:
    """Resume ``s`` from checkpoint ``latest`` (``(step, path)``), or start a new run.

    A new run records its configuration in ``OUT/config.json``. Collective.

    Returns:
        ``s``, at its start step.
    """
    if latest is not None:
        resume_from(s, *latest)
    elif s.accelerator.is_main_process:
        command = type(s.config).__name__
        write_json(s.out_dir / "config.json", {"command": command, **to_jsonable(s.config)})
    s.accelerator.wait_for_everyone()
    return s
