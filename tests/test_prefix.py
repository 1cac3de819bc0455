"""The head of a long answer tokenizes to the same first tokens as the whole answer
(npo.llm.prefix), for the byte-level BPE of the tiny models and a Llama-3-style one; encode_qa
gives the same sequences either way."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from npo.llm.data import QASplit
from npo.llm.encoding import encode_qa
from npo.llm.model import train_tokenizer
from npo.llm.prefix import _limits, token_head

TEXTS = [
    "The author was born in Santiago, Chile, in 1972; her father was a doctor.",
    "Numbers 12345 and 3.14159 and dates 2024-01-01 appear  with  double  spaces.",
    "Ünïcödé wörds, emoji 🎉🎉, CJK 漢字 and tabs\tand\nnew lines.",
] * 30
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
    r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _llama3_style():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TEXTS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>")


@pytest.fixture(scope="module", params=["tiny-byte-level", "llama3-style"])
def tok(request):
    if request.param == "tiny-byte-level":
        return train_tokenizer(TEXTS, 600)
    return _llama3_style()


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_both_tokenizers_are_covered(tok):
    assert _limits(tok) is not None  # not the whole-text fallback


_PIECES = "a ab word Santiago 12 123456 . , 's 're é 漢 🎉 </s> <s> <|end|> - ...".split()
PIECES = st.sampled_from([*_PIECES, " ", "  ", "\t", "\n", " \n "])


@given(st.lists(PIECES, min_size=1, max_size=400), st.integers(1, 40))
def test_head_has_the_same_first_tokens(tok, pieces, n):
    text = "".join(pieces) * 3
    head = token_head(tok, text, n)
    assert text.startswith(head)
    whole, cut = _ids(tok, text), _ids(tok, head)
    assert cut[:n] == whole[:n]
    assert len(cut) >= min(n, len(whole))


def test_a_long_answer_is_cut_and_encodes_the_same(tok):
    long_answer = " ".join(TEXTS) * 20  # about 130k characters
    head = token_head(tok, long_answer, 64)
    assert len(head) < len(long_answer) // 10  # only the head is tokenized
    split = QASplit("forget10", "<test>", ({"question": "Who?", "answer": long_answer},), (1,))
    enc = encode_qa(tok, split, max_length=80)
    prompt = enc.prompt_lens[0]
    full = _ids(tok, long_answer)
    assert enc.input_ids[0][prompt:] == tuple(full[: 80 - prompt])
    assert enc.n_truncated == 1


def test_one_huge_word_is_tokenized_whole(tok):
    text = "a" * 20000  # a single pre-token: no boundary to cut at
    assert token_head(tok, text, 10) == text
