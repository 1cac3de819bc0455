"""Assembling a training run: model wrapping (LoRA, live reference, gradient checkpointing),
the batch plan, optimizer and schedule, ``accelerate`` preparation, the reference log-prob cache,
the drift origin, and exact resumption. :func:`build_setup` returns the
:class:`~npo.llm.loop.Setup` that :func:`~npo.llm.loop.run_loop` trains and
:func:`~npo.llm.loop.train_step` steps (the benchmark times the latter)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from npo.llm import checkpoint as ckpt
from npo.llm.config import TrainConfig
from npo.llm.data import Encoded, template_id
from npo.llm.loop import (
    EvalHook,
    Setup,
    build_optimizer,
    build_scheduler,
    snapshot_trainable,
    truncate_log,
)
from npo.llm.model import add_lora, resolve_precision
from npo.llm.reference import LiveReference, cached_ref_logps, weights_digest
from npo.llm.step import BatchPlan, StepInputs
from npo.objectives import Objective
from npo.results import to_jsonable, write_json

__all__ = ["build_setup"]


def build_setup(
    config: TrainConfig,
    acc: Any,
    model: Any,
    tok: Any,
    store: dict[str, Encoded],
    objective: Objective,
    *,
    out: Path,
    latest: tuple[int, Path] | None,
    hooks: Sequence[EvalHook],
    primary: str,
    cache: set[str] | frozenset[str] = frozenset(),
    live: set[str] | frozenset[str] = frozenset(),
    need_live: bool = False,
    beta: float = 0.1,
    info: dict[str, Any] | None = None,
) -> Setup:
    """Wrap, prepare and (on ``latest``) resume a run; see the module docstring."""
    from accelerate.utils import DistributedType

    deepspeed = acc.distributed_type == DistributedType.DEEPSPEED
    sharded = deepspeed or acc.distributed_type == DistributedType.FSDP
    autocast = resolve_precision(config.precision, acc.device.type)[1]
    torch.manual_seed(config.seed)
    for name, enc in store.items():
        if enc.n_truncated:
            acc.print(f"warning: {enc.n_truncated} {name} sequences cut to max_length {config.max_length}")  # fmt: skip
    weights = weights_digest(model) if cache else ""
    lora = config.lora_r > 0
    if lora:
        model = add_lora(model, r=config.lora_r, alpha=config.lora_alpha,
                         dropout=config.lora_dropout, targets=config.lora_targets)  # fmt: skip
    reference = None
    if need_live:
        if deepspeed and not lora:
            raise ValueError("a live reference model (+kl, --reference live) is not supported under DeepSpeed; use FSDP or LoRA")  # fmt: skip
        # Not sharded: a full frozen copy on each device (under FSDP too); LoRA needs no copy.
        place = lambda m: acc.prepare_model(m, device_placement=True, evaluation_mode=True)  # noqa: E731
        reference = LiveReference(model, lora=lora, prepare=place)
    if config.gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if lora:
            model.enable_input_require_grads()
    micro = config.micro_batch_size or max(1, config.batch_size // acc.num_processes)
    plan = BatchPlan(
        n_items=len(store[primary]),
        batch_size=config.batch_size,
        micro_batch_size=micro,
        world_size=acc.num_processes,
        seed=config.seed,
        sources=tuple(store),
        primary=primary,
        n_partner_pool=len(store["retain"]) if primary == "forget" and "retain" in store else 0,
        pairing=getattr(config, "pairing", "random"),
    )
    total = config.max_steps or config.epochs * plan.steps_per_epoch
    warmup = min(total, round(config.warmup_epochs * plan.steps_per_epoch))
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, warmup=warmup, total=total, schedule=config.lr_schedule)
    if deepspeed:  # DeepSpeed owns accumulation and clipping: give it this run's values
        ds = acc.state.deepspeed_plugin.deepspeed_config
        ds["train_micro_batch_size_per_gpu"] = micro
        ds["gradient_accumulation_steps"] = plan.accumulation
        ds["gradient_clipping"] = config.max_grad_norm
    prepared, optimizer = acc.prepare(model, optimizer)
    unwrapped = acc.unwrap_model(prepared)
    theta0 = None  # the drift origin: this process's share of the trainable weights, on the CPU
    if config.drift_every and (sharded or acc.is_main_process):
        theta0 = snapshot_trainable(unwrapped)
    pad_id = tok.pad_token_id
    cached = {}
    if cache:
        cached = cached_ref_logps(
            prepared,
            {s: store[s] for s in sorted(cache)},
            weights=weights,
            template=template_id(tok),
            precision=f"{next(prepared.parameters()).dtype}|autocast={autocast}",
            cache_dir=getattr(config, "ref_cache", ".npo-cache/ref_logps"),
            is_main=acc.is_main_process,
            barrier=acc.wait_for_everyone,
            log=acc.print,
            batch_size=micro,
            pad_id=pad_id,
            device=acc.device,
            autocast=autocast and not deepspeed,
            rank=acc.process_index,
            world_size=acc.num_processes,
            gather=acc.gather,
        )
        cached = {s: v.to(acc.device) for s, v in cached.items()}
    inputs = StepInputs(
        objective=objective,
        store=store,
        pad_id=pad_id,
        device=acc.device,
        beta=beta,
        autocast=autocast and not deepspeed,
        cached_ref=cached,
        live=reference,
        live_sources=frozenset(live),
        unwrapped=unwrapped,
    )
    n_params = sum(p.numel() for p in unwrapped.parameters())
    n_train = sum(p.numel() for p in unwrapped.parameters() if p.requires_grad)
    info = dict(info or {})
    info.update(
        {
            "items": {s: len(e) for s, e in store.items()},
            "steps_per_epoch": plan.steps_per_epoch,
            "accumulation": plan.accumulation,
            "processes": acc.num_processes,
            "distributed": str(acc.distributed_type).rsplit(".", 1)[-1],
            "parameters": n_params,
            "trainable_parameters": n_train,
            "reference_cached": sorted(cache),
            "reference_live_model": reference is not None,
            "warmup_steps": warmup,
        }
    )
    setup = Setup(
        config=config,
        accelerator=acc,
        model=prepared,
        unwrapped=unwrapped,
        tokenizer=tok,
        optimizer=optimizer,
        scheduler=scheduler,
        plan=plan,
        inputs=inputs,
        out_dir=out,
        total_steps=total,
        theta0=theta0,
        sharded=sharded,
        deepspeed=deepspeed,
        hooks=hooks,
        info=info,
    )
    if latest is not None:
        resume_from(setup, *latest)
    elif acc.is_main_process:
        write_json(out / "config.json", {"command": type(config).__name__, **to_jsonable(config)})
    acc.wait_for_everyone()
    return setup


def resume_from(s: Setup, step: int, path: Path) -> None:
    """Load weights, optimizer, scheduler and RNG state of checkpoint ``path`` (exact)."""
    import json

    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    state = json.loads((path / "trainer_state.json").read_text())
    if not state.get("optimizer_saved"):
        raise ValueError(
            f"{path} has no optimizer state (written under DeepSpeed); it cannot be resumed "
            "exactly; start a new run from its model/ directory instead"
        )
    if s.sharded:
        weights = ckpt.read_weights(path / "model")
        opts = StateDictOptions(full_state_dict=True, strict=False)
        set_model_state_dict(s.model, weights, options=opts)
    else:
        ckpt.load_model_weights(s.unwrapped, path / "model")
    raw = getattr(s.optimizer, "optimizer", s.optimizer)
    set_optimizer_state_dict(
        s.model, raw, ckpt.load_optimizer(path), options=StateDictOptions(full_state_dict=True)
    )
    s.scheduler.load_state_dict(state["scheduler"])
    ckpt.load_rng(path, s.accelerator.process_index)
    s.start_step = s.resumed_from = step
    if s.accelerator.is_main_process:
        truncate_log(s.out_dir, step)
    s.accelerator.print(f"resumed from {path} at step {step}")
