"""Figures of the small-transformer experiment; each function returns a ``Figure``.

``ax`` is None (a new figure) or the Axes to draw into.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from npo.experiment import ExperimentResult

__all__ = [
    "ks_levels",
    "plot_transformer",
    "plot_transformer_drift",
    "plot_transformer_privacy",
    "plot_transformer_steps",
    "plot_transformer_tradeoff",
]


def _color(i: int) -> Any:
    return plt.get_cmap("tab10")(i % 10)


def _median(result: ExperimentResult, split: str, method: str, metric: str) -> np.ndarray:
    return np.asarray(result.curves[split][method][metric]["median"], dtype=float)


def plot_transformer_tradeoff(result: ExperimentResult, ax: Any = None) -> Figure:
    """Forget quality (log) against model utility along each run, one panel per split.

    Args:
        result: from :func:`~synthetic.transformer.runs.run_transformer`.
        ax: None, or one Axes per split.

    Returns:
        The figure.
    """
    splits = list(result.curves)
    if ax is None:
        fig, ax = plt.subplots(1, len(splits), figsize=(4.6 * len(splits), 4), squeeze=False)
        ax = ax[0]
    fig = ax[0].figure
    for a, split in zip(ax, splits):
        for i, method in enumerate(result.curves[split]):
            mu = _median(result, split, method, "model_utility")
            fq = np.maximum(_median(result, split, method, "forget_quality"), 1e-30)
            a.plot(mu, fq, "-", color=_color(i), label=method, lw=1.3)
            a.plot(mu[-1:], fq[-1:], "o", color=_color(i), ms=4)
        a.plot(mu[:1], fq[:1], "k*", ms=9, label="target")
        a.axhline(0.05, color="0.6", lw=0.8, ls="--")
        a.set(
            yscale="log",
            xlabel="model utility (prob. + truth ratio)",
            ylabel="forget quality (KS p-value)",
            title=split,
        )
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.suptitle("Small transformer: forget quality vs model utility (dot: last step)")
    fig.tight_layout()
    return fig


def ks_levels(n: int) -> np.ndarray:
    """The p-values a two-sample KS test of ``n`` against ``n`` items can take.

    The statistic is ``k / n`` for ``k = 0..n``, so forget quality moves in these steps.

    Args:
        n: items per sample.

    Returns:
        ``(n + 1,)`` p-values, from 1 down.
    """
    from scipy.stats import ks_2samp

    a = np.arange(n, dtype=float)
    return np.array([ks_2samp(a, a + k).pvalue for k in range(n + 1)])


def _ks_grid(ax: Any, result: ExperimentResult, split: str) -> None:
    n = result.extras.get("n_forget_items", {}).get(split)
    if n:
        for level in ks_levels(int(n)):
            if level > 1e-30:
                ax.axhline(level, color="0.85", lw=0.5, zorder=0)


def _split_grid(result: ExperimentResult, ax: Any, height: float) -> tuple[list, Any, Figure, Any]:
    """The splits, a 2 x splits grid of Axes (``ax``, or new), its figure and the steps."""
    splits = list(result.curves)
    if ax is None:
        _, ax = plt.subplots(2, len(splits), figsize=(4.6 * len(splits), height), squeeze=False)
    return splits, ax, ax[0][0].figure, np.asarray(result.steps, dtype=float)


def plot_transformer_steps(result: ExperimentResult, ax: Any = None) -> Figure:
    """Forget quality and model utility over unlearning steps, per split.

    Faint horizontal lines: the values forget quality can take (:func:`ks_levels`).

    Args:
        result: from :func:`~synthetic.transformer.runs.run_transformer`.
        ax: None, or a 2 x splits grid of Axes.

    Returns:
        The figure.
    """
    splits, ax, fig, steps = _split_grid(result, ax, height=7)
    for j, split in enumerate(splits):
        for i, method in enumerate(result.curves[split]):
            fq = np.maximum(_median(result, split, method, "forget_quality"), 1e-30)
            ax[0][j].plot(steps, fq, color=_color(i), label=method)
            ax[1][j].plot(steps, _median(result, split, method, "model_utility"), color=_color(i))
        _ks_grid(ax[0][j], result, split)
        ax[0][j].set(yscale="log", title=split, ylabel="forget quality (KS levels faint)")
        ax[1][j].set(xlabel="step", ylabel="model utility")
        ax[0][j].legend(fontsize=7)
        for a in (ax[0][j], ax[1][j]):
            a.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_transformer_drift(result: ExperimentResult, ax: Any = None) -> Figure:
    """The parameter drift of the divergence study (log-log): GA and NPO under SGD and AdamW.

    Args:
        result: from :func:`~synthetic.transformer.runs.run_transformer`.
        ax: None, or two Axes.

    Returns:
        The figure.
    """
    drift = result.extras["drift"]
    if ax is None:
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    fig = ax[0].figure
    for a, opt in zip(ax, ("sgd", "adamw")):
        keys = [k for k in drift["curves"] if k.endswith("/" + opt)]
        for i, key in enumerate(keys):
            c = drift["curves"][key]
            steps, d = np.asarray(c["steps"], float), np.asarray(c["param_drift"], float)
            v = drift["verdicts"][key]
            label = f"{key.split('/')[0]} ({v.get('legend', v['verdict'])})"
            a.plot(steps, d, color=_color(i), label=label)
        a.set(xscale="log", yscale="log", xlabel="step", ylabel="||theta_t - theta_0||", title=opt)
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=7)
    fig.suptitle("Small transformer: drift from the target (no clipping)")
    fig.tight_layout()
    return fig


def plot_transformer_privacy(result: ExperimentResult, ax: Any = None) -> Figure:
    """Membership inference per split: Min-K% AUC over steps, and PrivLeak against utility.

    Top row: the AUC of forget vs holdout items (MUSE's orientation: the target at 0, the
    retain model's value dashed, 0.5 dotted), median over seeds with the seeds' range.
    Bottom row: each run's (model utility, PrivLeak) trajectory (start ``o``, end ``*``);
    PrivLeak 0 is the retain model.

    Args:
        result: from :func:`~synthetic.transformer.runs.run_transformer`.
        ax: None, or a 2 x splits grid of Axes.

    Returns:
        The figure.
    """
    splits, ax, fig, steps = _split_grid(result, ax, height=7.5)
    for j, split in enumerate(splits):
        top, bottom = ax[0][j], ax[1][j]
        for i, method in enumerate(result.curves[split]):
            auc = result.curves[split][method]["mia_auc_min_k"]
            seeds = np.asarray(auc["seeds"], float)
            top.plot(steps, auc["median"], color=_color(i), label=method)
            if seeds.shape[0] > 1:
                top.fill_between(steps, seeds.min(0), seeds.max(0), color=_color(i), alpha=0.15)
            mu = _median(result, split, method, "model_utility")
            pl = _median(result, split, method, "privleak")
            bottom.plot(mu, pl, "-", color=_color(i), lw=1.2, label=method)
            bottom.plot(mu[:1], pl[:1], "o", color=_color(i), ms=4)
            bottom.plot(mu[-1:], pl[-1:], "*", color=_color(i), ms=9)
        retain_auc = result.extras.get("retain", {}).get(split, {}).get("mia_auc_min_k")
        if retain_auc is not None:
            top.axhline(retain_auc, color="k", ls="--", lw=0.9, label="retain model")
        top.axhline(0.5, color="0.6", ls=":", lw=0.9)
        top.set(
            title=split, xlabel="step", ylabel="Min-K% AUC (forget vs holdout)", ylim=(-0.03, 1.03)
        )
        bottom.axhline(0, color="k", lw=0.8)
        bottom.set(xlabel="model utility (no generation)", ylabel="PrivLeak (%)")
        top.legend(fontsize=7)
        for a in (top, bottom):
            a.grid(alpha=0.3)
    fig.suptitle(
        "Small transformer: membership inference (0: forget set looks trained on; PrivLeak < 0 "
        "under-, > 0 over-unlearning)"
    )
    fig.tight_layout()
    return fig


def plot_transformer(result: ExperimentResult) -> dict[str, Figure]:
    """All four figures of the experiment, keyed by file-name suffix.

    Args:
        result: from :func:`~synthetic.transformer.runs.run_transformer`.

    Returns:
        ``{"": trade-off, "-steps": curves over steps, "-drift": drift, "-privacy":
        membership inference}``.
    """
    return {
        "": plot_transformer_tradeoff(result),
        "-steps": plot_transformer_steps(result),
        "-drift": plot_transformer_drift(result),
        "-privacy": plot_transformer_privacy(result),
    }
