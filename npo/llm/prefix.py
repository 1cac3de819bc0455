r"""The head of a long text that tokenizes to the text's first ``n`` tokens, found cheaply.

A sequence keeps at most ``max_length`` tokens, so an answer of megabytes needs only its first
few hundred tokens; tokenizing it whole costs seconds and gigabytes. :func:`token_head`
returns a prefix ``head`` of ``text`` with ``tokenize(head)[:n] == tokenize(text)[:n]`` and
``len(tokenize(head)) >= n`` (tokenizing without special tokens), or ``text`` itself.

Why it is exact, for the tokenizers it accepts (a fast tokenizer whose model is BPE without a
fused unknown token, with no normalizer, and whose pre-tokenizer is made of ByteLevel,
Metaspace, Whitespace, WhitespaceSplit, Digits, Punctuation, or Split on a regular expression
whose only look-around is ``(?!\\S)``, as in GPT-2, Llama 3 and Qwen; any other gets the whole
text back):

1. *The first n tokens lie in the first n L characters*, ``L`` the longest vocabulary entry
   in characters: tokens cover the text in order, a token's string has at least one character
   per character (a byte-level one: per byte) it covers, and a character is at least one byte.
2. *Tokens never cross a pre-token boundary*, and BPE encodes each pre-token (piece) on its
   own.
3. *Pieces are local*: the accepted pre-tokenizers decide a piece from its own characters and
   at most one after it (``\\s+(?!\\S)``). So the pieces of ``head = text[:c]`` that end at
   least :data:`LOOKAHEAD` characters before ``c`` are pieces of ``text``.
4. *Added tokens* (``</s>``, ...) are split out before pre-tokenization; when one occurs in
   the head the whole text is returned, and the margin below the cut covers one that starts
   in the head and ends after it.

Hence if a piece of ``head`` ends at ``e`` with ``n L <= e <= c - margin``, every token of
``text`` before ``e`` (at least the first ``n``) is a token of ``head``, in the same place.
The cut ``c`` doubles until such a piece exists; a text with one huge piece (no spaces) is
returned whole. ``tests/test_prefix.py`` holds the identity on adversarial texts.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

__all__ = ["LOOKAHEAD", "token_head"]

LOOKAHEAD = 2
_LOCAL = {"ByteLevel", "Metaspace", "Whitespace", "WhitespaceSplit", "Digits", "Punctuation"}
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _local(spec: Any) -> bool:
    # Whether a serialized pre-tokenizer is one of those point 3 covers.
    if not isinstance(spec, dict):
        return False
    kind = spec.get("type")
    if kind == "Sequence":
        return all(_local(p) for p in spec.get("pretokenizers", ()))
    if kind == "Split":
        pattern = spec.get("pattern", {})
        regex = pattern.get("Regex") if isinstance(pattern, dict) else None
        if regex is None:
            return isinstance(pattern, dict) and "String" in pattern
        rest = regex.replace("(?!\\S)", "")
        return not any(k in rest for k in ("(?=", "(?!", "(?<"))
    return kind in _LOCAL


def _limits(tokenizer: Any) -> tuple[int, tuple[str, ...]] | None:
    # (longest vocabulary entry, added tokens' texts), or None for a tokenizer outside the
    # module docstring's argument.
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    try:
        return _CACHE[backend]
    except (KeyError, TypeError):
        pass
    spec = json.loads(backend.to_str())
    model = spec.get("model") or {}
    ok = (
        spec.get("normalizer") is None
        and _local(spec.get("pre_tokenizer"))
        and model.get("type") == "BPE"
        and not (model.get("unk_token") is not None and model.get("fuse_unk"))
        and not any(
            t.get("lstrip") or t.get("rstrip") or t.get("single_word")
            for t in spec.get("added_tokens") or ()
        )
    )
    found = None
    if ok:
        longest = max(len(t) for t in backend.get_vocab(with_added_tokens=True))
        added = tuple(
            sorted({t["content"] for t in spec.get("added_tokens") or () if t["content"]})
        )
        found = (longest, added)
    try:
        _CACHE[backend] = found
    except TypeError:  # not weak-referenceable: recomputed next time
        pass
    return found


def token_head(tokenizer: Any, text: str, n_tokens: int) -> str:
    """A prefix of ``text`` that tokenizes to the same first ``n_tokens`` tokens (and as many).

    See the module docstring for the argument and the tokenizers it covers; for any other, and
    for a text that is short anyway, ``text`` itself.

    Args:
        tokenizer: a Hugging Face (fast) tokenizer.
        text: the text, e.g. an answer.
        n_tokens: how many of its first tokens must come out the same.

    Returns:
        ``text`` or a prefix of it.
    """
    limits = _limits(tokenizer)
    if limits is None:
        return text
    longest, added = limits
    need = max(1, n_tokens) * longest  # the first n tokens end by here (point 1)
    margin = LOOKAHEAD + max((len(t) for t in added), default=0)
    pre = tokenizer.backend_tokenizer.pre_tokenizer
    cut = 2 * (need + margin) + 64
    while cut < len(text):
        head = text[:cut]
        if any(t in head for t in added):
            return text  # point 4: the added tokens' splits would have to be replayed
        for _, (_, end) in pre.pre_tokenize_str(head):
            if end >= need:
                if end <= cut - margin:
                    return head  # points 2 and 3
                break
        cut *= 2
    return text
