"""Live exploration of the closed forms: u(t), NPO's weight and the time to divergence.

:func:`explore` draws, for one forget example in the constant-kernel picture, GA's and NPO's
log-ratio ``u`` against the step, NPO's weight ``W = 2 sigmoid(beta u)`` and the steps each
needs to reach ``u = -D``, under gradient descent, sign descent or Adam. In Jupyter with
ipywidgets (the ``notebooks`` extra) it shows sliders for ``beta``, ``K``, ``lr``, the
optimizer and ``eps``; without ipywidgets it draws the figure once and says how to get the
sliders. :func:`divergence_panels` is the drawing itself (headless, returns its figure).

The gradient has ``d`` equal entries ``a = sqrt(K/d)`` (so ``||g||_2^2 = K``,
``||g||_1 = sqrt(K d)``): gradient descent depends on ``K`` only, sign descent and Adam on
the entries. Gradient and sign descent are closed forms (:mod:`theory.flows`,
:func:`~theory.optimizers.signgd_log_ratio`); Adam is the exact recursion
(:func:`~theory.optimizers.adam_log_ratio_sweep`, about 1 s per 3e4 steps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit

from npo.validate import nonnegative, one_of, positive
from theory._validate import positive_int
from theory.flows import (
    ga_log_ratio,
    ga_time_to_divergence,
    npo_log_ratio,
    npo_time_to_divergence,
)
from theory.optimizers import adam_log_ratio_sweep, signgd_log_ratio

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["OPTIMIZER_CHOICES", "divergence_panels", "explore"]

OPTIMIZER_CHOICES = ("gd", "sign", "adam")
HINT = "Static figure: install ipywidgets (pip install 'npo[notebooks]') for sliders."


def _curves(
    n: np.ndarray, *, beta: float, K: float, lr: float, optimizer: str, eps: float, d: int
) -> tuple[np.ndarray, np.ndarray]:
    # GA's and NPO's u at the steps n (n[-1] is the horizon)
    a = np.sqrt(K / d)
    if optimizer == "gd":
        return np.asarray(ga_log_ratio(lr * n, K=K)), np.asarray(
            npo_log_ratio(lr * n, beta=beta, K=K)
        )
    if optimizer == "sign":
        u = np.asarray(signgd_log_ratio(n, lr=lr, l1=a * d))
        return u, u
    u = adam_log_ratio_sweep(
        int(n[-1]),
        grad=np.full(d, a),
        lr=[lr, lr],
        beta=[np.nan, beta],
        eps=[eps, eps],
        record=n.astype(np.int64),
    )
    return u[0], u[1]


def _steps_to(D: np.ndarray, n: np.ndarray, u: np.ndarray) -> np.ndarray:
    # the first step with -u >= D, interpolated in log n; NaN beyond the horizon
    neg = np.maximum.accumulate(-u)
    out = np.interp(D, neg, np.log(n), right=np.nan)
    return np.exp(out)


def divergence_panels(
    beta: float = 1.0,
    K: float = 1e-2,
    lr: float = 1e-2,
    optimizer: str = "gd",
    eps: float = 1e-8,
    *,
    steps: int = 30_000,
    d: int = 64,
    ax: Any = None,
) -> Figure:
    """``u`` against the step, NPO's weight, and the steps to reach ``u = -D``, GA vs NPO.

    Args:
        beta: NPO's inverse temperature ``> 0``.
        K: the squared gradient norm ``||grad_theta u||^2 > 0``.
        lr: the learning rate ``> 0``.
        optimizer: ``"gd"``, ``"sign"`` or ``"adam"``.
        eps: Adam's ``eps >= 0`` (Adam only).
        steps: the horizon, ``>= 10`` steps.
        d: the gradient's entries (``d`` equal ones).
        ax: None, or three Axes.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    beta, K, lr = positive("beta", beta), positive("K", K), positive("lr", lr)
    eps = nonnegative("eps", eps)
    optimizer = one_of("optimizer", optimizer, OPTIMIZER_CHOICES)
    steps = positive_int("steps", steps, minimum=10)
    d = positive_int("d", d)
    if ax is None:
        _, ax = plt.subplots(1, 3, figsize=(14, 4.2))
    a_u, a_w, a_t = list(np.ravel(ax))
    n = np.unique(np.round(np.geomspace(1, steps, 300)).astype(np.int64)).astype(np.float64)
    ga, npo = _curves(n, beta=beta, K=K, lr=lr, optimizer=optimizer, eps=eps, d=d)
    a_u.plot(n, -ga, "k", label="GA")
    a_u.plot(n, -npo, "tab:blue", label=f"NPO, beta {beta:g}")
    a_u.set(xscale="log", yscale="log", xlabel="step", ylabel="-u = -log pi/pi_ref")
    a_u.set_title(f"{optimizer}: NPO ends {ga[-1] / npo[-1]:.3g}x below GA", fontsize=9)
    a_w.plot(n, 2.0 * expit(beta * npo), "tab:blue")
    a_w.set(xscale="log", yscale="log", xlabel="step", ylabel="W = 2 sigmoid(beta u)")
    a_w.set_title("NPO's weight", fontsize=9)
    D = np.linspace(0.05, max(float(-ga[-1]), 1.0), 200)
    if optimizer == "gd":
        t_ga = np.asarray(ga_time_to_divergence(D, K=K)) / lr
        with np.errstate(over="ignore"):
            t_npo = np.asarray(npo_time_to_divergence(D, beta=beta, K=K)) / lr
        note = "closed forms"
    else:
        t_ga, t_npo = _steps_to(D, n, ga), _steps_to(D, n, npo)
        note = f"within the {steps} steps drawn"
    a_t.plot(D, t_ga, "k", label="GA")
    a_t.plot(D, t_npo, "tab:blue", label="NPO")
    a_t.set(yscale="log", xlabel="D (u reaches -D)", ylabel="steps to reach it")
    a_t.set_title(f"time to divergence ({note})", fontsize=9)
    for axis in (a_u, a_w, a_t):
        axis.grid(alpha=0.3)
    a_u.legend(fontsize=8)
    a_t.legend(fontsize=8)
    fig = a_u.figure
    fig.suptitle(
        f"one forget example, K {K:g}, lr {lr:g}"
        + (f", eps {eps:g}" if optimizer == "adam" else ""),
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def explore(
    beta: float = 1.0,
    K: float = 1e-2,
    lr: float = 1e-2,
    optimizer: str = "gd",
    eps: float = 1e-8,
    *,
    steps: int = 30_000,
    interactive: bool | None = None,
) -> Any:
    """Sliders over :func:`divergence_panels` in Jupyter, or the static figure without them.

    Args:
        beta: NPO's inverse temperature at the start.
        K: the squared gradient norm at the start.
        lr: the learning rate at the start.
        optimizer: ``"gd"``, ``"sign"`` or ``"adam"`` at the start.
        eps: Adam's ``eps`` at the start.
        steps: the horizon (fixed).
        interactive: True to require ipywidgets, False for the static figure, None to use
            ipywidgets when it is installed.

    Returns:
        The ``ipywidgets`` widget (also displayed), or the static Figure (with a one-line hint
        printed when ipywidgets is missing).

    Raises:
        ImportError: if ``interactive`` is True and ipywidgets is not installed.
    """
    widgets: Any = None
    if interactive is not False:
        try:
            import ipywidgets

            widgets = ipywidgets
        except ImportError:
            if interactive:
                raise ImportError(HINT) from None
    if widgets is None:
        fig = divergence_panels(beta, K, lr, optimizer, eps, steps=steps)
        if interactive is None:
            print(HINT)
        return fig

    def log_slider(value: float, lo: float, hi: float, text: str) -> Any:
        return widgets.FloatLogSlider(
            value=value, base=10, min=lo, max=hi, step=0.1, description=text, readout_format=".2g"
        )

    def draw(**kw: Any) -> None:
        import matplotlib.pyplot as plt

        divergence_panels(steps=steps, **kw)
        plt.show()

    ui = widgets.interactive(
        draw,
        beta=log_slider(beta, -2, 1.5, "beta"),
        K=log_slider(K, -4, 1, "K"),
        lr=log_slider(lr, -5, 0, "lr"),
        optimizer=widgets.Dropdown(options=OPTIMIZER_CHOICES, value=optimizer),
        eps=log_slider(max(eps, 1e-12), -12, -2, "eps"),
    )
    from IPython.display import display

    display(ui)
    return ui
