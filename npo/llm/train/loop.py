"""The training loop shared by fine-tuning and unlearning: a plain ``accelerate`` loop.

Per optimizer step: the :class:`~npo.llm.train.step.BatchPlan` names the global batch; each
process runs its micro-batches through :func:`~npo.llm.train.step.micro_step` (forward,
``sequence_logprobs``, objective with global counts, finite check, backward), then clip, step,
schedule. Logs are JSON Lines (``OUT/log.jsonl``, :mod:`npo.llm.train.log`), one record per
step; checkpoints are atomic and exact (:mod:`npo.llm.train.checkpoint`); a non-finite loss
stops the run before the weights change.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from npo.errors import Interrupted
from npo.llm.forward import eval_mode
from npo.llm.saving import save_model_dir
from npo.llm.train.accumulate import accumulate
from npo.llm.train.assemble import Setup, local_share
from npo.llm.train.checkpoint import (
    all_finite,
    interrupted_message,
    nonfinite_error,
    save_checkpoint,
)
from npo.llm.train.log import HookContext, append_log, read_log
from npo.llm.train.resume import run_paths
from npo.llm.train.sam import sam_accumulate, sam_rho
from npo.llm.train.step import STAT_KEYS, global_counts, stat_means
from npo.provenance import provenance
from npo.results import to_jsonable, write_json

__all__ = ["TrainResult", "param_drift", "run_loop", "train_step"]


@dataclass(frozen=True)
class TrainResult:
    """What a finished run returns.

    ``model_dir``: the final model (``save_pretrained`` + tokenizer); ``logs``: the per-step
    records of this run (from step 1, including those before a resume).
    """

    out_dir: Path
    model_dir: Path
    steps: int
    logs: tuple[dict[str, Any], ...]
    resumed_from: int | None = None


@torch.no_grad()
def param_drift(s: Setup) -> float | None:
    """``||theta_t - theta_0||_2`` over the trainable parameters.

    Replicated models: computed by the main process (None elsewhere); sharded ones: local
    shares summed over processes.

    Returns:
        The L2 distance from the drift origin, or None on a non-main replicated process.
    """
    if s.theta0 is None and not s.sharded:
        return None
    params = dict(s.unwrapped.named_parameters())
    total = torch.zeros((), dtype=torch.float64, device=s.accelerator.device)
    for name, p0 in (s.theta0 or {}).items():
        p = local_share(params[name].detach())
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
    with eval_mode(s.model):
        for hook in s.hooks:
            values = hook(ctx)
            if values:
                out.update(values)
    return out


def _append_log(s: Setup, record: dict[str, Any]) -> None:
    if s.accelerator.is_main_process:
        append_log(s.out_dir, record)


def train_step(s: Setup, step: int, stats: torch.Tensor) -> dict[str, Any]:
    """Accumulate gradients over this process's micro-batches of global batch ``step``; apply.

    Collective. Stops before the optimizer step on a non-finite loss or gradient. With
    ``sam_rho > 0`` the gradient is SAM's (:func:`~npo.llm.train.sam.sam_accumulate`).

    Returns:
        The step's record: ``lr``, ``loss``, each term's value (all-reduced), ``grad_norm``
        (not under DeepSpeed) and ``tokens``.

    Raises:
        NonFiniteLossError: a NaN/inf loss or gradient norm; the weights were not updated.
    """
    acc, plan = s.accelerator, s.plan
    batch = plan.global_batch(step)
    counts = global_counts(batch, s.inputs.store)
    if sam_rho(s.config) > 0:
        total, terms = sam_accumulate(s, batch, counts, step, stats=stats)
    else:
        total, terms = accumulate(s, batch, counts, step, stats=stats)
    grad_norm = None
    if not s.deepspeed:
        max_norm = s.config.max_grad_norm if s.config.max_grad_norm > 0 else math.inf
        grad_norm = _to_float(acc.clip_grad_norm_(s.model.parameters(), max_norm))
        if not all_finite(acc, torch.tensor(grad_norm)):
            msg = f"norm {grad_norm}; weights not updated"
            raise nonfinite_error(s, step + 1, "gradient", msg)
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


def _step_record(s: Setup, step: int) -> dict[str, Any]:
    # Optimizer step `step` (0-based) and its log record, with the hooks' values when due.
    acc = s.accelerator
    t0 = time.perf_counter()
    stats = torch.zeros(len(STAT_KEYS), dtype=torch.float64, device=acc.device)
    done = step + 1
    rec: dict[str, Any] = {"step": done, "epoch": done / s.plan.steps_per_epoch}
    rec.update(train_step(s, step, stats))
    if acc.num_processes > 1:
        stats = acc.reduce(stats, reduction="sum")
    rec.update(stat_means(stats))
    _side_losses(s, rec)
    if s.config.drift_every and (done % s.config.drift_every == 0 or done == s.total_steps):
        rec["param_drift"] = param_drift(s)
    rec["seconds"] = time.perf_counter() - t0
    every = s.config.eval_every
    if (every and done % every == 0) or done == s.total_steps:
        rec.update(_run_hooks(s, done))
    return rec


def _export(s: Setup) -> TrainResult:
    # The last checkpoint, OUT/model and OUT/result.json.
    acc = s.accelerator
    save_checkpoint(s, s.total_steps)
    model_dir = s.out_dir / "model"
    state_dict = acc.get_state_dict(s.model)
    if acc.is_main_process:
        save_model_dir(s.unwrapped, s.tokenizer, model_dir, state_dict=state_dict, **s.save_meta)
    logs = tuple(read_log(s.out_dir)) if acc.is_main_process else ()
    if acc.is_main_process:
        summary = {"steps": s.total_steps, "model_dir": model_dir, **s.info}
        summary["final"] = next((r for r in reversed(logs) if r.get("step")), {})
        summary["provenance"] = run_provenance(s)
        write_json(s.out_dir / "result.json", summary)
    acc.wait_for_everyone()
    return TrainResult(s.out_dir, model_dir, s.total_steps, logs, s.resumed_from)


def run_provenance(s: Setup) -> dict[str, Any]:
    """What reproduces run ``s`` (:func:`npo.provenance.provenance`).

    Returns:
        The record: the configuration (and its resolved learning rate), seed, world size,
        per-device micro-batch, the content digests and the resolved paths.
    """
    config = to_jsonable(s.config)
    config["learning_rate"] = s.config.learning_rate
    return provenance(
        config=config,
        seed=s.config.seed,
        world_size=s.accelerator.num_processes,
        per_device_batch=s.plan.micro_batch_size,
        accumulation=s.plan.accumulation,
        digests=s.digests,
        paths=run_paths(s.config),
    )


def run_loop(s: Setup) -> TrainResult:
    """Train from ``s.start_step`` to ``s.total_steps``; checkpoint, log, evaluate, export.

    The hooks run at step 0 (a fresh run), every ``eval_every`` steps and at the end. The final
    model goes to ``OUT/model``, the summary to ``OUT/result.json``. Collective.

    Returns:
        The :class:`TrainResult` (``logs`` empty on processes other than the main one).
    """
    from tqdm.auto import tqdm

    if s.start_step == 0:
        hooked = _run_hooks(s, 0)
        if hooked:
            _append_log(s, {"step": 0, "epoch": 0.0, **hooked})
    bar = tqdm(
        total=s.total_steps,
        initial=s.start_step,
        disable=not (s.config.progress and s.accelerator.is_main_process),
        desc=s.info.get("desc", "train"),
        unit="step",
        dynamic_ncols=True,
    )
    s.model.train()
    step = s.start_step
    try:
        for step in range(s.start_step, s.total_steps):
            rec = _step_record(s, step)
            _append_log(s, rec)
            bar.update(1)
            shown = {k: f"{rec[k]:.4g}" for k in ("loss", "forget_logp") if rec.get(k) is not None}
            bar.set_postfix(shown)
            done = step + 1
            if s.config.checkpoint_every and done % s.config.checkpoint_every == 0:
                if done < s.total_steps:
                    save_checkpoint(s, done)
        step = s.total_steps
        return _export(s)
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(interrupted_message(s.out_dir, min(step + 1, s.total_steps))) from None
    finally:
        bar.close()
