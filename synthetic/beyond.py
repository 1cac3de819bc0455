"""Synthetic experiments beyond the paper, and the ``theorem2`` experiment.

- ``optimizers``: Theorem 2 is about gradient descent, but LLM unlearning runs Adam, which
  normalizes the gradient's scale and may undo NPO's vanishing weight
  ``W ~ 2 (pi/pi_ref)^beta``. GA and NPO (Table 1's alpha = 1 settings) under full-batch GD,
  mini-batch SGD, heavy-ball momentum, Adam and sign descent; the drift
  ``||theta_t - theta_ref||`` and the forget KL are classified by
  :func:`theory.divergence.fit_divergence`.
- ``beta-rate``: NPO's late drift in the forget log-ratio grows like ``b log t``; the
  constant-tangent-kernel theory predicts ``b = 1/beta`` (:func:`theory.flows.npo_log_rate`).
  We measure ``b`` as the slope of the negated mean forget log-ratio against ``log t`` over
  the last decade of steps, for several beta, and overlay the prediction.
- ``theorem2``: :func:`theory.theorem2.run_theorem2` on logistic-regression instances.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from npo.experiment import ExperimentResult, ReproduceConfig
from synthetic.experiments import (
    base_config,
    from_curves,
    references,
    verdict,
)
from synthetic.runner import Curves, MethodSpec, RunConfig, run_unlearning
from synthetic.stats import median_curve, summarize
from theory import Theorem2Config, npo_log_rate, run_theorem2

__all__ = [
    "BETA_RATE_BETAS",
    "OPTIMIZER_SETTINGS",
    "late_log_slope",
    "run_beta_rate",
    "run_optimizers",
    "run_theorem2_experiment",
]

# (optimizer label, update rule, lr for GA, lr for NPO, mini-batch size or None).
# Momentum's lr is divided by 1/(1 - 0.9) = 10 so its terminal step matches GD's.
OPTIMIZER_SETTINGS = (
    ("gd", "gd", 5e-4, 5e-3, None),
    ("sgd", "gd", 5e-4, 5e-3, 32),
    ("momentum", "momentum", 5e-5, 5e-4, None),
    ("adam", "adam", 1e-3, 1e-3, None),
    ("signgd", "signgd", 1e-3, 1e-3, None),
)
BETA_RATE_BETAS = (0.25, 0.5, 1.0, 2.0, 4.0)


def late_log_slope(steps: np.ndarray, curve: np.ndarray, decades: float = 1.0) -> float:
    """The least-squares slope of ``curve`` against ``log(step)`` over the last ``decades``.

    Args:
        steps: the recorded steps, (T,).
        curve: the curve, (T,).
        decades: the width of the late window, in decades of steps.

    Returns:
        The slope.

    Raises:
        ValueError: with fewer than 3 finite points in the window.
    """
    sel = (steps >= steps[-1] / 10**decades) & (steps > 0) & np.isfinite(curve)
    if sel.sum() < 3:
        raise ValueError("need at least 3 finite points in the late window")
    return float(np.polyfit(np.log(steps[sel]), curve[sel], 1)[0])


def _merge(parts: list[Curves]) -> Curves:
    steps = parts[0].steps
    if any(not np.array_equal(p.steps, steps) for p in parts):
        raise ValueError("cannot merge curves recorded at different steps")
    return Curves(
        sum((p.specs for p in parts), ()),
        parts[0].seeds,
        steps,
        {m: np.concatenate([p.metrics[m] for p in parts]) for m in parts[0].metrics},
        np.concatenate([p.failed_step for p in parts]),
    )


def _optimizer_row(curves: Curves, s: MethodSpec) -> dict:
    drift = median_curve(curves.metric(s.key, "param_drift"))
    kl = median_curve(curves.metric(s.key, "forget_kl"))
    vd, vk = verdict(curves.steps, drift), verdict(curves.steps, kl)
    return {
        "method": s.key,
        "optimizer": s.optimizer,
        "lr": s.lr,
        "final_drift": drift[-1],
        "drift_verdict": vd["verdict"],
        "drift_rate_exponent": vd.get("rate_exponent"),
        "final_forget_kl": kl[-1],
        "forget_kl_verdict": vk["verdict"],
    }


def run_optimizers(config: ReproduceConfig) -> ExperimentResult:
    """The ``optimizers`` experiment: GA and NPO under five optimizers on the alpha = 1 task.

    Args:
        config: the shared options (``--steps``: 20000 full, 5000 quick).

    Returns:
        Curves (``ga/<optimizer>``, ``npo/<optimizer>``), one row per run with the drift and
        forget-KL verdicts, notes.
    """
    task, refs = references(config, 1.0)
    steps = config.n_steps(20000, 5000)
    parts, runs = [], {}
    for batch in (None, 32):
        specs = []
        for label, rule, lr_ga, lr_npo, b in OPTIMIZER_SETTINGS:
            if b == batch:
                specs.append(MethodSpec("ga", lr_ga, optimizer=rule, label=f"ga/{label}"))
                specs.append(
                    MethodSpec("npo", lr_npo, beta=1.0, optimizer=rule, label=f"npo/{label}")
                )
        run = RunConfig(steps, max(1, steps // 40), 60, batch, progress=config.progress)
        runs[str(batch)] = asdict(run)
        parts.append(run_unlearning(task, refs, tuple(specs), run))
    curves = _merge(parts)
    rows = [_optimizer_row(curves, s) for s in curves.specs]
    by = {r["method"]: r for r in rows}
    notes = [
        "Drift verdicts for NPO: "
        + ", ".join(f"{lab}: {by[f'npo/{lab}']['drift_verdict']}" for lab, *_ in OPTIMIZER_SETTINGS)
        + "; for GA: "
        + ", ".join(f"{lab}: {by[f'ga/{lab}']['drift_verdict']}" for lab, *_ in OPTIMIZER_SETTINGS)
        + ".",
        "Sign descent discards the gradient's magnitude and with it NPO's vanishing weight; Adam "
        "does the same until its second-moment estimate falls towards eps^2. See theory.optimizers "
        "for the constant-tangent-kernel derivation.",
    ]
    cfg = base_config(config, alpha=1.0, runs=runs, settings=OPTIMIZER_SETTINGS)
    headline = notes[0]
    return from_curves("optimizers", cfg, curves, rows, notes, headline=headline)


def run_beta_rate(config: ReproduceConfig) -> ExperimentResult:
    """The ``beta-rate`` experiment: NPO's late log-slope against the prediction ``1/beta``.

    Args:
        config: the shared options (``--steps``: 20000 full, 5000 quick).

    Returns:
        Curves, one row per beta (measured slope, ``1/beta``, verdict), notes, and
        ``extras`` with the betas, slopes and predictions for the plot.
    """
    task, refs = references(config, 1.0)
    steps = config.n_steps(20000, 5000)
    specs = tuple(
        MethodSpec("npo", 5e-3, beta=b, label=f"npo[beta={b:g}]") for b in BETA_RATE_BETAS
    )
    run = RunConfig(steps, max(1, steps // 40), 60, progress=config.progress)
    curves = run_unlearning(task, refs, specs, run)
    rows, slopes = [], []
    for s in specs:
        logp = curves.metric(s.key, "forget_logp")
        drift = median_curve(-(logp - logp[:, :1]))  # negated mean forget log-ratio
        slope = late_log_slope(curves.steps, drift)
        slopes.append(slope)
        v = verdict(curves.steps, drift)
        row = {
            "method": s.key,
            "beta": s.beta,
            "late_log_slope": slope,
            "theory_1_over_beta": npo_log_rate(s.beta),
            "slope_times_beta": slope * s.beta,
            "verdict": v["verdict"],
            "log_fit_tau": v.get("log_tau"),
        }
        rows.append(row)
    notes = [
        "late_log_slope: d(-log-ratio)/d(log t) over the last decade of steps, median over seeds;"
        " the constant-tangent-kernel asymptote u(t) ~ -(1/beta) log(1 + 2 beta K t) predicts "
        "1/beta."
    ]
    extras = {
        "betas": np.array(BETA_RATE_BETAS),
        "slopes": np.array(slopes),
        "theory": np.array([npo_log_rate(b) for b in BETA_RATE_BETAS]),
    }
    cfg = base_config(config, alpha=1.0, run=asdict(run), lr=5e-3)
    headline = "late log-slope x beta (theory 1): " + ", ".join(
        f"beta {r['beta']:g}: {r['slope_times_beta']:.2f}" for r in rows
    )
    return from_curves("beta-rate", cfg, curves, rows, notes, extras=extras, headline=headline)


def run_theorem2_experiment(config: ReproduceConfig) -> ExperimentResult:
    """The ``theorem2`` experiment: Theorem 2 on generated instances.

    GA's and NPO's drift ``||X (theta_t - theta_init)||`` (stored as ``param_drift``; one
    "seed" per instance) with the derived and fitted bands of
    :func:`theory.theorem2.run_theorem2`.

    Args:
        config: the shared options (``--steps``: GD steps, 1e5 full, 2e4 quick).

    Returns:
        The drifts, one row per method (band checks, verdicts), the study's summary as notes
        and its data in ``extras["theorem2"]``.
    """
    steps = config.n_steps(100_000, 20_000)
    t2cfg = Theorem2Config(steps=steps, fit_steps=min(1000, steps // 20))
    data = run_theorem2(t2cfg)
    curves = {
        "ga": {"param_drift": summarize(data.ga_drift)},
        "npo": {"param_drift": summarize(data.npo_drift)},
    }
    n = t2cfg.n_instances
    rows = []
    for m, fit in (("ga", data.ga_fit), ("npo", data.npo_fit)):
        verdicts = data.ga_verdicts if m == "ga" else data.npo_verdicts
        row = {
            "method": m,
            "inside_derived_band": f"{int(getattr(data, f'{m}_inside_proof').sum())}/{n}",
            "fitted_band": f"[{fit[0]:.4g}, {fit[1]:.4g}]",
            "inside_fitted_band": f"{int(getattr(data, f'{m}_inside_fit').sum())}/{n}",
            "verdicts": ", ".join(sorted(set(verdicts))),
            "min_linear_r2": float(data.ga_r2.min()) if m == "ga" else None,
        }
        rows.append(row)
    notes = data.summary().splitlines()
    cfg = base_config(config, theorem2=asdict(t2cfg))
    headline = (
        f"GA {rows[0]['verdicts']}, NPO {rows[1]['verdicts']}; inside derived bands GA "
        f"{rows[0]['inside_derived_band']}, NPO {rows[1]['inside_derived_band']}; fitted bands "
        f"on held-out data GA {rows[0]['inside_fitted_band']}, NPO {rows[1]['inside_fitted_band']}"
    )
    extras = {"theorem2": data}
    return ExperimentResult("theorem2", cfg, data.steps, curves, rows, notes, extras, headline)
