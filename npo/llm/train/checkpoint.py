"""Atomic training checkpoints, without pickles, for exact resumption.

``OUT/checkpoints/step-NNNNNN/`` holds

- ``model/``: ``save_pretrained`` safetensors and the tokenizer (loadable on its own);
- ``optimizer.safetensors`` + ``optimizer.json``: every optimizer-state tensor, keyed by
  parameter name, and the non-tensor state and parameter groups (exact floats in JSON);
- ``rng-<rank>.safetensors``: each process's torch CPU (and CUDA) generator state;
- ``trainer_state.json``: the step, the scheduler state and the run configuration.

A checkpoint is written into ``.tmp-step-NNNNNN`` and renamed into place only when complete,
so an interrupted write never leaves a half checkpoint, and a NaN never overwrites the last
good one (the trainer writes only after a finite step).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from npo.llm.model import replace_dir
from npo.results import atomic_write_bytes, write_json

if TYPE_CHECKING:
    from npo.llm.loop import Setup

__all__ = [
    "latest_checkpoint",
    "list_checkpoints",
    "load_model_weights",
    "load_optimizer",
    "load_rng",
    "save_optimizer",
    "save_rng",
    "write_checkpoint",
]

_STEP_DIR = re.compile(r"step-(\d{6,})")


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root`` as ``(step, path)``, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        m = _STEP_DIR.fullmatch(path.name)
        if m and (path / "trainer_state.json").is_file():
            found.append((int(m[1]), path))
    return sorted(found)


def latest_checkpoint(root: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def step_dir(root: Path, step: int) -> Path:
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
    """Write a full optimizer state dict (``state`` keyed by parameter name) as safetensors
    (tensors) + JSON (everything else)."""
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
    """The state dict written by :func:`save_optimizer`."""
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
    from safetensors.torch import save

    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda{i}"] = s
    atomic_write_bytes(folder / f"rng-{rank}.safetensors", save(states))


def load_rng(folder: Path, rank: int) -> None:
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


def read_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(model_dir.glob("*.safetensors")):
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
        if getattr(result, "unexpected_keys", None):
            raise ValueError(
                f"{model_dir}: unexpected adapter weights {result.unexpected_keys[:5]}"
            )
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
    write_json(folder / "trainer_state.json", state)


def write_checkpoint(s: Setup, step: int) -> Path:
    """Write ``OUT/checkpoints/step-NNNNNN`` of run ``s`` (a :class:`npo.llm.loop.Setup`)
    atomically. Collective: every process calls it (state dicts may be gathered)."""
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
