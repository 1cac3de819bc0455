"""The evaluation sets of a TOFU forget split, read and validated once, and their tokenised
sequences (cached per tokenizer): each item's answer, paraphrase (forget/retain) and perturbed
answers, grouped so one padded batch scores them together."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npo.llm.data import QASplit, encode_qa, eval_split_for, read_split
from npo.llm.eval_results import SETS, items_digest

__all__ = ["EvalData", "encode_set", "load_eval_data"]


@dataclass
class EvalData:
    """The four evaluation sets of one forget split, read and validated once (a hook reuses
    it every evaluation). ``sets[key]``: the split's first ``config.items_limit`` rows."""

    source: str
    forget: str
    sets: dict[str, QASplit]
    digests: dict[str, str]
    items_limit: int | None = None
    _encoded: dict = field(default_factory=dict, repr=False)

    def n_items(self) -> dict[str, int]:
        return {k: len(s) for k, s in self.sets.items()}


def _head(split: QASplit, n: int | None) -> QASplit:
    if n is None or n >= len(split):
        return split
    return QASplit(split.name, split.source, split.rows[:n], split.lines[:n])


def load_eval_data(data: str | Path, forget: str, config: Any = None) -> EvalData:
    """Read the evaluation sets of ``forget`` from ``data`` (a TOFU directory or ``hf:repo``):
    ``eval_split_for(forget)``, ``retain_perturbed``, ``real_authors_perturbed``,
    ``world_facts_perturbed``, the first ``config.items_limit`` rows of each (``config``: an
    :class:`~npo.llm.evaluate.EvalConfig`; None: the default). ``ValueError`` naming the file
    on anything missing."""
    if config is None:
        from npo.llm.evaluate import EvalConfig

        config = EvalConfig()
    splits = {
        "forget": eval_split_for(forget),
        "retain": "retain_perturbed",
        "real_authors": "real_authors_perturbed",
        "world_facts": "world_facts_perturbed",
    }
    sets = {k: _head(read_split(data, name), config.items_limit) for k, name in splits.items()}
    digests = {k: items_digest(s, SETS[k].correct) for k, s in sets.items()}
    return EvalData(str(data), forget, sets, digests, config.items_limit)


def encode_set(data: EvalData, tokenizer: Any, key: str, max_length: int):
    """``(Encoded, groups, roles)`` of set ``key``: per item its answer, then (forget/retain)
    its paraphrase, then its perturbed answers; ``groups[i]`` the indices of item ``i``."""
    cache_key = (id(tokenizer), key, max_length)
    hit = data._encoded.get(cache_key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1:]
    split, spec = data.sets[key], SETS[key]
    rows, lines, answers, roles, groups = [], [], [], [], []
    for i, row in enumerate(split.rows):
        texts = [("answer", row["answer"])]
        if spec.correct != "answer":
            texts.append(("correct", row[spec.correct]))
        texts += [("perturbed", a) for a in row["perturbed_answer"]]
        groups.append(list(range(len(answers), len(answers) + len(texts))))
        for role, text in texts:
            rows.append(row)
            lines.append(split.lines[i])
            answers.append(text)
            roles.append(role)
    flat = QASplit(split.name, split.source, tuple(rows), tuple(lines))
    enc = encode_qa(tokenizer, flat, max_length=max_length, answers=answers)
    data._encoded[cache_key] = (tokenizer, enc, groups, roles)
    return enc, groups, roles
