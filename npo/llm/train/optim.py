"""The optimizer and the learning-rate schedule of a training run.

AdamW (default) or SGD, with weight decay on matrices only (not on biases and norm weights, as
Hugging Face's Trainer does); a linear warm-up reaching the peak at its last step, then linear
decay that stays positive through the last step (no zero-lr step), or a constant rate.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

from npo.llm.train.config import TrainConfig
from npo.llm.train.step import BatchPlan

__all__ = ["build_optimizer", "build_scheduler", "lr_factor", "schedule_steps"]


def schedule_steps(config: TrainConfig, plan: BatchPlan) -> tuple[int, int]:
    """The run's length and warm-up in optimizer steps.

    Returns:
        ``(total, warmup)``: ``max_steps`` (else ``epochs`` passes) and ``warmup_epochs``
        passes, rounded, at most ``total``.
    """
    total = config.max_steps or config.epochs * plan.steps_per_epoch
    return total, min(total, round(config.warmup_epochs * plan.steps_per_epoch))


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Learning-rate multiplier of optimizer step ``step`` (0-based).

    Linear warm-up reaching 1 at step ``warmup - 1``, then linear decay (``linear``, positive
    through the last step) or constant (``constant``).

    Returns:
        The factor in (0, 1].
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return (total - step) / max(1, total - warmup)


def build_scheduler(optimizer: Any, *, warmup: int, total: int, schedule: str) -> Any:
    """The learning-rate schedule of :func:`lr_factor` on ``optimizer``.

    Returns:
        A ``torch.optim.lr_scheduler.LambdaLR``.
    """
    fn = partial(lr_factor, warmup=warmup, total=total, schedule=schedule)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD; weight decay on matrices only (not on biases and norm weights).

    Returns:
        The optimizer over the trainable parameters, at ``config.learning_rate``.

    Raises:
        ValueError: the model has no trainable parameters.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    if not decay and not rest:
        raise ValueError("the model has no trainable parameters")
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.learning_rate)
