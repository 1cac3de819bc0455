"""The forward pass of the LLM path and its train/eval-mode context, one of each.

- :func:`forward_logits`: ``model(input_ids, attention_mask).logits`` of a right-padded batch,
  under bf16 autocast when asked (the training step, the reference log-probs, the live
  reference and the evaluation's scoring all call it);
- :func:`bf16_autocast`: that autocast context (also around greedy generation);
- :func:`eval_mode`: models in eval mode (dropout off) under ``torch.no_grad()``, each
  restored to its own mode afterwards (the reference log-probs, the live LoRA reference, the
  evaluation hooks, scoring and generation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["bf16_autocast", "eval_mode", "forward_logits"]


def bf16_autocast(device_type: str, enabled: bool) -> torch.autocast:
    """bf16 autocast on ``device_type`` (a no-op context when not ``enabled``).

    Args:
        device_type: ``"cuda"``, ``"cpu"``, ... (``torch.device.type``).
        enabled: whether to autocast at all.

    Returns:
        The ``torch.autocast`` context manager.
    """
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=enabled)


def forward_logits(model: Any, batch: Mapping[str, Tensor], *, autocast: bool = False) -> Tensor:
    """The next-token logits of a padded batch, without the KV cache.

    ``model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
    use_cache=False).logits``, under :func:`bf16_autocast` on the batch's device when
    ``autocast`` (bf16 logits over fp32 weights). Other keys of ``batch`` (``labels``) are not
    read; the mode and autograd are the caller's.

    Args:
        model: a Hugging Face causal LM (or a wrapper of one) on the batch's device.
        batch: ``input_ids`` and ``attention_mask``, each (B, T).
        autocast: run the forward under bf16 autocast.

    Returns:
        (B, T, V) logits.
    """
    input_ids = batch["input_ids"]
    with bf16_autocast(input_ids.device.type, autocast):
        return model(
            input_ids=input_ids, attention_mask=batch["attention_mask"], use_cache=False
        ).logits


@contextlib.contextmanager
def eval_mode(*models: Any) -> Iterator[None]:
    """Put ``models`` in eval mode under ``torch.no_grad()``; restore each one's mode after.

    ``None`` entries are skipped (an optional reference model). Each model gets back the mode
    it had (``model.train(was_training)``), also when the body raises.

    Args:
        *models: ``torch.nn.Module`` s or ``None``.

    Yields:
        Nothing; the body runs with the models in eval mode and autograd off.
    """
    modes = [(m, m.training) for m in models if m is not None]
    for m, _ in modes:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in modes:
            m.train(mode)
