"""The loss landscape of GA and NPO against the log-ratio, computed with the kernels.

``run_landscape`` evaluates :func:`npo.losses.npo_loss` on a grid of log-ratios
``R = log pi_theta - log pi_ref`` for several ``beta`` and takes the gradient weight
``dL/dR`` by autograd (which the tests hold equal to :func:`npo.losses.npo_weight`).
GA's loss relative to the reference is ``R`` with weight 1 everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from matplotlib.figure import Figure

from npo.losses import LOSSES, check_beta

__all__ = ["LandscapeConfig", "LandscapeData", "plot_landscape", "run_landscape"]


@dataclass(frozen=True)
class LandscapeConfig:
    """The grid of the loss landscape: betas and the range of log-ratios ``R``."""

    betas: tuple[float, ...] = field(
        default=(0.1, 0.5, 1.0, 2.0, 5.0), metadata={"help": "NPO inverse temperatures"}
    )
    r_min: float = field(default=-10.0, metadata={"help": "smallest log-ratio R"})
    r_max: float = field(default=5.0, metadata={"help": "largest log-ratio R"})
    points: int = field(default=601, metadata={"help": "grid points"})

    def __post_init__(self) -> None:
        if not self.betas:
            raise ValueError("betas must not be empty")
        for b in self.betas:
            check_beta(b)
        if not self.r_min < self.r_max:
            raise ValueError(f"need r_min < r_max, got {self.r_min} and {self.r_max}")
        if self.points < 2:
            raise ValueError(f"points must be >= 2, got {self.points}")


@dataclass(frozen=True)
class LandscapeData:
    """The landscape on the grid.

    ``log_ratio`` (P,); ``npo_loss`` and ``npo_weight`` (len(betas), P); GA's loss and weight
    (P,).
    """

    config: LandscapeConfig
    log_ratio: np.ndarray
    ga_loss: np.ndarray
    ga_weight: np.ndarray
    npo_loss: np.ndarray
    npo_weight: np.ndarray


def run_landscape(config: LandscapeConfig = LandscapeConfig()) -> LandscapeData:
    """Evaluate the NPO and GA kernels and their autograd weights on a grid of log-ratios.

    Args:
        config: the grid.

    Returns:
        The :class:`LandscapeData`.
    """
    r = torch.linspace(config.r_min, config.r_max, config.points, dtype=torch.float64)
    ref = torch.zeros_like(r)
    losses, weights = [], []
    for beta in config.betas:
        pol = r.clone().requires_grad_()
        loss = LOSSES["npo"].fn(pol, ref, beta=beta)
        (grad,) = torch.autograd.grad(loss.sum(), pol)
        losses.append(loss.detach().numpy())
        weights.append(grad.numpy())
    pol = r.clone().requires_grad_()
    ga = LOSSES["ga"].fn(pol)
    (ga_grad,) = torch.autograd.grad(ga.sum(), pol)
    return LandscapeData(
        config=config,
        log_ratio=r.numpy(),
        ga_loss=ga.detach().numpy(),
        ga_weight=ga_grad.numpy(),
        npo_loss=np.stack(losses),
        npo_weight=np.stack(weights),
    )


def plot_landscape(data: LandscapeData, ax=None) -> Figure:
    """Two panels: the loss against ``R`` and the gradient weight against ``R``.

    Args:
        data: from :func:`run_landscape`.
        ax: a pair of Axes to draw on (None: a new figure).

    Returns:
        The Figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    fig = ax[0].figure
    r = data.log_ratio
    ax[0].plot(r, data.ga_loss, "k--", label="GA: R")
    ax[1].plot(r, data.ga_weight, "k--", label="GA: 1")
    for i, beta in enumerate(data.config.betas):
        shifted = data.npo_loss[i] - 2 * np.log(2) / beta  # meets GA at R = 0 (Prop. 1)
        ax[0].plot(r, shifted, label=f"NPO beta={beta:g}")
        ax[1].plot(r, data.npo_weight[i], label=f"NPO beta={beta:g}")
    ax[0].set(
        xlabel="log-ratio R = log pi/pi_ref",
        ylabel="L - L(R=0)",
        title="loss (minimized), shifted to 0 at R = 0",
    )
    ax[1].set(
        xlabel="log-ratio R", ylabel="W = dL/dR", title="gradient weight W = 2 sigmoid(beta R)"
    )
    ax[1].axvline(0, color="0.7", lw=0.8)
    for a in ax:
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    return fig
