"""The registry entries of the synthetic logistic study (``npo reproduce NAME``)."""

from __future__ import annotations

from npo.experiment import Experiment
from synthetic.beyond import run_beta_rate, run_optimizers, run_theorem2_experiment
from synthetic.experiments import run_fig3, run_fig4_alpha0, run_fig4_alpha1, run_fig9
from synthetic.plots import (
    plot_beta_rate,
    plot_fig3,
    plot_fig4,
    plot_fig9,
    plot_optimizers,
    plot_theorem2_result,
)

__all__ = ["EXPERIMENTS"]

# Experiments that fit a rate over log-spaced steps need at least 200 steps.
EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("fig4-alpha1", run_fig4_alpha1, plot_fig4, summary="Fig. 4, alpha = 1"),
    Experiment("fig4-alpha0", run_fig4_alpha0, plot_fig4, summary="Fig. 4, alpha = 0"),
    Experiment("fig9", run_fig9, plot_fig9, summary="forget KL vs step (Fig. 9)"),
    Experiment("fig3", run_fig3, plot_fig3, summary="beta sweep vs GA (Fig. 3)"),
    Experiment("theorem2", run_theorem2_experiment, plot_theorem2_result, 200, "Theorem 2"),
    Experiment("optimizers", run_optimizers, plot_optimizers, 200, "GA/NPO per optimizer"),
    Experiment("beta-rate", run_beta_rate, plot_beta_rate, 200, "NPO log rate vs beta"),
)
