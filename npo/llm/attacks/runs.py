"""``npo attack relearn`` and ``npo attack quantize``: run an attack, write its files.

Both write the usual evaluation JSON (``npo eval``'s results file) for every model they
evaluate, and a summary ``relearn.json`` / ``quantize.json`` (``{"format": "npo-attack",
"kind": ...}``), through :mod:`npo.results`, into ``--out``. Every forget number comes with
the model's utility beside it.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

from npo.llm.attacks.config import QuantizeConfig, RelearnConfig
from npo.llm.attacks.quantize import quantize_model, update_to_step_ratio
from npo.llm.attacks.relearn import part_metrics, split_items, steps_to_recovery
from npo.llm.eval import EvalConfig, evaluate_model, load_eval_data, load_eval_results
from npo.llm.eval.results import check_retain_results
from npo.results import ensure_out_dir, to_jsonable, write_json

__all__ = ["FORMAT", "SUMMARY_METRICS", "run_quantize", "run_relearn"]

FORMAT = "npo-attack"
SUMMARY_METRICS = (
    "forget_prob",
    "forget_truth_ratio",
    "forget_quality",
    "forget_logp",
    "mia_auc_min_k",
    "privleak",
    "model_utility",
    "retain_prob",
)


def _load(path: str | None, trust: bool) -> Any:
    import torch

    from npo.llm.model import check_model_dir, load_model

    if path is None:
        return None, None
    check_model_dir(Path(path))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = load_model(path, trust_remote_code=trust)
    return model.to(device).eval().requires_grad_(False), tok


def _inputs(config: Any, eval_config: EvalConfig) -> tuple[Any, Any, Path]:
    # Validated data, retain results and output directory, before any model is loaded.
    data = load_eval_data(config.data, config.forget, eval_config)
    retain = None
    if config.retain_results is not None:
        retain = load_eval_results(config.retain_results)
        check_retain_results(retain, data, None)
    out = ensure_out_dir(config.out)
    return data, retain, out


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics.get(k) for k in SUMMARY_METRICS}


def run_quantize(config: QuantizeConfig, eval_config: EvalConfig | None = None) -> dict[str, Any]:
    """Quantize the unlearned model (and the target) at every bits x group size; evaluate.

    Writes ``OUT/unlearned.json``, ``OUT/target.json`` and ``OUT/{unlearned,target}-Bbit-gG.json``
    (``G`` = ``channel`` per output channel), and ``OUT/quantize.json``: per variant the
    summary metrics, ``recovery`` = ``(p_q - p_u) / (p_target - p_u)`` of the forget
    probability (the share of the forget gap that quantization gives back), the target's
    grid error before quantization (0: it already sat on that grid), and the run's median
    update-to-step ratio at 4 bits (:func:`~npo.llm.attacks.quantize.update_to_step_ratio`).

    Returns:
        The summary.
    """
    eval_config = eval_config or EvalConfig(generate=False, progress=config.progress)
    data, retain, out = _inputs(config, eval_config)
    model, tok = _load(config.model, config.trust_remote_code)
    target, _ = _load(config.target, config.trust_remote_code)
    calibration, _ = _load(config.calibration_model, config.trust_remote_code)

    def evaluate(m: Any, name: str) -> dict[str, Any]:
        res = evaluate_model(
            m,
            tok,
            data,
            config.forget,
            config=eval_config,
            retain_results=retain,
            calibration=calibration,
        )
        write_json(out / f"{name}.json", res.to_json())
        return _summary(res.metrics)

    base = {"unlearned": evaluate(model, "unlearned")}
    if target is not None:
        base["target"] = evaluate(target, "target")
    variants = []
    for bits, group in itertools.product(config.bits, config.group_size):
        g = group or None
        tag = f"{bits}bit-g{group if group else 'channel'}"
        q = copy.deepcopy(model)
        report = quantize_model(q, bits, g)
        row: dict[str, Any] = {"name": tag, "bits": bits, "group_size": g, "quantized": report}
        row["unlearned"] = evaluate(q, f"unlearned-{tag}")
        del q
        if target is not None:
            qt = copy.deepcopy(target)
            row["target_grid_error"] = quantize_model(qt, bits, g)["on_grid_error"]
            row["target"] = evaluate(qt, f"target-{tag}")
            del qt
            row["recovery"] = _recovery(base, row["unlearned"])
        variants.append(row)
    summary: dict[str, Any] = {
        "format": FORMAT,
        "version": 1,
        "kind": "quantize",
        "config": to_jsonable(config),
        "base": base,
        "variants": variants,
        "update_ratio": None,
    }
    if target is not None:
        g4 = 32 if 32 in config.group_size else (config.group_size[0] or None)
        summary["update_ratio"] = {
            "bits": 4,
            "group_size": g4,
            **update_to_step_ratio(model, target, bits=4, group_size=g4),
        }
    write_json(out / "quantize.json", summary)
    return summary


def _recovery(base: dict[str, Any], quantized: dict[str, Any]) -> float | None:
    pu, pt, pq = (d.get("forget_prob") for d in (base["unlearned"], base["target"], quantized))
    if pu is None or pt is None or pq is None or pt == pu:
        return None
    return (pq - pu) / (pt - pu)


def run_relearn(config: RelearnConfig, eval_config: EvalConfig | None = None) -> dict[str, Any]:
    """Relearn part of the forget set and measure the rest over the steps.

    Writes ``OUT/train/`` (the fine-tuning run: model, ``log.jsonl``, ``eval/step-N.json``
    with the usual evaluation JSON at every evaluation), ``OUT/target.json`` (with
    ``--target``) and ``OUT/relearn.json``: the two parts, the steps, the measured items'
    metrics over the steps (:func:`~npo.llm.attacks.relearn.part_metrics`), the relearned
    items' forget probability, the target's, and the steps to recovery.

    Returns:
        The summary.
    """
    from npo.llm.data import QASplit
    from npo.llm.encoding import encode_qa
    from npo.llm.eval import make_eval_hook
    from npo.llm.train import FinetuneConfig, build_setup, make_accelerator, run_loop
    from npo.llm.train.checkpoint import start_or_resume
    from npo.objectives import Objective, Term

    eval_config = eval_config or EvalConfig(generate=False, progress=config.progress)
    data, retain, out = _inputs(config, eval_config)
    train_out = out / "train"
    if (train_out / "log.jsonl").exists():
        raise ValueError(f"{train_out} already holds a run; choose another --out")
    forget = data.sets["forget"]
    relearned, measured = split_items(len(forget), config.fraction, config.seed)
    train_idx = relearned if config.relearn_on == "other-part" else measured
    field_name = "answer" if config.relearn_on == "other-part" else "paraphrased_answer"
    rows = [forget.rows[i] for i in train_idx]
    split = QASplit(
        f"{forget.name}[relearn]",
        forget.source,
        tuple(rows),
        tuple(forget.lines[i] for i in train_idx),
    )
    ft = FinetuneConfig(
        model=config.model,
        data=config.data,
        out=str(train_out),
        lr=config.lr,
        max_steps=config.steps,
        batch_size=min(config.batch_size, len(rows)),
        lr_schedule="constant",
        warmup_epochs=0,
        weight_decay=0.0,
        checkpoint_every=0,
        drift_every=1,
        eval_every=config.eval_every,
        seed=config.seed,
        max_length=config.max_length,
        trust_remote_code=config.trust_remote_code,
        progress=config.progress,
    )
    target, _ = _load(config.target, config.trust_remote_code)
    calibration, _ = _load(config.calibration_model, config.trust_remote_code)
    model, tok = _load(config.model, config.trust_remote_code)
    model.requires_grad_(True).train()
    target_summary = None
    if target is not None:
        res = evaluate_model(
            target,
            tok,
            data,
            config.forget,
            config=eval_config,
            retain_results=retain,
            calibration=calibration,
        )
        write_json(out / "target.json", res.to_json())
        target_summary = part_metrics(res.to_json(), measured, _json(retain))
    hook = make_eval_hook(
        data, config.forget, config=eval_config, retain_results=retain, calibration=calibration
    )
    store = {
        "retain": encode_qa(
            tok, split, max_length=config.max_length, answers=[r[field_name] for r in rows]
        )
    }
    objective = Objective((Term("nll", 1.0, source="retain", reduction="token"),))
    ensure_out_dir(train_out)
    acc = make_accelerator(ft)
    info = {"desc": f"relearn {config.forget}", "attack": "relearn", "items": len(rows)}
    setup = build_setup(ft, acc, model, tok, store, objective, hooks=[hook], info=info)
    result = run_loop(start_or_resume(setup, None))
    evals = sorted((train_out / "eval").glob("step-*.json"))
    steps, measured_curve, relearned_prob = [], [], []
    for path in evals:
        doc = json.loads(path.read_text())
        steps.append(int(path.stem.split("-")[1]))
        measured_curve.append(part_metrics(doc, measured, _json(retain)))
        relearned_prob.append(part_metrics(doc, relearned)["forget_prob"])
    curves = (
        {k: [m[k] for m in measured_curve] for k in measured_curve[0]} if measured_curve else {}
    )
    recovery = None
    if target_summary is not None and steps and target_summary["forget_prob"] is not None:
        probs = [float(p) for p in curves["forget_prob"] if p is not None]
        recovery = steps_to_recovery(steps, probs, target_summary["forget_prob"])
    summary = {
        "format": FORMAT,
        "version": 1,
        "kind": "relearn",
        "config": to_jsonable(config),
        "parts": {"relearned": relearned, "measured": measured, "trained_on": config.relearn_on},
        "steps": steps,
        "measured": curves,
        "relearned_forget_prob": relearned_prob,
        "target": target_summary,
        "steps_to_recovery": recovery,
        "model_dir": str(result.model_dir),
    }
    write_json(out / "relearn.json", summary)
    return summary


def _json(result: Any) -> dict[str, Any] | None:
    return None if result is None else result.to_json()
