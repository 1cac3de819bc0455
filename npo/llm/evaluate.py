"""TOFU evaluation of a causal LM: forget quality, model utility and the full metric suite.

Usage::

    from npo.llm.evaluate import EvalConfig, evaluate_model, make_eval_hook, load_eval_results

    retain = evaluate_model(retain_model, tok, DATA, "forget10")            # the retain model
    result = evaluate_model(model, tok, DATA, "forget10", retain_results=retain.to_json(),
                            reference=target)                               # KL to the target
    result.metrics["forget_quality"], result.metrics["model_utility"]
    unlearn(config, hooks=[make_eval_hook(DATA, "forget10", retain_results="retain.json")])

Four evaluation sets (TOFU's): ``forget`` (``forgetXX_perturbed``), ``retain``
(``retain_perturbed``), ``real_authors`` and ``world_facts`` (``*_perturbed``). Each item's
answer, paraphrase (forget/retain) and perturbed answers are scored in one padded batch;
answers are generated greedily (left padding, KV cache). The formulas are in
:mod:`npo.llm.tofu_metrics`; the per-item values and the result file in
:mod:`npo.llm.eval_results`. ``legacy=True`` reproduces the TOFU repository's
``utils.get_model_utility`` where it differs (see :class:`EvalConfig`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from npo.llm.data import encode_prompts, eval_split_for
from npo.llm.eval_data import EvalData, encode_set, load_eval_data
from npo.llm.eval_results import (
    FORMAT,
    SETS,
    EvalResult,
    check_retain_results,
    load_eval_results,
    set_metrics,
    summary_metrics,
)
from npo.llm.scoring import generate_greedy, score_groups

__all__ = [
    "EvalConfig",
    "EvalData",
    "EvalResult",
    "evaluate_dir",
    "evaluate_model",
    "load_eval_data",
    "load_eval_results",
    "make_eval_hook",
]

LEGACY_ITEMS = 300  # TOFU's ds_size
LEGACY_MAX_LENGTH = 200  # TOFU's generation.max_length (scoring truncation and generation cap)
LEGACY_GEN_BATCH = 30  # TOFU's eval batch_size
DEFAULT_MAX_LENGTH = 512


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class EvalConfig:
    """Options of a TOFU evaluation (``npo eval`` flags; ``--eval-*`` flags of ``npo unlearn``).

    ``legacy``: TOFU's ``utils.get_model_utility`` (used by its training-time evaluation):
    truth ratios with the arithmetic mean over perturbed answers in the reported truth-ratio
    aggregates (model utility included; forget quality keeps the geometric mean, as there),
    the first 300 items of each set, sequences cut at 200 tokens, generations capped at 200
    tokens in total (left-padded prompt included) in dataset-order batches of 30.
    """

    batch_size: int = field(default=32, metadata=_h("sequences per scoring forward pass"))
    gen_batch_size: int | None = field(
        default=None,
        metadata=_h("prompts per generation batch (None: the scoring batch size; legacy: 30)"),
    )
    max_new_tokens: int = field(default=200, metadata=_h("greedy generation length limit"))
    generate: bool = field(
        default=True,
        metadata=_h("generate answers (ROUGE-L, gibberish rate); off: utility from 6 numbers"),
    )
    legacy: bool = field(
        default=False,
        metadata=_h("the TOFU repository's choices: arithmetic-mean truth ratios, 300 items"),
    )
    max_items: int | None = field(
        default=None, metadata=_h("first N items of each set (None: all; legacy: 300)")
    )
    max_length: int | None = field(
        default=None, metadata=_h("tokens per scored sequence (None: 512; legacy: 200)")
    )
    gibberish_copies: int = field(
        default=3, metadata=_h("degenerate generation: a token block repeated this many times")
    )
    gibberish_tokens: int = field(default=6, metadata=_h("... spanning at least this many tokens"))
    precision: Literal["auto", "fp32", "bf16-mixed", "bf16"] = field(
        default="auto", metadata=_h("auto: bf16 autocast on CUDA, fp32 elsewhere")
    )
    progress: bool = field(default=True, metadata=_h("show progress bars"))

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_new_tokens", "gibberish_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gen_batch_size", "max_items"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None), got {value}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 (or None), got {self.max_length}")
        if self.gibberish_copies < 2:
            raise ValueError(f"gibberish_copies must be >= 2, got {self.gibberish_copies}")

    @property
    def items_limit(self) -> int | None:
        return LEGACY_ITEMS if self.legacy and self.max_items is None else self.max_items

    @property
    def length_limit(self) -> int:
        if self.max_length is not None:
            return self.max_length
        return LEGACY_MAX_LENGTH if self.legacy else DEFAULT_MAX_LENGTH

    @property
    def generation_batch(self) -> int:
        if self.gen_batch_size is not None:
            return self.gen_batch_size
        return LEGACY_GEN_BATCH if self.legacy else self.batch_size

    @property
    def truth_mean(self) -> str:
        """Mean over perturbed answers in the reported truth-ratio aggregates."""
        return "arithmetic" if self.legacy else "geometric"


def _model_info(model: Any, tokenizer: Any) -> dict[str, Any]:
    cfg = getattr(model, "config", None)
    return {
        "model_type": getattr(cfg, "model_type", None),
        "vocab_size": getattr(cfg, "vocab_size", None),
        "name_or_path": getattr(cfg, "_name_or_path", None) or None,
        "tokenizer_size": len(tokenizer),
    }


def _bar(config: EvalConfig, total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=not config.progress, leave=False)


def _retain(retain_results: Any, data: EvalData, model_info: Any) -> EvalResult | None:
    """The retain model's results (a result, its dict or a file), checked against ``data``."""
    if retain_results is None:
        return None
    retain = (
        retain_results
        if isinstance(retain_results, EvalResult)
        else load_eval_results(retain_results)
    )
    check_retain_results(retain, data, model_info)
    return retain


def evaluate_model(
    model: Any,
    tokenizer: Any,
    data: str | Path | EvalData,
    forget: str = "forget10",
    *,
    config: EvalConfig | None = None,
    retain_results: str | Path | Mapping[str, Any] | EvalResult | None = None,
    reference: Any = None,
) -> EvalResult:
    """Evaluate ``model`` on the TOFU sets of ``forget`` (see the module docstring).

    ``retain_results``: the retain model's results (an :class:`EvalResult`, its ``to_json()``
    dict, or the path of a file ``npo eval`` wrote); without it ``forget_quality`` is None and
    ``result.notes`` says why. ``reference``: a model whose next-token distributions the KL
    metrics compare against (typically the target before unlearning); None -> KL metrics None.
    """
    from npo.llm.model import resolve_precision

    t0 = time.perf_counter()
    config = config or EvalConfig()
    if not isinstance(data, EvalData):
        data = load_eval_data(data, forget, config)
    elif data.forget != forget or data.items_limit != config.items_limit:
        raise ValueError(
            f"the evaluation data was loaded for {data.forget} with at most {data.items_limit} "
            f"items per set; this evaluation asks for {forget} with {config.items_limit}"
        )
    retain = _retain(retain_results, data, _model_info(model, tokenizer))
    if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer needs EOS and pad tokens (load_model sets pad = EOS)")
    device = next(model.parameters()).device
    autocast = resolve_precision(config.precision, device.type)[1]
    per_set: dict[str, dict[str, Any]] = {}
    for key in SETS:
        per_set[key] = _evaluate_set(model, tokenizer, data, key, config, reference, autocast)
    metrics, notes = summary_metrics(per_set, config, retain, has_reference=reference is not None)
    metrics["eval_seconds"] = time.perf_counter() - t0
    info = {
        "format": FORMAT,
        "forget": forget,
        "data": data.source,
        "splits": {k: s.name for k, s in data.sets.items()},
        "sources": {k: s.source for k, s in data.sets.items()},
        "n_items": data.n_items(),
        "digests": dict(data.digests),
        "model": _model_info(model, tokenizer),
        "retain_results": None if retain is None else retain.source,
        "reference": None if reference is None else _model_info(reference, tokenizer),
    }
    return EvalResult(metrics=metrics, items=per_set, config=config, notes=tuple(notes), info=info)


def _evaluate_set(model, tokenizer, data, key, config, reference, autocast) -> dict[str, Any]:
    """Per-item values of one set (see :func:`npo.llm.eval_results.set_metrics`)."""
    enc, groups, roles = encode_set(data, tokenizer, key, config.length_limit)
    kl_rows = [SETS[key].kl and r == "answer" for r in roles]
    n_items = len(groups)
    with _bar(config, n_items, f"score {key}") as bar:
        scores = score_groups(
            model,
            enc,
            groups,
            batch_size=config.batch_size,
            pad_id=tokenizer.pad_token_id,
            autocast=autocast,
            reference=reference,
            kl_rows=kl_rows,
            progress=bar,
        )
    generated = None
    if config.generate:
        questions = data.sets[key].column("question")
        with _bar(config, n_items, f"generate {key}") as bar:
            ids = generate_greedy(
                model,
                encode_prompts(tokenizer, questions),
                batch_size=config.generation_batch,
                max_new_tokens=config.max_new_tokens,
                pad_id=tokenizer.pad_token_id,
                eos_id=tokenizer.eos_token_id,
                autocast=autocast,
                sort=not config.legacy,
                max_total=config.length_limit if config.legacy else None,
                progress=bar,
            )
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
        generated = (ids, [t.strip() for t in texts])
    item = set_metrics(key, data.sets[key], scores, groups, roles, generated, config)
    item["n_truncated"] = enc.n_truncated
    return item


def make_eval_hook(
    data: str | Path | EvalData,
    forget: str = "forget10",
    *,
    config: EvalConfig | None = None,
    retain_results: str | Path | Mapping[str, Any] | EvalResult | None = None,
    reference: Any = None,
    save_results: bool = True,
) -> Any:
    """An ``npo.llm.loop.EvalHook`` for ``npo.llm.train.unlearn(hooks=[...])``: evaluates
    ``ctx.model`` and returns ``result.metrics`` (merged into ``log.jsonl``; at evaluation
    steps the record's ``forget_logp`` is the evaluation's, over the whole forget set).

    The data and ``retain_results`` are read and checked here, before training starts.
    ``reference``: a model, or the directory of one (loaded at the first call onto the
    run's device). ``save_results``: the main process also writes each evaluation's full
    results to ``OUT/eval/step-NNNNNN.json``. Progress bars are off inside training.
    """
    import dataclasses

    config = dataclasses.replace(config or EvalConfig(), progress=False)
    if not isinstance(data, EvalData):
        data = load_eval_data(data, forget, config)
    retain = _retain(retain_results, data, None)
    state: dict[str, Any] = {"reference": reference}
    if isinstance(reference, (str, Path)):
        from npo.llm.model import check_model_dir

        check_model_dir(Path(reference))

    def hook(ctx: Any) -> dict[str, float | None]:
        ref = state["reference"]
        if isinstance(ref, (str, Path)):
            from npo.llm.model import load_model, resolve_precision

            dtype = resolve_precision(ctx.config.precision, ctx.device.type)[0]
            ref = load_model(ref, dtype=dtype)[0].to(ctx.device)
            ref.requires_grad_(False)
            state["reference"] = ref
        eval_config = dataclasses.replace(config, precision=ctx.config.precision)
        result = evaluate_model(
            ctx.model,
            ctx.tokenizer,
            data,
            forget,
            config=eval_config,
            retain_results=retain,
            reference=ref,
        )
        if save_results and ctx.accelerator.is_main_process:
            from npo.results import ensure_out_dir, write_json

            out = ensure_out_dir(Path(ctx.out_dir) / "eval")
            write_json(out / f"step-{ctx.step:06d}.json", result.to_json())
        return dict(result.metrics)

    return hook


def evaluate_dir(
    model_dir: str | Path,
    data: str | Path,
    forget: str = "forget10",
    *,
    config: EvalConfig | None = None,
    retain_results: str | Path | None = None,
    reference_dir: str | Path | None = None,
    trust_remote_code: bool = False,
) -> EvalResult:
    """:func:`evaluate_model` on saved models (``npo eval``): the data and ``retain_results``
    are read and checked before any model is loaded; models go to CUDA when available."""
    import torch

    from npo.llm.model import check_model_dir, load_model, resolve_precision

    config = config or EvalConfig()
    eval_split_for(forget)  # validates the name
    check_model_dir(Path(model_dir))
    if reference_dir is not None:
        check_model_dir(Path(reference_dir))
    evdata = load_eval_data(data, forget, config)
    retain = None
    if retain_results is not None:
        retain = load_eval_results(retain_results)
        check_retain_results(retain, evdata, None)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = resolve_precision(config.precision, device.type)[0]
    model, tok = load_model(model_dir, dtype=dtype, trust_remote_code=trust_remote_code)
    reference = None
    if reference_dir is not None:
        reference = load_model(reference_dir, dtype=dtype, trust_remote_code=trust_remote_code)[0]
        reference = reference.to(device).requires_grad_(False)
    return evaluate_model(model.to(device), tok, evdata, forget, config=config,
                          retain_results=retain, reference=reference)  # fmt: skip
