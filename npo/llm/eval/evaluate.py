"""TOFU evaluation of a causal LM: forget quality, model utility and the full metric suite.

::

    from npo.llm.eval import EvalConfig, evaluate_model, make_eval_hook

    retain = evaluate_model(retain_model, tok, DATA, "forget10")  # the retain model
    result = evaluate_model(  # KL to the target
        model, tok, DATA, "forget10", retain_results=retain.to_json(), reference=target
    )
    result.metrics["forget_quality"], result.metrics["model_utility"]
    unlearn(config, hooks=[make_eval_hook(DATA, "forget10", retain_results="retain.json")])

Four evaluation sets (TOFU's, :mod:`npo.llm.eval.sets`): ``forget`` (``forgetXX_perturbed``),
``retain`` (``retain_perturbed``), ``real_authors`` and ``world_facts`` (``*_perturbed``).
Each item's answer, paraphrase (forget/retain) and perturbed answers are scored in one padded
batch; answers are generated greedily (left padding, KV cache; :mod:`npo.llm.eval.scoring`).
The formulas are in :mod:`npo.llm.eval.metrics`; the per-item values and the result file in
:mod:`npo.llm.eval.results`. ``legacy=True`` reproduces the TOFU repository's
``utils.get_model_utility`` where it differs (see :class:`~npo.llm.eval.config.EvalConfig`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from npo.llm.data import eval_split_for
from npo.llm.encoding import encode_prompts
from npo.llm.eval.config import EvalConfig
from npo.llm.eval.membership import (
    forget_answer_rows,
    holdout_items,
    membership_info,
    score_items,
)
from npo.llm.eval.results import (
    FORMAT,
    EvalResult,
    check_retain_results,
    load_eval_results,
    set_metrics,
    summary_metrics,
)
from npo.llm.eval.scoring import generate_greedy, score_groups
from npo.llm.eval.sets import SETS, EvalData, encode_set, load_eval_data

__all__ = ["evaluate_dir", "evaluate_model", "make_eval_hook", "model_info_from_dir"]


def model_info_from_dir(model_dir: str | Path) -> dict[str, Any]:
    """What :func:`evaluate_model` records about a model, read from its ``config.json`` alone.

    So a retain model's results can be checked against a model before it loads. An adapter's
    family is its base's.

    Returns:
        ``{"model_type", "vocab_size"}`` (None where the config has no such key).
    """
    from npo.llm.digests import adapter_base, read_json

    path = Path(model_dir)
    if not (path / "config.json").is_file() and (path / "adapter_config.json").is_file():
        path = adapter_base(path)
    cfg = read_json(path / "config.json", "model config")
    if not isinstance(cfg, dict):
        raise ValueError(f"model config {path / 'config.json'} is not a JSON object")
    inner = cfg.get("text_config")
    text: dict[str, Any] = inner if isinstance(inner, dict) else {}
    return {
        "model_type": cfg.get("model_type"),
        "vocab_size": cfg.get("vocab_size", text.get("vocab_size")),
    }


def _context(model: Any) -> int | None:
    # The model's position limit (generations stop there; learned positions index past it).
    cfg = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _model_info(model: Any, tokenizer: Any) -> dict[str, Any]:
    # What a results file records about a model (and checks a retain model's against).
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
    # The retain model's results (a result, its dict or a file), checked against `data`.
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
    model_digests: Mapping[str, Any] | None = None,
    calibration: Any = None,
) -> EvalResult:
    """Evaluate ``model`` on the TOFU sets of ``forget`` (see the module docstring).

    Args:
        model: the causal LM (on its device; evaluated in eval mode, its mode restored).
        tokenizer: its tokenizer (EOS and pad tokens).
        data: a TOFU directory, ``hf:repo``, or :class:`~npo.llm.eval.sets.EvalData` loaded
            for ``forget`` and ``config``'s item limit.
        forget: the forget split.
        config: the options (None: the defaults).
        retain_results: the retain model's results (an
            :class:`~npo.llm.eval.results.EvalResult`, its ``to_json()`` dict, or the path of
            a file ``npo eval`` wrote); without it ``forget_quality`` is None and
            ``result.notes`` says why.
        reference: a model whose next-token distributions the KL metrics compare against
            (typically the target before unlearning); None: KL metrics None.
        model_digests: content digests of the models (``{"model_files": ...}``), recorded in
            ``info.provenance.digests`` with the tokenizer's and the data's.
        calibration: the calibration model of the ``calibrated`` membership-inference score
            (e.g. the retain model; not NPO's reference, not ``reference``); None: that score
            is None.

    Returns:
        The :class:`~npo.llm.eval.results.EvalResult`.
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
    mia = data.holdout is not None
    per_set: dict[str, dict[str, Any]] = {}
    for key in SETS:
        cal = calibration if mia and key == "forget" else None
        per_set[key] = _evaluate_set(
            model, tokenizer, data, key, config, reference, autocast, mia=mia, calibration=cal
        )
    if mia:
        with _bar(config, len(data.holdout or ()), "score holdout") as bar:
            per_set["holdout"] = holdout_items(
                model,
                tokenizer,
                data,
                config,
                autocast=autocast,
                calibration=calibration,
                progress=bar,
            )
    metrics, notes = summary_metrics(per_set, config, retain, has_reference=reference is not None)
    if not mia:
        notes.append(f"membership inference (mia_auc_*, privleak) is null: {data.holdout_note}")
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
        "provenance": _provenance(model, tokenizer, config, data, model_digests or {}),
        "mia": membership_info(data, config, calibration),
    }
    return EvalResult(metrics=metrics, items=per_set, config=config, notes=tuple(notes), info=info)


def _provenance(
    model: Any, tokenizer: Any, config: EvalConfig, data: EvalData, models: Mapping[str, Any]
) -> dict[str, Any]:
    # What reproduces an evaluation (npo.provenance): greedy decoding, so no seed.
    from npo.llm.digests import tokenizer_digest
    from npo.provenance import provenance

    digests = {"tokenizer": tokenizer_digest(tokenizer), "data": dict(data.digests), **models}
    return provenance(
        config=config,
        seed=None,
        world_size=1,
        per_device_batch=config.batch_size,
        digests=digests,
        paths={"data": data.source, "model": getattr(model.config, "_name_or_path", None)},
    )


def _evaluate_set(
    model: Any,
    tokenizer: Any,
    data: EvalData,
    key: str,
    config: EvalConfig,
    reference: Any,
    autocast: bool,
    *,
    mia: bool = False,
    calibration: Any = None,
) -> dict[str, Any]:
    # Per-item values of one set (see npo.llm.eval.results.set_metrics); on the forget set with
    # membership inference also the attack scores, from the same forward.
    enc, groups, roles = encode_set(data, tokenizer, key, config.length_limit)
    kl_rows = [SETS[key].kl and r == "answer" for r in roles]
    token_rows = forget_answer_rows(roles) if mia and key == "forget" else None
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
            token_rows=token_rows,
            calibration=calibration,
            progress=bar,
        )
    generated = None
    if config.generate:
        questions = data.sets[key].column("question")
        caps = [config.length_limit if config.legacy else None, _context(model)]
        cap = min((c for c in caps if c is not None), default=None)
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
                max_total=cap,
                progress=bar,
            )
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
        generated = (ids, [t.strip() for t in texts])
    item = set_metrics(key, data.sets[key], scores, groups, roles, generated, config)
    if token_rows is not None:
        answers = [g[0] for g in groups]  # each group starts with the item's answer
        item.update(score_items(scores, answers, data.sets[key].column("answer"), config))
    item["n_truncated"] = enc.n_truncated
    return item


def make_eval_hook(
    data: str | Path | EvalData,
    forget: str = "forget10",
    *,
    config: EvalConfig | None = None,
    retain_results: str | Path | Mapping[str, Any] | EvalResult | None = None,
    reference: Any = None,
    calibration: Any = None,
    save_results: bool = True,
    model_dir: str | Path | None = None,
) -> Callable[[Any], dict[str, float | None]]:
    """An evaluation hook for :func:`npo.llm.train.api.unlearn` (``hooks=[...]``).

    The hook (an :data:`~npo.llm.train.log.EvalHook`) evaluates ``ctx.model`` and returns
    ``result.metrics``, merged into ``log.jsonl`` (at evaluation steps the record's
    ``forget_logp`` is the evaluation's, over the whole forget set). The data and
    ``retain_results`` are read and checked here, before training starts. ``reference``: a
    model, or the directory of one (loaded at the first call onto the run's device).
    ``calibration``: the calibration model of the ``calibrated`` membership-inference score, a
    model or a directory (loaded like ``reference``).
    ``save_results``: the main process also writes each evaluation's full results to
    ``OUT/eval/step-NNNNNN.json``. Progress bars are off inside training. ``model_dir``: the
    directory of the model to be trained, whose family (``config.json``) the retain results
    are checked against now, before any model loads. Other arguments as in
    :func:`evaluate_model`.

    Returns:
        The hook.
    """
    import dataclasses

    config = dataclasses.replace(config or EvalConfig(), progress=False)
    if not isinstance(data, EvalData):
        data = load_eval_data(data, forget, config)
    info = None if model_dir is None else model_info_from_dir(model_dir)
    retain = _retain(retain_results, data, info)
    state: dict[str, Any] = {"reference": reference, "calibration": calibration}
    for value in state.values():
        if isinstance(value, (str, Path)):
            from npo.llm.model import check_model_dir

            check_model_dir(Path(value))

    def hook(ctx: Any) -> dict[str, float | None]:
        for name, value in state.items():
            if isinstance(value, (str, Path)):
                from npo.llm.model import load_model, resolve_precision

                dtype = resolve_precision(ctx.config.precision, ctx.device.type)[0]
                loaded = load_model(value, dtype=dtype)[0].to(ctx.device)
                state[name] = loaded.requires_grad_(False)
        eval_config = dataclasses.replace(config, precision=ctx.config.precision)
        result = evaluate_model(
            ctx.model,
            ctx.tokenizer,
            data,
            forget,
            config=eval_config,
            retain_results=retain,
            reference=state["reference"],
            calibration=state["calibration"],
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
    calibration_dir: str | Path | None = None,
    trust_remote_code: bool = False,
) -> EvalResult:
    """:func:`evaluate_model` on saved models (``npo eval``).

    The data, ``retain_results`` (against the model's ``config.json``), the sequence length
    (against the models' positions) and the tokenization are checked before any model is
    loaded; models go to CUDA when available.

    Returns:
        The :class:`~npo.llm.eval.results.EvalResult`.
    """
    import torch

    from npo.errors import warn
    from npo.llm.guard import check_context, split_warnings
    from npo.llm.model import check_model_dir, load_model, load_tokenizer, resolve_precision

    config = config or EvalConfig()
    eval_split_for(forget)  # validates the name
    for path in (model_dir, reference_dir, calibration_dir):
        if path is not None:
            check_model_dir(Path(path))
            check_context(path, config.length_limit, "--max-length")
    evdata = load_eval_data(data, forget, config)
    for split in evdata.sets.values():
        for line in split_warnings(split):
            warn(line)
    retain = None
    if retain_results is not None:
        retain = load_eval_results(retain_results)
        check_retain_results(retain, evdata, model_info_from_dir(model_dir))
    tok = load_tokenizer(model_dir, trust_remote_code=trust_remote_code)
    for key in evdata.sets:  # tokenization errors (a prompt too long) before the model loads
        encode_set(evdata, tok, key, config.length_limit)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = resolve_precision(config.precision, device.type)[0]
    model, tok = load_model(
        model_dir, dtype=dtype, trust_remote_code=trust_remote_code, tokenizer=tok
    )
    frozen = {}
    for name, path in (("reference", reference_dir), ("calibration", calibration_dir)):
        if path is not None:
            other = load_model(path, dtype=dtype, trust_remote_code=trust_remote_code)[0]
            frozen[name] = other.to(device).requires_grad_(False)
    from npo.llm.digests import files_digest

    digests = {
        "model_files": files_digest(model_dir),
        "reference_files": None if reference_dir is None else files_digest(reference_dir),
        "calibration_files": None if calibration_dir is None else files_digest(calibration_dir),
    }
    return evaluate_model(
        model.to(device),
        tok,
        evdata,
        forget,
        config=config,
        retain_results=retain,
        reference=frozen.get("reference"),
        calibration=frozen.get("calibration"),
        model_digests=digests,
    )
