"""What a pretrained model knows: a probe set of simple questions, greedy answers, and the split.

:data:`PROBE_FILE` holds 298 questions with short answers (capitals, official languages,
currencies, authors of famous books, chemical symbols, science facts, small numbers), written
for this project. Each has a ``category``, the ``question``, a canonical ``answer``, accepted
``aliases`` and a ``match`` rule: ``word`` (a whole-word, case-insensitive match of an alias)
or ``symbol`` (whole-word and case-sensitive, since "C" or "O" would match anywhere).

:func:`probe` decodes every question greedily through the model's chat template;
:func:`select_items` keeps the questions the model answers correctly and turns the model's
own greedy answer, up to the end of the sentence that states the fact ("The capital of France
is Paris."), into the item's answer: the reference model reproduces every fact greedily at the
start (accuracy 100% by construction). Known items split by category into forget and retain;
the first sentences of wrong answers become held-out text (the model's own fluent text) in
neither set.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npo.llm.data import QASplit

__all__ = [
    "FORGET_CATEGORIES",
    "PROBE_FILE",
    "ProbeAnswer",
    "answer_span",
    "is_hit",
    "items_digest",
    "load_probe",
    "probe",
    "select_items",
]

PROBE_FILE = Path(__file__).with_name("knowledge_probe.jsonl")
FORGET_CATEGORIES = ("capital", "language", "currency")  # "country facts"; the rest is retain


def load_probe(path: str | Path = PROBE_FILE) -> list[dict[str, Any]]:
    """The probe questions of a JSON Lines file, validated.

    Returns:
        One dict per question (``category``, ``question``, ``answer``, ``aliases``, ``match``).

    Raises:
        ValueError: naming the line of a malformed row.
    """
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        ok = (
            all(isinstance(row.get(k), str) and row[k] for k in ("category", "question", "answer"))
            and isinstance(row.get("aliases"), list)
            and row["aliases"]
            and row.get("match") in ("word", "symbol")
        )
        if not ok:
            raise ValueError(
                f"{path}:{n}: a probe row needs category, question, answer, aliases (a list) "
                "and match (word or symbol)"
            )
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no probe questions")
    return rows


def is_hit(text: str, item: dict[str, Any]) -> bool:
    """Whether ``text`` states the item's answer.

    Returns:
        True when an alias occurs as a whole word (case-sensitive for ``symbol`` items).
    """
    flags = 0 if item["match"] == "symbol" else re.IGNORECASE
    return any(
        re.search(r"(?<!\w)" + re.escape(a) + r"(?!\w)", text, flags) for a in item["aliases"]
    )


@dataclass(frozen=True)
class ProbeAnswer:
    """The greedy answer to one probe question."""

    ids: tuple[int, ...]  # generated tokens, without the EOS
    text: str
    ended: bool  # EOS within the token limit
    hit: bool


def probe(
    model: Any,
    tokenizer: Any,
    items: Sequence[dict[str, Any]],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    progress: bool = True,
) -> list[ProbeAnswer]:
    """Greedy answers to every question, through the chat template (left-padded batches).

    Returns:
        One :class:`ProbeAnswer` per item, in order.
    """
    from tqdm.auto import tqdm

    from npo.llm.encoding import encode_prompts
    from npo.llm.eval.scoring import generate_greedy

    prompts = encode_prompts(tokenizer, [it["question"] for it in items])
    with tqdm(total=len(items), desc="probe", unit="question", disable=not progress) as bar:
        ids = generate_greedy(
            model,
            prompts,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            pad_id=tokenizer.pad_token_id,
            eos_id=tokenizer.eos_token_id,
            progress=bar,
        )
    out = []
    for item, gen in zip(items, ids):
        text = tokenizer.decode(gen, skip_special_tokens=True).strip()
        out.append(ProbeAnswer(tuple(gen), text, len(gen) < max_new_tokens, is_hit(text, item)))
    return out


def answer_span(tokenizer: Any, item: dict[str, Any], answer: ProbeAnswer) -> tuple[int, int]:
    """Where a greedy answer states its fact, and where that sentence ends, in tokens.

    Args:
        tokenizer: the model's tokenizer.
        item: the probe row.
        answer: the model's greedy answer to it.

    Returns:
        ``(fact, end)``: the shortest prefix of ``answer.ids`` whose text states the fact
        (:func:`is_hit`; 0 for a wrong answer) and the first sentence end at or after it (a
        token ending in ``.``, ``!`` or ``?`` followed by a space or by the end of the answer),
        else the whole answer when it ended with EOS; ``end`` 0 when neither exists.
    """
    ids = list(answer.ids)
    texts = [tokenizer.decode(ids[:k], skip_special_tokens=True) for k in range(len(ids) + 1)]
    fact = next((k for k in range(1, len(ids) + 1) if is_hit(texts[k], item)), 0)
    for k in range(max(fact, 1), len(ids) + 1):
        after = texts[k + 1][len(texts[k]) :] if k < len(ids) else " "
        if texts[k].rstrip().endswith((".", "!", "?")) and after[:1].isspace():
            return fact, k
    return fact, len(ids) if answer.ended else 0


def select_items(
    tokenizer: Any,
    items: Sequence[dict[str, Any]],
    answers: Sequence[ProbeAnswer],
    *,
    forget_categories: Sequence[str] = FORGET_CATEGORIES,
) -> dict[str, QASplit]:
    """The forget, retain and held-out splits, each a TOFU-format ``QASplit``.

    An item's ``answer`` is the model's greedy answer up to the end of the sentence that states
    the fact (:func:`answer_span`): a greedy prefix, so greedy decoding reproduces it at the
    start; ``fact_tokens`` is how many of its tokens it takes to state the fact, ``short`` the
    canonical answer. Answers whose text does not re-tokenize to the generated ids are
    dropped (the sequence would not be the greedy one).

    Returns:
        ``{"forget": ..., "retain": ..., "heldout": ...}``: correct answers in
        ``forget_categories``, correct answers in the others, and the first sentences of wrong
        answers (held-out text, in neither set).
    """
    parts: dict[str, list[dict[str, Any]]] = {"forget": [], "retain": [], "heldout": []}
    lines: dict[str, list[int]] = {k: [] for k in parts}
    for n, (item, ans) in enumerate(zip(items, answers), 1):
        fact, end = answer_span(tokenizer, item, ans)
        text = tokenizer.decode(ans.ids[:end], skip_special_tokens=True)
        same = tokenizer(text, add_special_tokens=False)["input_ids"] == list(ans.ids[:end])
        if not end or not text.strip() or not same:
            continue
        if not fact:
            key = "heldout"
        else:
            key = "forget" if item["category"] in forget_categories else "retain"
        row = {**item, "answer": text, "short": item["answer"], "fact_tokens": fact}
        parts[key].append(row)
        lines[key].append(n)
    return {
        k: QASplit(k, str(PROBE_FILE), tuple(rows), tuple(lines[k])) for k, rows in parts.items()
    }


def items_digest(items: Sequence[dict[str, Any]]) -> str:
    """Hash of the probe questions and their answer rules (part of the cache keys).

    Returns:
        A blake2b hex digest.
    """
    return hashlib.blake2b(
        json.dumps(list(items), sort_keys=True).encode(), digest_size=16
    ).hexdigest()
