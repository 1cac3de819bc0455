"""Runs of the small-transformer experiment: unlearning with evaluation curves, and the result.

Unlearning runs record evaluation curves; the divergence study
(:mod:`synthetic.transformer.drift`) records the parameter drift; :func:`run_transformer`
assembles them into an :class:`~npo.experiment.ExperimentResult`.

Every unlearning run goes through :func:`npo.llm.train.unlearn` with an evaluation hook from
:func:`npo.llm.eval.make_eval_hook` (no generation during training; the target model as
the KL reference) and a final :func:`npo.llm.eval.evaluate_model` with generation. Runs are
cached on disk under the config's key, so reruns and tests reuse them.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from npo.experiment import ExperimentResult, ReproduceConfig
from npo.results import atomic_write_text, to_jsonable, write_json
from synthetic.transformer.cached import cached_run, load_model_eval, unlearn_config
from synthetic.transformer.drift import drift_study
from synthetic.transformer.seeds import assemble_seeds, seed_notes
from synthetic.transformer.summary import result_headline, result_notes
from synthetic.transformer.task import (
    ResolvedTransformerConfig,
    TransformerConfig,
    prepare_data,
    run_key,
    train_models,
)

__all__ = [
    "CURVE_METRICS",
    "FINAL_METRICS",
    "check_reproduce_config",
    "run_reproduce",
    "run_transformer",
    "transformer_config",
]

CURVE_METRICS = (
    "forget_quality",
    "model_utility",
    "forget_truth_ratio",
    "forget_logp",
    "retain_kl",
    "mia_auc_min_k",
    "mia_auc_loss",
    "privleak",
    "param_drift",
)
FINAL_METRICS = (*CURVE_METRICS, "gibberish_rate", "forget_rouge", "retain_rouge")
# Versions of the cached records (runs, retain and target results); the drift study keeps its.
RECORDS = "v2"


def _retain_results(retain_dir: Path, eval_dir: Path, forget: str, path: Path) -> Path:
    from npo.llm.eval import EvalConfig, evaluate_model

    if not path.is_file():
        model, tok = load_model_eval(retain_dir)
        res = evaluate_model(
            model, tok, str(eval_dir), forget, config=EvalConfig(generate=False, progress=False)
        )
        write_json(path, res.to_json())
    return path


def _retain_path(root: Path, forget: str) -> Path:
    return root / f"retain-{forget}.{RECORDS}.json"


def _unlearn_run(
    c: ResolvedTransformerConfig,
    models: dict,
    eval_dir: Path,
    pct: int,
    method: str,
    root: Path,
    target: Any,
    *,
    name: str | None = None,
    **extra: Any,
) -> dict:
    # One unlearning run (cached under `name`, default the method): evaluation curves, drift
    # and the final metrics; `extra` overrides fields of its UnlearnConfig (e.g. sam_rho, lr).
    from npo.llm.eval import EvalConfig, evaluate_model, make_eval_hook
    from npo.llm.train import unlearn

    forget = f"forget{pct:02d}"
    tag = (name or method).replace("+", "_")
    retain_dir = models["retain"][pct]
    retain_res = _retain_results(retain_dir, eval_dir, forget, _retain_path(root, forget))

    def run() -> dict:
        out = root / forget / tag
        shutil.rmtree(out, ignore_errors=True)  # an unfinished run's leftovers
        calibration, _ = load_model_eval(retain_dir)
        hook = make_eval_hook(
            str(eval_dir),
            forget,
            config=EvalConfig(generate=False, progress=False),
            retain_results=retain_res,
            reference=target,
            calibration=calibration,
            save_results=False,
        )
        kw: dict[str, Any] = {
            "forget": forget,
            "method": method,
            "retain_weight": c.retain_weight_for(pct),
            "max_steps": c.steps,
            "eval_every": c.eval_every,
        }
        cfg = unlearn_config(c, models["target"], eval_dir, out, **{**kw, **extra})
        result = unlearn(cfg, hooks=[hook])
        model, tok = load_model_eval(result.model_dir)
        final = evaluate_model(
            model,
            tok,
            str(eval_dir),
            forget,
            config=EvalConfig(generate=True, progress=False),
            retain_results=retain_res,
            reference=target,
            calibration=calibration,
        )
        evals = [r for r in result.logs if "forget_quality" in r]
        drift = [
            (r["step"], r["param_drift"]) for r in result.logs if r.get("param_drift") is not None
        ]
        return {"evals": evals, "drift": drift, "final": final.metrics}

    return cached_run(root / forget / f"{tag}.{RECORDS}.json", run)


def _curve(records: list[dict], metric: str) -> np.ndarray:
    return np.array([np.nan if r.get(metric) is None else r[metric] for r in records], float)


def _target_metrics(
    models: dict, eval_dir: Path, pct: int, root: Path, forget: str
) -> dict[str, Any]:
    # the target model's metrics on one forget split, with generation (cached)
    from npo.llm.eval import EvalConfig, evaluate_model

    tpath = root / f"target-{forget}.{RECORDS}.json"
    if not tpath.is_file():
        retain_dir = models["retain"][pct]
        retain_res = _retain_results(retain_dir, eval_dir, forget, _retain_path(root, forget))
        model, tok = load_model_eval(models["target"])
        res = evaluate_model(
            model,
            tok,
            str(eval_dir),
            forget,
            config=EvalConfig(generate=True, progress=False),
            retain_results=retain_res,
            calibration=load_model_eval(retain_dir)[0],
        )
        atomic_write_text(tpath, json.dumps(to_jsonable(res.metrics)))
    return json.loads(tpath.read_text())


def _method_curves(run: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    # the evaluation steps and each metric's curve of one unlearning run
    evals = run["evals"]
    steps = np.array([r["step"] for r in evals])
    drift = dict(map(tuple, run["drift"]))
    per = {m: _curve(evals, m) for m in CURVE_METRICS if m != "param_drift"}
    per["param_drift"] = np.array([drift.get(int(s), 0.0 if s == 0 else np.nan) for s in steps])
    return steps, per


def _seed_run(c: ResolvedTransformerConfig) -> dict[str, Any]:
    """One seed of the experiment: data, models, every split and method (all cached).

    Returns:
        ``steps``, ``curves[split][method][metric]`` (arrays), ``final[split][method]``,
        ``target[split]`` and ``retain[split]`` metrics, ``drift`` per run, the split
        report and the models.
    """
    train_dir, eval_dir, report = prepare_data(c)
    models = train_models(c, train_dir, report)
    root = Path(c.cache_dir) / f"runs-{run_key(c)}"
    root.mkdir(parents=True, exist_ok=True)
    target, _ = load_model_eval(models["target"])
    out: dict[str, Any] = {"curves": {}, "final": {}, "target": {}, "retain": {}, "drift": {}}
    out.update(report=report, models=models, eval_dir=eval_dir, root=root, steps=np.zeros(0))
    for pct in (int(p) for p in report["written"]):
        forget = f"forget{pct:02d}"
        out["target"][forget] = _target_metrics(models, eval_dir, pct, root, forget)
        retain_file = _retain_path(root, forget)
        out["retain"][forget] = json.loads(retain_file.read_text())
        out.setdefault("n_forget_items", {})[forget] = len(
            out["retain"][forget]["items"]["forget"]["truth_ratio"]
        )
        for key in ("curves", "final", "drift"):
            out[key][forget] = {}
        for method in c.methods:
            run = _unlearn_run(c, models, eval_dir, pct, method, root, target)
            out["steps"], out["curves"][forget][method] = _method_curves(run)
            out["final"][forget][method] = run["final"]
            out["drift"][forget][method] = run["drift"]
    return out


def run_transformer(config: TransformerConfig) -> ExperimentResult:
    """Run the small-transformer experiment end to end (every stage cached on disk).

    Per seed: generate the data, fine-tune the models, unlearn every forget split with every
    method; then the divergence study (first seed) and the result, with medians and
    bootstrap intervals over seeds (:mod:`synthetic.transformer.seeds`).

    Args:
        config: the task's options (resolved here).

    Returns:
        ``curves[split][method][metric]`` (one row per seed), one table row per split and
        method (plus the target's; medians over seeds), notes, and ``extras`` with the
        target's and retain model's metrics, per-seed final metrics and their intervals, the
        divergence study, the split report, the memorization accuracy and the parameter count.
    """
    c = config.resolved()
    seeds = [_seed_run(replace(c, seed=s)) for s in c.seed_list]
    first = seeds[0]
    drift_root = first["root"] / f"drift-forget{c.splits[0]:02d}"  # the study's split
    drift_root.mkdir(parents=True, exist_ok=True)
    drift = drift_study(c, first["models"], first["eval_dir"], drift_root)
    curves, rows, extras = assemble_seeds(c, seeds)
    extras.update(
        drift=drift,
        report=first["report"],
        n_forget_items=first["n_forget_items"],
        memorization_accuracy=first["models"]["memorization"],
        params=first["models"]["params"],
    )
    notes = result_notes(c, first["report"], first["models"], extras["target"], drift)
    notes += seed_notes(c, extras)
    cfg = {"transformer": asdict(c), "data": str(first["eval_dir"])}
    headline = result_headline(rows, drift)
    steps = first["steps"]
    return ExperimentResult("transformer", cfg, steps, curves, rows, notes, extras, headline)


def transformer_config(config: ReproduceConfig) -> TransformerConfig:
    """The task's options from the shared options of ``npo reproduce transformer``.

    ``--steps`` sets the unlearning steps; ``--methods``, ``--lr``, ``--beta``,
    ``--optimizer``, ``--eval-every`` (default 10), ``--seeds`` (default: 1 quick, 3 full),
    ``--quick`` and ``--cache-dir`` map onto the fields of the same names.

    Args:
        config: the shared options.

    Returns:
        The task's options (validated).
    """
    pairs = (
        ("lr", config.lr),
        ("beta", config.beta),
        ("cache_dir", config.cache_dir),
        ("seeds", config.seeds),
    )
    extra: dict[str, Any] = {k: v for k, v in pairs if v is not None}
    return TransformerConfig(
        quick=config.quick,
        steps=config.steps,
        methods=config.methods or None,
        optimizer=config.optimizer,
        eval_every=config.eval_every or 10,
        progress=config.progress,
        **extra,
    )


def run_reproduce(config: ReproduceConfig) -> ExperimentResult:
    """The ``transformer`` experiment of ``npo reproduce``: :func:`run_transformer`.

    Args:
        config: the shared options (mapped by :func:`transformer_config`).

    Returns:
        The experiment's result.
    """
    return run_transformer(transformer_config(config))


def check_reproduce_config(config: ReproduceConfig) -> None:
    """Validate the task's options before any work (the registry entry's ``check``).

    Args:
        config: the shared options.
    """
    transformer_config(config)
