"""Gradient accumulation of one optimizer step: every micro-batch's forward and backward.

:func:`accumulate` runs this process's micro-batches of a global batch through
:func:`~npo.llm.train.step.micro_step` (forward, ``sequence_logprobs``, the objective with
the global counts, the non-finite check) and backward, leaving the summed gradient in the
parameters' ``.grad``. The plain step (:func:`~npo.llm.train.loop.train_step`) calls it once;
the SAM step (:mod:`npo.llm.train.sam`) three times, on the objective's two sides.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from npo.llm.train.assemble import Setup
from npo.llm.train.checkpoint import all_finite, nonfinite_error
from npo.llm.train.step import StepInputs, micro_step

__all__ = ["accumulate"]


def accumulate(
    s: Setup,
    batch: Mapping[str, list[int]],
    counts: Mapping[str, tuple[float, float]],
    step: int,
    *,
    stats: torch.Tensor | None = None,
    inputs: StepInputs | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward and backward over this process's micro-batches of ``batch``; grads accumulate.

    Collective. Gradients are added to ``.grad`` (the caller zeroes them).

    Args:
        s: the run.
        batch: the global batch (:meth:`~npo.llm.train.step.BatchPlan.global_batch`).
        counts: its global per-source counts (:func:`~npo.llm.train.step.global_counts`).
        step: the optimizer step (0-based), for error messages.
        stats: where the detached forget statistics are summed (None: not recorded).
        inputs: the step's inputs (None: ``s.inputs``; the SAM step passes one side's
            objective).

    Returns:
        ``(loss, terms)``: this process's summed loss and each term's summed value (detached,
        float64).

    Raises:
        NonFiniteLossError: a NaN/inf loss; the weights were not updated.
    """
    acc, plan = s.accelerator, s.plan
    inputs = inputs or s.inputs
    wanted = set(inputs.needs) | ({"forget"} if stats is not None else set())  # for the logs
    # DDP/FSDP average gradients over processes (DeepSpeed also over accumulation steps);
    # the objective is already normalized by global counts, so undo those averages.
    scale = acc.num_processes * (plan.accumulation if s.deepspeed else 1)
    terms: dict[str, torch.Tensor] = {}
    total = torch.zeros((), dtype=torch.float64, device=acc.device)
    for m in range(plan.accumulation):
        idx = {k: v for k, v in plan.micro(batch, m, acc.process_index).items() if k in wanted}
        out = micro_step(s.model, idx, inputs, counts, stats=stats)
        if not all_finite(acc, out.loss):
            detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in out.terms.items())
            raise nonfinite_error(s, step + 1, "loss", f"{detail}; weights not updated")
        last = m == plan.accumulation - 1
        sync: Any = (
            acc.no_sync(s.model) if not last and not s.deepspeed else contextlib.nullcontext()
        )
        with sync:
            acc.backward(out.loss * scale)
        total += out.loss.detach().to(torch.float64)
        for k, v in out.terms.items():
            terms[k] = terms.get(k, 0.0) + v.detach().to(torch.float64)
    return total, terms
