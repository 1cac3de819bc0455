"""Attacks on an unlearned model: relearning and weight quantization.

- :mod:`npo.llm.attacks.quantize`: weight-only round-to-nearest quantization in pure torch
  (:func:`~npo.llm.attacks.quantize.rtn_quantize`,
  :func:`~npo.llm.attacks.quantize.quantize_model`) and the update-to-step ratio;
- :mod:`npo.llm.attacks.relearn`: the relearning attack's parts, metrics and steps to
  recovery;
- :mod:`npo.llm.attacks.config`: :class:`~npo.llm.attacks.config.QuantizeConfig`,
  :class:`~npo.llm.attacks.config.RelearnConfig` (the command lines' options);
- :mod:`npo.llm.attacks.runs`: :func:`~npo.llm.attacks.runs.run_quantize` and
  :func:`~npo.llm.attacks.runs.run_relearn` (``npo attack quantize|relearn``).
"""

from npo.llm.attacks.config import QuantizeConfig, RelearnConfig
from npo.llm.attacks.quantize import (
    grid_error,
    quantization_step,
    quantize_model,
    rtn_quantize,
    update_to_step_ratio,
)
from npo.llm.attacks.relearn import part_metrics, split_items, steps_to_recovery
from npo.llm.attacks.runs import run_quantize, run_relearn

__all__ = [
    "QuantizeConfig",
    "RelearnConfig",
    "grid_error",
    "part_metrics",
    "quantization_step",
    "quantize_model",
    "rtn_quantize",
    "run_quantize",
    "run_relearn",
    "split_items",
    "steps_to_recovery",
    "update_to_step_ratio",
]
