"""The knowledge study's stages: items and cached prefix (``prepare``), one method's run.

``prepare`` loads the model, probes it (cached), builds the splits, freezes all but the top
blocks, caches the lower blocks' hidden states, and measures the start (the reference);
:func:`run_method` unlearns from the start with one method and records the metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from npo.llm.data import QASplit
from npo.llm.studies.cache import cache_key
from npo.llm.studies.frozen import FrozenPrefix
from npo.llm.studies.knowledge_eval import generation_metrics, prefix_metrics, reference_logits
from npo.llm.studies.probe import ProbeAnswer, items_digest, load_probe, probe, select_items
from npo.results import write_json

__all__ = ["State", "evaluation_due", "prepare", "run_method"]

EVAL_BATCH = 16
QUICK_PER_SIDE = 24  # quick size: this many questions of each side (forget / retain categories)


@dataclass
class State:
    """What every method's run starts from."""

    model: Any
    tokenizer: Any
    prefix: FrozenPrefix
    start_weights: dict[str, torch.Tensor]
    ref_forget: torch.Tensor
    ref_retain: list[torch.Tensor]
    facts: dict[str, torch.Tensor]
    sample: dict[str, list[dict[str, Any]]]
    start: dict[str, Any]
    counts: dict[str, int]
    probe_summary: dict[str, Any]
    digest: str
    model_info: dict[str, Any] = field(default_factory=dict)


def _probe_items(c: Any) -> list[dict[str, Any]]:
    from npo.llm.studies.probe import FORGET_CATEGORIES

    items = load_probe()
    if not c.quick:
        return items
    forget = [it for it in items if it["category"] in FORGET_CATEGORIES]
    retain = [it for it in items if it["category"] not in FORGET_CATEGORIES]
    pick = [
        side[:: max(1, len(side) // QUICK_PER_SIDE)][:QUICK_PER_SIDE] for side in (forget, retain)
    ]
    return pick[0] + pick[1]


def _answers(c: Any, model: Any, tok: Any, items: list, weights: str) -> list[ProbeAnswer]:
    from npo.llm.encoding import template_id

    key = cache_key(weights, items_digest(items), c.probe_tokens, template_id(tok))
    path = Path(c.cache_dir) / f"probe-{key}.json"
    if path.is_file():
        rows = json.loads(path.read_text())
        return [ProbeAnswer(tuple(r["ids"]), r["text"], r["ended"], r["hit"]) for r in rows]
    answers = probe(model, tok, items, max_new_tokens=c.probe_tokens, progress=c.progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, [a.__dict__ for a in answers])
    return answers


def _sample(splits: dict[str, Any], n: int, seed: int) -> dict[str, Any]:
    # A seeded sample of n rows of each split (KEY) and their indices (KEY_index).
    from npo.llm.order import seeded_permutation

    out: dict[str, Any] = {}
    for k, split in splits.items():
        pick = sorted(seeded_permutation(len(split), seed=seed, epoch=0, salt=f"sample-{k}")[:n])
        out[k] = [split.rows[i] for i in pick]
        out[f"{k}_index"] = pick
    return out


def prepare(c: Any) -> State:
    """Everything the runs share (see the module docstring).

    Args:
        c: the resolved :class:`~npo.llm.studies.knowledge.KnowledgeConfig`.

    Returns:
        The :class:`State`.

    Raises:
        ValueError: too few known items for a batch, or a model without a block list.
    """
    from npo.llm.encoding import encode_qa
    from npo.llm.gguf import real_model_dir
    from npo.llm.layers import decoder_blocks, freeze_below
    from npo.llm.model import load_model
    from npo.llm.train.reference import weights_digest

    model_dir = Path(c.model) if c.model is not None else real_model_dir()
    model, tok = load_model(model_dir)
    model.eval()
    n_blocks = len(decoder_blocks(model)[1])
    if not 1 <= c.train_top_layers < n_blocks:
        raise ValueError(f"train_top_layers must be in 1..{n_blocks - 1}, got {c.train_top_layers}")
    weights = weights_digest(model)
    items = _probe_items(c)
    answers = _answers(c, model, tok, items, weights)
    splits = select_items(tok, items, answers)
    counts = {k: len(s) for k, s in splits.items()}
    for k in ("forget", "retain"):
        if counts[k] < c.batch_size:
            raise ValueError(
                f"the model answers only {counts[k]} {k} questions usably, fewer than one batch "
                f"of {c.batch_size}; lower batch_size"
            )
    if counts["heldout"] == 0:
        raise ValueError("no held-out text: the model answered every probe question correctly")
    held = splits["heldout"]
    keep = sorted(_sample({"heldout": held}, c.heldout_items, c.seed)["heldout_index"])
    splits["heldout"] = QASplit(
        held.name,
        held.source,
        tuple(held.rows[i] for i in keep),
        tuple(held.lines[i] for i in keep),
    )
    encoded = {k: encode_qa(tok, s, max_length=256) for k, s in splits.items()}
    freeze_below(model, c.train_top_layers)
    start_weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    prefix = FrozenPrefix(
        model,
        encoded,
        split=n_blocks - c.train_top_layers,
        pad_id=tok.pad_token_id,
        batch_size=EVAL_BATCH,
        progress=c.progress,
    )
    ref_retain = reference_logits(prefix, "retain", EVAL_BATCH)
    facts = {k: torch.tensor(splits[k].column("fact_tokens")) for k in ("forget", "retain")}
    metrics, ref_forget = prefix_metrics(prefix, ref_retain, facts, EVAL_BATCH)
    picked = _sample(splits, c.gen_sample, c.seed)
    sample = {k: picked[k] for k in splits}
    gen, texts = generation_metrics(model, tok, sample, max_new_tokens=c.gen_tokens)
    summary = {
        "questions": len(items),
        "usable": sum(counts.values()),
        "correct": sum(a.hit for a in answers),
        "ended": sum(a.ended for a in answers),
        "by_category": _by_category(items, answers),
    }
    return State(
        model=model,
        tokenizer=tok,
        prefix=prefix,
        start_weights=start_weights,
        ref_forget=torch.as_tensor(ref_forget, dtype=torch.float32),
        ref_retain=ref_retain,
        facts=facts,
        sample=sample,
        start={"step": 0, **metrics, **gen, "texts": texts},
        counts=counts,
        probe_summary=summary,
        digest=cache_key(weights, [e.digest() for e in encoded.values()]),
        model_info={"dir": str(model_dir), "weights": weights, "blocks": n_blocks},
    )


def _by_category(items: list, answers: list[ProbeAnswer]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for it, a in zip(items, answers):
        row = out.setdefault(it["category"], [0, 0])
        row[0] += int(a.hit)
        row[1] += 1
    return out


def _batch_items(c: Any, state: State, step: int, with_retain: bool) -> tuple[list, list[int]]:
    from npo.llm.order import retain_partners, seeded_permutation

    nf, nr = len(state.prefix.encoded["forget"]), len(state.prefix.encoded["retain"])
    per_epoch = nf // c.batch_size
    epoch, pos = divmod(step, per_epoch)
    idx = seeded_permutation(nf, seed=c.seed, epoch=epoch)[pos * c.batch_size :][: c.batch_size]
    items = [("forget", i) for i in idx]
    if with_retain:
        partners = retain_partners(nf, nr, seed=c.seed, epoch=epoch, pairing="random")
        items += [("retain", partners[i]) for i in idx]
    return items, idx


def _evaluate(c: Any, state: State, step: int, generate: bool) -> dict[str, Any]:
    state.model.eval()
    metrics, _ = prefix_metrics(state.prefix, state.ref_retain, state.facts, EVAL_BATCH)
    rec: dict[str, Any] = {"step": step, **metrics}
    if generate:
        gen, texts = generation_metrics(
            state.model, state.tokenizer, state.sample, max_new_tokens=c.gen_tokens
        )
        rec.update(gen)
        rec["texts"] = texts
    return rec


def evaluation_due(step: int, steps: int, every: int) -> bool:
    """Whether a run of ``steps`` steps evaluates after step ``step``.

    Every ``every`` steps over the first quarter of the run (where the forget level is
    crossed), every ``4 * every`` steps after it, and at the last step.

    Returns:
        True at an evaluation step.
    """
    dense = step <= steps // 4 and step % every == 0
    return dense or step % (4 * every) == 0 or step == steps


def run_method(c: Any, state: State, method: str) -> dict[str, Any]:
    """Unlearn from the start with ``method`` and record the metrics.

    Args:
        c: the resolved config.
        state: the result of ``prepare`` (its top blocks are reset to the start first).
        method: a preset key.

    Returns:
        ``{"records": [...], "texts": final generations, "seconds": ..., "failed_at": step or
        None}``; records at step 0 and at :func:`evaluation_due` steps.
    """
    from tqdm.auto import tqdm

    from npo.logprobs import packed_sequence_logprobs
    from npo.objectives import SeqBatch, preset

    t0 = time.perf_counter()
    model = state.model
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.start_weights.items():
            params[name].copy_(value)
    objective = preset(method, beta=c.beta, retain_weight=c.retain_weight)
    with_retain = "retain" in objective.needs()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=c.lr, weight_decay=0.0)
    records = [{k: v for k, v in state.start.items() if k != "texts"}]
    failed = None
    for step in tqdm(range(c.steps), desc=method, unit="step", disable=not c.progress):
        items, idx = _batch_items(c, state, step, with_retain)
        model.train()
        p = state.prefix.packed(items)
        logps, n = packed_sequence_logprobs(p.logits, p.targets, p.rows, p.n_seq)
        b = len(idx)
        batch = {"forget": SeqBatch(logps[:b], n[:b], ref_logps=state.ref_forget[idx])}
        if with_retain:
            batch["retain"] = SeqBatch(logps[b:], n[b:])
        out = objective(batch)
        if not torch.isfinite(out.loss):
            failed = step + 1
            break
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        done = step + 1
        if evaluation_due(done, c.steps, c.eval_every):
            gen = done % c.gen_every == 0 or done == c.steps
            records.append(_evaluate(c, state, done, gen) | {"loss": float(out.loss.detach())})
    texts: list[str] = next((r.pop("texts") for r in reversed(records) if "texts" in r), [])
    for r in records:
        r.pop("texts", None)
    seconds = time.perf_counter() - t0
    return {"records": records, "texts": texts, "seconds": seconds, "failed_at": failed}
