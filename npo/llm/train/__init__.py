"""Fine-tuning and unlearning of Hugging Face causal LMs: configs, API, assembly, loop, step.

- :mod:`npo.llm.train.config`: :class:`~npo.llm.train.config.FinetuneConfig`,
  :class:`~npo.llm.train.config.UnlearnConfig` (the command lines' options) and their base
  :class:`~npo.llm.train.config.TrainConfig`;
- :mod:`npo.llm.train.api`: :func:`~npo.llm.train.api.finetune`,
  :func:`~npo.llm.train.api.unlearn`, :func:`~npo.llm.train.api.prepare_unlearning`,
  :func:`~npo.llm.train.api.make_accelerator`;
- :mod:`npo.llm.train.assemble`: the :class:`~npo.llm.train.assemble.Setup` of a run and its
  builder (:func:`~npo.llm.train.assemble.build_setup`: model wrapping, batch plan, optimizer
  and schedule, reference inputs);
- :mod:`npo.llm.train.optim`: the optimizer (:func:`~npo.llm.train.optim.build_optimizer`) and
  the learning-rate schedule (:func:`~npo.llm.train.optim.lr_factor`);
- :mod:`npo.llm.train.loop`: :func:`~npo.llm.train.loop.run_loop`,
  :func:`~npo.llm.train.loop.train_step`, :class:`~npo.llm.train.loop.TrainResult`;
- :mod:`npo.llm.train.log`: ``OUT/log.jsonl`` (:func:`~npo.llm.train.log.read_log`) and the
  evaluation hooks (:data:`~npo.llm.train.log.EvalHook`,
  :class:`~npo.llm.train.log.HookContext`);
- :mod:`npo.llm.train.step`: the method-agnostic step (:class:`~npo.llm.train.step.BatchPlan`,
  :class:`~npo.llm.train.step.StepInputs`, :func:`~npo.llm.train.step.micro_step`,
  :func:`~npo.llm.train.step.sequence_batches`);
- :mod:`npo.llm.train.reference`: the reference log-prob cache and
  :class:`~npo.llm.train.reference.LiveReference`;
- :mod:`npo.llm.train.checkpoint`: checkpoints, the non-finite guard
  (:class:`~npo.llm.train.checkpoint.NonFiniteLossError`) and exact resumption
  (:func:`~npo.llm.train.checkpoint.start_or_resume`).

Heavy libraries (transformers, accelerate, peft) are imported where used.
"""

from npo.llm.train.api import finetune, make_accelerator, prepare_unlearning, unlearn
from npo.llm.train.assemble import Setup, build_setup
from npo.llm.train.checkpoint import NonFiniteLossError, read_weights, start_or_resume
from npo.llm.train.config import FinetuneConfig, TrainConfig, UnlearnConfig
from npo.llm.train.log import EvalHook, HookContext, read_log
from npo.llm.train.loop import TrainResult, run_loop, train_step
from npo.llm.train.reference import LiveReference, cached_ref_logps, compute_ref_logps
from npo.llm.train.step import STAT_KEYS, BatchPlan, StepInputs, micro_step, sequence_batches

__all__ = [
    "STAT_KEYS",
    "BatchPlan",
    "EvalHook",
    "FinetuneConfig",
    "HookContext",
    "LiveReference",
    "NonFiniteLossError",
    "Setup",
    "StepInputs",
    "TrainConfig",
    "TrainResult",
    "UnlearnConfig",
    "build_setup",
    "cached_ref_logps",
    "compute_ref_logps",
    "finetune",
    "make_accelerator",
    "micro_step",
    "prepare_unlearning",
    "read_log",
    "read_weights",
    "run_loop",
    "sequence_batches",
    "start_or_resume",
    "train_step",
    "unlearn",
]
