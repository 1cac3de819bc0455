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
    "plot_transformer",
    "plot_transformer_drift",
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


def plot_transformer_steps(result: ExperimentResult, ax: Any = None) -> Figure:
    """Forget quality and model utility over unlearning steps, per split.

    Args:
        result: from :func:`~synthetic.transformer.runs.run_transformer`.
        ax: None, or a 2 x splits grid of Axes.

    Returns:
        The figure.
    """
    splits = list(result.curves)
    if ax is None:
        fig, ax = plt.subplots(2, len(splits), figsize=(4.6 * len(splits), 7), squeeze=False)
    fig = ax[0][0].figure
    steps = np.asarray(result.steps, dtype=float)
    for j, split in enumerate(splits):
        for i, method in enumerate(result.curves[split]):
            fq = np.maximum(_median(result, split, method, "forget_quality"), 1e-30)
            ax[0][j].plot(steps, fq, color=_color(i), label=method)
            ax[1][j].plot(steps, _median(result, split, method, "model_utility"), color=_color(i))
        ax[0][j].set(yscale="log", title=split, ylabel="forget quality")
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
            a.plot(
                steps,
                d,
                color=_color(i),
                label=f"{key.split('/')[0]} ({drift['verdicts'][key]['verdict']})",
            )
        a.set(xscale="log", yscale="log", xlabel="step", ylabel="||theta_t - theta_0||", title=opt)
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=7)
    fig.suptitle("Small transformer: drift from the target (no clipping)")
    fig.tight_layout()
    return fig


def plot_transformer(result: ExperimentResult) -> dict[str, Figure]:
    """All three figures of the experiment, keyed by file-name suffix.

    Args:
        result: from :func:`~synthetic.transformer.runs.run_transformer`.

    Returns:
        ``{"": trade-off, "-steps": curves over steps, "-drift": drift}``.
    """
    return {
        "": plot_transformer_tradeoff(result),
        "-steps": plot_transformer_steps(result),
        "-drift": plot_transformer_drift(result),
    }
