"""The evaluation sets of a TOFU forget split, read and validated once, and their sequences.

Four sets (TOFU's), described by :data:`SETS`: ``forget`` (``forgetXX_perturbed``),
``retain`` (``retain_perturbed``), ``real_authors`` and ``world_facts`` (``*_perturbed``).
:func:`encode_set` tokenizes each item's answer, paraphrase (forget/retain) and perturbed
answers, grouped so one padded batch scores them together, and caches them per tokenizer.
A fifth, optional set is the ``holdoutXX`` split matching the forget evaluation split
(authors never trained on, for membership inference; :func:`encode_holdout`); it is read when
its file is there (``hf:locuslab/TOFU`` publishes ``holdout01/05/10``) and is None otherwise.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from npo.llm.data import QASplit, eval_split_for, read_split
from npo.llm.encoding import Encoded, encode_qa
from npo.llm.eval.config import EvalConfig
from npo.llm.eval.privacy import holdout_split_for

__all__ = [
    "SETS",
    "UTILITY_SETS",
    "EvalData",
    "SetSpec",
    "encode_holdout",
    "encode_set",
    "holdout_digest",
    "items_digest",
    "load_eval_data",
]


class SetSpec(NamedTuple):
    """How one evaluation set is scored."""

    correct: str  # the field scored as the correct side of the truth ratio
    forget: bool  # truth-ratio aggregate min(R, 1/R) instead of max(0, 1 - R)
    normalized: bool  # probability normalized against the perturbed answers
    kl: bool  # KL to the reference reported on this set


SETS: dict[str, SetSpec] = {
    "forget": SetSpec("paraphrased_answer", True, False, True),
    "retain": SetSpec("paraphrased_answer", False, False, True),
    "real_authors": SetSpec("answer", False, True, False),
    "world_facts": SetSpec("answer", False, True, False),
}
UTILITY_SETS = ("retain", "real_authors", "world_facts")
_SPLITS = {
    "retain": "retain_perturbed",
    "real_authors": "real_authors_perturbed",
    "world_facts": "world_facts_perturbed",
}


def items_digest(split: QASplit, correct: str) -> str:
    """Hash of the evaluated text of every item (question, answer, correct side, perturbed).

    Returns:
        A blake2b hex digest; results on other items cannot serve as the retain reference.
    """
    h = hashlib.blake2b(digest_size=16)
    for row in split.rows:
        parts = [row["question"], row["answer"], row[correct], *row["perturbed_answer"]]
        h.update(json.dumps(parts).encode())
    return h.hexdigest()


def holdout_digest(split: QASplit) -> str:
    """Hash of every holdout item's question and answer.

    Returns:
        A blake2b hex digest.
    """
    h = hashlib.blake2b(digest_size=16)
    for row in split.rows:
        h.update(json.dumps([row["question"], row["answer"]]).encode())
    return h.hexdigest()


@dataclass
class EvalData:
    """The four evaluation sets of one forget split, read and validated once.

    A hook reuses it every evaluation. ``sets[key]``: the split's first ``items_limit`` rows.
    ``holdout``: the matching ``holdoutXX`` split (never trained on), or None when the data has
    none (or membership inference is off); ``holdout_note`` says why it is None.
    """

    source: str
    forget: str
    sets: dict[str, QASplit]
    digests: dict[str, str]
    items_limit: int | None = None
    holdout: QASplit | None = None
    holdout_note: str = ""
    _encoded: dict[tuple[int, str, int], Any] = field(default_factory=dict, repr=False)

    def n_items(self) -> dict[str, int]:
        """Items per set.

        Returns:
            ``{set key: number of items}``.
        """
        return {k: len(s) for k, s in self.sets.items()}


def _head(split: QASplit, n: int | None) -> QASplit:
    if n is None or n >= len(split):
        return split
    return QASplit(split.name, split.source, split.rows[:n], split.lines[:n])


def load_eval_data(data: str | Path, forget: str, config: EvalConfig | None = None) -> EvalData:
    """Read the evaluation sets of ``forget`` from ``data`` (a TOFU directory or ``hf:repo``).

    ``eval_split_for(forget)``, ``retain_perturbed``, ``real_authors_perturbed`` and
    ``world_facts_perturbed``, the first ``config.items_limit`` rows of each (None: the
    default :class:`~npo.llm.eval.config.EvalConfig`).

    Returns:
        The :class:`EvalData`.

    Raises:
        ValueError: naming the file on anything missing.
    """
    config = config or EvalConfig()
    splits = {"forget": eval_split_for(forget), **_SPLITS}
    sets = {k: _head(read_split(data, name), config.items_limit) for k, name in splits.items()}
    digests = {k: items_digest(s, SETS[k].correct) for k, s in sets.items()}
    holdout, note = _read_holdout(data, splits["forget"], config)
    if holdout is not None:
        holdout = _head(holdout, config.items_limit)
        digests["holdout"] = holdout_digest(holdout)
    return EvalData(str(data), forget, sets, digests, config.items_limit, holdout, note)


def _read_holdout(
    data: str | Path, eval_split: str, config: EvalConfig
) -> tuple[QASplit | None, str]:
    # The holdout split of `eval_split` if the data has one (read and validated), else a note.
    name = holdout_split_for(eval_split)
    if not config.mia:
        return None, "membership inference is off (--no-mia)"
    if not str(data).startswith("hf:"):
        folder = Path(data)
        if not any((folder / f"{name}{x}").is_file() for x in (".json", ".jsonl")):
            return None, (
                f"no {name} split in {data} (authors never trained on, the non-members of "
                "membership inference; TOFU publishes holdout01/05/10 at hf:locuslab/TOFU)"
            )
    return read_split(data, name), ""


def encode_holdout(data: EvalData, tokenizer: Any, max_length: int) -> Encoded:
    """The holdout answers' sequences (``prompt + answer + EOS``), cached per tokenizer.

    Returns:
        The :class:`~npo.llm.encoding.Encoded` sequences, one per holdout item.

    Raises:
        ValueError: the data has no holdout split.
    """
    if data.holdout is None:
        raise ValueError(f"no holdout split: {data.holdout_note}")
    cache_key = (id(tokenizer), "holdout", max_length)
    hit = data._encoded.get(cache_key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    enc = encode_qa(tokenizer, data.holdout, max_length=max_length)
    data._encoded[cache_key] = (tokenizer, enc)
    return enc


def encode_set(
    data: EvalData, tokenizer: Any, key: str, max_length: int
) -> tuple[Encoded, list[list[int]], list[str]]:
    """The scored sequences of set ``key``, cached per tokenizer.

    Per item its answer, then (forget/retain) its paraphrase, then its perturbed answers.

    Returns:
        ``(Encoded, groups, roles)``: ``groups[i]`` the sequence indices of item ``i``,
        ``roles[j]`` one of ``answer``, ``correct``, ``perturbed``.
    """
    cache_key = (id(tokenizer), key, max_length)
    hit = data._encoded.get(cache_key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1:]
    split, spec = data.sets[key], SETS[key]
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    answers: list[str] = []
    roles: list[str] = []
    groups: list[list[int]] = []
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
