"""Evaluation curves of unlearning runs: extraction from ``log.jsonl`` records and the figure.

``eval_curves(logs)`` -> ``{"steps": [...], metric: [...]}`` from the records an evaluation
hook filled (one entry per evaluation step); ``plot_eval_curves({run: curves})`` -> a Figure
with forget quality and model utility over steps and the forget-quality/utility trajectory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["CURVE_METRICS", "eval_curves", "plot_eval_curves"]

CURVE_METRICS = (
    "forget_quality",
    "model_utility",
    "forget_truth_ratio",
    "forget_prob",
    "retain_prob",
    "forget_kl",
    "retain_kl",
    "gibberish_rate",
    "forget_logp",
    "privleak",
    "mia_auc_loss",
    "mia_auc_zlib",
    "mia_auc_min_k",
    "mia_auc_min_k_plus_plus",
    "mia_auc_calibrated",
)


def eval_curves(logs: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The evaluation records of a run (those with ``model_utility``), as lists over steps.

    Returns:
        ``{"steps": [...], metric: [...]}`` for each of :data:`CURVE_METRICS` (None where a
        metric was not computed).

    Raises:
        ValueError: the log has no evaluation record.
    """
    records = [r for r in logs if "model_utility" in r]
    if not records:
        raise ValueError("no evaluation records in the log (was the run given an eval hook?)")
    curves: dict[str, list[Any]] = {"steps": [int(r["step"]) for r in records]}
    for key in CURVE_METRICS:
        curves[key] = [r.get(key) for r in records]
    return curves


def _xy(steps: Sequence[int], values: Sequence[Any]) -> tuple[list[int], list[Any]]:
    pairs = [(s, v) for s, v in zip(steps, values) if v is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def plot_eval_curves(
    runs: Mapping[str, Mapping[str, list[Any]]], axes: Sequence[Any] | None = None
) -> Any:
    """Forget quality and model utility over steps, and the trajectory of each run.

    Three panels: forget quality (log scale) over steps, model utility over steps, and the
    (model utility, forget quality) trajectory of each run (start marked ``o``, end ``*``).
    Never shows or saves the figure.

    Args:
        runs: ``{name: eval_curves(...)}``.
        axes: three matplotlib axes to draw on (None: a new figure).

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    else:
        if len(axes) != 3:
            raise ValueError(f"plot_eval_curves draws on 3 axes, got {len(axes)}")
        fig = axes[0].figure
    ax_fq, ax_mu, ax_tr = axes
    for name, c in runs.items():
        s, fq = _xy(c["steps"], c["forget_quality"])
        line = ax_fq.plot(s, fq, marker=".", label=name)[0] if fq else None
        s, mu = _xy(c["steps"], c["model_utility"])
        ax_mu.plot(s, mu, marker=".", label=name, color=line.get_color() if line else None)
        pairs = [
            (u, q) for u, q in zip(c["model_utility"], c["forget_quality"]) if None not in (u, q)
        ]
        if pairs:
            u, q = zip(*pairs)
            color = line.get_color() if line else None
            ax_tr.plot(u, q, "-", color=color, alpha=0.6, label=name)
            ax_tr.plot(u[0], q[0], "o", color=color)
            ax_tr.plot(u[-1], q[-1], "*", color=color, markersize=11)
    for ax in (ax_fq, ax_tr):
        ax.set_yscale("log")
        ax.axhline(0.05, color="grey", lw=0.8, ls="--")
    ax_fq.set(xlabel="step", ylabel="forget quality (KS p-value)", title="forget quality")
    ax_mu.set(xlabel="step", ylabel="model utility", title="model utility")
    ax_tr.set(xlabel="model utility", ylabel="forget quality", title="trajectory (o start, * end)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return fig
