"""npo: Negative Preference Optimization unlearning (Zhang, Lin, Bai, Mei 2024, arXiv 2404.05868).

The shared kernels live in :mod:`npo.losses` (loss functions on per-sequence log-probs),
:mod:`npo.logprobs` (logits -> log-probs, chunked) and :mod:`npo.objectives` (weighted lists of
named terms and the method presets). :mod:`theory`, :mod:`synthetic` and :mod:`npo.llm` all call
these same function objects.
"""

from npo.losses import LOSSES, dpo_loss, ga_loss, nll_loss, npo_loss, npo_weight, simnpo_loss
from npo.objectives import PRESETS, Objective, SeqBatch, Term, preset

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "PRESETS",
    "Objective",
    "SeqBatch",
    "Term",
    "dpo_loss",
    "ga_loss",
    "nll_loss",
    "npo_loss",
    "npo_weight",
    "preset",
    "simnpo_loss",
]
