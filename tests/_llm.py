"""Helpers of the LLM-path tests: the tiny model shape and its command-line flags, and an
untrained tiny Llama built from a config (memoized per session)."""

from __future__ import annotations

import json
from pathlib import Path

from npo.llm.data import read_split
from npo.llm.model import TinyLlamaSpec, build_tiny_llama, save_model_dir

SPEC = TinyLlamaSpec(
    vocab_size=512, hidden_size=48, intermediate_size=128, num_layers=2, num_heads=4
)
# The same shape as `npo finetune --init tiny-llama` flags.
TINY_ARGS = [
    *("--tiny-vocab-size", str(SPEC.vocab_size)),
    *("--tiny-hidden-size", str(SPEC.hidden_size)),
    *("--tiny-intermediate-size", str(SPEC.intermediate_size)),
    *("--tiny-layers", str(SPEC.num_layers)),
    *("--tiny-heads", str(SPEC.num_heads)),
]
_MEMO: dict[tuple, Path] = {}


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def random_model_dir(data: Path, dst: Path, *, seed: int = 0) -> Path:
    """An untrained tiny Llama (tokenizer trained on ``data``'s ``full``), saved to ``dst``."""
    key = ("random", str(data), seed)
    if key not in _MEMO:
        full = read_split(data, "full")
        texts = full.column("question") + full.column("answer")
        model, tok = build_tiny_llama(texts, SPEC, seed=seed)
        _MEMO[key] = save_model_dir(model, tok, dst)
    return _MEMO[key]


def cli_error(argv: list[str], capsys) -> str:
    """Run the CLI, expect exit 2 and exactly one ``npo: error: ...`` line; return it."""
    from npo.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("npo: error: ") and "\n" not in err, err
    return err
