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
from synthetic.verdicts import FAMILY_LABELS
from theory import plot_theorem2

__all__ = [
    "family_styles",
    "plot_beta_rate",
    "plot_curves",
    "plot_fig3",
    "plot_fig4",
    "plot_fig9",
    "plot_optimizers",
    "plot_pareto",
    "plot_theorem2_result",
    "verdict_label",
]

LABELS = {
    "forget_distance": "forget distance  KL(pi_retr || pi_theta)",
    "retain_distance": "retain distance  KL(pi_retr || pi_theta)",
    "forget_kl": "forget KL  KL(pi_ref || pi_theta)",
    "param_drift": "||theta_t - theta_ref||",
    "npo_weight": "mean NPO weight W",
    "forget_logp": "mean forget log-likelihood",
    "forget_up_frac": "forget samples whose likelihood rose",
    "adam_q": "Adam q (normalized share of the step)",
    "adam_rho": "Adam rho = mean |m^|/sqrt(v^)",
    "adam_step_max": "Adam's largest step / lr",
}


def _axes(ax: Any, n: int = 1, width: float = 5.0) -> tuple[Any, list[Any]]:
    if ax is None:
        fig, ax = plt.subplots(1, n, figsize=(width * n, 4), squeeze=False)
        return fig, list(ax[0])
    axes = list(np.atleast_1d(ax))
    return axes[0].figure, axes


def _color(i: int) -> Any:
    return plt.get_cmap("tab10")(i % 10)


# Family -> (line style, colors): the GA family solid in warm colors, the NPO family dashed
# in cool colors, IDK+RT (neither) dotted gray.
_FAMILY_STYLE = {
    "ga": ("-", ("tab:red", "tab:orange", "tab:brown", "tab:pink")),
    "npo": ("--", ("tab:blue", "tab:cyan", "tab:green", "tab:purple", "navy", "teal")),
    "other": (":", ("0.4", "0.6")),
}


def family_styles(result: ExperimentResult) -> dict[str, dict]:
    """Line styles by family, from the ``family`` column of ``result.table``.

    Args:
        result: an experiment's result whose rows name ``method`` and ``family``.

    Returns:
        ``{method: {"color", "ls"}}``; methods without a family get the default cycle.
    """
    fams = {r["method"]: r.get("family") for r in result.table}
    seen: dict[str, int] = {}
    out = {}
    for i, method in enumerate(result.curves):
        fam = fams.get(method)
        if fam not in _FAMILY_STYLE:
            out[method] = {"color": _color(i), "ls": "-"}
            continue
        ls, colors = _FAMILY_STYLE[fam]
        k = seen[fam] = seen.get(fam, -1) + 1
        out[method] = {"color": colors[k % len(colors)], "ls": ls}
    return out


def _family_legend(a: Any, result: ExperimentResult, labels: dict[str, str], **kw: Any) -> None:
    # One legend, grouped by family, each group under its name.
    from matplotlib.lines import Line2D

    fams = {r["method"]: r.get("family") for r in result.table}
    lines = {ln.get_label(): ln for ln in a.get_lines()}
    handles, texts = [], []
    for fam, title in FAMILY_LABELS.items():
        members = [m for m in result.curves if fams.get(m) == fam and m in lines]
        if not members:
            continue
        handles.append(Line2D([], [], ls="none"))
        texts.append(title)
        for m in members:
            handles.append(lines[m])
            texts.append(labels.get(m, m))
    a.legend(handles, texts, **{"fontsize": 6.5, **kw})


def plot_curves(
    result: ExperimentResult,
    metric: str,
    ax: Any = None,
    *,
    logx: bool = False,
    logy: bool = False,
    methods: list[str] | None = None,
    styles: dict[str, dict] | None = None,
) -> Figure:
    """The median and interquartile band of ``metric`` against the step, one line per method.

    Args:
        result: an experiment's result with ``curves[method][metric]``.
        metric: the metric to draw.
        ax: None, or one Axes.
        logx: log step axis (step 0 left out).
        logy: log metric axis.
        methods: the methods to draw (default: all, in order).
        styles: ``{method: {"color", "ls"}}`` (default: one color per method, solid).

    Returns:
        The figure.
    """
    fig, (a,) = _axes(ax)
    steps = result.steps.astype(float)
    x = np.where(steps > 0, steps, np.nan) if logx else steps
    for i, method in enumerate(methods or result.curves):
        c = result.curves[method][metric]
        st = (styles or {}).get(method, {"color": _color(i), "ls": "-"})
        a.plot(x, c["median"], color=st["color"], ls=st["ls"], label=method, lw=1.4)
        a.fill_between(x, c["q25"], c["q75"], color=st["color"], alpha=0.12, lw=0)
    a.set(xlabel="step", ylabel=LABELS.get(metric, metric))
    if logx:
        a.set_xscale("log")
    if logy:
        a.set_yscale("log")
    a.grid(alpha=0.3)
    a.legend(fontsize=7, ncol=2)
    return fig


def plot_pareto(
    result: ExperimentResult,
    ax: Any = None,
    *,
    methods: list[str] | None = None,
    styles: dict[str, dict] | None = None,
) -> Figure:
    """The retain distance against the forget distance along each method's median trajectory.

    Args:
        result: an experiment's result with forget and retain distances.
        ax: None, or one Axes.
        methods: the methods to draw (default: all).
        styles: ``{method: {"color", "ls"}}`` (default: one color per method, solid).

    Returns:
        The figure.
    """
    fig, (a,) = _axes(ax)
    for i, method in enumerate(methods or result.curves):
        f = result.curves[method]["forget_distance"]["median"]
        r = result.curves[method]["retain_distance"]["median"]
        st = (styles or {}).get(method, {"color": _color(i), "ls": "-"})
        a.plot(f, r, color=st["color"], ls=st["ls"], label=method, lw=1.4)
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
    st = family_styles(result)
    plot_curves(result, "forget_distance", axes[0], logy=True, styles=st)
    plot_curves(result, "retain_distance", axes[1], logy=True, styles=st)
    plot_pareto(result, axes[2], styles=st)
    for a in axes:
        a.get_legend().remove()
    _family_legend(axes[2], result, {}, loc="lower left")
    fig.suptitle(
        f"{result.name}: distances to the retrained model (median, IQR over seeds); "
        "GA family solid, NPO family dashed, IDK+RT dotted"
    )
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
    fig, axes = _axes(ax, 2, width=6.0)
    st = family_styles(result)
    plot_curves(result, "forget_kl", axes[0], styles=st)
    plot_curves(result, "forget_kl", axes[1], logx=True, logy=True, styles=st)
    axes[0].get_legend().remove()
    labels = {r["method"]: f"{r['method']}: {verdict_label(r)}" for r in result.table}
    _family_legend(axes[1], result, labels, loc="upper left")
    fig.suptitle(
        "fig9: forget KL to pi_ref; linear (left) and log-log (right) axes; GA family solid, "
        "NPO family dashed, IDK+RT dotted; verdict, growth exponent median [min, max] over seeds"
    )
    fig.tight_layout()
    return fig


def verdict_label(row: dict, prefix: str = "") -> str:
    """A table row's verdict in a few words: the fit's verdict, or the horizon flag.

    Args:
        row: a row with ``{prefix}fit_verdict``, ``horizon_short`` and
            ``{prefix}growth_exponent_seeds`` (as the verdicts of :mod:`synthetic.verdicts`).
        prefix: the prefix of the verdict's columns (``"drift_"`` in ``optimizers``).

    Returns:
        E.g. ``"logarithmic, g 0.27 [0.26, 0.37]"`` or ``"not asymptotic (beta|u| = 0.81)"``.
    """
    short = row.get("horizon_short") or ""
    if short.startswith("not asymptotic"):
        return short
    spread = row.get(f"{prefix}growth_exponent_seeds")
    fit = row.get(f"{prefix}fit_verdict") or row.get(f"{prefix}verdict")
    return f"{fit}, g {spread}" if spread else str(fit)


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
        rows = {r["method"]: r for r in result.table}
        a.legend(
            a.get_lines(),
            [f"{m.split('/')[1]}: {verdict_label(rows[m], 'drift_')}" for m in methods],
            fontsize=6.5,
            loc="upper left",
        )
        a.set_title(f"{family.upper()}: drift under each optimizer", fontsize=9)
    fig.tight_layout()
    return fig


def plot_beta_rate(result: ExperimentResult, ax: Any = None) -> Figure:
    """The ``beta-rate`` experiment: NPO's drift against log t, and the slopes against 1/beta.

    Right panel, log-log: filled markers are slopes of asymptotic runs, with the seeds'
    range as error bars; a run that is not asymptotic is a hollow marker; a slope that cannot
    be drawn on the log axis (not positive, of the median or of a seed) is a hollow triangle
    at the bottom edge, annotated with its value.

    Args:
        result: from :func:`~synthetic.beyond.run_beta_rate`.
        ax: None, or two Axes.

    Returns:
        The figure.
    """
    fig, axes = _axes(ax, 2, width=6.0)
    steps = result.steps.astype(float)
    for i, method in enumerate(result.curves):
        logp = result.curves[method]["forget_logp"]["seeds"]
        drift = np.nanmedian(-(logp - logp[:, :1]), axis=0)
        axes[0].plot(np.where(steps > 0, steps, np.nan), drift, color=_color(i), label=method)
    axes[0].set(xscale="log", xlabel="step", ylabel="-(mean forget log-ratio)")
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3)
    _slopes_panel(axes[1], result)
    fig.suptitle("beta-rate: NPO's logarithmic divergence rate against beta")
    fig.tight_layout()
    return fig


BAD_SEEDS = "seed slope <= 0 (off the log axis)"


def _slopes_panel(a: Any, result: ExperimentResult) -> None:
    ex = result.extras
    betas, slopes, theory = (np.asarray(ex[k], float) for k in ("betas", "slopes", "theory"))
    seeds = np.asarray(ex.get("slope_seeds", slopes[:, None]), float)
    asym = np.asarray(ex.get("asymptotic", np.ones(betas.size, bool)), bool)
    a.plot(betas, theory, "k--", label="theory: 1/beta")
    pos = slopes[slopes > 0]
    lo = min(float(theory.min()), float(pos.min()) if pos.size else np.inf) / 3
    hi = max(float(theory.max()), float(pos.max()) if pos.size else 0.0) * 2
    labelled: set[str] = set()
    for i, (b, sl) in enumerate(zip(betas, slopes)):
        kind = "measured (asymptotic)" if asym[i] else "measured, not asymptotic"
        if sl <= 0:
            kind = "slope <= 0 (off the log axis)"
            a.plot(b, lo, "v", ms=8, mfc="none", mec="tab:red", label=_once(kind, labelled))
            a.annotate(f"{sl:.2f}", (b, lo), xytext=(4, 6), textcoords="offset points", fontsize=7)
            continue
        ok = seeds[i][seeds[i] > 0]
        err = np.clip([[sl - ok.min()], [ok.max() - sl]], 0, None) if ok.size else None
        n_bad = int(np.sum(seeds[i] <= 0))
        if n_bad:  # seeds whose slope is off the log axis: at the bottom edge, counted
            a.plot(b, lo, "v", ms=6, mfc="none", mec="tab:blue", label=_once(BAD_SEEDS, labelled))
            a.annotate(
                f"{n_bad} seed(s) {np.min(seeds[i]):.2f}",
                (b, lo),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=6.5,
            )
        a.errorbar(
            b,
            sl,
            yerr=err,
            fmt="o",
            color="tab:blue",
            mfc="tab:blue" if asym[i] else "none",
            capsize=2,
            label=_once(kind, labelled),
        )
        if not asym[i]:
            a.annotate(
                "not asymptotic", (b, sl), xytext=(4, 4), textcoords="offset points", fontsize=7
            )
    a.set(
        xscale="log",
        yscale="log",
        ylim=(lo, hi),
        xlabel="beta",
        ylabel="d(-log-ratio) / d(log t), last decade",
    )
    a.set_xticks(betas, [f"{b:g}" for b in betas])
    a.xaxis.set_minor_formatter(plt.NullFormatter())
    a.legend(fontsize=7, loc="upper right")
    a.grid(alpha=0.3, which="both")


def _once(label: str, seen: set) -> str | None:
    if label in seen:
        return None
    seen.add(label)
    return label


def plot_theorem2_result(result: ExperimentResult, ax: Any = None) -> Figure:
    """The ``theorem2`` experiment, drawn by :func:`theory.plots.plot_theorem2`.

    Args:
        result: from :func:`~synthetic.beyond.run_theorem2_experiment`.
        ax: None, or two Axes.

    Returns:
        The figure.
    """
    return plot_theorem2(result.extras["theorem2"], ax=ax)
