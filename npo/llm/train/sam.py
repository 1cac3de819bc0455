"""Sharpness-aware unlearning (SAM on the forget-side loss), for any objective.

Fan et al. (arXiv 2502.05374) make unlearning resilient to relearning by applying SAM
(Foret et al., arXiv 2010.01412) to the forget loss. One optimizer step with radius
``rho`` (``--sam-rho``), on the objective split by its terms' data sources (no method names:
the forget side is every term whose source is not ``retain``, i.e. ``forget`` and ``idk``;
the retain side the ``retain`` terms):

1. ``g = grad L_forget(theta)`` over the whole global batch (all micro-batches, all
   processes);
2. ``theta' = theta + rho g / ||g||`` (``||g||`` the global L2 norm; ``g = 0`` leaves
   ``theta``);
3. ``g' = grad L_forget(theta')``;
4. ``theta`` is restored exactly (a copy, not a subtraction);
5. the step's gradient is ``g' + grad L_retain(theta)``, which the trainer clips and hands
   to the optimizer, at ``theta``.

The logged loss and terms are those at ``theta`` (steps 1 and 5). SAM keeps no state across
steps, so a resumed run is exact as without it; it costs one more forget-side forward and
backward per step. Not under DeepSpeed (whose engine owns the gradients).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import torch

from npo.llm.train.accumulate import accumulate
from npo.llm.train.assemble import Setup
from npo.objectives import Objective

__all__ = ["sam_accumulate", "sam_rho", "split_objective"]


def sam_rho(config: Any) -> float:
    """The run's SAM radius (0: plain steps; fine-tuning has none).

    Returns:
        ``config.sam_rho`` or 0.
    """
    return float(getattr(config, "sam_rho", 0.0) or 0.0)


def split_objective(objective: Objective) -> tuple[Objective | None, Objective | None]:
    """The objective's forget side (terms reading ``forget``/``idk``) and retain side.

    Returns:
        ``(forget side, retain side)``, each None when it has no term.
    """
    forget = tuple(t for t in objective.terms if t.source != "retain")
    retain = tuple(t for t in objective.terms if t.source == "retain")
    return (Objective(forget) if forget else None, Objective(retain) if retain else None)


def _params(s: Setup) -> list[torch.Tensor]:
    return [p for p in s.model.parameters() if p.requires_grad]


def sam_accumulate(
    s: Setup,
    batch: Mapping[str, list[int]],
    counts: Mapping[str, tuple[float, float]],
    step: int,
    *,
    stats: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SAM's gradient of one step in ``.grad`` (see the module docstring). Collective.

    Returns:
        ``(loss, terms)`` at the unperturbed weights, as
        :func:`~npo.llm.train.accumulate.accumulate` returns them.

    Raises:
        ValueError: the objective has no forget-side term, or the run uses DeepSpeed.
    """
    if s.deepspeed:
        raise ValueError("--sam-rho is not supported under DeepSpeed; use DDP or FSDP")
    forget, retain = split_objective(s.inputs.objective)
    if forget is None:
        raise ValueError("--sam-rho perturbs along the forget-side loss; the objective has none")
    rho = sam_rho(s.config)
    side = lambda obj: dataclasses.replace(s.inputs, objective=obj)  # noqa: E731
    params = _params(s)
    # 1. forget-side gradient at theta (and the step's logs)
    total, terms = accumulate(s, batch, counts, step, stats=stats, inputs=side(forget))
    norm = float(s.accelerator.clip_grad_norm_(s.model.parameters(), math.inf))
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        if norm > 0 and math.isfinite(norm):
            for p in params:
                if p.grad is not None:
                    p.add_(p.grad, alpha=rho / norm)  # 2. theta + rho g / ||g||
    s.optimizer.zero_grad(set_to_none=True)
    # 3. forget-side gradient at the perturbed weights
    accumulate(s, batch, counts, step, inputs=side(forget))
    with torch.no_grad():
        for p, p0 in zip(params, saved):
            p.copy_(p0)  # 4. restore theta exactly
    del saved
    if retain is not None:  # 5. the retain side at theta, added to the perturbed gradient
        r_total, r_terms = accumulate(s, batch, counts, step, inputs=side(retain))
        total = total + r_total
        terms.update(r_terms)
    return total, terms
