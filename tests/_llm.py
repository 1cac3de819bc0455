"""Helpers of the LLM-path tests: a small TOFU-format directory cut from the real data, tiny
models built from a config, and a session-wide memo so each tiny model is trained once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from npo.llm.model import TinyLlamaSpec, build_tiny_llama, save_model_dir

SPEC = TinyLlamaSpec(
    vocab_size=512, hidden_size=48, intermediate_size=128, num_layers=2, num_heads=4
)
_MEMO: dict[tuple, Path] = {}


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mini_tofu(src: Path, dst: Path, *, authors: int = 10, forget_authors: int = 1) -> Path:
    """A TOFU-format directory with the real text of ``authors`` authors: the first
    ``authors - forget_authors`` and the last ``forget_authors`` of ``full`` (so ``forget10``
    below is a true tail of TOFU's forget10). Split names follow TOFU's, sizes do not."""
    dst.mkdir(parents=True, exist_ok=True)
    full = read_rows(src / "full.json")
    keep, forget = full[: 20 * (authors - forget_authors)], full[-20 * forget_authors :]
    write_rows(dst / "full.json", keep + forget)
    write_rows(dst / "forget10.json", forget)
    write_rows(dst / "retain90.json", keep)
    perturbed = read_rows(src / "forget10_perturbed.json")[-20 * forget_authors :]
    write_rows(dst / "forget10_perturbed.json", perturbed)
    write_rows(dst / "retain_perturbed.json", read_rows(src / "retain_perturbed.json")[:20])
    shutil.copy(src / "idontknow.jsonl", dst / "idontknow.jsonl")
    return dst


def random_model_dir(data: Path, dst: Path, *, seed: int = 0) -> Path:
    """An untrained tiny Llama (tokenizer trained on ``data/full.json``), saved to ``dst``."""
    key = ("random", str(data), seed)
    if key not in _MEMO:
        rows = read_rows(data / "full.json")
        texts = [r["question"] for r in rows] + [r["answer"] for r in rows]
        model, tok = build_tiny_llama(texts, SPEC, seed=seed)
        _MEMO[key] = save_model_dir(model, tok, dst)
    return _MEMO[key]


def trained_model_dir(data: Path, dst: Path, *, split: str = "full", epochs: int = 12) -> Path:
    """A tiny Llama fine-tuned on ``split`` (once per session)."""
    from npo.llm.config import FinetuneConfig
    from npo.llm.train import finetune

    key = ("trained", str(data), split, epochs)
    if key not in _MEMO:
        cfg = FinetuneConfig(
            init="tiny-llama",
            data=str(data),
            split=split,
            out=str(dst),
            epochs=epochs,
            batch_size=10,
            tiny_vocab_size=SPEC.vocab_size,
            tiny_hidden_size=SPEC.hidden_size,
            tiny_intermediate_size=SPEC.intermediate_size,
            tiny_layers=SPEC.num_layers,
            tiny_heads=SPEC.num_heads,
            checkpoint_every=0,
            progress=False,
        )
        _MEMO[key] = finetune(cfg).model_dir
    return _MEMO[key]


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        out.update(load_file(f))
    return out


def cli_error(argv: list[str], capsys) -> str:
    """Run the CLI, expect exit 2 and exactly one ``npo: error: ...`` line; return it."""
    from npo.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("npo: error: ") and "\n" not in err, err
    return err
