"""Weight-only round-to-nearest (RTN) quantization of a causal LM, in pure torch.

The quantizer is asymmetric min-max affine, as llama.cpp's ``Q4_1``/``Q8_1`` and the RTN
baseline of Zhang et al. (arXiv 2410.16454) use: each group of ``g`` consecutive weights of a
row (``g = None``: the whole row, i.e. per output channel) with minimum ``lo`` and maximum
``hi`` gets the step ``s = (hi - lo) / (2^b - 1)`` and the grid ``lo + q s``,
``q = clamp(round((w - lo) / s), 0, 2^b - 1)``; a constant group keeps its value. The
dequantized weights replace the originals (``fake`` quantization: what a quantized model
computes, in the model's own dtype). A row whose length is not a multiple of ``g`` ends with a
shorter group. Weights already on such a grid (e.g. a model converted from a ``Q4_1`` GGUF,
groups of 32) are mapped onto themselves at the same ``b`` and ``g``.

Written here rather than taken from a library: torchao prints load errors of its compiled
extensions on every ``transformers`` model load and save, and optimum-quanto builds C++
extensions on first use; these few lines are tested against a float64 numpy computation and
a hand-worked example.

Which weights: every ``torch.nn.Linear`` weight of the model except the output head (the
decoder layers' projections); embeddings and norms stay in full precision.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "grid_error",
    "linear_weights",
    "quantization_step",
    "quantize_model",
    "rtn_codes",
    "rtn_quantize",
    "update_to_step_ratio",
]


def _check(bits: int, group_size: int | None) -> None:
    if not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer in [2, 16], got {bits!r}")
    if group_size is not None and (not isinstance(group_size, int) or group_size < 1):
        raise ValueError(f"group_size must be a positive integer or None, got {group_size!r}")


def _groups(w: Tensor, group_size: int | None) -> tuple[Tensor, int]:
    # (rows, n_groups, g) float view of a 2-d weight, the last group padded by repeating the
    # row's last element (min and max unchanged), and the original row length.
    if w.dim() != 2:
        raise ValueError(f"RTN quantization expects a 2-d weight, got shape {tuple(w.shape)}")
    cdt = torch.float64 if w.dtype == torch.float64 else torch.float32
    x = w.detach().to(cdt)
    n = x.shape[1]
    g = n if group_size is None else min(group_size, n)
    pad = (-n) % g
    if pad:
        x = torch.cat([x, x[:, -1:].expand(-1, pad)], dim=1)
    return x.reshape(x.shape[0], -1, g), n


def _lo_step(groups: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    lo = groups.amin(-1, keepdim=True)
    step = (groups.amax(-1, keepdim=True) - lo) / (2**bits - 1)
    return lo, step


def quantization_step(w: Tensor, bits: int, group_size: int | None) -> Tensor:
    """The grid step ``s`` of each weight's group, same shape as ``w``.

    Args:
        w: a 2-d weight ``(out, in)``; groups run along ``in``.
        bits: bits per weight.
        group_size: weights per group (None: one group per row).

    Returns:
        ``(out, in)`` steps in float32 (float64 for float64 weights).
    """
    _check(bits, group_size)
    groups, n = _groups(w, group_size)
    _, step = _lo_step(groups, bits)
    return step.expand_as(groups).reshape(w.shape[0], -1)[:, :n]


def rtn_codes(w: Tensor, bits: int, group_size: int | None) -> Tensor:
    """The integer grid index ``q`` of each weight (0 for a constant group), same shape as ``w``.

    Args:
        w: a 2-d weight ``(out, in)``.
        bits: bits per weight.
        group_size: weights per group (None: one group per row).

    Returns:
        ``(out, in)`` int64 codes in ``[0, 2^bits - 1]``.
    """
    _check(bits, group_size)
    groups, n = _groups(w, group_size)
    lo, step = _lo_step(groups, bits)
    safe = torch.where(step > 0, step, torch.ones_like(step))
    q = torch.clamp(torch.round((groups - lo) / safe), 0, 2**bits - 1)
    q = torch.where(step > 0, q, torch.zeros_like(q))
    return q.reshape(w.shape[0], -1)[:, :n].to(torch.int64)


def rtn_quantize(w: Tensor, bits: int, group_size: int | None) -> Tensor:
    """``w`` rounded to its asymmetric min-max grid (see the module docstring), dequantized.

    Args:
        w: a 2-d weight ``(out, in)``; groups run along ``in``.
        bits: bits per weight.
        group_size: weights per group (None: one group per row, per channel).

    Returns:
        The quantized weight, in ``w``'s dtype and shape.
    """
    _check(bits, group_size)
    groups, n = _groups(w, group_size)
    lo, step = _lo_step(groups, bits)
    safe = torch.where(step > 0, step, torch.ones_like(step))
    q = torch.clamp(torch.round((groups - lo) / safe), 0, 2**bits - 1)
    out = torch.where(step > 0, lo + q * step, groups)
    return out.reshape(w.shape[0], -1)[:, :n].to(w.dtype)


def grid_error(w: Tensor, bits: int, group_size: int | None) -> float:
    """How far ``w`` is from its own grid: ``max |rtn_quantize(w) - w| / s`` (0: on the grid).

    Returns:
        The largest rounding error in units of the group's step (at most 0.5).
    """
    step = quantization_step(w, bits, group_size)
    err = (rtn_quantize(w, bits, group_size).to(step.dtype) - w.to(step.dtype)).abs()
    rel = torch.where(step > 0, err / torch.where(step > 0, step, 1), torch.zeros_like(err))
    return float(rel.max()) if rel.numel() else 0.0


def linear_weights(model: Any) -> Iterator[tuple[str, Tensor]]:
    """The weights RTN quantizes: every ``nn.Linear`` weight but the output head's.

    Yields:
        ``(parameter name, weight)`` pairs.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module is not head:
            yield f"{name}.weight", module.weight


@torch.no_grad()
def quantize_model(model: Any, bits: int, group_size: int | None) -> dict[str, Any]:
    """Quantize ``model``'s linear weights in place (:func:`rtn_quantize`).

    Args:
        model: a causal LM (its output head and embeddings are left alone).
        bits: bits per weight.
        group_size: weights per group (None: per output channel).

    Returns:
        ``{"bits", "group_size", "n_weights", "n_tensors", "on_grid_error"}``:
        ``on_grid_error`` is the largest :func:`grid_error` of the weights before quantization
        (0: the model already sat on this grid).
    """
    _check(bits, group_size)
    n = tensors = 0
    worst = 0.0
    for _, weight in linear_weights(model):
        worst = max(worst, grid_error(weight, bits, group_size))
        weight.copy_(rtn_quantize(weight, bits, group_size))
        n += weight.numel()
        tensors += 1
    if not tensors:
        raise ValueError("the model has no linear layers to quantize")
    return {
        "bits": bits,
        "group_size": group_size,
        "n_weights": n,
        "n_tensors": tensors,
        "on_grid_error": worst,
    }


@torch.no_grad()
def update_to_step_ratio(
    unlearned: Any, target: Any, *, bits: int = 4, group_size: int | None = 32
) -> dict[str, float]:
    """Median ``|theta_unlearned - theta_target| / s`` over the quantized weights.

    ``s`` is the step of each weight's group in the **target** (its grid at ``bits`` and
    ``group_size``). Zhang et al.'s account: updates well below half a step round back to
    the target's grid point, so quantization restores what was unlearned.

    Args:
        unlearned: the unlearned model (or its state dict).
        target: the model before unlearning (or its state dict), same architecture.
        bits: bits of the grid (4).
        group_size: its group size (32; None per channel).

    Returns:
        ``{"median_ratio", "mean_ratio", "changed_codes", "moved_grids"}``: the median and
        mean ratio; the fraction of weights whose integer grid index differs between the two
        models (each rounded on its own min-max grid); the fraction of groups whose grid
        itself moved (their minimum or maximum changed), so that no weight of the group keeps
        the target's quantized value.
    """
    t_sd: Mapping[str, Tensor] = target if isinstance(target, Mapping) else target.state_dict()
    u_sd: Mapping[str, Tensor] = (
        unlearned if isinstance(unlearned, Mapping) else unlearned.state_dict()
    )
    names = [n for n, _ in linear_weights(target)] if not isinstance(target, Mapping) else None
    names = names or [n for n, t in t_sd.items() if t.dim() == 2 and "embed" not in n]
    ratios, changed, total, moved, groups = [], 0, 0, 0, 0
    for name in names:
        t, u = t_sd[name], u_sd[name]
        step = quantization_step(t, bits, group_size)
        diff = (u.to(step.dtype) - t.to(step.dtype)).abs()
        ratios.append(torch.where(step > 0, diff / torch.where(step > 0, step, 1), diff).flatten())
        changed += int((rtn_codes(t, bits, group_size) != rtn_codes(u, bits, group_size)).sum())
        total += t.numel()
        gt, gu = _groups(t, group_size)[0], _groups(u, group_size)[0]
        same = (gt.amin(-1) == gu.amin(-1)) & (gt.amax(-1) == gu.amax(-1))
        moved += int((~same).sum())
        groups += same.numel()
    r = torch.cat(ratios).double()
    return {
        "median_ratio": float(r.median()),
        "mean_ratio": float(r.mean()),
        "changed_codes": changed / max(total, 1),
        "moved_grids": moved / max(groups, 1),
    }
