"""Fine-tuning and unlearning of Hugging Face causal LMs on TOFU-format data: the Python API.

::

    from npo.llm.train import FinetuneConfig, UnlearnConfig, finetune, unlearn

    target = finetune(FinetuneConfig(init="tiny-llama", data=DIR, split="full", out=A))
    config = UnlearnConfig(
        model=str(target.model_dir), data=DIR, forget="forget10", method="npo+rt", out=B
    )
    result = unlearn(config, hooks=[my_eval])
    result.logs  # per-step records; my_eval's returned values are merged into them

Both return a :class:`~npo.llm.train.loop.TrainResult`; ``hooks`` are called with a
:class:`~npo.llm.train.log.HookContext` at step 0, every ``config.eval_every`` steps and at the
end. The same code runs in one process or under ``accelerate launch``/``torchrun`` (DDP, FSDP,
DeepSpeed ZeRO-3), with the same global batch and sample order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from npo.errors import Interrupted
from npo.llm.data import QASplit, read_idk, read_split, retain_for
from npo.llm.digests import files_digest
from npo.llm.encoding import Encoded, encode_qa
from npo.llm.model import (
    build_tiny_llama,
    check_model_dir,
    load_model,
    load_tokenizer,
    resolve_precision,
)
from npo.llm.order import idk_choices
from npo.llm.saving import save_model_dir
from npo.llm.train.assemble import Setup, build_setup
from npo.llm.train.checkpoint import interrupted_message, start_or_resume
from npo.llm.train.config import FinetuneConfig, TrainConfig, UnlearnConfig
from npo.llm.train.log import EvalHook
from npo.llm.train.loop import TrainResult, run_loop
from npo.llm.train.preflight import check_data, check_run_inputs, prepare_out
from npo.llm.train.reference import weights_digest
from npo.llm.train.resume import run_digests
from npo.objectives import Objective, Term
from npo.results import to_jsonable

__all__ = [
    "finetune",
    "load_model_tokenizer",
    "make_accelerator",
    "prepare_unlearning",
    "unlearn",
]


def make_accelerator(config: TrainConfig) -> Any:
    """An ``accelerate.Accelerator`` for ``config``.

    Autocast is done by the step itself (so logits stay in bf16 instead of accelerate's float32
    copy), except under DeepSpeed, whose engine owns mixed precision.

    Returns:
        The accelerator (CPU processes use gloo data parallelism under ``torchrun``).
    """
    from accelerate import Accelerator

    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    _, autocast = resolve_precision(config.precision, device)
    # cpu=True without CUDA: otherwise accelerate treats `torchrun` CPU processes as
    # independent single-process runs instead of gloo data parallelism.
    return Accelerator(
        mixed_precision="bf16" if deepspeed and autocast else "no", cpu=device == "cpu"
    )


Prepared = tuple[Path, "tuple[int, Path] | None", dict]


def _texts_for_tokenizer(data: str, split_name: str) -> list[str]:
    # Questions and answers of `full` (so target and retain models of one data source share a
    # tokenizer), else of the training split, plus the IDK answers and the template words.
    local = not str(data).startswith("hf:")
    has_full = not local or any((Path(data) / f"full{x}").is_file() for x in (".json", ".jsonl"))
    split = read_split(data, "full" if has_full else split_name)
    texts = split.column("question") + split.column("answer")
    if local and (Path(data) / "idontknow.jsonl").is_file():
        texts += list(read_idk(data))
    return [*texts, "Question: Answer:"]


def _start(
    config: TrainConfig,
    acc: Any,
    model: Any,
    tokenizer: Any,
    store: dict[str, Encoded],
    objective: Objective,
    *,
    prepared: Prepared,
    hooks: Sequence[EvalHook],
    info: dict[str, Any],
    source: Path | None,
) -> Setup:
    # The assembled run, resumed from the prepared checkpoint (digests checked first) or
    # recorded as a new one. `source`: the starting model's directory (an adapter's base).
    _, latest, changes = prepared
    weights = weights_digest(model)
    setup = build_setup(
        config, acc, model, tokenizer, store, objective, hooks=hooks, info=info, weights=weights
    )
    setup.digests = run_digests(weights, tokenizer, store)
    if config.lora_r > 0 and source is not None and source.is_dir():
        setup.save_meta = {"base": source, "base_digest": files_digest(source)}
    return start_or_resume(setup, latest, changes)


def _interruptible(config: TrainConfig, run: Any) -> TrainResult:
    # Ctrl-C before the loop (loading, reference log-probs) says so and what --resume does.
    try:
        return run()
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):
            raise
        raise Interrupted(interrupted_message(Path(config.out), None)) from None


def _initial_model(
    config: FinetuneConfig, acc: Any, out: Path, latest: tuple[int, Path] | None
) -> Path:
    # --init: the tiny Llama built from its config (and its tokenizer), saved to OUT/init once.
    init_dir = out / "init"
    if acc.is_main_process and (latest is None or not init_dir.is_dir()):
        tok = None
        if config.tokenizer is not None:
            tok = load_model_tokenizer(config.tokenizer)
        texts = _texts_for_tokenizer(config.data, config.split) if tok is None else []
        model, tok = build_tiny_llama(texts, config.tiny_spec(), seed=config.seed, tokenizer=tok)
        save_model_dir(model, tok, init_dir)
    acc.wait_for_everyone()
    return init_dir


def finetune(
    config: FinetuneConfig, *, hooks: Sequence[EvalHook] = (), accelerator: Any = None
) -> TrainResult:
    """Train on ``config.split`` with the token-mean NLL of the answers.

    ``full`` trains the target model, ``retainYY`` a retain model. ``--init tiny-llama`` builds
    the model from a config (saved to ``OUT/init``, the drift origin) with a BPE tokenizer
    trained on the data. Everything is validated (paths, data, the resume) before the model
    loads (:mod:`npo.llm.train.preflight`).

    Returns:
        The :class:`~npo.llm.train.loop.TrainResult`.
    """
    return _interruptible(config, lambda: _finetune(config, hooks, accelerator))


def _finetune(config: FinetuneConfig, hooks: Sequence[EvalHook], accelerator: Any) -> TrainResult:
    acc = accelerator or make_accelerator(config)
    if config.model is not None:
        check_model_dir(Path(config.model))
    check_run_inputs(config)
    split = read_split(config.data, config.split)
    check_data(acc, [split], None, None)
    prepared = prepare_out(config, acc)
    out, latest, _ = prepared
    dtype, _ = resolve_precision(config.precision, acc.device.type)
    if config.init is not None:
        source = _initial_model(config, acc, out, latest)
    else:
        source = Path(str(config.model))  # set: the config requires --model or --init
    tok = load_tokenizer(source, trust_remote_code=config.trust_remote_code)
    store = {"retain": encode_qa(tok, split, max_length=config.max_length)}
    model, tok = load_model(
        source, dtype=dtype, trust_remote_code=config.trust_remote_code, tokenizer=tok
    )
    objective = Objective((Term("nll", 1.0, source="retain", reduction="token"),))
    info = {"desc": f"finetune {config.split}", "split": config.split, "init_model": str(source)}
    setup = _start(
        config,
        acc,
        model,
        tok,
        store,
        objective,
        prepared=prepared,
        hooks=hooks,
        info=info,
        source=source,
    )
    return run_loop(setup)


def load_model_tokenizer(path: str) -> Any:
    """The tokenizer saved in directory ``path``.

    Returns:
        ``transformers.AutoTokenizer.from_pretrained(path)``.

    Raises:
        ValueError: the directory does not exist.
    """
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise ValueError(f"tokenizer directory {path!r} does not exist")
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as exc:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"cannot load the tokenizer from {path}: {cause}") from None


def _encode_unlearning(
    config: UnlearnConfig,
    tok: Any,
    forget: QASplit,
    retain: QASplit | None,
    answers: tuple[str, ...] | None,
) -> dict[str, Encoded]:
    # The sequences of each source: forget, retain (if read), and the forget questions with
    # their IDK answers (if read; one answer per item for the whole run).
    store = {"forget": encode_qa(tok, forget, max_length=config.max_length)}
    if retain is not None:
        store["retain"] = encode_qa(tok, retain, max_length=config.max_length)
    if answers is not None:
        choice = idk_choices(len(forget), len(answers), seed=config.seed, pairing=config.pairing)
        store["idk"] = encode_qa(
            tok,
            forget,
            max_length=config.max_length,
            answers=[answers[c] for c in choice],
            name=f"{forget.name}+idk",
        )
    return store


def unlearn(
    config: UnlearnConfig, *, hooks: Sequence[EvalHook] = (), accelerator: Any = None
) -> TrainResult:
    """Unlearn ``config.forget`` from ``config.model`` with the objective of ``config``.

    The data a step needs follows ``objective.needs()``: retain partners if a term reads
    ``retain``, IDK answers if one reads ``idk``, cached reference log-probs for every
    ``ref_logps`` (and for the forget log-ratio logs), a live frozen reference only for ``kl``
    terms (or ``reference="live"``). Everything is validated (paths, the reference cache, the
    data and its overlap, the resume) before the model loads; the tokenizer loads first.

    Returns:
        The :class:`~npo.llm.train.loop.TrainResult`.
    """
    return _interruptible(config, lambda: _unlearn(config, hooks, accelerator))


def _unlearn(config: UnlearnConfig, hooks: Sequence[EvalHook], accelerator: Any) -> TrainResult:
    acc = accelerator or make_accelerator(config)
    needs = config.objective().needs()
    model_dir = Path(str(config.model))  # set: the config requires --model
    check_model_dir(model_dir)
    check_run_inputs(config)
    forget = read_split(config.data, config.forget)
    retain = answers = None
    if "retain" in needs:
        retain = read_split(config.data, config.retain or retain_for(config.forget))
    if "idk" in needs:
        answers = read_idk(config.data, config.idk_file)
    check_data(acc, [s for s in (forget, retain) if s is not None], forget, retain)
    prepared = prepare_out(config, acc)  # fail before loading the model, not after
    tok = load_tokenizer(model_dir, trust_remote_code=config.trust_remote_code)
    store = _encode_unlearning(config, tok, forget, retain, answers)
    dtype, _ = resolve_precision(config.precision, acc.device.type)
    model, tok = load_model(
        model_dir, dtype=dtype, trust_remote_code=config.trust_remote_code, tokenizer=tok
    )
    setup = _unlearning_setup(config, model, tok, store, hooks, acc, prepared, model_dir)
    return run_loop(setup)


def prepare_unlearning(
    config: UnlearnConfig,
    model: Any,
    tokenizer: Any,
    store: dict[str, Encoded],
    *,
    hooks: Sequence[EvalHook] = (),
    accelerator: Any = None,
) -> Setup:
    """The unlearning run of ``config`` on an in-memory model and pre-encoded sequences.

    ``store``: ``forget``, and ``retain``/``idk`` if the objective reads them (``idk`` aligned
    with ``forget``). :func:`unlearn` is this after reading ``config.data``, then
    :func:`~npo.llm.train.loop.run_loop`.

    Returns:
        The :class:`~npo.llm.train.assemble.Setup`, ready for
        :func:`~npo.llm.train.loop.run_loop` or step by step with
        :func:`~npo.llm.train.loop.train_step`.

    Raises:
        ValueError: the objective reads a source that ``store`` lacks.
    """
    acc = accelerator or make_accelerator(config)
    missing = sorted(set(config.objective().needs()) - set(store))
    if missing:
        raise ValueError(f"the objective reads {missing}, not in the data given ({sorted(store)})")
    prepared = prepare_out(config, acc)
    source = Path(config.model) if config.model else None
    return _unlearning_setup(config, model, tokenizer, store, hooks, acc, prepared, source)


def _unlearning_setup(
    config: UnlearnConfig,
    model: Any,
    tokenizer: Any,
    store: dict[str, Encoded],
    hooks: Sequence[EvalHook],
    acc: Any,
    prepared: Prepared,
    source: Path | None,
) -> Setup:
    objective = config.objective()
    needs = objective.needs()
    missing = sorted(set(needs) - set(store))
    if missing:
        raise ValueError(f"the objective reads {missing}, not in the data given ({sorted(store)})")
    info = {
        "desc": f"unlearn {config.forget} {config.method if not config.terms else 'terms'}",
        "objective": [to_jsonable(t) for t in objective.terms],
        "needs": {s: sorted(f) for s, f in needs.items()},
    }
    return _start(
        config,
        acc,
        model,
        tokenizer,
        store,
        objective,
        prepared=prepared,
        hooks=hooks,
        info=info,
        source=source,
    )
