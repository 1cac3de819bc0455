"""Figures of the theory: each function draws the data of a ``run_*`` function.

Every function returns a matplotlib ``Figure`` and never calls ``show()`` or ``savefig``
(:mod:`theory.figures` writes them through :mod:`npo.results`). ``ax`` is ``None`` (a new
figure) or the Axes to draw into: a pair where the figure has two panels, four for
:func:`plot_optimizer_dynamics`. matplotlib is imported when a figure is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from theory.curves import DivergenceTimeData, LogRatioData, OptimizerDynamicsData
from theory.theorem2 import Theorem2Data

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_divergence_time", "plot_log_ratio", "plot_optimizer_dynamics", "plot_theorem2"]


def _axes(ax: Any, n: int, size: tuple[float, float]) -> tuple[Any, list[Any]]:
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(1, n, figsize=size, squeeze=False)
        ax = list(ax[0])
    axes = [ax] if n == 1 and not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
    if len(axes) != n:
        raise ValueError(f"ax must hold {n} Axes, got {len(axes)}")
    return axes[0].figure, axes


def plot_log_ratio(data: LogRatioData, ax: Any = None) -> Figure:
    """GA's and NPO's ``u(t) = log(pi/pi_ref)`` on linear and log time axes.

    One line per beta, with NPO's asymptote ``-(1/beta) log(1 + 2 beta K t)`` dashed.

    Args:
        data: from :func:`theory.curves.run_log_ratio`.
        ax: None, or a pair of Axes.

    Returns:
        The figure.
    """
    fig, (a_lin, a_log) = _axes(ax, 2, (11, 4.2))
    c = data.config
    a_lin.plot(data.t_lin, data.ga_lin, "k", lw=2, label="GA: -K t")
    a_log.plot(data.t_log, data.ga_log, "k", lw=2, label="GA: -K t")
    for i, beta in enumerate(c.betas):
        (line,) = a_lin.plot(data.t_lin, data.npo_lin[i], label=f"NPO beta={beta:g}")
        a_lin.plot(data.t_lin, data.asym_lin[i], "--", color=line.get_color(), lw=0.9)
        a_log.plot(data.t_log, data.npo_log[i], color=line.get_color(), label=f"NPO beta={beta:g}")
        a_log.plot(data.t_log, data.asym_log[i], "--", color=line.get_color(), lw=0.9)
    a_lin.set(
        xlabel="flow time t",
        ylabel="u = log pi/pi_ref",
        title=f"linear time (K={c.K:g}; dashed: asymptotes)",
    )
    lo = float(np.min(data.npo_log)) * 1.3
    a_log.set(
        xscale="log",
        ylim=(lo, 0.5),
        xlabel="flow time t (log)",
        ylabel="u",
        title="log time: NPO is a straight line of slope -1/beta",
    )
    a_lin.set_ylim(min(float(np.min(data.ga_lin)), float(np.min(data.npo_lin))) * 1.05 - 0.1, 0.5)
    for a in (a_lin, a_log):
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def plot_divergence_time(data: DivergenceTimeData, ax: Any = None) -> Figure:
    """``log10 t(D)``, the flow time for the log-ratio to reach ``-D``: GA against NPO.

    GA's is ``D/K``, NPO's ``(D + (e^{beta D} - 1)/beta)/(2K)``, which grows linearly in ``D``
    on this axis.

    Args:
        data: from :func:`theory.curves.run_divergence_time`.
        ax: None, or one Axes.

    Returns:
        The figure.
    """
    fig, (a,) = _axes(ax, 1, (6, 4.2))
    a.plot(data.D, data.log10_ga, "k", lw=2, label="GA: D/K")
    for i, beta in enumerate(data.config.betas):
        a.plot(data.D, data.log10_npo[i], label=f"NPO beta={beta:g}")
    top = min(float(np.max(data.log10_npo)), 60.0)
    a.set(
        xlabel="divergence D (log-ratio reaches -D)",
        ylabel="log10 time to reach it",
        ylim=(float(np.min(data.log10_ga)) - 0.5, top + 1),
        title="time to divergence: exponential separation",
    )
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_theorem2(data: Theorem2Data, ax: Any = None) -> Figure:
    """Theorem 2: the drift ``||X(theta_t - theta_init)||`` of GA (log-log) and NPO (log t).

    Fitting instances solid, held-out instances dashed; derived bands as black dashed lines,
    fitted bands shaded, the fitting range ``t <= fit_steps`` marked.

    Args:
        data: from :func:`theory.theorem2.run_theorem2`.
        ax: None, or a pair of Axes.

    Returns:
        The figure.
    """
    fig, (a_ga, a_npo) = _axes(ax, 2, (11, 4.4))
    t = data.steps
    for a, drift, proof, fit, name in (
        (a_ga, data.ga_drift, data.ga_band_proof, data.ga_band_fit, "GA"),
        (a_npo, data.npo_drift, data.npo_band_proof, data.npo_band_fit, "NPO"),
    ):
        a.fill_between(t, fit[0], fit[1], color="tab:blue", alpha=0.15, label="fitted band")
        if np.all(np.isfinite(proof)):
            a.plot(t, proof[0], "k--", lw=1, label="derived band")
            a.plot(t, proof[1], "k--", lw=1)
        for i, row in enumerate(drift):
            held = bool(data.held_out[i])
            a.plot(
                t,
                row,
                "--" if held else "-",
                color="tab:red" if held else "tab:gray",
                lw=1,
                label=("held-out" if held else "fitting") + " instances"
                if i in (0, data.config.fit_instances)
                else None,
            )
        a.axvline(data.config.fit_steps, color="0.5", lw=0.8, ls=":")
        a.set(
            xscale="log", xlabel="GD step t", ylabel="||X(theta_t - theta_init)||", title=f"{name}"
        )
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc="upper left")
    a_ga.set_yscale("log")
    a_ga.set_title("GA: n_f^-1/2 eta t [C1, C2] (linear)")
    a_npo.set_title("NPO: (sqrt(n_f)/beta) log(1 + C eta t/n_f) (logarithmic)")
    top = float(np.max(data.npo_drift)) * 1.6
    a_npo.set_ylim(0, top)
    fig.tight_layout()
    return fig


def plot_optimizer_dynamics(data: OptimizerDynamicsData, ax: Any = None) -> Figure:
    """The divergence ``-u`` of one forget example against steps (log-log), per optimizer.

    Gradient descent (GA linear, NPO logarithmic), sign descent (GA = NPO, linear) and Adam
    (GA linear; NPO linear at the predicted capped rate without ``eps``, logarithmic again
    below the ``eps`` crossover); the fourth panel is NPO's local log rate
    ``beta (-du/dlog n)``, which tends to 1 where NPO is logarithmic and grows like ``n``
    where it is linear.

    Args:
        data: from :func:`theory.curves.run_optimizer_dynamics`.
        ax: None, or four Axes.

    Returns:
        The figure.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, grid = plt.subplots(2, 2, figsize=(11.5, 8.4))
        ax = list(np.ravel(grid))
    fig, (a_gd, a_sign, a_adam, a_rate) = _axes(ax, 4, (11.5, 8.4))
    n = data.steps
    a_gd.plot(n, -data.gd_ga, "k", label="GA")
    a_gd.plot(n, -data.gd_npo, "tab:blue", label="NPO")
    ratio = float(data.gd_ga[-1] / data.gd_npo[-1])
    a_gd.set_title(f"gradient descent: NPO ends {ratio:.1f}x below GA", fontsize=9)
    a_sign.plot(n, -data.sign, "k", label="GA and NPO (any beta)")
    a_sign.set_title("sign descent: the weight cancels", fontsize=9)
    a_adam.plot(n, -data.adam_ga, "k", label="GA")
    a_adam.plot(n, -data.adam_npo_eps0, "tab:orange", label="NPO, eps=0")
    a_adam.plot(n, -data.adam_npo, "tab:blue", label=f"NPO, eps={data.config.eps:g}")
    a_adam.plot(
        n, data.adam_npo_rate * n, ":", color="tab:orange", lw=1, label="predicted rate (eps=0)"
    )
    a_adam.axhline(-data.crossover, color="0.4", ls="--", lw=0.8, label="eps crossover")
    a_adam.set_title(
        "Adam: linear at the cap without eps, logarithmic below the crossover", fontsize=9
    )
    for a in (a_gd, a_sign, a_adam):
        a.set(xscale="log", yscale="log", xlabel="step", ylabel="-u = -log pi/pi_ref")
    b = data.config.beta
    rates = {
        "GD": (-data.gd_npo, "tab:green"),
        "sign descent": (-data.sign, "k"),
        "Adam, eps=0": (-data.adam_npo_eps0, "tab:orange"),
        f"Adam, eps={data.config.eps:g}": (-data.adam_npo, "tab:blue"),
    }
    for label, (d, color) in rates.items():
        r = b * np.gradient(d, np.log(n))
        a_rate.plot(n, r, color=color, label=f"NPO, {label}: {r[-1]:.2f} at the end")
    a_rate.axhline(1.0, color="0.4", ls="--", lw=0.8, label="logarithmic: 1")
    a_rate.set(
        xscale="log",
        yscale="log",
        xlabel="step",
        ylabel="beta (-du / dlog n)",
        ylim=(1e-2, None),
    )
    a_rate.set_title("NPO's local log rate: 1 is logarithmic, growing like n is linear", fontsize=9)
    for a in (a_gd, a_sign, a_adam, a_rate):
        a.grid(alpha=0.3)
        a.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
