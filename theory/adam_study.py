"""The constant-kernel half of the Adam study: NPO's regimes under Adam over a grid of lr and eps.

One forget example in the constant-tangent-kernel picture (:mod:`theory.optimizers`), NPO
under Adam for every ``(lr, eps)`` of the grid (the exact recursion
:func:`~theory.optimizers.adam_log_ratio_sweep`), with GA under Adam, and GA and NPO under
gradient descent and sign descent (closed forms), to ``steps`` (1e5 by default, seconds). For
each Adam run the study measures what the theory predicts: the capped linear rate
(:func:`~theory.optimizers.adam_npo_linear_rate`), the step at which ``u`` crosses
:func:`~theory.optimizers.adam_eps_crossover` (predicted ``n_x = |u_x| / c``), the slope of
``e^{-beta u}`` after it (gradient descent with step ``lr/eps``: ``2 beta lr K / eps``) and
the step from which ``beta (-du/dlog n)`` stays within 10% of 1 (``11 n0``).
:func:`plot_adam_study` draws the local exponents over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from npo.validate import check_fields, nonnegative, positive
from theory.flows import ga_log_ratio, npo_log_ratio
from theory.optimizers import (
    adam_eps_crossover,
    adam_ga_rate,
    adam_log_ratio_sweep,
    adam_npo_linear_rate,
    signgd_log_ratio,
)
from theory.regimes import local_exponent, local_log_rate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["AdamStudyConfig", "AdamStudyData", "plot_adam_study", "run_adam_study"]


@dataclass(frozen=True)
class AdamStudyConfig:
    """Options of :func:`run_adam_study`: the gradient, the grid, the horizon."""

    d: int = field(default=64, metadata={"help": "parameters (entries of grad_theta u)"})
    grad_scale: float = field(default=1e-2, metadata={"help": "|g_j| ~ grad_scale |N(0,1)|"})
    seed: int = field(default=0, metadata={"help": "seed of the gradient"})
    beta: float = field(default=1.0, metadata={"help": "NPO inverse temperature"})
    lrs: tuple[float, ...] = field(default=(1e-4, 1e-3, 1e-2), metadata={"help": "Adam lrs"})
    epss: tuple[float, ...] = field(
        default=(0.0, 1e-8, 1e-6, 1e-4), metadata={"help": "Adam eps values"}
    )
    beta1: float = field(default=0.9, metadata={"help": "Adam beta1"})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2"})
    gd_lr: float = field(default=1.0, metadata={"help": "gradient descent's step (reference)"})
    steps: int = field(default=100_000, metadata={"help": "steps"})
    per_decade: int = field(default=40, metadata={"help": "recorded steps per decade"})

    def __post_init__(self) -> None:
        check_fields(
            self, positive=("grad_scale", "beta", "gd_lr"), unit_interval=("beta1", "beta2")
        )
        check_fields(self, at_least_1=("d",), at_least_100=("steps",), at_least_5=("per_decade",))
        if not self.lrs or not self.epss:
            raise ValueError("lrs and epss must not be empty")
        for lr in self.lrs:
            positive("lrs", lr)
        for eps in self.epss:
            nonnegative("epss", eps)
        if not self.beta1**2 < self.beta2:
            raise ValueError(f"need beta1^2 < beta2, got beta1={self.beta1}, beta2={self.beta2}")


@dataclass(frozen=True)
class AdamStudyData:
    """The runs of :func:`run_adam_study` and what was measured on them.

    ``steps`` (P,); per Adam run ``c`` (the grid, lr-major): ``lr``, ``eps`` (C,), NPO's
    log-ratio ``adam_npo`` (C, P), GA's ``adam_ga`` (C, P), the predicted linear rate
    ``linear_rate``, the crossover ``crossover`` (``u_x``; NaN at ``eps = 0``), the predicted
    and measured crossover steps ``n_x_pred``, ``n_x`` (NaN if not reached), the ratio of the
    fitted slope of ``e^{-beta u}`` after the crossover to ``2 beta lr K / eps``
    (``tail_ratio``), ``beta (-du/dlog n)`` at the end (``log_rate_end``) and the step from
    which it stays within 10% of 1 (``log_step``, NaN if never). Gradient descent at
    ``gd_lr``: ``gd_ga``, ``gd_npo`` (P,); sign descent at each lr: ``sign`` (L, P). ``K``,
    ``l1``: the gradient's norms.
    """

    config: AdamStudyConfig
    steps: np.ndarray
    lr: np.ndarray
    eps: np.ndarray
    adam_npo: np.ndarray
    adam_ga: np.ndarray
    gd_ga: np.ndarray
    gd_npo: np.ndarray
    sign: np.ndarray
    linear_rate: np.ndarray
    crossover: np.ndarray
    n_x_pred: np.ndarray
    n_x: np.ndarray
    tail_ratio: np.ndarray
    log_rate_end: np.ndarray
    log_step: np.ndarray
    K: float
    l1: float

    def rows(self) -> list[dict]:
        """One dict per Adam run: the grid point and the measured numbers.

        Returns:
            The rows, in the grid's order.
        """
        keys = ("linear_rate", "crossover", "n_x_pred", "n_x", "tail_ratio", "log_rate_end")
        out = []
        for c in range(self.lr.size):
            row: dict[str, Any] = {"lr": float(self.lr[c]), "eps": float(self.eps[c])}
            row.update({k: float(getattr(self, k)[c]) for k in keys})
            row["log_step"] = float(self.log_step[c])
            row["final_neg_u"] = float(-self.adam_npo[c, -1])
            out.append(row)
        return out


def _record(steps: int, per_decade: int) -> np.ndarray:
    n = np.geomspace(1, steps, int(np.ceil(per_decade * np.log10(steps))) + 1)
    return np.unique(np.round(n).astype(np.int64))


def _measure(
    n: np.ndarray, u: np.ndarray, *, beta: float, lr: float, eps: float, K: float, u_x: float
) -> tuple[float, float, float]:
    # measured crossover step, tail-slope ratio, and the step from which beta*rate stays in 10%
    nf = n.astype(np.float64)
    rate = beta * local_log_rate(nf, -u)
    bad = np.flatnonzero(np.abs(rate - 1.0) > 0.1)
    log_step = float(nf[bad[-1] + 1]) if bad.size and bad[-1] + 1 < nf.size else np.nan
    if bad.size == 0:
        log_step = float(nf[0])
    if not np.isfinite(u_x):
        return np.nan, np.nan, log_step
    below = np.flatnonzero(u <= u_x)
    if below.size == 0:
        return np.nan, np.nan, log_step
    n_x = float(nf[below[0]])
    late = nf >= max(nf[-1] / 3.0, 3.0 * n_x)
    if late.sum() < 5:
        return n_x, np.nan, log_step
    y = np.exp(-beta * (u[late] - u[-1]))  # e^{-beta u}, scaled by e^{beta u_end}
    slope = float(np.polyfit(nf[late], y, 1)[0])
    predicted = 2.0 * beta * lr * K / eps * np.exp(beta * u[-1])
    return n_x, slope / predicted, log_step


def run_adam_study(config: AdamStudyConfig = AdamStudyConfig()) -> AdamStudyData:
    """The constant-kernel Adam study: NPO under Adam on the ``(lr, eps)`` grid, and references.

    Args:
        config: the gradient, the grid and the horizon.

    Returns:
        The runs and the measured numbers (:class:`AdamStudyData`).
    """
    c = config
    g = np.abs(np.random.default_rng(c.seed).standard_normal(c.d)) * c.grad_scale
    K, l1 = float(np.sum(g * g)), float(np.sum(g))
    n = _record(c.steps, c.per_decade)
    lr = np.repeat(np.asarray(c.lrs, dtype=np.float64), len(c.epss))
    eps = np.tile(np.asarray(c.epss, dtype=np.float64), len(c.lrs))
    u = adam_log_ratio_sweep(
        c.steps,
        grad=g,
        lr=lr,
        beta=np.full(lr.size, c.beta),
        eps=eps,
        record=n,
        beta1=c.beta1,
        beta2=c.beta2,
    )
    nf = n.astype(np.float64)
    ga = np.stack([-adam_ga_rate(grad=g, lr=a, eps=e) * nf for a, e in zip(lr, eps)])
    rate = np.array(
        [adam_npo_linear_rate(lr=a, l1=l1, beta=c.beta, beta1=c.beta1, beta2=c.beta2) for a in lr]
    )
    u_x = np.array(
        [adam_eps_crossover(grad=g, beta=c.beta, eps=e) if e > 0 else np.nan for e in eps]
    )
    measured = np.array(
        [
            _measure(n, u[i], beta=c.beta, lr=lr[i], eps=eps[i], K=K, u_x=u_x[i])
            for i in range(lr.size)
        ]
    )
    lrs = np.asarray(c.lrs, dtype=np.float64)[:, None]
    return AdamStudyData(
        config=c,
        steps=nf,
        lr=lr,
        eps=eps,
        adam_npo=u,
        adam_ga=ga,
        gd_ga=np.asarray(ga_log_ratio(c.gd_lr * nf, K=K)),
        gd_npo=np.asarray(npo_log_ratio(c.gd_lr * nf, beta=c.beta, K=K)),
        sign=np.asarray(signgd_log_ratio(nf[None, :], lr=lrs, l1=l1)),
        linear_rate=rate,
        crossover=u_x,
        n_x_pred=np.abs(u_x) / rate,
        n_x=measured[:, 0],
        tail_ratio=measured[:, 1],
        log_rate_end=c.beta * local_log_rate(nf, -u)[:, -1],
        log_step=measured[:, 2],
        K=K,
        l1=l1,
    )


def plot_adam_study(data: AdamStudyData, ax: Any = None) -> Figure:
    """The constant-kernel Adam study: ``-u``, its local exponent and NPO's local log rate.

    Left: ``-u`` (log-log) at the middle lr, GA and NPO under gradient descent, sign descent
    and Adam at each eps, the measured crossovers marked. Middle: the local exponent
    ``d log(-u) / d log n`` (1 linear, towards 0 logarithmic). Right: ``beta (-du/dlog n)``
    (1 logarithmic) for every Adam run.

    Args:
        data: from :func:`run_adam_study`.
        ax: None, or three Axes.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(1, 3, figsize=(16, 4.6))
    a_u, a_exp, a_rate = list(np.ravel(ax))
    n, c = data.steps, data.config
    mid = len(c.lrs) // 2
    lr = c.lrs[mid]
    refs = {
        f"GA, GD lr {c.gd_lr:g}": (-data.gd_ga, "k", "-"),
        f"NPO, GD lr {c.gd_lr:g}": (-data.gd_npo, "tab:green", "-"),
        "GA = NPO, sign descent": (-data.sign[mid], "0.5", ":"),
    }
    cmap = plt.get_cmap("viridis")
    for label, (d, ref_color, ls) in refs.items():
        a_u.plot(n, d, color=ref_color, ls=ls, label=label)
        a_exp.plot(n, local_exponent(n, d), color=ref_color, ls=ls, label=label)
    for i in range(data.lr.size):
        eps_i, lr_i = data.eps[i], data.lr[i]
        color = cmap(list(c.epss).index(eps_i) / max(len(c.epss) - 1, 1))
        style = ("-", "--", ":", "-.")[list(c.lrs).index(lr_i) % 4]
        d = -data.adam_npo[i]
        label = f"NPO, Adam lr {lr_i:g}, eps {eps_i:g}"
        if lr_i == lr:
            a_u.plot(n, d, color=color, label=label.replace(f"lr {lr_i:g}, ", ""))
            if np.isfinite(data.n_x[i]):
                a_u.plot(data.n_x[i], -data.crossover[i], "o", mfc="none", color=color)
            a_exp.plot(n, local_exponent(n, d), color=color, label=label)
        a_rate.plot(n, c.beta * local_log_rate(n, d), color=color, ls=style, lw=1, label=label)
    gd_rate = c.beta * local_log_rate(n, -data.gd_npo)
    a_rate.plot(n, gd_rate, color="tab:green", lw=2, label=f"NPO, GD lr {c.gd_lr:g}")
    a_u.plot(n, -data.adam_ga[list(data.lr).index(lr)], color="tab:red", ls="--", label="GA, Adam")
    a_u.set(xscale="log", yscale="log", xlabel="step", ylabel="-u", title=f"Adam at lr {lr:g}")
    a_exp.set(
        xscale="log",
        ylim=(-0.05, 1.3),
        xlabel="step",
        ylabel="d log(-u) / d log n",
        title=f"local exponent (Adam at lr {lr:g}): 1 linear, -> 0 logarithmic",
    )
    a_rate.axhspan(0.9, 1.1, color="0.9")
    a_rate.set(
        xscale="log",
        yscale="log",
        ylim=(0.05, None),
        xlabel="step",
        ylabel="beta (-du / dlog n)",
        title="NPO's local log rate (1: logarithmic; band: within 10%)",
    )
    for a in (a_u, a_exp, a_rate):
        a.grid(alpha=0.3)
        a.legend(fontsize=6)
    fig = a_u.figure
    fig.suptitle(
        f"Constant kernel, one forget example, beta {c.beta:g}: GA and NPO under Adam "
        f"(d {c.d}, {c.steps:.0e} steps); circles: measured eps crossovers"
    )
    fig.tight_layout()
    return fig
