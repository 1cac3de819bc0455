"""Figures of the studies on real checkpoints."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "plot_knowledge",
    "plot_knowledge_steps",
    "plot_knowledge_tradeoff",
    "plot_real_tofu",
]

COLORS = {
    "ga": "tab:red",
    "ga+rt": "tab:orange",
    "npo": "tab:blue",
    "npo+rt": "tab:green",
    "simnpo+rt": "tab:purple",
}


def _axes(ax: Any, n: int, width: float) -> tuple[Any, list[Any]]:
    import matplotlib.pyplot as plt

    if ax is not None:
        axes = list(np.atleast_1d(ax))
        return axes[0].figure, axes
    fig, axes = plt.subplots(1, n, figsize=(width, 3.8), constrained_layout=True)
    return fig, list(np.atleast_1d(axes))


def plot_knowledge_tradeoff(result: Any, ax: Any = None) -> Any:
    """Retain accuracy, held-out perplexity and retain KL against forget accuracy.

    Each method's path over the unlearning steps, from the start (1, ...) leftwards: at the
    same forget level (a vertical line), lower retain accuracy or higher perplexity is worse.

    Args:
        result: the ``smollm2-knowledge`` :class:`~npo.experiment.ExperimentResult`.
        ax: three matplotlib axes to draw on (None: a new figure).

    Returns:
        The Figure.
    """
    fig, axes = _axes(ax, 3, 13.5)
    level = result.extras["claims"]["ga_loses_retain_first"]["level"]
    panels = (
        ("retain_accuracy", "retain accuracy", False),
        ("heldout_ppl", "held-out perplexity", True),
        ("retain_kl", "KL(start || now) per retain token", True),
    )
    for a, (key, label, log) in zip(axes, panels):
        for method, curves in result.curves.items():
            x, y = curves["forget_accuracy"]["median"], curves[key]["median"]
            a.plot(x, y, "-o", ms=3, color=COLORS.get(method), label=method)
        a.axvline(level, color="0.6", ls=":", lw=1)
        a.set_xlim(1.03, -0.03)
        a.set_xlabel("forget accuracy (fact still greedy)")
        a.set_ylabel(label)
        if log:
            a.set_yscale("log")
        a.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(
        "Unlearning country facts from SmolLM2-135M (Q4_1): what each method costs at the same "
        "forget level (dotted: the level of the claims)",
        fontsize=10,
    )
    return fig


def plot_knowledge_steps(result: Any, ax: Any = None) -> Any:
    """Forget and retain accuracy, forget probability and held-out perplexity against steps.

    Generation metrics (the gibberish rate) are drawn where they were measured.

    Args:
        result: the ``smollm2-knowledge`` result.
        ax: four matplotlib axes (None: a new figure).

    Returns:
        The Figure.
    """
    fig, axes = _axes(ax, 4, 16)
    steps = np.asarray(result.steps)
    panels = (
        ("forget_accuracy", "forget accuracy"),
        ("retain_accuracy", "retain accuracy"),
        ("forget_prob", "forget answer probability"),
        ("heldout_ppl", "held-out perplexity"),
    )
    for a, (key, label) in zip(axes, panels):
        for method, curves in result.curves.items():
            a.plot(steps, curves[key]["median"], "-", color=COLORS.get(method), label=method)
            if key == "heldout_ppl":
                g = curves["gibberish_rate"]["median"]
                done = np.isfinite(g)
                y = curves[key]["median"][done]
                a.scatter(steps[done], y, s=12 + 80 * g[done], color=COLORS.get(method))
        a.set_xlabel("unlearning step")
        a.set_ylabel(label)
        a.grid(alpha=0.3)
    axes[3].set_yscale("log")
    axes[3].set_title("marker size: gibberish rate of generations", fontsize=8)
    axes[0].legend(fontsize=8)
    title = "The same runs over the steps (matched budgets: same lr, batches, weights)"
    fig.suptitle(title, fontsize=10)
    return fig


def plot_knowledge(result: Any) -> dict[str, Any]:
    """Both figures of the ``smollm2-knowledge`` experiment.

    Args:
        result: its :class:`~npo.experiment.ExperimentResult`.

    Returns:
        ``{"": trade-off figure, "-steps": curves over the steps}``.
    """
    return {"": plot_knowledge_tradeoff(result), "-steps": plot_knowledge_steps(result)}


def plot_real_tofu(result: Any, ax: Any = None) -> Any:
    """The ``smollm2-tofu`` runs: utility against forget quality, and both over the steps.

    Left: each method's path from the target (step 0) in the plane of TOFU's two headline
    numbers, with the retain model (the goal: forget quality near 1 at its utility). Middle and
    right: forget and retain answer probability against the unlearning step, on log scales
    (how far each method drives the log-likelihood: GA's falls much faster than NPO's).

    Args:
        result: the ``smollm2-tofu`` :class:`~npo.experiment.ExperimentResult`.
        ax: three matplotlib axes to draw on (None: a new figure).

    Returns:
        The Figure.
    """
    fig, axes = _axes(ax, 3, 14)
    steps = np.asarray(result.steps)
    rows = {r["model"]: r for r in result.table}
    retain = rows.get("retain model", {})
    for method, curves in result.curves.items():
        fq = np.maximum(curves["forget_quality"]["median"], 1e-30)
        mu = curves["model_utility"]["median"]
        color = COLORS.get(method)
        axes[0].plot(fq, mu, "-o", ms=3, color=color, label=method)
        axes[0].plot(fq[-1:], mu[-1:], "*", ms=11, color=color)
        for a, key in zip(axes[1:], ("forget_prob", "retain_prob")):
            a.plot(steps, np.maximum(curves[key]["median"], 1e-300), "-o", ms=4, color=color)
    if retain.get("model_utility") is not None:  # its own forget quality is 1 by definition
        axes[0].plot([1.0], [retain["model_utility"]], "kD", ms=6, label="retain model")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("forget quality (KS p-value; log)")
    axes[0].set_ylabel("model utility")
    axes[0].set_title("paths from the target (star: final model)", fontsize=9)
    for a, key, label in zip(axes[1:], ("forget_prob", "retain_prob"), ("forget", "retain")):
        a.set_yscale("log")
        a.set_xlabel("unlearning step")
        a.set_ylabel(f"{label} answer probability (log)")
        if key in retain:
            a.axhline(retain[key], color="k", ls=":", lw=1, label="retain model")
    axes[1].legend(fontsize=8)
    for a in axes:
        a.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "TOFU protocol at subset size on SmolLM2-135M-Instruct (Q4_1, dequantized), one seed, "
        f"{int(steps.max()) if steps.size else 0} unlearning steps",
        fontsize=10,
    )
    return fig
