"""npo: Negative Preference Optimization unlearning (Zhang, Lin, Bai, Mei 2024, arXiv 2404.05868).

The shared kernels live in :mod:`npo.losses` (loss functions on per-sequence log-probs),
:mod:`npo.logprobs` (logits -> log-probs, chunked) and :mod:`npo.objectives` (weighted lists of
named terms and the method presets). :mod:`theory`, :mod:`synthetic` and :mod:`npo.llm` all call
these same function objects.

The names below are loaded on first use, so ``import npo.results`` or ``import npo.config``
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "LOSSES": "npo.losses",
    "dpo_loss": "npo.losses",
    "ga_loss": "npo.losses",
    "nll_loss": "npo.losses",
    "npo_loss": "npo.losses",
    "npo_weight": "npo.losses",
    "simnpo_loss": "npo.losses",
    "PRESETS": "npo.objectives",
    "Objective": "npo.objectives",
    "SeqBatch": "npo.objectives",
    "Term": "npo.objectives",
    "preset": "npo.objectives",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'npo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
