"""The training loop shared by fine-tuning and unlearning: a plain ``accelerate`` loop.

Per optimizer step: the :class:`~npo.llm.step.BatchPlan` names the global batch; each process
runs its micro-batches through :func:`~npo.llm.step.micro_step` (forward, ``sequence_logprobs``,
objective with global counts, finite check, backward), then clip, step, schedule. Logs are
JSON Lines (``OUT/log.jsonl``), one record per step; checkpoints are atomic and exact
(:mod:`npo.llm.checkpoint`); a non-finite loss stops the run before the weights change.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from npo.llm import checkpoint as ckpt
from npo.llm.config import TrainConfig
from npo.llm.model import save_model_dir
from npo.llm.step import STAT_KEYS, BatchPlan, StepInputs, global_counts, micro_step, summarize
from npo.results import atomic_write_text, to_jsonable, write_json

__all__ = [
    "HookContext",
    "NonFiniteLossError",
    "TrainResult",
    "build_scheduler",
    "read_log",
    "run_loop",
    "snapshot_trainable",
    "train_step",
]


class NonFiniteLossError(ValueError):
    """A step produced a NaN/inf loss or gradient; the weights were not updated."""


@dataclass
class HookContext:
    """What an evaluation hook sees. ``model`` is the unwrapped Hugging Face model, in eval mode
    under ``torch.no_grad()`` during the call; hooks run on every process."""

    step: int
    epoch: float
    model: Any
    tokenizer: Any
    accelerator: Any
    config: TrainConfig
    out_dir: Path
    device: torch.device


EvalHook = Callable[[HookContext], Mapping[str, Any] | None]


@dataclass(frozen=True)
class TrainResult:
    """``model_dir``: the final model (``save_pretrained`` + tokenizer); ``logs``: the per-step
    records of this run (from step 1, including those before a resume)."""

    out_dir: Path
    model_dir: Path
    steps: int
    logs: tuple[dict[str, Any], ...]
    resumed_from: int | None = None


def read_log(out_dir: str | Path) -> list[dict[str, Any]]:
    """The per-step records of ``OUT/log.jsonl``."""
    import json

    path = Path(out_dir) / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def lr_factor(step: int, *, warmup: int, total: int, schedule: str) -> float:
    """Learning-rate multiplier of optimizer step ``step`` (0-based): linear warm-up reaching
    1 at step ``warmup - 1``, then linear decay (``linear``, positive through the last step)
    or constant (``constant``)."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return (total - step) / max(1, total - warmup)


def build_scheduler(optimizer: Any, *, warmup: int, total: int, schedule: str) -> Any:
    from functools import partial

    fn = partial(lr_factor, warmup=warmup, total=total, schedule=schedule)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD; weight decay on matrices only (not on biases and norm weights)."""
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


@dataclass
class Setup:
    """A run ready for :func:`run_loop`, built by :mod:`npo.llm.train`."""

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


def _all_finite(acc: Any, value: torch.Tensor) -> bool:
    flag = torch.isfinite(value.detach()).all().to(torch.float32).reshape(1)
    if acc.num_processes > 1:
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item() > 0)


def _local(p: torch.Tensor) -> torch.Tensor:
    """This process's share of a parameter: the local shard of an FSDP2 DTensor, the local
    partition of a DeepSpeed ZeRO-3 parameter, else the tensor itself."""
    if hasattr(p, "to_local"):
        return p.to_local()
    return getattr(p, "ds_tensor", p)


@torch.no_grad()
def snapshot_trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies (pinned with CUDA) of this process's share of the trainable parameters."""
    pin = torch.cuda.is_available()
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            t = _local(p.detach()).to("cpu", copy=True)
            out[name] = t.pin_memory() if pin else t
    return out


@torch.no_grad()
def param_drift(s: Setup) -> float | None:
    """``||theta_t - theta_0||_2`` over the trainable parameters. Replicated models: computed
    by the main process (None elsewhere); sharded ones: local shares summed over processes."""
    if s.theta0 is None and not s.sharded:
        return None
    params = dict(s.unwrapped.named_parameters())
    total = torch.zeros((), dtype=torch.float64, device=s.accelerator.device)
    for name, p0 in (s.theta0 or {}).items():
        p = _local(params[name].detach())
        diff = p.to(torch.float32) - p0.to(p.device, non_blocking=True).to(torch.float32)
        total += diff.pow(2).sum().to(torch.float64)
    if s.sharded and s.accelerator.num_processes > 1:
        total = s.accelerator.reduce(total, reduction="sum")
    return math.sqrt(float(total))


def _to_float(x: Any) -> float:
    if hasattr(x, "full_tensor"):  # a DTensor (FSDP2)
        x = x.full_tensor()
    return float(x)


def _run_hooks(s: Setup, step: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not s.hooks:
        return out
    was_training = s.model.training
    s.model.eval()
    ctx = HookContext(
        step=step,
        epoch=step / s.plan.steps_per_epoch,
        model=s.unwrapped,
        tokenizer=s.tokenizer,
        accelerator=s.accelerator,
        config=s.config,
        out_dir=s.out_dir,
        device=s.accelerator.device,
    )
    try:
        with torch.no_grad():
            for hook in s.hooks:
                values = hook(ctx)
                if values:
                    out.update(values)
    finally:
        s.model.train(was_training)
    return out


def save_checkpoint(s: Setup, step: int) -> Path:
    """Check the weights are finite (else stop: a bad state is never saved), then write
    ``checkpoints/step-NNNNNN`` atomically. Collective: call on every process."""
    finite = all(bool(torch.isfinite(_local(p.detach())).all()) for p in s.unwrapped.parameters())
    if not _all_finite(s.accelerator, torch.tensor(1.0 if finite else math.nan)):
        raise _nonfinite(s, step, "weights", "after the optimizer step; not checkpointed")
    return ckpt.write_checkpoint(s, step)


def _append_log(s: Setup, record: dict[str, Any]) -> None:
    import json

    if s.accelerator.is_main_process:
        line = json.dumps(to_jsonable(record), allow_nan=False)
        with open(s.out_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _nonfinite(s: Setup, step: int, what: str, detail: str) -> NonFiniteLossError:
    last = ckpt.latest_checkpoint(s.out_dir / "checkpoints")
    where = f"the last good checkpoint is {last[1]}" if last else "no checkpoint was written yet"
    return NonFiniteLossError(
        f"non-finite {what} at step {step} ({detail}); the run stopped; {where} "
        "(resume from it with --resume and a lower --lr)"
    )


def train_step(s: Setup, step: int, stats: torch.Tensor) -> dict[str, Any]:
    """Accumulate gradients over this process's micro-batches of global batch ``step`` and
    apply them. Returns the step's (all-reduced) term values and gradient norm."""
    acc, plan = s.accelerator, s.plan
    batch = plan.global_batch(step)
    counts = global_counts(batch, s.inputs.store)
    # DDP/FSDP average gradients over processes (DeepSpeed also over accumulation steps);
    # the objective is already normalised by global counts, so undo those averages.
    scale = acc.num_processes * (plan.accumulation if s.deepspeed else 1)
    terms: dict[str, torch.Tensor] = {}
    total = torch.zeros((), dtype=torch.float64, device=acc.device)
    for m in range(plan.accumulation):
        idx = plan.micro(batch, m, acc.process_index)
        out = micro_step(s.model, idx, s.inputs, counts, stats=stats)
        if not _all_finite(acc, out.loss):
            detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in out.terms.items())
            raise _nonfinite(s, step + 1, "loss", f"{detail}; weights not updated")
        last = m == plan.accumulation - 1
        sync = acc.no_sync(s.model) if not last and not s.deepspeed else _null()
        with sync:
            acc.backward(out.loss * scale)
        total += out.loss.detach().to(torch.float64)
        for k, v in out.terms.items():
            terms[k] = terms.get(k, 0.0) + v.detach().to(torch.float64)
    grad_norm = None
    if not s.deepspeed:
        max_norm = s.config.max_grad_norm if s.config.max_grad_norm > 0 else math.inf
        grad_norm = _to_float(acc.clip_grad_norm_(s.model.parameters(), max_norm))
        if not _all_finite(acc, torch.tensor(grad_norm)):
            raise _nonfinite(s, step + 1, "gradient", f"norm {grad_norm}; weights not updated")
    lr = s.optimizer.param_groups[0]["lr"]
    s.optimizer.step()
    s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    keys = sorted(terms)
    vec = torch.stack([total, *[terms[k] for k in keys]])
    vec = acc.reduce(vec, reduction="sum") if acc.num_processes > 1 else vec
    out_rec = {"lr": lr, "loss": float(vec[0])}
    out_rec.update({k: float(v) for k, v in zip(keys, vec[1:].tolist())})
    if grad_norm is not None:
        out_rec["grad_norm"] = grad_norm
    out_rec["tokens"] = int(sum(c[1] for c in counts.values()))
    return out_rec


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _side_losses(s: Setup, rec: dict[str, Any]) -> None:
    """forget_loss / retain_loss: the weighted sums of each side's terms."""
    forget = retain = 0.0
    for term in s.inputs.objective.terms:
        if term.name in rec:
            value = term.weight * rec[term.name]
            if term.source == "retain":
                retain += value
            else:
                forget += value
    if any(t.source != "retain" for t in s.inputs.objective.terms):
        rec["forget_loss"] = forget
    if any(t.source == "retain" for t in s.inputs.objective.terms):
        rec["retain_loss"] = retain


def run_loop(s: Setup) -> TrainResult:
    """Train from ``s.start_step`` to ``s.total_steps``; checkpoint, log, evaluate, export."""
    from tqdm.auto import tqdm

    acc, plan = s.accelerator, s.plan
    if s.start_step == 0:
        hooked = _run_hooks(s, 0)
        if hooked:
            _append_log(s, {"step": 0, "epoch": 0.0, **hooked})
    bar = tqdm(
        total=s.total_steps,
        initial=s.start_step,
        disable=not (s.config.progress and acc.is_main_process),
        desc=s.info.get("desc", "train"),
        unit="step",
        dynamic_ncols=True,
    )
    s.model.train()
    try:
        for step in range(s.start_step, s.total_steps):
            t0 = time.perf_counter()
            stats = torch.zeros(len(STAT_KEYS), dtype=torch.float64, device=acc.device)
            rec: dict[str, Any] = {"step": step + 1, "epoch": (step + 1) / plan.steps_per_epoch}
            rec.update(train_step(s, step, stats))
            if acc.num_processes > 1:
                stats = acc.reduce(stats, reduction="sum")
            rec.update(summarize(stats))
            _side_losses(s, rec)
            done = step + 1
            if s.config.drift_every and (done % s.config.drift_every == 0 or done == s.total_steps):
                rec["param_drift"] = param_drift(s)
            rec["seconds"] = time.perf_counter() - t0
            every = s.config.eval_every
            if (every and done % every == 0) or done == s.total_steps:
                rec.update(_run_hooks(s, done))
            _append_log(s, rec)
            bar.update(1)
            bar.set_postfix(
                {k: f"{rec[k]:.4g}" for k in ("loss", "forget_logp") if rec.get(k) is not None}
            )
            if s.config.checkpoint_every and done % s.config.checkpoint_every == 0:
                if done < s.total_steps:
                    save_checkpoint(s, done)
    finally:
        bar.close()
    save_checkpoint(s, s.total_steps)
    model_dir = s.out_dir / "model"
    state_dict = acc.get_state_dict(s.model)
    if acc.is_main_process:
        save_model_dir(s.unwrapped, s.tokenizer, model_dir, state_dict=state_dict)
    logs = tuple(read_log(s.out_dir)) if acc.is_main_process else ()
    if acc.is_main_process:
        summary = {"steps": s.total_steps, "model_dir": model_dir, **s.info}
        summary["final"] = next((r for r in reversed(logs) if r.get("step")), {})
        write_json(s.out_dir / "result.json", summary)
    acc.wait_for_everyone()
    return TrainResult(s.out_dir, model_dir, s.total_steps, logs, s.resumed_from)


def truncate_log(out_dir: Path, step: int) -> None:
    """Keep the records of steps <= ``step`` (a resumed run rewrites the rest)."""
    import json

    records = [r for r in read_log(out_dir) if r.get("step", 0) <= step]
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
    atomic_write_text(out_dir / "log.jsonl", text)
