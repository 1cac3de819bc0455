"""The ``adam-study`` experiment: which divergence regime NPO is in under Adam, and why.

On the paper's random-features task (alpha = 1, no retain term), GA and NPO (beta 1) under
full-batch GD, mini-batch SGD (32), Adam at lr 1e-5, 1e-4, 1e-3 (eps 1e-8) and sign descent,
and NPO under Adam at lr 1e-4 with eps 0, 1e-6 and 1e-4; 1e5 steps (1e4 quick). Every run
records the drift, the forget log-ratio, the fraction of forget samples whose likelihood rose
and, under Adam, its state (``adam_q``, ``adam_rho``, ``adam_step_max``:
:func:`synthetic.optim.adam_stats`). The table gives, per run, the late slope of ``-mean u``
per step against Adam's cap ``(1 - beta2)/(2 beta)``, the local exponents of the drift by
decade, NPO's local log rate at the end, the verdict with its horizon flag, and where ``eps``
took over (observed ``beta |u|`` against the prediction of
:func:`theory.optimizers.adam_eps_crossover` from the forget gradient at ``theta_ref``). The
constant-kernel half (:func:`theory.adam_study.run_adam_study`, 1e6 steps; 1e5 quick) is in
``extras["ck"]``. Slow: the quick size (5 seeds, 1e4 steps) took 137 s on a shared two-core
machine, and the full size has ten times the steps (tens of minutes); not part of
``npo reproduce all``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from npo.experiment import ExperimentResult, ReproduceConfig
from synthetic.experiments import base_config, from_curves, references
from synthetic.models import split_logprobs
from synthetic.optim import ADAM_BETAS
from synthetic.runner import Curves, MethodSpec, RunConfig, merge_curves, run_unlearning
from synthetic.stats import median_curve
from synthetic.verdicts import seed_verdict
from theory import adam_eps_crossover
from theory.adam_study import AdamStudyConfig, plot_adam_study, run_adam_study
from theory.regimes import local_exponent, local_log_rate

__all__ = [
    "ADAM_CAP",
    "CAP_WINDOW",
    "adam_study_specs",
    "plot_adam_study_result",
    "run_adam_study_rf",
]

BETA = 1.0
ADAM_CAP = (1.0 - ADAM_BETAS[1]) / (2.0 * BETA)  # Adam's capped rate of -u per step
_LRS = (1e-5, 1e-4, 1e-3)
CAP_WINDOW = (3000, 10_000)  # the capped regime's steps, before the late jumps


def adam_study_specs() -> tuple[tuple[MethodSpec, ...], tuple[MethodSpec, ...]]:
    """The runs of the study: full-batch settings, then mini-batch (32) settings.

    Returns:
        ``(full_batch, mini_batch)``, labels like ``npo/adam/lr0.001/eps1e-08``.
    """
    full = [
        MethodSpec("ga", 5e-4, label="ga/gd"),
        MethodSpec("npo", 5e-3, beta=BETA, label="npo/gd"),
    ]
    for lr in _LRS:
        for m in ("ga", "npo"):
            full.append(
                MethodSpec(m, lr, beta=BETA, optimizer="adam", label=f"{m}/adam/lr{lr:g}/eps1e-08")
            )
    for eps in (0.0, 1e-6, 1e-4):
        label = f"npo/adam/lr0.0001/eps{eps:g}"
        full.append(MethodSpec("npo", 1e-4, beta=BETA, optimizer="adam", eps=eps, label=label))
    for m in ("ga", "npo"):
        full.append(MethodSpec(m, 1e-3, beta=BETA, optimizer="signgd", label=f"{m}/signgd"))
    mini = (
        MethodSpec("ga", 5e-4, label="ga/sgd"),
        MethodSpec("npo", 5e-3, beta=BETA, label="npo/sgd"),
    )
    return tuple(full), mini


def _at(steps: np.ndarray, curve: np.ndarray, step: float) -> float:
    i = int(np.searchsorted(steps, step))
    return float(curve[min(i, curve.size - 1)])


def _predicted_crossover(config: ReproduceConfig, eps: float) -> tuple[float, float]:
    # beta |u_x| from the per-coordinate forget gradient at theta_ref (W = 1 there, so GA's
    # and NPO's gradients coincide): median and range over seeds
    if eps <= 0:
        return float("nan"), float("nan")
    task, refs = references(config, 1.0)
    theta = refs.theta_ref.clone().requires_grad_()
    (grad,) = torch.autograd.grad(split_logprobs(task.forget, theta).mean(-1).sum(), theta)
    values = [-BETA * adam_eps_crossover(grad=g.numpy(), beta=BETA, eps=eps) for g in grad]
    return float(np.median(values)), float(np.ptp(values))


def _row(curves: Curves, s: MethodSpec, ga: dict[str, float], config: ReproduceConfig) -> dict:
    n = curves.steps.astype(np.float64)
    logp = curves.metric(s.key, "forget_logp")
    neg_u = -(logp - logp[:, :1])
    mu, drift = median_curve(neg_u), median_curve(curves.metric(s.key, "param_drift"))
    T = n[-1]
    late = (mu[-1] - _at(n, mu, 0.3 * T)) / (T - n[np.searchsorted(n, 0.3 * T)])
    i, j = np.searchsorted(n, CAP_WINDOW[0]), np.searchsorted(n, CAP_WINDOW[1])
    window = (mu[j] - mu[i]) / (n[j] - n[i]) if T >= CAP_WINDOW[1] else float("nan")
    v = seed_verdict(curves, s, curves.metric(s.key, "param_drift"))
    pos = n > 0
    expo = local_exponent(n[pos], drift[pos])
    row: dict[str, Any] = {
        "method": s.key,
        "optimizer": s.optimizer,
        "lr": s.lr,
        "eps": s.eps if s.optimizer == "adam" else None,
        "final_neg_u": mu[-1],
        "final_drift": drift[-1],
        "cap_slope_over_cap": window / ADAM_CAP,
        "late_slope_over_cap": late / ADAM_CAP,
    }
    for dec in range(2, int(np.log10(T)) + 1):
        row[f"drift_exponent_1e{dec}"] = _at(n[pos], expo, 10.0**dec)
    row["log_rate_x_beta"] = (
        float(BETA * local_log_rate(n[pos], mu[pos])[-1]) if s.method == "npo" else None
    )
    row["verdict"] = v["verdict"]
    row["fit_verdict"] = v["fit_verdict"]
    row["growth_exponent_seeds"] = v["growth_exponent_seeds"]
    row["horizon_short"] = v["horizon_short"]
    row["forget_up_frac"] = float(np.nanmedian(curves.metric(s.key, "forget_up_frac")[:, -1]))
    row.update(_adam_columns(curves, s, n, mu, config))
    partner = s.key.replace("npo/", "ga/", 1)
    if s.method == "npo" and partner in ga:
        row["npo_over_ga_neg_u"] = mu[-1] / ga[partner]
        row["npo_over_ga_drift"] = drift[-1] / float(
            median_curve(curves.metric(partner, "param_drift"))[-1]
        )
    return row


def _adam_columns(
    curves: Curves, s: MethodSpec, n: np.ndarray, mu: np.ndarray, config: ReproduceConfig
) -> dict:
    if s.optimizer != "adam":
        return {}
    q = median_curve(curves.metric(s.key, "adam_q"))
    rho = median_curve(curves.metric(s.key, "adam_rho"))
    jump = median_curve(curves.metric(s.key, "adam_step_max"))
    below = np.flatnonzero(q < 0.5)
    out = {
        "adam_q": q[-1],
        "adam_rho": rho[-1],
        "max_step_over_lr": float(np.nanmax(jump[n >= 1000])) if (n >= 1000).any() else None,
        "eps_since": float(n[below[0]]) if below.size else None,
        "beta_abs_u_at_eps": float(BETA * mu[below[0]]) if below.size else None,
    }
    if s.method == "npo":
        out["beta_abs_u_x_predicted"] = _predicted_crossover(config, s.eps)[0]
    return out


def run_adam_study_rf(config: ReproduceConfig) -> ExperimentResult:
    """The ``adam-study`` experiment (random-features task and constant kernel).

    Args:
        config: the shared options (``--steps``: 1e5 full, 1e4 quick; ``--seeds``).

    Returns:
        Curves of every run, one row per run (see the module's docstring), notes with the
        conclusion's numbers, ``extras["ck"]`` (the constant-kernel study) and its rows.
    """
    task, refs = references(config, 1.0)
    steps = config.n_steps(100_000, 10_000)
    full, mini = adam_study_specs()
    parts, runs = [], {}
    for specs, batch in ((full, None), (mini, 32)):
        run = RunConfig(steps, max(1, steps // 100), 200, batch, progress=config.progress)
        runs[str(batch)] = asdict(run)
        parts.append(run_unlearning(task, refs, specs, run))
    curves = merge_curves(parts)
    ga = {
        s.key: float(median_curve(-(lp - lp[:, :1]))[-1])
        for s in curves.specs
        if s.method == "ga"
        for lp in [curves.metric(s.key, "forget_logp")]
    }
    rows = [_row(curves, s, ga, config) for s in curves.specs]
    ck_cfg = AdamStudyConfig(steps=100_000 if config.quick else 1_000_000)
    ck = run_adam_study(ck_cfg)
    notes = _notes(rows, ck, steps)
    cfg = base_config(config, alpha=1.0, runs=runs, ck=asdict(ck_cfg), cap=ADAM_CAP)
    extras = {"ck": ck, "ck_rows": ck.rows()}
    return from_curves(
        "adam-study", cfg, curves, rows, notes, extras=extras, headline=_headline(rows, steps)
    )


def _by(rows: list[dict]) -> dict[str, dict]:
    return {r["method"]: r for r in rows}


def _headline(rows: list[dict], steps: int) -> str:
    b = _by(rows)
    key = "cap_slope_over_cap" if steps >= CAP_WINDOW[1] else "late_slope_over_cap"
    caps = ", ".join(f"lr {lr:g}: {b[f'npo/adam/lr{lr:g}/eps1e-08'][key]:.2f}" for lr in _LRS)
    return (
        f"{steps:.0e} steps; NPO under Adam (eps 1e-8), slope of -u per step / "
        f"(1-beta2)/(2 beta): {caps}; GD {b['npo/gd'][key]:.2f} "
        f"({b['npo/gd']['verdict']}); NPO/GA in -u at lr 1e-3 "
        f"{b['npo/adam/lr0.001/eps1e-08'].get('npo_over_ga_neg_u', float('nan')):.3f}"
    )


def _notes(rows: list[dict], ck: Any, steps: int) -> list[str]:
    b = _by(rows)
    ck_rows = ck.rows()
    tail = [r["tail_ratio"] for r in ck_rows if np.isfinite(r["tail_ratio"])]
    nx = [r["n_x"] / r["n_x_pred"] for r in ck_rows if np.isfinite(r["n_x"])]
    adam = [r for r in rows if r["method"].startswith("npo/adam")]
    return [
        f"Adam's cap (1 - beta2)/(2 beta) = {ADAM_CAP:g} per step. cap_slope_over_cap: the "
        "chord of the median -mean u over steps 3e3 to 1e4 (before the late jumps) over the "
        "cap (1: the capped regime, lr-independent); late_slope_over_cap: the same over the "
        "last 70% of the run.",
        "Under Adam at eps 1e-8 NPO's regime at the end: "
        + "; ".join(f"{r['method']}: {r['horizon_short']} (q {r['adam_q']:.2f})" for r in adam)
        + ".",
        "eps_since: the first recorded step where Adam's q < 1/2 (eps dominates); "
        "beta_abs_u_at_eps: beta times -mean u there; beta_abs_u_x_predicted: "
        "-beta adam_eps_crossover(|grad| of the mean forget log-likelihood at theta_ref), median "
        "over seeds (|g| is estimated there: W = 1 at the start, so GA's and NPO's gradients "
        "coincide).",
        "max_step_over_lr: Adam's largest coordinate step over lr after step 1000 (median over "
        "seeds): well above 1 when a forget sample whose likelihood rose (forget_up_frac) takes "
        "over the gradient after the second moment has decayed (the late jumps).",
        f"Constant kernel ({ck.config.steps:.0e} steps, {len(ck_rows)} Adam runs): crossover "
        f"step measured / |u_x|/c: {min(nx):.2f} to {max(nx):.2f}; slope of e^(-beta u) after "
        f"the crossover / (2 beta lr K/eps): {min(tail):.3f} to {max(tail):.3f}.",
        f"At the end NPO's -u / GA's: GD {b['npo/gd']['npo_over_ga_neg_u']:.3g}, Adam lr 1e-3 "
        f"{b['npo/adam/lr0.001/eps1e-08']['npo_over_ga_neg_u']:.3g}, lr 1e-5 "
        f"{b['npo/adam/lr1e-05/eps1e-08']['npo_over_ga_neg_u']:.3g}; drift NPO / GA under sign "
        f"descent {b['npo/signgd']['npo_over_ga_drift']:.2f} (one sample's weight cancels in "
        "sign(W g); with many samples the weights only reweight them inside the sign).",
    ]


def plot_adam_study_result(result: ExperimentResult) -> dict[str, Figure]:
    """The ``adam-study`` figures: the random-features runs, and the constant kernel.

    Args:
        result: from :func:`run_adam_study_rf`.

    Returns:
        ``{"": random-features figure, "-ck": constant-kernel figure}``.
    """
    return {"": plot_adam_study_rf(result), "-ck": plot_adam_study(result.extras["ck"])}


def _median(result: ExperimentResult, key: str, metric: str) -> np.ndarray:
    return np.asarray(result.curves[key][metric]["median"], dtype=np.float64)


def plot_adam_study_rf(result: ExperimentResult, ax: Any = None) -> Figure:
    """The random-features half: local exponents, ``-u``, NPO's log rate, Adam's state.

    Args:
        result: from :func:`run_adam_study_rf`.
        ax: None, or six Axes.

    Returns:
        The figure.
    """
    if ax is None:
        _, ax = plt.subplots(2, 3, figsize=(17, 9))
    a = list(np.ravel(ax))
    n = result.steps.astype(np.float64)
    pos = n > 0
    x = n[pos]
    keys = list(result.curves)
    compare = ["gd", "sgd", "adam/lr0.0001/eps1e-08", "adam/lr0.001/eps1e-08", "signgd"]
    for i, opt in enumerate(compare):
        for m, ls in (("ga", "--"), ("npo", "-")):
            d = _median(result, f"{m}/{opt}", "param_drift")[pos]
            a[0].plot(x, local_exponent(x, d), ls=ls, color=f"C{i}", lw=1, label=f"{m}/{opt}")
    a[0].set(ylim=(-0.5, 2.5), title="local exponent of the drift (1 linear, 0 flat)")
    npo = [k for k in keys if k.startswith("npo/")]
    for i, k in enumerate(npo):
        mu = -(_median(result, k, "forget_logp") - _median(result, k, "forget_logp")[0])
        a[1].plot(x, mu[pos], color=f"C{i % 10}", lw=1, label=k)
        a[2].plot(x, BETA * local_log_rate(x, mu[pos]), color=f"C{i % 10}", lw=1, label=k)
    a[1].plot(x, ADAM_CAP * x, "k:", lw=1, label="(1-beta2)/(2 beta) n: Adam's cap")
    a[1].set(yscale="log", ylim=(1e-2, None), title="NPO: -mean forget log-ratio")
    a[2].axhspan(0.9, 1.1, color="0.9")
    a[2].set(yscale="log", ylim=(1e-2, None), title="NPO: beta (-du/dlog n) (1: logarithmic)")
    adam = [k for k in keys if "/adam/" in k and k.startswith("npo/")]
    for i, k in enumerate(adam):
        a[3].plot(x, _median(result, k, "adam_q")[pos], color=f"C{i}", lw=1, label=k)
        a[5].plot(x, _median(result, k, "adam_step_max")[pos], color=f"C{i}", lw=1, label=k)
    for level in (0.5, 0.9):
        a[3].axhline(level, color="0.5", ls=":", lw=0.8)
    a[3].set(ylim=(-0.05, 1.05), title="Adam's q (> 0.9 normalized, < 1/2 eps-dominated)")
    for i, k in enumerate(["npo/gd", *adam]):
        a[4].plot(x, _median(result, k, "forget_up_frac")[pos], color=f"C{i}", lw=1, label=k)
    a[4].set(title="forget samples whose likelihood rose (undamped, W ~ 2)")
    a[5].set(yscale="log", title="Adam's largest coordinate step / lr (jumps: >> 1)")
    for axis in a:
        axis.set(xscale="log", xlabel="step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6)
    fig = a[0].figure
    fig.suptitle(
        "adam-study, random-features task (alpha 1, beta 1, no retain term): median over seeds"
    )
    fig.tight_layout()
    return fig
