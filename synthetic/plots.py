"""Figures of the synthetic experiments; every function returns a ``Figure``.

No function shows or saves its figure. Curves are medians over seeds with interquartile
bands (the forget distance is heavy-tailed across seeds, so means would mislead). ``ax`` is
None (a new figure) or the Axes to draw into.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from npo.experiment import ExperimentResult
from theory import plot_theorem2

__all__ = [
    "plot_beta_rate",
    "plot_curves",
    "plot_fig3",
    "plot_fig4",
    "plot_fig9",
    "plot_optimizers",
    "plot_pareto",
    "plot_theorem2_result",
]

LABELS = {
    "forget_distance": "forget distance  KL(pi_retr || pi_theta)",
    "retain_distance": "retain distance  KL(pi_retr || pi_theta)",
    "forget_kl": "forget KL  KL(pi_ref || pi_theta)",
    "param_drift": "||theta_t - theta_ref||",
    "npo_weight": "mean NPO weight W",
    "forget_logp": "mean forget log-likelihood",
}


def _axes(ax: Any, n: int = 1, width: float = 5.0) -> tuple[Any, list[Any]]:
    if ax is None:
        fig, ax = plt.subplots(1, n, figsize=(width * n, 4), squeeze=False)
        return fig, list(ax[0])
    axes = list(np.atleast_1d(ax))
    return axes[0].figure, axes


def _color(i: int) -> Any:
    return plt.get_cmap("tab10")(i % 10)


def plot_curves(
    result: ExperimentResult,
    metric: str,
    ax: Any = None,
    *,
    logx: bool = False,
    logy: bool = False,
    methods: list[str] | None = None,
) -> Figure:
    """The median and interquartile band of ``metric`` against the step, one line per method.

    Args:
        result: an experiment's result with ``curves[method][metric]``.
        metric: the metric to draw.
        ax: None, or one Axes.
        logx: log step axis (step 0 left out).
        logy: log metric axis.
        methods: the methods to draw (default: all, in order).

    Returns:
        The figure.
    """
    fig, (a,) = _axes(ax)
    steps = result.steps.astype(float)
    x = np.where(steps > 0, steps, np.nan) if logx else steps
    for i, method in enumerate(methods or result.curves):
        c = result.curves[method][metric]
        a.plot(x, c["median"], color=_color(i), label=method, lw=1.4)
        a.fill_between(x, c["q25"], c["q75"], color=_color(i), alpha=0.15, lw=0)
    a.set(xlabel="step", ylabel=LABELS.get(metric, metric))
    if logx:
        a.set_xscale("log")
    if logy:
        a.set_yscale("log")
    a.grid(alpha=0.3)
    a.legend(fontsize=7, ncol=2)
    return fig


def plot_pareto(
    result: ExperimentResult, ax: Any = None, *, methods: list[str] | None = None
) -> Figure:
    """The retain distance against the forget distance along each method's median trajectory.

    Args:
        result: an experiment's result with forget and retain distances.
        ax: None, or one Axes.
        methods: the methods to draw (default: all).

    Returns:
        The figure.
    """
    fig, (a,) = _axes(ax)
    for i, method in enumerate(methods or result.curves):
        f = result.curves[method]["forget_distance"]["median"]
        r = result.curves[method]["retain_distance"]["median"]
        a.plot(f, r, color=_color(i), label=method, lw=1.4)
        a.plot(f[:1], r[:1], "o", color="k", ms=4)
    a.set(
        xscale="log",
        yscale="log",
        xlabel=LABELS["forget_distance"],
        ylabel=LABELS["retain_distance"],
    )
    a.set_title("Pareto: lower-left is better", fontsize=9)
    a.grid(alpha=0.3, which="both")
    a.legend(fontsize=7, ncol=2)
    return fig


def plot_fig4(result: ExperimentResult, ax: Any = None) -> Figure:
    """Fig. 4: forget and retain distances against the step, and the Pareto plot.

    Args:
        result: from :func:`~synthetic.experiments.run_fig4_alpha1` or ``run_fig4_alpha0``.
        ax: None, or three Axes.

    Returns:
        The figure.
    """
    fig, axes = _axes(ax, 3)
    plot_curves(result, "forget_distance", axes[0], logy=True)
    plot_curves(result, "retain_distance", axes[1], logy=True)
    plot_pareto(result, axes[2])
    fig.suptitle(f"{result.name}: distances to the retrained model (median, IQR over seeds)")
    fig.tight_layout()
    return fig


def plot_fig9(result: ExperimentResult, ax: Any = None) -> Figure:
    """Fig. 9: the forget KL on linear and log-log axes, with each method's verdict.

    Args:
        result: from :func:`~synthetic.experiments.run_fig9`.
        ax: None, or two Axes.

    Returns:
        The figure.
    """
    fig, axes = _axes(ax, 2)
    plot_curves(result, "forget_kl", axes[0])
    plot_curves(result, "forget_kl", axes[1], logx=True, logy=True)
    verdicts = {r["method"]: r["verdict"] for r in result.table}
    labels = [f"{m} ({verdicts[m]})" for m in result.curves]
    axes[1].legend(axes[1].get_lines(), labels, fontsize=7, ncol=1, loc="upper left")
    fig.suptitle("fig9: forget KL to pi_ref; linear (left) and log-log (right) axes")
    fig.tight_layout()
    return fig


def plot_fig3(result: ExperimentResult, ax: Any = None) -> Figure:
    """Fig. 3: the Pareto plot and the forget distance of NPO over beta against GA.

    Args:
        result: from :func:`~synthetic.experiments.run_fig3`.
        ax: None, or two Axes.

    Returns:
        The figure.
    """
    fig, axes = _axes(ax, 2)
    plot_pareto(result, axes[0])
    plot_curves(result, "forget_distance", axes[1], logy=True)
    fig.suptitle("fig3: NPO without retain term tends to GA as beta -> 0 (lr 5e-4)")
    fig.tight_layout()
    return fig


def plot_optimizers(result: ExperimentResult, ax: Any = None) -> Figure:
    """The ``optimizers`` experiment: GA's and NPO's drift per optimizer, with verdicts.

    Args:
        result: from :func:`~synthetic.beyond.run_optimizers`.
        ax: None, or two Axes.

    Returns:
        The figure.
    """
    fig, axes = _axes(ax, 2)
    for a, family in zip(axes, ("ga", "npo")):
        methods = [m for m in result.curves if m.startswith(family + "/")]
        plot_curves(result, "param_drift", a, logx=True, logy=True, methods=methods)
        verdicts = {r["method"]: r["drift_verdict"] for r in result.table}
        a.legend(a.get_lines(), [f"{m} ({verdicts[m]})" for m in methods], fontsize=7)
        a.set_title(f"{family.upper()}: drift under each optimizer", fontsize=9)
    fig.tight_layout()
    return fig


def plot_beta_rate(result: ExperimentResult, ax: Any = None) -> Figure:
    """The ``beta-rate`` experiment: NPO's drift against log t, and the slopes against 1/beta.

    Args:
        result: from :func:`~synthetic.beyond.run_beta_rate`.
        ax: None, or two Axes.

    Returns:
        The figure.
    """
    fig, axes = _axes(ax, 2)
    steps = result.steps.astype(float)
    for i, method in enumerate(result.curves):
        logp = result.curves[method]["forget_logp"]["seeds"]
        drift = np.nanmedian(-(logp - logp[:, :1]), axis=0)
        axes[0].plot(np.where(steps > 0, steps, np.nan), drift, color=_color(i), label=method)
    axes[0].set(xscale="log", xlabel="step", ylabel="-(mean forget log-ratio)")
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3)
    ex = result.extras
    axes[1].plot(ex["betas"], ex["slopes"], "o-", label="measured late slope")
    axes[1].plot(ex["betas"], ex["theory"], "k--", label="theory: 1/beta")
    axes[1].set(xscale="log", yscale="log", xlabel="beta", ylabel="d(-log-ratio) / d(log t)")
    axes[1].set_xticks(ex["betas"], [f"{b:g}" for b in ex["betas"]])
    axes[1].xaxis.set_minor_formatter(plt.NullFormatter())
    axes[1].legend(fontsize=8)
    axes[1].grid(alpha=0.3, which="both")
    fig.suptitle("beta-rate: NPO's logarithmic divergence rate against beta")
    fig.tight_layout()
    return fig


def plot_theorem2_result(result: ExperimentResult, ax: Any = None) -> Figure:
    """The ``theorem2`` experiment, drawn by :func:`theory.plots.plot_theorem2`.

    Args:
        result: from :func:`~synthetic.beyond.run_theorem2_experiment`.
        ax: None, or two Axes.

    Returns:
        The figure.
    """
    return plot_theorem2(result.extras["theorem2"], ax=ax)
