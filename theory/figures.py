"""The theory package's writer: runs the theory figures and writes them into a directory.

The files go through :mod:`npo.results` (each PNG with its config JSON beside it, plus
``theory_summary.json``) into a directory the caller names. ``npo theory`` calls
:func:`write_theory_figures`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from npo.validate import check_fields
from theory.curves import (
    DivergenceTimeConfig,
    LogRatioConfig,
    OptimizerDynamicsConfig,
    run_divergence_time,
    run_log_ratio,
    run_optimizer_dynamics,
)
from theory.plots import (
    plot_divergence_time,
    plot_log_ratio,
    plot_optimizer_dynamics,
    plot_theorem2,
)
from theory.theorem2 import Theorem2Config, run_theorem2

__all__ = ["FIGURES", "TheoryFiguresConfig", "write_theory_figures"]

#: figure name -> what it shows (the README's figure index)
FIGURES = {
    "theory_log_ratio": "u(t) of GA and NPO at several beta, linear and log time, with asymptotes",
    "theory_divergence_time": "log10 time to reach u = -D, GA vs NPO: exponential separation",
    "theory_theorem2": (
        "Theorem 2: GA/NPO drift on generated instances with derived and fitted bands"
    ),
    "theory_optimizers": "one forget example under GD, sign descent and Adam (eps = 0 and eps > 0)",
}


@dataclass(frozen=True)
class TheoryFiguresConfig:
    """Options of ``npo theory``: the size, NPO's beta and the seed."""

    fast: bool = field(default=False, metadata={"help": "small sizes (seconds)"})
    beta: float = field(default=1.0, metadata={"help": "NPO beta of Theorem 2 and the optimizers"})
    seed: int = field(default=0, metadata={"help": "seed of the instances and the gradient"})

    def __post_init__(self) -> None:
        check_fields(self, positive=("beta",))


def write_theory_figures(
    out_dir: str | os.PathLike, config: TheoryFiguresConfig = TheoryFiguresConfig()
) -> list[Path]:
    """Run every theory figure and write it, with a summary, into ``out_dir``.

    Writes ``<name>.png`` and ``<name>.config.json`` for each name in ``FIGURES``, and
    ``theory_summary.json`` (Theorem-2 constants, band checks and verdicts; the optimizers'
    rates), in seconds.

    Args:
        out_dir: the output directory (created if needed).
        config: the size, beta and seed.

    Returns:
        The paths written.
    """
    import matplotlib.pyplot as plt

    from npo.results import ensure_out_dir, write_figure, write_json

    out = ensure_out_dir(out_dir)
    c = config
    lr_cfg = LogRatioConfig(points=150 if c.fast else 400)
    dt_cfg = DivergenceTimeConfig(points=100 if c.fast else 300)
    t2_cfg = Theorem2Config(beta=c.beta, seed=c.seed, **({"steps": 20_000} if c.fast else {}))
    steps = 20_000 if c.fast else 200_000
    op_cfg = OptimizerDynamicsConfig(beta=c.beta, seed=c.seed, steps=steps)
    t2 = run_theorem2(t2_cfg)
    op = run_optimizer_dynamics(op_cfg)
    figs = {
        "theory_log_ratio": (plot_log_ratio(run_log_ratio(lr_cfg)), lr_cfg),
        "theory_divergence_time": (plot_divergence_time(run_divergence_time(dt_cfg)), dt_cfg),
        "theory_theorem2": (plot_theorem2(t2), t2_cfg),
        "theory_optimizers": (plot_optimizer_dynamics(op), op_cfg),
    }
    paths = []
    for name, (fig, cfg) in figs.items():
        paths.append(write_figure(fig, out, name, config=cfg))
        plt.close(fig)
    summary = {
        "config": c,
        "theorem2": {
            "summary": t2.summary(),
            "derived": t2.proof,
            "ga_fit": t2.ga_fit,
            "npo_fit": t2.npo_fit,
            "ga_inside_derived": t2.ga_inside_proof,
            "npo_inside_derived": t2.npo_inside_proof,
            "ga_inside_fit": t2.ga_inside_fit,
            "npo_inside_fit": t2.npo_inside_fit,
            "held_out": t2.held_out,
            "ga_r2": t2.ga_r2,
            "ga_verdicts": t2.ga_verdicts,
            "npo_verdicts": t2.npo_verdicts,
        },
        "optimizers": {
            "K": op.K,
            "l1": op.l1,
            "sign_descent_rate": op_cfg.lr * op.l1,
            "adam_ga_rate": op.adam_ga_rate,
            "adam_npo_linear_rate_eps0": op.adam_npo_rate,
            "adam_eps_crossover_log_ratio": op.crossover,
        },
    }
    paths.append(write_json(out / "theory_summary.json", summary))
    return paths
