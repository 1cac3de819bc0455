"""Helpers of the bad-input corpus and the fault tests: a shared world of tiny models and runs,
command lines, file snapshots and in-process write faults (ENOSPC/EROFS at os.write)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from _llm import random_model_dir, read_rows

from npo.cli import main
from npo.results import write_jsonl


@dataclass(frozen=True)
class World:
    """What the cases share, built once per module (tiny models, a few steps each)."""

    root: Path
    data: Path  # ten real TOFU authors, the last one forgotten
    model: Path  # an untrained tiny Llama (npo_model.json beside it)
    other: Path  # another one (seed 1): a different base
    gpt2: Path  # a tiny GPT-2: learned positions, 32 of them
    adapter: Path  # a LoRA adapter on `model`, saved by one unlearning step
    results: Path  # `npo eval` results of `model` (a retain-results file)
    run: Path  # a finished unlearning run: 2 steps, a checkpoint after each
    cache: Path  # the reference cache the runs share


def unlearn_argv(model, data, out, cache, *extra) -> list[str]:
    base = ["unlearn", "--model", str(model), "--data", str(data), "--out", str(out)]
    base += ["--batch-size", "4", "--max-steps", "2", "--lr", "1e-3", "--checkpoint-every", "1"]
    return [*base, "--keep-checkpoints", "2", "--ref-cache", str(cache), "--no-progress", *extra]


def eval_argv(model, data, out, *extra) -> list[str]:
    base = ["eval", "--model", str(model), "--data", str(data), "--out", str(out)]
    return [*base, "--no-generate", "--max-items", "2", "--no-progress", *extra]


def finetune_argv(model, data, out, *extra) -> list[str]:
    base = ["finetune", "--model", str(model), "--data", str(data), "--out", str(out)]
    base += ["--split", "retain90", "--batch-size", "4", "--max-steps", "1"]
    return [*base, "--checkpoint-every", "0", "--no-progress", *extra]


def tiny_gpt2(tokenizer_dir: Path, dst: Path, positions: int = 32) -> Path:
    """A randomly initialized GPT-2 (learned positions) over the tiny model's tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from npo.llm.model import load_tokenizer
    from npo.llm.saving import save_model_dir

    tok = load_tokenizer(tokenizer_dir)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=positions,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(cfg)
    return save_model_dir(model, tok, dst)


def build_world(data: Path, model: Path, root: Path) -> World:
    torch.set_num_threads(1)
    cache = root / "cache"
    other = random_model_dir(data, root / "other" / "model", seed=1)
    gpt2 = tiny_gpt2(model, root / "gpt2")
    lora = root / "lora"
    assert main(unlearn_argv(model, data, lora, cache, "--lora-r", "4", "--max-steps", "1")) == 0
    results = root / "results.json"
    assert main(eval_argv(model, data, results)) == 0
    run = root / "run"
    assert main(unlearn_argv(model, data, run, cache)) == 0
    return World(root, data, model, other, gpt2, lora / "model", results, run, cache)


def copy(src: Path, dst: Path) -> Path:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return dst


def edit_json(path: Path, **changes) -> None:
    obj = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    path.write_text(json.dumps(obj))


def edit_rows(data: Path, split: str, edit) -> None:
    """Rewrite ``data/split.json`` as ``edit(rows)``."""
    path = data / f"{split}.json"
    write_jsonl(path, edit(read_rows(path)))


def snapshot(paths) -> dict[str, str]:
    """``{file: sha256}`` of every file under ``paths`` (what must stay unchanged)."""
    out = {}
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
        if root.is_dir():
            out[f"{root}/"] = repr(sorted(str(p.relative_to(root)) for p in root.rglob("*")))
    return out


def fail_writes(monkeypatch, match: str, code: int = errno.ENOSPC, after: int = 0) -> list[str]:
    """Make ``os.write`` to files whose path contains ``match`` fail as a full (or read-only)
    disk does: half the bytes land, then ``OSError(code)`` without a file name. The first
    ``after`` matching writes succeed. Returns the paths that failed."""
    real = os.write
    failed: list[str] = []
    seen = [0]

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return real(fd, data)
        if match not in target:
            return real(fd, data)
        seen[0] += 1
        if seen[0] <= after:
            return real(fd, data)
        failed.append(target)
        if len(data) > 1:
            real(fd, bytes(data[: len(data) // 2]))
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "write", write)
    return failed


def mount_tmpfs(path: Path, size_kb: int, *, read_only: bool = False) -> bool:
    """Mount a tmpfs of ``size_kb`` KiB at ``path`` (root only); False where that fails."""
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size_kb}k" + (",ro" if read_only else "")
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
            capture_output=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def umount(path: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)
