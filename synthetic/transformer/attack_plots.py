"""Figures of the ``transformer-attacks`` experiment; each function returns a ``Figure``."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from npo.experiment import ExperimentResult

__all__ = ["plot_attacks", "plot_quantize", "plot_relearn"]


def _color(i: int) -> Any:
    return plt.get_cmap("tab10")(i % 10)


def plot_relearn(result: ExperimentResult, ax: Any = None) -> Figure:
    """Relearning recovery curves: the measured items' forget probability, AUC and utility.

    Three panels over relearning steps, median over seeds (band: the seeds' range): the
    forget probability of the items *not* relearned (dashed: the relearned items; dotted
    line per run: half the gap to the target, the recovery threshold), their Min-K% AUC
    against the holdout, and model utility.

    Args:
        result: from :func:`~synthetic.transformer.attacks.run_attacks`.
        ax: None, or three Axes.

    Returns:
        The figure.
    """
    if ax is None:
        fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    fig = ax[0].figure
    steps = np.asarray(result.steps, float)
    rows = {r["run"]: r for r in result.table if r["attack"] == "relearn"}
    for i, (name, c) in enumerate(result.curves["relearn"].items()):
        for a, metric in zip(ax, ("forget_prob", "mia_auc_min_k", "model_utility")):
            med = np.asarray(c[metric]["median"], float)
            seeds = np.asarray(c[metric]["seeds"], float)
            a.plot(steps, med, color=_color(i), label=name)
            if seeds.shape[0] > 1:
                a.fill_between(steps, seeds.min(0), seeds.max(0), color=_color(i), alpha=0.15)
        ax[0].plot(steps, c["relearned_forget_prob"]["median"], "--", color=_color(i), lw=0.8)
        r = rows[name]
        thr = r["forget_prob_start"] + (r["target_forget_prob"] - r["forget_prob_start"]) / 2
        ax[0].axhline(thr, color=_color(i), ls=":", lw=0.8)
    ax[0].set(xlabel="relearning step", ylabel="forget probability (held-out half)")
    ax[1].set(xlabel="relearning step", ylabel="Min-K% AUC vs holdout (0: looks trained on)")
    ax[2].set(xlabel="relearning step", ylabel="model utility")
    for a in ax:
        a.grid(alpha=0.3)
    ax[0].legend(fontsize=7)
    fig.suptitle("Relearning attack: dashed = the relearned half, dotted = recovery threshold")
    fig.tight_layout()
    return fig


def plot_quantize(result: ExperimentResult, ax: Any = None) -> Figure:
    """Forget probability and utility before and after quantization, and the ratio claim.

    Left: forget probability of each run before (o) and after (x) each variant, the target's
    quantized value as a bar; middle: model utility alike; right: recovery of the forget gap
    under 4-bit against the median update-to-step ratio (log x), with the claim's lines at
    0.5 and 2.

    Args:
        result: from :func:`~synthetic.transformer.attacks.run_attacks`.
        ax: None, or three Axes.

    Returns:
        The figure.
    """
    rows = [r for r in result.table if r["attack"] == "quantize"]
    if ax is None:
        fig, ax = plt.subplots(1, 3, figsize=(16, 4.6))
    fig = ax[0].figure
    runs = list(dict.fromkeys(r["run"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    width = 0.8 / max(len(variants), 1)
    for j, v in enumerate(variants):
        sub = {r["run"]: r for r in rows if r["variant"] == v}
        x = np.arange(len(runs)) + j * width
        for a, (before, after) in zip(
            ax[:2], (("forget_prob", "forget_prob_q"), ("utility", "utility_q"))
        ):
            a.plot(x, [sub[n][before] for n in runs], "o", color="0.4", ms=4)
            a.plot(x, [sub[n][after] for n in runs], "x", color=_color(j), label=v, ms=7)
        ax[0].bar(
            x, [sub[n]["target_forget_prob_q"] for n in runs], width, color=_color(j), alpha=0.15
        )
        four = v.startswith("4bit")
        if four:
            ratio = [sub[n]["update_ratio"] for n in runs]
            ax[2].plot(ratio, [sub[n]["recovery"] for n in runs], "o", color=_color(j), label=v)
            for n, xr, yr in zip(runs, ratio, [sub[n]["recovery"] for n in runs]):
                ax[2].annotate(n, (xr, yr), fontsize=6)
    for a, label in zip(ax[:2], ("forget probability", "model utility")):
        a.set_xticks(np.arange(len(runs)) + 0.4 - width / 2, runs, rotation=30, fontsize=7)
        a.set(ylabel=f"{label} (o before, x after; bars: quantized target)")
        a.grid(alpha=0.3)
    ax[0].legend(fontsize=7)
    for xv in (0.5, 2.0):
        ax[2].axvline(xv, color="0.5", ls=":")
    ax[2].axhline(0.5, color="0.5", ls="--")
    ax[2].set(
        xscale="log",
        xlabel="median |theta_u - theta_t| / 4-bit step",
        ylabel="share of the forget gap recovered",
    )
    ax[2].grid(alpha=0.3)
    ax[2].legend(fontsize=7)
    fig.suptitle("Quantization attack (weight-only RTN): does 4-bit rounding undo unlearning?")
    fig.tight_layout()
    return fig


def plot_attacks(result: ExperimentResult) -> dict[str, Figure]:
    """Both figures of the attack study, keyed by file-name suffix.

    Args:
        result: from :func:`~synthetic.transformer.attacks.run_attacks`.

    Returns:
        ``{"-relearn": recovery curves, "-quantize": quantization}``.
    """
    return {"-relearn": plot_relearn(result), "-quantize": plot_quantize(result)}
