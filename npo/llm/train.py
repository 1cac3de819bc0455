"""Fine-tuning and unlearning of Hugging Face causal LMs on TOFU-format data: the Python API.

    from npo.llm.train import finetune, unlearn
    from npo.llm.config import FinetuneConfig, UnlearnConfig

    target = finetune(FinetuneConfig(init="tiny-llama", data=DIR, split="full", out=A))
    result = unlearn(UnlearnConfig(model=str(target.model_dir), data=DIR, forget="forget10",
                                   method="npo+rt", out=B), hooks=[my_eval])
    result.logs  # per-step records; my_eval's returned values are merged into them

Both return a :class:`~npo.llm.loop.TrainResult`; ``hooks`` are called with a
:class:`~npo.llm.loop.HookContext` at step 0, every ``config.eval_every`` steps and at the end.
The same code runs in one process or under ``accelerate launch``/``torchrun`` (DDP, FSDP,
DeepSpeed ZeRO-3), with the same global batch and sample order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from npo.llm import checkpoint as ckpt
from npo.llm.config import FinetuneConfig, TrainConfig, UnlearnConfig
from npo.llm.data import (
    Encoded,
    encode_qa,
    idk_choices,
    read_idk,
    read_split,
    retain_for,
    template_id,
)
from npo.llm.loop import (
    EvalHook,
    HookContext,
    NonFiniteLossError,
    Setup,
    TrainResult,
    build_optimizer,
    build_scheduler,
    read_log,
    run_loop,
    snapshot_trainable,
    truncate_log,
)
from npo.llm.model import (
    add_lora,
    build_tiny_llama,
    check_model_dir,
    load_model,
    resolve_precision,
    save_model_dir,
)
from npo.llm.reference import LiveReference, cached_ref_logps, weights_digest
from npo.llm.step import BatchPlan, StepInputs
from npo.objectives import Objective, Term
from npo.results import ensure_out_dir, to_jsonable, write_json

__all__ = [
    "EvalHook",
    "FinetuneConfig",
    "HookContext",
    "NonFiniteLossError",
    "TrainResult",
    "UnlearnConfig",
    "finetune",
    "make_accelerator",
    "read_log",
    "unlearn",
]

# Options that may change between an interrupted run and its --resume.
_RESUME_FREE = {"resume", "progress", "eval_every", "checkpoint_every", "keep_checkpoints",
                "drift_every", "ref_cache"}  # fmt: skip


def make_accelerator(config: TrainConfig) -> Any:
    """An ``accelerate.Accelerator`` for ``config``: autocast is done by the step itself (so
    logits stay in bf16 instead of accelerate's float32 copy), except under DeepSpeed, whose
    engine owns mixed precision."""
    from accelerate import Accelerator

    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    _, autocast = resolve_precision(config.precision, device)
    # cpu=True without CUDA: otherwise accelerate treats `torchrun` CPU processes as
    # independent single-process runs instead of gloo data parallelism.
    return Accelerator(
        mixed_precision="bf16" if deepspeed and autocast else "no", cpu=device == "cpu"
    )


def _prepare_out(config: TrainConfig, acc: Any) -> tuple[Path, tuple[int, Path] | None]:
    out = ensure_out_dir(config.out)
    latest = ckpt.latest_checkpoint(out / "checkpoints")
    if not config.resume:
        if latest is not None or (out / "log.jsonl").exists():
            raise ValueError(
                f"{out} already holds a run (log.jsonl or checkpoints); pass --resume to "
                "continue it, or choose another --out"
            )
        return out, None
    if latest is None:
        acc.print(f"--resume: no checkpoint in {out}/checkpoints; starting from step 0")
        if acc.is_main_process:
            truncate_log(out, 0)
        return out, None
    import json

    saved = json.loads((latest[1] / "trainer_state.json").read_text())["config"]
    now = to_jsonable(config)
    diff = sorted(k for k in set(saved) | set(now) if k not in _RESUME_FREE and saved.get(k) != now.get(k))  # fmt: skip
    if diff:
        changes = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff)
        raise ValueError(f"--resume with a different configuration than {latest[1]} ({changes})")
    return out, latest


def _texts_for_tokenizer(data: str, split_name: str) -> list[str]:
    """Questions and answers of ``full`` (so target and retain models of one data source share
    a tokenizer), else of the training split, plus the IDK answers and the template words."""
    try:
        split = read_split(data, "full")
    except ValueError:
        split = read_split(data, split_name)
    texts = split.column("question") + split.column("answer")
    try:
        texts += list(read_idk(data))
    except ValueError:
        pass
    return [*texts, "Question: Answer:"]


def finetune(
    config: FinetuneConfig, *, hooks: Sequence[EvalHook] = (), accelerator: Any = None
) -> TrainResult:
    """Train on ``config.split`` (``full``: the target model; ``retainYY``: a retain model) with
    the token-mean NLL of the answers. ``--init tiny-llama`` builds the model from a config
    (saved to ``OUT/init``, the drift origin) with a BPE tokenizer trained on the data."""
    acc = accelerator or make_accelerator(config)
    if config.model is not None:
        check_model_dir(Path(config.model))
    split = read_split(config.data, config.split)
    out, latest = _prepare_out(config, acc)
    dtype, _ = resolve_precision(config.precision, acc.device.type)
    if config.init is not None:
        init_dir = out / "init"
        if acc.is_main_process and (latest is None or not init_dir.is_dir()):
            tok = None
            if config.tokenizer is not None:
                tok = load_model_tokenizer(config.tokenizer)
            texts = _texts_for_tokenizer(config.data, config.split) if tok is None else []
            model, tok = build_tiny_llama(
                texts, config.tiny_spec(), seed=config.seed, tokenizer=tok
            )
            save_model_dir(model, tok, init_dir)
        acc.wait_for_everyone()
        source = init_dir
    else:
        source = Path(config.model)  # type: ignore[arg-type]
    model, tok = load_model(source, dtype=dtype, trust_remote_code=config.trust_remote_code)
    store = {"retain": encode_qa(tok, split, max_length=config.max_length)}
    objective = Objective((Term("nll", 1.0, source="retain", reduction="token"),))
    info = {"desc": f"finetune {config.split}", "split": config.split, "init_model": str(source)}
    return _run(config, acc, model, tok, store, objective, out=out, latest=latest, hooks=hooks,
                primary="retain", info=info)  # fmt: skip


def load_model_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise ValueError(f"tokenizer directory {path!r} does not exist")
    return AutoTokenizer.from_pretrained(path)


def unlearn(
    config: UnlearnConfig, *, hooks: Sequence[EvalHook] = (), accelerator: Any = None
) -> TrainResult:
    """Unlearn ``config.forget`` from ``config.model`` with the objective of ``config``.

    The data a step needs follows ``objective.needs()``: retain partners if a term reads
    ``retain``, IDK answers if one reads ``idk``, cached reference log-probs for every
    ``ref_logps`` (and for the forget log-ratio logs), a live frozen reference only for ``kl``
    terms (or ``reference="live"``)."""
    acc = accelerator or make_accelerator(config)
    objective = config.objective()
    needs = objective.needs()
    check_model_dir(Path(config.model))  # type: ignore[arg-type]
    forget = read_split(config.data, config.forget)
    retain = answers = None
    if "retain" in needs:
        retain = read_split(config.data, config.retain or retain_for(config.forget))
    if "idk" in needs:
        answers = read_idk(config.data, config.idk_file)
    out, latest = _prepare_out(config, acc)
    dtype, autocast = resolve_precision(config.precision, acc.device.type)
    model, tok = load_model(config.model, dtype=dtype, trust_remote_code=config.trust_remote_code)  # type: ignore[arg-type]
    store: dict[str, Encoded] = {"forget": encode_qa(tok, forget, max_length=config.max_length)}
    if retain is not None:
        store["retain"] = encode_qa(tok, retain, max_length=config.max_length)
    if answers is not None:
        choice = idk_choices(len(forget), len(answers), seed=config.seed, pairing=config.pairing)
        store["idk"] = encode_qa(tok, forget, max_length=config.max_length,
                                 answers=[answers[c] for c in choice], name=f"{forget.name}+idk")  # fmt: skip
    ref = {s for s, f in needs.items() if "ref_logps" in f}
    live = ref if config.reference == "live" else set()
    info = {
        "desc": f"unlearn {config.forget} {config.method if not config.terms else 'terms'}",
        "objective": [to_jsonable(t) for t in objective.terms],
        "needs": {s: sorted(f) for s, f in needs.items()},
    }
    return _run(config, acc, model, tok, store, objective, out=out, latest=latest, hooks=hooks,
                primary="forget", cache=(ref | {"forget"}) - live, live=live,
                need_live=bool(live) or any("kl" in f for f in needs.values()),
                beta=config.beta, info=info, autocast=autocast)  # fmt: skip


def _run(
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
    autocast: bool | None = None,
) -> TrainResult:
    from accelerate.utils import DistributedType

    deepspeed = acc.distributed_type == DistributedType.DEEPSPEED
    sharded = deepspeed or acc.distributed_type == DistributedType.FSDP
    if autocast is None:
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
        reference = LiveReference(model, lora=lora, prepare=lambda m: acc.prepare_model(m, evaluation_mode=True))  # fmt: skip
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
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
        _resume(setup, *latest)
    elif acc.is_main_process:
        write_json(out / "config.json", {"command": type(config).__name__, **to_jsonable(config)})
    acc.wait_for_everyone()
    return run_loop(setup)


def _resume(s: Setup, step: int, path: Path) -> None:
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
