"""One training step, method-agnostic: which sequences, one forward, the objective.

The forward's logits become per-sequence log-probs (``sequence_logprobs``), the objective is
evaluated on them, and the caller runs backward.

Nothing here knows a method name. What a step needs is read off ``objective.needs()``:
the sources it reads (``forget``, ``retain``, ``idk``), whether a source needs reference
log-probs (``ref_logps``: from the on-disk cache, or a live model with ``--reference live``) and
whether it needs a per-token KL to a live reference (``kl``).

Data parallelism: :class:`BatchPlan` fixes the *global* batch of every step from
``(seed, epoch)`` alone, and each rank takes its micro-batches from it; the objective is
evaluated with the global per-source counts (``counts=``), so token means are normalized by the
global token count, and gradients summed over micro-batches and ranks equal those of the
whole batch in one process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from npo.llm.encoding import Encoded, collate
from npo.llm.forward import forward_logits
from npo.llm.order import retain_partners, seeded_permutation
from npo.llm.train.reference import LiveReference, select
from npo.logprobs import next_token_mask, sequence_logprobs, token_kl
from npo.losses import npo_weight
from npo.objectives import Objective, ObjectiveOutput, SeqBatch

__all__ = [
    "SOURCE_ORDER",
    "STAT_KEYS",
    "BatchPlan",
    "StepInputs",
    "global_counts",
    "micro_step",
    "sequence_batches",
    "stat_means",
]

SOURCE_ORDER = ("forget", "idk", "retain")
# Detached per-step sums, all-reduced across ranks: forget sequences, their tokens, summed
# log-probs, and (where reference log-probs exist) sequences with a reference, log-ratio, W.
STAT_KEYS = ("n_forget", "forget_tokens", "forget_logp", "n_ref", "log_ratio", "npo_weight")


@dataclass
class BatchPlan:
    """Which items each step uses, as a pure function of ``(seed, step)``.

    ``primary`` indexes the epoch (``forget`` when unlearning, ``retain`` = the training split
    when fine-tuning); ``idk`` uses the same indices as ``forget`` (its sequences are the forget
    questions with their IDK answers); ``retain`` partners come from ``pairing`` when the
    primary source is ``forget``. Epochs are ``n_items // batch_size`` global batches.
    """

    n_items: int
    batch_size: int
    micro_batch_size: int
    world_size: int
    seed: int
    sources: tuple[str, ...]
    primary: str = "forget"
    n_partner_pool: int = 0
    pairing: str = "random"
    _cache: dict[int, tuple[list[int], list[int] | None]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        per_pass = self.micro_batch_size * self.world_size
        if self.micro_batch_size < 1 or self.batch_size % per_pass:
            raise ValueError(
                f"batch size {self.batch_size} must be a multiple of micro-batch size "
                f"{self.micro_batch_size} x {self.world_size} process(es)"
            )
        if self.n_items < self.batch_size:
            raise ValueError(
                f"the {self.primary} split has {self.n_items} items, fewer than one batch of "
                f"{self.batch_size}; lower --batch-size"
            )

    @property
    def accumulation(self) -> int:
        """Micro-batches per process and optimizer step (gradient accumulation)."""
        return self.batch_size // (self.micro_batch_size * self.world_size)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per pass over the primary source (incomplete batches dropped)."""
        return self.n_items // self.batch_size

    def _epoch(self, epoch: int) -> tuple[list[int], list[int] | None]:
        if epoch not in self._cache:
            self._cache.clear()
            order = seeded_permutation(self.n_items, seed=self.seed, epoch=epoch)
            partners = None
            if self.primary == "forget" and "retain" in self.sources:
                partners = retain_partners(
                    self.n_items,
                    self.n_partner_pool,
                    seed=self.seed,
                    epoch=epoch,
                    pairing=self.pairing,
                )
            self._cache[epoch] = (order, partners)
        return self._cache[epoch]

    def global_batch(self, step: int) -> dict[str, list[int]]:
        """Item indices per source of optimizer step ``step`` (0-based), aligned by position.

        Returns:
            ``{source: indices}``, each of length ``batch_size``.
        """
        epoch, pos = divmod(step, self.steps_per_epoch)
        order, partners = self._epoch(epoch)
        ids = order[pos * self.batch_size : (pos + 1) * self.batch_size]
        out = {self.primary: ids}
        if "idk" in self.sources:
            out["idk"] = ids
        if partners is not None:
            out["retain"] = [partners[i] for i in ids]
        return out

    def micro(self, batch: Mapping[str, list[int]], micro: int, rank: int) -> dict[str, list[int]]:
        """Micro-batch ``micro`` of process ``rank`` of a global batch.

        Returns:
            ``{source: indices}`` at positions ``(micro * world_size + rank) * mb`` onwards,
            ``mb = micro_batch_size`` of them.
        """
        start = (micro * self.world_size + rank) * self.micro_batch_size
        return {s: ids[start : start + self.micro_batch_size] for s, ids in batch.items()}


def global_counts(
    batch: Mapping[str, list[int]], store: Mapping[str, Encoded]
) -> dict[str, tuple[float, float]]:
    """Sequence and answer-token counts per source of a whole global batch.

    Returns:
        ``{source: (n_sequences, n_answer_tokens)}`` as floats (the objective's ``counts=``).
    """
    return {
        s: (float(len(ids)), float(sum(store[s].n_tokens(i) for i in ids)))
        for s, ids in batch.items()
    }


@dataclass
class StepInputs:
    """Everything a micro-step reads besides the model and the item indices."""

    objective: Objective
    store: Mapping[str, Encoded]
    pad_id: int
    device: torch.device
    beta: float = 0.1
    autocast: bool = False
    cached_ref: Mapping[str, Tensor] = field(default_factory=dict)
    live: LiveReference | None = None
    live_sources: frozenset[str] = frozenset()
    unwrapped: Any = None

    def __post_init__(self) -> None:
        self.needs = self.objective.needs()


def micro_step(
    model: torch.nn.Module,
    idx: Mapping[str, list[int]],
    inputs: StepInputs,
    counts: Mapping[str, tuple[float, float]] | None = None,
    *,
    stats: Tensor | None = None,
) -> ObjectiveOutput:
    """:func:`sequence_batches`, then the objective (normalized by the global ``counts``).

    Adds detached :data:`STAT_KEYS` sums into ``stats``.

    Returns:
        The objective's output: the loss to backpropagate and each term's value.
    """
    sources = sequence_batches(model, idx, inputs)
    out = inputs.objective(sources, counts=counts)
    if stats is not None and "forget" in sources:
        _add_stats(stats, sources["forget"], inputs.beta)
    return out


def sequence_batches(
    model: torch.nn.Module, idx: Mapping[str, list[int]], inputs: StepInputs
) -> dict[str, SeqBatch]:
    """The per-sequence log-probs of every source of one micro-batch, from one forward.

    The sequences of all sources go through one right-padded batch
    (:func:`~npo.llm.forward.forward_logits`); the logits become per-sequence answer log-probs
    (:func:`~npo.logprobs.sequence_logprobs`), and the reference log-probs / KL
    (:func:`~npo.logprobs.token_kl`) are attached where the objective needs them.

    Returns:
        ``{source: SeqBatch}`` with fields of shape (B_source,).
    """
    spans, items, at = {}, [], 0
    for s in SOURCE_ORDER:
        if idx.get(s):
            spans[s] = (at, at + len(idx[s]))
            items += [inputs.store[s].item(i) for i in idx[s]]
            at += len(idx[s])
    batch = {k: v.to(inputs.device) for k, v in collate(items, inputs.pad_id).items()}
    logits = forward_logits(model, batch, autocast=inputs.autocast)  # (B, T, V)
    logps, n_tokens = sequence_logprobs(logits, batch["labels"])  # (B,), (B,)

    live_rows = [s for s in spans if "kl" in inputs.needs.get(s, ()) or s in inputs.live_sources]
    ref_logits, lo = None, 0
    if live_rows:
        if inputs.live is None:
            raise ValueError(f"sources {live_rows} need a live reference model, none was loaded")
        lo, hi = min(spans[s][0] for s in live_rows), max(spans[s][1] for s in live_rows)
        sub = {k: v[lo:hi] for k, v in batch.items()}
        ref_logits = inputs.live.logits(model, inputs.unwrapped, sub, inputs.autocast)

    sources: dict[str, SeqBatch] = {}
    for s, (a, b) in spans.items():
        ref = kl = None
        if s in inputs.cached_ref:
            ref = select(inputs.cached_ref[s], idx[s], inputs.device).to(logps.dtype)
        elif s in inputs.live_sources and ref_logits is not None:
            ref = sequence_logprobs(ref_logits[a - lo : b - lo], batch["labels"][a:b])[0]
        if "kl" in inputs.needs.get(s, ()) and ref_logits is not None:
            mask = next_token_mask(batch["labels"][a:b])
            kl = token_kl(logits[a:b], ref_logits[a - lo : b - lo], mask)
        sources[s] = SeqBatch(logps[a:b], n_tokens[a:b], ref, kl)
    return sources


@torch.no_grad()
def _add_stats(stats: Tensor, forget: SeqBatch, beta: float) -> None:
    assert forget.logps is not None  # sequence_batches always sets them
    lp = forget.logps.detach()
    row = [len(lp), forget.tokens().sum(), lp.sum(), 0.0, 0.0, 0.0]
    if forget.ref_logps is not None:
        ref = forget.ref_logps.detach()
        row[3:] = [len(lp), (lp - ref).sum(), npo_weight(lp, ref, beta=beta).sum()]
    stats += torch.stack([torch.as_tensor(v, dtype=stats.dtype, device=stats.device) for v in row])


def stat_means(stats: Tensor) -> dict[str, float | None]:
    """Per-step means from the all-reduced :data:`STAT_KEYS` sums.

    Returns:
        ``forget_logp`` and ``forget_logp_per_token``, and ``log_ratio`` and ``npo_weight``
        (None without reference log-probs); empty when the step had no forget sequences.
    """
    n, tok, lp, n_ref, ratio, w = (float(v) for v in stats.tolist())
    if n == 0:
        return {}
    out: dict[str, float | None] = {"forget_logp": lp / n, "forget_logp_per_token": lp / tok}
    out["log_ratio"] = ratio / n_ref if n_ref else None
    out["npo_weight"] = w / n_ref if n_ref else None
    return out
