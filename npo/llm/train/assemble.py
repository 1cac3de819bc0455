"""Assembling a training run: the :class:`Setup` the loop trains, and its builder.

:func:`build_setup` runs small named steps, in this order (the seeded ones must not move):

1. :func:`reference_sources`: which sources get cached reference log-probs, which a live
   reference, and whether a frozen reference model is kept, from the config and
   ``objective.needs()``;
2. :func:`wrap_model`: LoRA adapters, the live reference
   (:class:`~npo.llm.train.reference.LiveReference`), gradient checkpointing;
3. :func:`plan_batches`: the data-parallel :class:`~npo.llm.train.step.BatchPlan`;
4. :func:`~npo.llm.train.optim.build_optimizer` and
   :func:`~npo.llm.train.optim.build_scheduler` over
   :func:`~npo.llm.train.optim.schedule_steps`, then
   ``accelerate`` preparation and the drift origin (:func:`snapshot_trainable`);
5. :func:`reference_inputs`: the cached reference log-probs
   (:func:`~npo.llm.train.reference.cached_ref_logps`);
6. :func:`run_info`: what ``result.json`` records about the run.

:func:`~npo.llm.train.loop.run_loop` trains the result and
:func:`~npo.llm.train.loop.train_step` steps it (the benchmark times the latter); exact
resumption is :func:`npo.llm.train.checkpoint.start_or_resume`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from npo.llm.encoding import Encoded, template_id
from npo.llm.model import add_lora, resolve_precision
from npo.llm.train.config import TrainConfig, UnlearnConfig
from npo.llm.train.log import EvalHook
from npo.llm.train.optim import build_optimizer, build_scheduler, schedule_steps
from npo.llm.train.reference import LiveReference, cached_ref_logps, weights_digest
from npo.llm.train.step import BatchPlan, StepInputs
from npo.objectives import Objective

__all__ = [
    "ReferenceSources",
    "Setup",
    "build_setup",
    "local_share",
    "plan_batches",
    "reference_inputs",
    "reference_sources",
    "run_info",
    "snapshot_trainable",
    "wrap_model",
]


@dataclass
class Setup:
    """A run ready for :func:`~npo.llm.train.loop.run_loop`, built by :func:`build_setup`."""

    config: TrainConfig
    accelerator: Any
    model: Any  # prepared
    unwrapped: Any
    tokenizer: Any
    optimizer: Any  # prepared
    scheduler: Any
    plan: BatchPlan
    inputs: StepInputs
    out_dir: Path
    total_steps: int
    theta0: dict[str, torch.Tensor] | None
    sharded: bool
    deepspeed: bool
    hooks: Sequence[EvalHook] = ()
    start_step: int = 0
    resumed_from: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # Content digests checkpoints record (npo.llm.train.resume.run_digests), and what
    # npo_model.json records beside saved models (an adapter's base and its digest).
    digests: dict[str, Any] = field(default_factory=dict)
    save_meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceSources:
    """Where a run's reference log-probs come from.

    ``cached``: sources whose reference log-probs are computed once and cached (``forget``
    always when unlearning, for the log-ratio logs); ``live``: sources scored by the live
    reference every step (``--reference live``); ``live_model``: whether a frozen reference is
    kept at all (``kl`` terms, or ``live``).
    """

    cached: frozenset[str] = frozenset()
    live: frozenset[str] = frozenset()
    live_model: bool = False


def reference_sources(config: TrainConfig, objective: Objective) -> ReferenceSources:
    """The reference each source needs, from the config and ``objective.needs()``.

    Returns:
        Nothing for fine-tuning; when unlearning, the sources whose terms read ``ref_logps``
        (plus ``forget``), cached or live per ``config.reference``, and a frozen reference model
        for ``kl`` terms or live reference log-probs.
    """
    if not isinstance(config, UnlearnConfig):
        return ReferenceSources()
    needs = objective.needs()
    ref = {s for s, f in needs.items() if "ref_logps" in f}
    live = ref if config.reference == "live" else set()
    return ReferenceSources(
        cached=frozenset((ref | {"forget"}) - live),
        live=frozenset(live),
        live_model=bool(live) or any("kl" in f for f in needs.values()),
    )


def _distribution(acc: Any) -> tuple[bool, bool]:
    # (deepspeed, sharded) of the accelerator's distributed type.
    from accelerate.utils import DistributedType

    deepspeed = acc.distributed_type == DistributedType.DEEPSPEED
    return deepspeed, deepspeed or acc.distributed_type == DistributedType.FSDP


def wrap_model(
    config: TrainConfig, acc: Any, model: Any, *, live_model: bool, deepspeed: bool
) -> tuple[Any, LiveReference | None]:
    """LoRA adapters (``lora_r > 0``) or top blocks only, the live reference, checkpointing.

    ``train_top_layers > 0``: :func:`npo.llm.layers.freeze_below` (the frozen weights are the
    reference's too, so a live reference copy is still a full copy).

    The live reference is not sharded: a full frozen copy on each device (under FSDP too),
    placed by ``accelerate``; with LoRA it is the policy with its adapters disabled (no copy).

    Returns:
        ``(model, live reference or None)``.

    Raises:
        ValueError: a live reference model under DeepSpeed without LoRA.
    """
    lora = config.lora_r > 0
    if lora:
        model = add_lora(
            model,
            r=config.lora_r,
            alpha=config.lora_alpha,
            dropout=config.lora_dropout,
            targets=config.lora_targets,
        )
    if config.train_top_layers:
        from npo.llm.layers import freeze_below

        freeze_below(model, config.train_top_layers)
    reference = None
    if live_model:
        if deepspeed and not lora:
            raise ValueError(
                "a live reference model (+kl, --reference live) is not supported under "
                "DeepSpeed; use FSDP or LoRA"
            )
        place = partial(acc.prepare_model, device_placement=True, evaluation_mode=True)
        reference = LiveReference(model, lora=lora, prepare=place)
    if config.gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if lora:
            model.enable_input_require_grads()
    return model, reference


def plan_batches(config: TrainConfig, acc: Any, store: Mapping[str, Encoded]) -> BatchPlan:
    """The batch plan of the run: ``forget`` indexes the epoch when unlearning, else ``retain``.

    The micro-batch is ``micro_batch_size``, else the whole per-process share of a batch.

    Returns:
        The :class:`~npo.llm.train.step.BatchPlan`.
    """
    unlearning = isinstance(config, UnlearnConfig)
    primary = "forget" if unlearning else "retain"
    return BatchPlan(
        n_items=len(store[primary]),
        batch_size=config.batch_size,
        micro_batch_size=config.micro_batch_size or max(1, config.batch_size // acc.num_processes),
        world_size=acc.num_processes,
        seed=config.seed,
        sources=tuple(store),
        primary=primary,
        n_partner_pool=len(store["retain"]) if unlearning and "retain" in store else 0,
        pairing=config.pairing if isinstance(config, UnlearnConfig) else "random",
    )


def _configure_deepspeed(acc: Any, config: TrainConfig, plan: BatchPlan) -> None:
    """DeepSpeed owns accumulation and clipping: give it this run's values."""
    ds = acc.state.deepspeed_plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = plan.micro_batch_size
    ds["gradient_accumulation_steps"] = plan.accumulation
    ds["gradient_clipping"] = config.max_grad_norm


def local_share(p: torch.Tensor) -> torch.Tensor:
    """This process's share of a parameter.

    Returns:
        The local shard of an FSDP2 DTensor, the local partition of a DeepSpeed ZeRO-3
        parameter, else the tensor itself.
    """
    if hasattr(p, "to_local"):
        return p.to_local()
    return getattr(p, "ds_tensor", p)


@torch.no_grad()
def snapshot_trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies (pinned with CUDA) of this process's share of the trainable parameters.

    Returns:
        ``{parameter name: copy}``: the drift origin ``theta_0``.
    """
    pin = torch.cuda.is_available()
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            t = local_share(p.detach()).to("cpu", copy=True)
            out[name] = t.pin_memory() if pin else t
    return out


def reference_inputs(
    config: TrainConfig,
    acc: Any,
    prepared: Any,
    tokenizer: Any,
    store: Mapping[str, Encoded],
    cached: frozenset[str],
    *,
    weights: str,
    autocast: bool,
    deepspeed: bool,
    batch_size: int,
) -> dict[str, Tensor]:
    """The cached reference log-probs of the ``cached`` sources, on the run's device.

    Computed by the prepared model before any update (or read from ``config.ref_cache``),
    under a key of the starting ``weights``, the template and the precision.

    Returns:
        ``{source: (N,) log-probs}`` (empty when no source is cached).
    """
    if not cached:
        return {}
    values = cached_ref_logps(
        prepared,
        {s: store[s] for s in sorted(cached)},
        weights=weights,
        template=template_id(tokenizer),
        precision=f"{next(prepared.parameters()).dtype}|autocast={autocast}",
        cache_dir=getattr(config, "ref_cache", ".npo-cache/ref_logps"),
        is_main=acc.is_main_process,
        barrier=acc.wait_for_everyone,
        log=acc.print,
        batch_size=batch_size,
        pad_id=tokenizer.pad_token_id,
        device=acc.device,
        autocast=autocast and not deepspeed,
        rank=acc.process_index,
        world_size=acc.num_processes,
        gather=acc.gather,
    )
    return {s: v.to(acc.device) for s, v in values.items()}


def run_info(
    info: Mapping[str, Any] | None,
    acc: Any,
    store: Mapping[str, Encoded],
    plan: BatchPlan,
    unwrapped: Any,
    sources: ReferenceSources,
    *,
    warmup: int,
) -> dict[str, Any]:
    """``info`` (the caller's description) plus the run's sizes and reference choices.

    Returns:
        The dict ``result.json`` records: ``items``, ``steps_per_epoch``, ``accumulation``,
        ``processes``, ``distributed``, ``parameters``, ``trainable_parameters``,
        ``reference_cached``, ``reference_live_model`` and ``warmup_steps``.
    """
    out = dict(info or {})
    out.update(
        {
            "items": {s: len(e) for s, e in store.items()},
            "steps_per_epoch": plan.steps_per_epoch,
            "accumulation": plan.accumulation,
            "processes": acc.num_processes,
            "distributed": str(acc.distributed_type).rsplit(".", 1)[-1],
            "parameters": sum(p.numel() for p in unwrapped.parameters()),
            "trainable_parameters": sum(
                p.numel() for p in unwrapped.parameters() if p.requires_grad
            ),
            "reference_cached": sorted(sources.cached),
            "reference_live_model": sources.live_model,
            "warmup_steps": warmup,
        }
    )
    return out


def _warn_truncated(acc: Any, store: Mapping[str, Encoded], max_length: int) -> None:
    for name, enc in store.items():
        if enc.n_truncated:
            acc.print(f"warning: {enc.n_truncated} {name} sequences cut to max_length {max_length}")


def build_setup(
    config: TrainConfig,
    acc: Any,
    model: Any,
    tokenizer: Any,
    store: dict[str, Encoded],
    objective: Objective,
    *,
    hooks: Sequence[EvalHook] = (),
    info: Mapping[str, Any] | None = None,
    weights: str | None = None,
) -> Setup:
    """Wrap, plan and prepare the run of ``config`` on ``model`` and the sequences ``store``.

    The steps are those of the module docstring; the references each source needs follow
    from ``config`` and ``objective``. ``info`` describes the run in ``result.json``;
    ``weights`` is the starting model's :func:`~npo.llm.train.reference.weights_digest` when
    the caller has it already (the reference cache key).

    Returns:
        The :class:`Setup`, at step 0 (see :func:`~npo.llm.train.checkpoint.start_or_resume`).
    """
    deepspeed, sharded = _distribution(acc)
    autocast = resolve_precision(config.precision, acc.device.type)[1]
    sources = reference_sources(config, objective)
    torch.manual_seed(config.seed)
    _warn_truncated(acc, store, config.max_length)
    if sources.cached and not weights:
        weights = weights_digest(model)
    model, live = wrap_model(config, acc, model, live_model=sources.live_model, deepspeed=deepspeed)
    plan = plan_batches(config, acc, store)
    total, warmup = schedule_steps(config, plan)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, warmup=warmup, total=total, schedule=config.lr_schedule)
    if deepspeed:
        _configure_deepspeed(acc, config, plan)
    prepared, optimizer = acc.prepare(model, optimizer)
    unwrapped = acc.unwrap_model(prepared)
    theta0 = None  # the drift origin: this process's share of the trainable weights, on the CPU
    if config.drift_every and (sharded or acc.is_main_process):
        theta0 = snapshot_trainable(unwrapped)
    cached = reference_inputs(
        config,
        acc,
        prepared,
        tokenizer,
        store,
        sources.cached,
        weights=weights or "",
        autocast=autocast,
        deepspeed=deepspeed,
        batch_size=plan.micro_batch_size,
    )
    inputs = StepInputs(
        objective=objective,
        store=store,
        pad_id=tokenizer.pad_token_id,
        device=acc.device,
        beta=config.beta if isinstance(config, UnlearnConfig) else 0.1,
        autocast=autocast and not deepspeed,  # DeepSpeed's engine owns mixed precision
        cached_ref=cached,
        live=live,
        live_sources=sources.live,
        unwrapped=unwrapped,
    )
    return Setup(
        config=config,
        accelerator=acc,
        model=prepared,
        unwrapped=unwrapped,
        tokenizer=tokenizer,
        optimizer=optimizer,
        scheduler=scheduler,
        plan=plan,
        inputs=inputs,
        out_dir=Path(config.out),
        total_steps=total,
        theta0=theta0,
        sharded=sharded,
        deepspeed=deepspeed,
        hooks=hooks,
        info=run_info(info, acc, store, plan, unwrapped, sources, warmup=warmup),
    )
