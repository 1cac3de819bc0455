"""Prompting, tokenization and batching of TOFU-format question/answer rows.

Sequences are ``prompt + answer + EOS``; the prompt is the tokenizer's chat template when it
has one (one user turn, generation prompt added), else :data:`PLAIN_TEMPLATE`. Prompt and answer
are tokenized separately, so the label boundary is exact and equals what generation after the
prompt sees. Labels are -100 on every prompt token and on padding; attention masks come from
the lengths, never from the pad id (many tokenizers pad with EOS).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from npo.llm.data import QASplit
from npo.llm.prefix import token_head

__all__ = [
    "PLAIN_TEMPLATE",
    "Encoded",
    "collate",
    "encode_prompts",
    "encode_qa",
    "template_id",
]

PLAIN_TEMPLATE = "Question: {question}\nAnswer: "


def template_id(tokenizer: Any) -> str:
    """The prompt template as text, for cache keys.

    Returns:
        ``"chat:<chat template>"``, or ``"plain:"`` + :data:`PLAIN_TEMPLATE`.
    """
    chat = getattr(tokenizer, "chat_template", None)
    return f"chat:{chat}" if chat else f"plain:{PLAIN_TEMPLATE}"


def encode_prompts(tokenizer: Any, questions: Sequence[str]) -> list[list[int]]:
    """Token ids of the prompt of each question (chat template, else :data:`PLAIN_TEMPLATE`).

    Exactly the prefix :func:`encode_qa` puts before the answer, so generation starts here.

    Returns:
        One list of token ids per question.
    """
    if getattr(tokenizer, "chat_template", None):
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
            )
            for q in questions
        ]
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    texts = [PLAIN_TEMPLATE.format(question=q) for q in questions]
    return tokenizer(texts, add_special_tokens=True)["input_ids"]


@dataclass(frozen=True)
class Encoded:
    """Token ids of ``prompt + answer + EOS`` per item and the prompt length of each.

    ``n_tokens(i)`` answer tokens carry loss (the EOS included unless truncated).
    """

    name: str
    input_ids: tuple[tuple[int, ...], ...]
    prompt_lens: tuple[int, ...]
    n_truncated: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    def n_tokens(self, i: int) -> int:
        """Answer tokens of item ``i`` (those that carry loss).

        Returns:
            ``len(input_ids[i]) - prompt_lens[i]``.
        """
        return len(self.input_ids[i]) - self.prompt_lens[i]

    def item(self, i: int) -> tuple[tuple[int, ...], int]:
        """Item ``i`` in the form :func:`collate` takes.

        Returns:
            ``(input_ids, prompt_len)``.
        """
        return self.input_ids[i], self.prompt_lens[i]

    def digest(self) -> str:
        """Hash of every token id and prompt boundary (data + template + tokenizer).

        Returns:
            A blake2b hex digest.
        """
        h = hashlib.blake2b(digest_size=16)
        for ids, p in zip(self.input_ids, self.prompt_lens):
            h.update(json.dumps([p, ids], separators=(",", ":")).encode())
        return h.hexdigest()


def encode_qa(
    tokenizer: Any,
    split: QASplit,
    *,
    max_length: int,
    answers: Sequence[str] | None = None,
    name: str | None = None,
) -> Encoded:
    """Tokenize ``split`` as ``prompt(question) + answer + EOS``.

    ``answers`` overrides the split's (e.g. IDK answers for the same questions). Prompt and
    answer are tokenized separately, so the label boundary is exact and equals what generation
    after the prompt sees. A sequence longer than ``max_length`` loses answer tokens from the
    end (counted in ``n_truncated``); a prompt that leaves no room for one answer token is an
    error naming the line.

    Returns:
        The :class:`Encoded` sequences, named ``name`` (default: the split's name).
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token; answers must end with one")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    questions = split.column("question")
    answers = list(answers) if answers is not None else split.column("answer")
    if len(answers) != len(questions):
        raise ValueError(f"{len(answers)} answers for {len(questions)} questions in {split.name}")
    prompts = encode_prompts(tokenizer, questions)
    # An answer longer than the room left keeps only its head (same first tokens, no need to
    # tokenize megabytes: npo.llm.prefix).
    answers = [token_head(tokenizer, a, max_length - len(p)) for p, a in zip(prompts, answers)]
    bodies = tokenizer(answers, add_special_tokens=False)["input_ids"]
    ids, plens, truncated = [], [], 0
    for i, (p, a) in enumerate(zip(prompts, bodies)):
        if not p:
            raise ValueError(f"{split.where(i)}: the prompt encodes to no tokens")
        if len(p) >= max_length:
            raise ValueError(
                f"{split.where(i)}: field 'question' gives a prompt of {len(p)} tokens, "
                f"leaving no room for the answer within max_length {max_length}"
            )
        seq = list(p) + list(a) + [eos]
        if len(seq) > max_length:
            seq, truncated = seq[:max_length], truncated + 1
        ids.append(tuple(seq))
        plens.append(len(p))
    return Encoded(name or split.name, tuple(ids), tuple(plens), truncated)


def collate(items: Sequence[tuple[Sequence[int], int]], pad_id: int) -> dict[str, Tensor]:
    """Right-pad ``(input_ids, prompt_len)`` items into a batch.

    Returns:
        ``input_ids`` (B, T) padded with ``pad_id``, ``attention_mask`` (B, T) from the
        lengths, ``labels`` (B, T): the answer tokens, -100 on prompt and padding.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for b, (ids, plen) in enumerate(items):
        row = torch.as_tensor(ids, dtype=torch.long)
        input_ids[b, : len(ids)] = row
        mask[b, : len(ids)] = 1
        labels[b, plen : len(ids)] = row[plen:]
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
