"""Metrics of the knowledge-unlearning study, on the frozen prefix and on generations.

Teacher-forced, from :class:`~npo.llm.studies.frozen.FrozenPrefix` (every evaluation):

- ``{forget,retain}_accuracy``: the fraction of items whose answer tokens up to the fact
  (``fact_tokens``, :func:`~npo.llm.studies.probe.answer_span`) are all the argmax
  (:func:`npo.logprobs.packed_greedy_matches`): greedy decoding still states the fact in the
  model's original words. It starts at 1 by construction (the answers are the model's own
  greedy ones); a later greedy answer may state the fact in other words, which the
  generation metrics below catch;
- ``{forget,retain}_prob``: the mean over items of the length-normalized answer probability
  ``exp(log pi(y|x) / |y|)`` (TOFU's probability);
- ``forget_logp``: the mean summed answer log-likelihood;
- ``retain_kl``: ``KL(pi_ref || pi_theta)`` per answer token of the retain items, averaged
  over them (:func:`npo.logprobs.packed_token_kl`);
- ``heldout_ppl``: ``exp`` of the mean token NLL of held-out text (answers in neither set).

From greedy generations of a fixed sample of prompts (the full model, KV cache), at fewer
steps: ``gibberish_rate`` (the TOFU repetition criterion,
:func:`npo.llm.eval.metrics.is_degenerate`, over the whole sample), and
``{forget,retain}_hits``: the fraction of the forget / retain prompts of the sample whose
generation still states the fact (:func:`npo.llm.studies.probe.is_hit`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from npo.llm.studies.frozen import FrozenPrefix, Packed
from npo.llm.studies.probe import is_hit
from npo.logprobs import packed_greedy_matches, packed_sequence_logprobs, packed_token_kl

__all__ = [
    "GEN_METRICS",
    "METRICS",
    "crossing",
    "generation_metrics",
    "prefix_metrics",
    "reference_logits",
]

METRICS = (
    "forget_accuracy",
    "forget_prob",
    "forget_logp",
    "retain_accuracy",
    "retain_prob",
    "retain_kl",
    "heldout_ppl",
)
GEN_METRICS = ("gibberish_rate", "forget_hits", "retain_hits")


def _batches(source: str, n: int, size: int) -> list[list[tuple[str, int]]]:
    return [[(source, i) for i in range(s, min(s + size, n))] for s in range(0, n, size)]


Tensor3 = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _scores(
    prefix: FrozenPrefix, source: str, size: int, facts: torch.Tensor | None = None
) -> list[tuple[Packed, Tensor3]]:
    # Per batch: the packed logits and (log-probs, answer tokens, fact reproduced?).
    out = []
    for items in _batches(source, len(prefix.encoded[source]), size):
        p = prefix.packed(items)
        lp, n = packed_sequence_logprobs(p.logits, p.targets, p.rows, p.n_seq)
        first = None if facts is None else facts[[i for _, i in items]]
        hits, counted = packed_greedy_matches(p.logits, p.targets, p.rows, p.n_seq, first=first)
        out.append((p, (lp, n, hits == counted)))
    return out


@torch.no_grad()
def reference_logits(prefix: FrozenPrefix, source: str, batch_size: int) -> list[torch.Tensor]:
    """The starting model's packed logits of ``source``, batch by batch (for the KL).

    Returns:
        One (M_b, V) tensor per evaluation batch of :func:`prefix_metrics`.
    """
    return [p.logits.clone() for p, _ in _scores(prefix, source, batch_size)]


@torch.no_grad()
def prefix_metrics(
    prefix: FrozenPrefix,
    ref_retain: Sequence[torch.Tensor],
    facts: Mapping[str, torch.Tensor],
    batch_size: int,
) -> tuple[dict[str, float], np.ndarray]:
    """The teacher-forced metrics of the module docstring.

    Args:
        prefix: the cached sources ``forget``, ``retain`` and ``heldout``.
        ref_retain: :func:`reference_logits` of ``retain`` (same ``batch_size``).
        facts: ``fact_tokens`` per item of ``forget`` and ``retain``, (N,) int64 each.
        batch_size: sequences per forward.

    Returns:
        ``(metrics, forget_logps)``: :data:`METRICS`, and the per-item summed forget
        log-likelihoods (the NPO reference when taken from the starting model).
    """
    out: dict[str, float] = {}
    forget_logps = np.zeros(0)
    for source in ("forget", "retain"):
        acc, prob, logp = [], [], []
        kl_sum, kl_tok = 0.0, 0.0
        scores = _scores(prefix, source, batch_size, facts[source])
        for b, (p, (lp, n, stated)) in enumerate(scores):
            acc += stated.tolist()
            prob += torch.exp(lp / n).tolist()
            logp += lp.tolist()
            if source == "retain":
                kl = packed_token_kl(p.logits, ref_retain[b], p.rows, p.n_seq)
                kl_sum, kl_tok = kl_sum + float(kl.sum()), kl_tok + float(n.sum())
        out[f"{source}_accuracy"] = float(np.mean(acc))
        out[f"{source}_prob"] = float(np.mean(prob))
        if source == "forget":
            out["forget_logp"] = float(np.mean(logp))
            forget_logps = np.asarray(logp)
        else:
            out["retain_kl"] = kl_sum / kl_tok
    nll, tokens = 0.0, 0
    for _, (lp, n, _) in _scores(prefix, "heldout", batch_size):
        nll, tokens = nll - float(lp.sum()), tokens + int(n.sum())
    out["heldout_ppl"] = math.exp(nll / tokens)
    return out, forget_logps


@torch.no_grad()
def generation_metrics(
    model: Any,
    tokenizer: Any,
    sample: Mapping[str, Sequence[dict[str, Any]]],
    *,
    max_new_tokens: int,
    batch_size: int = 32,
) -> tuple[dict[str, float], list[str]]:
    """Greedy generations of a fixed prompt sample: the gibberish rate and the fact hits.

    Args:
        model: the (full) model as it is now.
        tokenizer: its tokenizer.
        sample: probe rows per source (``forget``, ``retain``, ``heldout``).
        max_new_tokens: the generation length limit.
        batch_size: prompts per batch.

    Returns:
        ``(metrics, texts)``: :data:`GEN_METRICS` and the generations in sample order.
    """
    from npo.llm.encoding import encode_prompts
    from npo.llm.eval.metrics import is_degenerate
    from npo.llm.eval.scoring import generate_greedy

    rows = [(s, r) for s in ("forget", "retain", "heldout") for r in sample.get(s, ())]
    ids = generate_greedy(
        model,
        encode_prompts(tokenizer, [r["question"] for _, r in rows]),
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        pad_id=tokenizer.pad_token_id,
        eos_id=tokenizer.eos_token_id,
    )
    texts = [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    out = {"gibberish_rate": float(np.mean([is_degenerate(g) for g in ids]))}
    for source in ("forget", "retain"):
        hits = [is_hit(t, r) for (s, r), t in zip(rows, texts) if s == source]
        out[f"{source}_hits"] = float(np.mean(hits)) if hits else math.nan
    return out, texts


def crossing(level_curve: np.ndarray, level: float, curve: np.ndarray) -> float | None:
    """``curve`` where ``level_curve`` first reaches ``level`` or below, linearly interpolated.

    Pass the evaluation steps as ``curve`` for the step of the crossing.

    Args:
        level_curve: (T,) e.g. the forget accuracy, starting above ``level``.
        level: the level.
        curve: (T,) the metric to read off there.

    Returns:
        The interpolated value, or None if ``level_curve`` never reaches ``level``.
    """
    below = np.flatnonzero(level_curve <= level)
    if below.size == 0:
        return None
    k = int(below[0])
    if k == 0:
        return float(curve[0])
    a, b = level_curve[k - 1], level_curve[k]
    w = (a - level) / (a - b) if a != b else 1.0
    return float(curve[k - 1] + w * (curve[k] - curve[k - 1]))
