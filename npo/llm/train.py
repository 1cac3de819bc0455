"""Fine-tuning and unlearning of Hugging Face causal LMs on TOFU-format data: the Python API.

Usage::

    from npo.llm.train import finetune, unlearn
    from npo.llm.config import FinetuneConfig, UnlearnConfig

    target = finetune(FinetuneConfig(init="tiny-llama", data=DIR, split="full", out=A))
    result = unlearn(UnlearnConfig(model=str(target.model_dir), data=DIR, forget="forget10",
                                   method="npo+rt", out=B), hooks=[my_eval])
    result.logs  # per-step records; my_eval's returned values are merged into them

Both return a :class:`~npo.llm.loop.TrainResult`; ``hooks`` are called with a
:class:`~npo.llm.loop.HookContext` at step 0, every ``config.eval_every`` steps and at the end.
The same code runs in one process or under ``accelerate launch``/``torchrun`` (DDP, FSDP,
DeepSpeed ZeRO-3), with the same global batch and sample order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from npo.llm import checkpoint as ckpt
from npo.llm.config import FinetuneConfig, TrainConfig, UnlearnConfig
from npo.llm.data import Encoded, encode_qa, idk_choices, read_idk, read_split, retain_for
from npo.llm.loop import (
    EvalHook,
    HookContext,
    NonFiniteLossError,
    Setup,
    TrainResult,
    read_log,
    run_loop,
    truncate_log,
)
from npo.llm.model import (
    build_tiny_llama,
    check_model_dir,
    load_model,
    resolve_precision,
    save_model_dir,
)
from npo.llm.setup import build_setup
from npo.objectives import Objective, Term
from npo.results import ensure_out_dir, to_jsonable

__all__ = [
    "EvalHook",
    "FinetuneConfig",
    "HookContext",
    "NonFiniteLossError",
    "TrainResult",
    "UnlearnConfig",
    "finetune",
    "make_accelerator",
    "prepare_unlearning",
    "read_log",
    "unlearn",
]

# Options that may change between an interrupted run and its --resume.
_RESUME_FREE = {"resume", "progress", "eval_every", "checkpoint_every", "keep_checkpoints",
                "drift_every", "ref_cache"}  # fmt: skip


def make_accelerator(config: TrainConfig) -> Any:
    """An ``accelerate.Accelerator`` for ``config``: autocast is done by the step itself (so
    logits stay in bf16 instead of accelerate's float32 copy), except under DeepSpeed, whose
    engine owns mixed precision."""
    from accelerate import Accelerator

    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    _, autocast = resolve_precision(config.precision, device)
    # cpu=True without CUDA: otherwise accelerate treats `torchrun` CPU processes as
    # independent single-process runs instead of gloo data parallelism.
    return Accelerator(
        mixed_precision="bf16" if deepspeed and autocast else "no", cpu=device == "cpu"
    )


def _prepare_out(config: TrainConfig, acc: Any) -> tuple[Path, tuple[int, Path] | None]:
    out = ensure_out_dir(config.out)
    latest = ckpt.latest_checkpoint(out / "checkpoints")
    if not config.resume:
        if latest is not None or (out / "log.jsonl").exists():
            raise ValueError(
                f"{out} already holds a run (log.jsonl or checkpoints); pass --resume to "
                "continue it, or choose another --out"
            )
        return out, None
    if latest is None:
        acc.print(f"--resume: no checkpoint in {out}/checkpoints; starting from step 0")
        if acc.is_main_process:
            truncate_log(out, 0)
        return out, None
    import json

    saved = json.loads((latest[1] / "trainer_state.json").read_text())["config"]
    now = to_jsonable(config)
    diff = sorted(k for k in set(saved) | set(now) if k not in _RESUME_FREE and saved.get(k) != now.get(k))  # fmt: skip
    if diff:
        changes = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff)
        raise ValueError(f"--resume with a different configuration than {latest[1]} ({changes})")
    return out, latest


def _texts_for_tokenizer(data: str, split_name: str) -> list[str]:
    """Questions and answers of ``full`` (so target and retain models of one data source share
    a tokenizer), else of the training split, plus the IDK answers and the template words."""
    local = not str(data).startswith("hf:")
    has_full = not local or any((Path(data) / f"full{x}").is_file() for x in (".json", ".jsonl"))
    split = read_split(data, "full" if has_full else split_name)
    texts = split.column("question") + split.column("answer")
    if local and (Path(data) / "idontknow.jsonl").is_file():
        texts += list(read_idk(data))
    return [*texts, "Question: Answer:"]


def finetune(
    config: FinetuneConfig, *, hooks: Sequence[EvalHook] = (), accelerator: Any = None
) -> TrainResult:
    """Train on ``config.split`` (``full``: the target model; ``retainYY``: a retain model) with
    the token-mean NLL of the answers. ``--init tiny-llama`` builds the model from a config
    (saved to ``OUT/init``, the drift origin) with a BPE tokenizer trained on the data."""
    acc = accelerator or make_accelerator(config)
    if config.model is not None:
        check_model_dir(Path(config.model))
    split = read_split(config.data, config.split)
    out, latest = _prepare_out(config, acc)
    dtype, _ = resolve_precision(config.precision, acc.device.type)
    if config.init is not None:
        init_dir = out / "init"
        if acc.is_main_process and (latest is None or not init_dir.is_dir()):
            tok = None
            if config.tokenizer is not None:
                tok = load_model_tokenizer(config.tokenizer)
            texts = _texts_for_tokenizer(config.data, config.split) if tok is None else []
            model, tok = build_tiny_llama(
                texts, config.tiny_spec(), seed=config.seed, tokenizer=tok
            )
            save_model_dir(model, tok, init_dir)
        acc.wait_for_everyone()
        source = init_dir
    else:
        source = Path(config.model)  # type: ignore[arg-type]
    model, tok = load_model(source, dtype=dtype, trust_remote_code=config.trust_remote_code)
    store = {"retain": encode_qa(tok, split, max_length=config.max_length)}
    objective = Objective((Term("nll", 1.0, source="retain", reduction="token"),))
    info = {"desc": f"finetune {config.split}", "split": config.split, "init_model": str(source)}
    return run_loop(build_setup(config, acc, model, tok, store, objective, out=out, latest=latest, hooks=hooks,
                primary="retain", info=info))  # fmt: skip


def load_model_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise ValueError(f"tokenizer directory {path!r} does not exist")
    return AutoTokenizer.from_pretrained(path)


def unlearn(
    config: UnlearnConfig, *, hooks: Sequence[EvalHook] = (), accelerator: Any = None
) -> TrainResult:
    """Unlearn ``config.forget`` from ``config.model`` with the objective of ``config``.

    The data a step needs follows ``objective.needs()``: retain partners if a term reads
    ``retain``, IDK answers if one reads ``idk``, cached reference log-probs for every
    ``ref_logps`` (and for the forget log-ratio logs), a live frozen reference only for ``kl``
    terms (or ``reference="live"``)."""
    acc = accelerator or make_accelerator(config)
    objective = config.objective()
    needs = objective.needs()
    check_model_dir(Path(config.model))  # type: ignore[arg-type]
    forget = read_split(config.data, config.forget)
    retain = answers = None
    if "retain" in needs:
        retain = read_split(config.data, config.retain or retain_for(config.forget))
    if "idk" in needs:
        answers = read_idk(config.data, config.idk_file)
    _prepare_out(config, acc)  # fail before loading the model, not after
    dtype, _ = resolve_precision(config.precision, acc.device.type)
    model, tok = load_model(config.model, dtype=dtype, trust_remote_code=config.trust_remote_code)  # type: ignore[arg-type]
    store: dict[str, Encoded] = {"forget": encode_qa(tok, forget, max_length=config.max_length)}
    if retain is not None:
        store["retain"] = encode_qa(tok, retain, max_length=config.max_length)
    if answers is not None:
        choice = idk_choices(len(forget), len(answers), seed=config.seed, pairing=config.pairing)
        store["idk"] = encode_qa(tok, forget, max_length=config.max_length,
                                 answers=[answers[c] for c in choice], name=f"{forget.name}+idk")  # fmt: skip
    return run_loop(prepare_unlearning(config, model, tok, store, hooks=hooks, accelerator=acc))


def prepare_unlearning(
    config: UnlearnConfig,
    model: Any,
    tokenizer: Any,
    store: dict[str, Encoded],
    *,
    hooks: Sequence[EvalHook] = (),
    accelerator: Any = None,
) -> Setup:
    """The unlearning run of ``config`` on an in-memory model and pre-encoded sequences
    (``store``: ``forget``, and ``retain``/``idk`` if the objective reads them; ``idk`` aligned
    with ``forget``), ready for :func:`~npo.llm.loop.run_loop` or step by step with
    :func:`~npo.llm.loop.train_step`. :func:`unlearn` is this after reading ``config.data``."""
    acc = accelerator or make_accelerator(config)
    objective = config.objective()
    needs = objective.needs()
    missing = sorted(set(needs) - set(store))
    if missing:
        raise ValueError(f"the objective reads {missing}, not in the data given ({sorted(store)})")
    out, latest = _prepare_out(config, acc)
    ref = {s for s, f in needs.items() if "ref_logps" in f}
    live = ref if config.reference == "live" else set()
    info = {
        "desc": f"unlearn {config.forget} {config.method if not config.terms else 'terms'}",
        "objective": [to_jsonable(t) for t in objective.terms],
        "needs": {s: sorted(f) for s, f in needs.items()},
    }
    return build_setup(config, acc, model, tokenizer, store, objective, out=out, latest=latest,
                       hooks=hooks, primary="forget", cache=(ref | {"forget"}) - live, live=live,
                       need_live=bool(live) or any("kl" in f for f in needs.values()),
                       beta=config.beta, info=info)  # fmt: skip
