"""The files of a checkpoint besides its model: optimizer state, RNG state, trainer state.

Tensors in safetensors, everything else in JSON (exact floats); no pickles.
:mod:`npo.llm.train.checkpoint` writes and reads checkpoints through these and re-exports them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from npo.llm.digests import read_json
from npo.results import atomic_write_bytes, write_json

__all__ = [
    "load_model_weights",
    "load_optimizer",
    "load_rng",
    "load_tensors",
    "read_weights",
    "save_optimizer",
    "save_rng",
    "write_state",
]


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or a one-line ``ValueError`` naming a damaged one.

    Returns:
        ``{name: tensor}`` on the CPU.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: the checkpoint is incomplete") from None
    except SafetensorError as exc:
        raise ValueError(f"{path} is not a valid safetensors file ({exc})") from None


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
    tensors = load_tensors(folder / "optimizer.safetensors")
    meta = read_json(folder / "optimizer.json", "optimizer state")
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
    path = folder / f"rng-{rank}.safetensors"
    if not path.is_file():  # resumed with more processes than were saved
        path = folder / "rng-0.safetensors"
    states = load_tensors(path)
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
    out: dict[str, torch.Tensor] = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        out.update(load_tensors(f))
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
