"""The divergence study of the small-transformer task: GA and NPO drift under SGD and AdamW.

GA and NPO (at each of ``drift_betas``) unlearn the first forget split without gradient
clipping for ``drift_steps`` steps, under SGD (lr 5e-3) and AdamW (lr 1e-3); the parameter
drift ``||theta_t - theta_0||`` is classified by :func:`synthetic.experiments.verdict`. An
AdamW run shorter than its second moment's memory ``1/(1 - beta2)`` (1000 steps) reads "not
asymptotic at this horizon" (:func:`theory.horizon.adam_memory_horizon`), its fit's own verdict
kept as ``fit_verdict``; the quick size runs 300 steps, the full size 1000.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from synthetic.experiments import verdict
from synthetic.transformer.cached import cached_run, unlearn_config
from synthetic.transformer.task import ResolvedTransformerConfig
from theory.horizon import adam_memory_horizon, horizon_verdict

__all__ = ["drift_study"]


def _drift_run(
    c: ResolvedTransformerConfig,
    models: dict,
    eval_dir: Path,
    method: str,
    beta: float,
    opt: str,
    root: Path,
) -> dict:
    from npo.llm.train import unlearn

    lr = {"sgd": 5e-3, "adamw": 1e-3}[opt]

    def run() -> dict:
        out = root / f"drift-{method}-{beta:g}-{opt}"
        shutil.rmtree(out, ignore_errors=True)  # an unfinished run's leftovers
        cfg = unlearn_config(
            c,
            models["target"],
            eval_dir,
            out,
            forget=f"forget{c.splits[0]:02d}",
            method=method,
            beta=beta,
            optimizer=opt,
            lr=lr,
            max_steps=c.drift_steps,
            max_grad_norm=0.0,
            eval_every=0,
        )
        result = unlearn(cfg)
        drift = [
            (r["step"], r["param_drift"]) for r in result.logs if r.get("param_drift") is not None
        ]
        logp = [(r["step"], r["forget_logp"]) for r in result.logs]
        return {"drift": drift, "forget_logp": logp, "lr": lr}

    return cached_run(root / f"drift-{method}-{beta:g}-{opt}.json", run)


def drift_study(
    c: ResolvedTransformerConfig, models: dict, eval_dir: Path, root: Path
) -> dict[str, Any]:
    """The drift runs (cached) and their verdicts.

    Returns:
        ``{"curves": {key: {"steps", "param_drift"}}, "verdicts": {key: verdict}}``, keys
        like ``ga/sgd`` and ``npo[beta=0.1]/adamw``.
    """
    runs = [("ga", c.beta)] + [("npo", b) for b in c.drift_betas]
    out: dict[str, Any] = {"curves": {}, "verdicts": {}}
    for opt in ("sgd", "adamw"):
        for method, beta in runs:
            run = _drift_run(c, models, eval_dir, method, beta, opt, root)
            steps, drift = (np.array(x, float) for x in zip(*run["drift"]))
            key = f"{method}/{opt}" if method == "ga" else f"{method}[beta={beta:g}]/{opt}"
            out["curves"][key] = {"steps": steps, "param_drift": drift}
            v = verdict(steps, drift)
            if opt == "adamw":  # torch's AdamW, betas (0.9, 0.999); its state is not recorded
                flag = adam_memory_horizon(float(steps[-1]))
                v["fit_verdict"], v["horizon"] = v["verdict"], flag.label()
                v["verdict"] = horizon_verdict(v["verdict"], flag)
                v["legend"] = v["verdict"] if flag.asymptotic else flag.short()
            out["verdicts"][key] = v
    return out
