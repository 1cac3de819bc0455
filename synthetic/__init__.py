"""The paper's synthetic study on the loss kernels, and experiments beyond it.

Random-features logistic regression (Sec. 4, App. B/D of Zhang et al. 2024):

- :mod:`synthetic.data`: the task, batched over seeds; :mod:`synthetic.models`: the model and
  ``pi_ref``/``pi_retr``;
- :mod:`synthetic.runner`: every method setting and seed as one tensor program, through the
  objective presets of :mod:`npo.objectives`; :mod:`synthetic.optim`: its optimizers;
- :mod:`synthetic.stats`: statistics over seeds;
- :mod:`synthetic.experiments` (Figures 4, 9 and 3), :mod:`synthetic.beyond` (optimizers,
  beta-rate, Theorem 2), :mod:`synthetic.adam` (the Adam study) and :mod:`synthetic.plots`: the
  experiments as data, and their figures;
- :mod:`synthetic.verdicts`: divergence verdicts with their spread over seeds and the
  theory's horizon flag.

``EXPERIMENTS`` holds this study's entries of the ``npo reproduce`` registry. The small
transformer task (TOFU in miniature) is the subpackage :mod:`synthetic.transformer`; this
study never imports it.
"""

from __future__ import annotations

from npo.experiment import Experiment
from synthetic.adam import plot_adam_study_result, run_adam_study_rf
from synthetic.beyond import run_beta_rate, run_optimizers, run_theorem2_experiment
from synthetic.data import Split, Task, TaskConfig, make_task
from synthetic.experiments import (
    TABLE1,
    references,
    run_fig3,
    run_fig4_alpha0,
    run_fig4_alpha1,
    run_fig9,
    table1_specs,
)
from synthetic.models import References, select_seed, train_references
from synthetic.plots import (
    plot_beta_rate,
    plot_curves,
    plot_fig3,
    plot_fig4,
    plot_fig9,
    plot_optimizers,
    plot_pareto,
    plot_theorem2_result,
)
from synthetic.runner import METRICS, Curves, MethodSpec, RunConfig, run_unlearning
from synthetic.stats import Crossing, crossing, median_curve, summarize

__all__ = [
    "EXPERIMENTS",
    "METRICS",
    "TABLE1",
    "Crossing",
    "Curves",
    "MethodSpec",
    "References",
    "RunConfig",
    "Split",
    "Task",
    "TaskConfig",
    "crossing",
    "make_task",
    "median_curve",
    "plot_adam_study_result",
    "plot_beta_rate",
    "plot_curves",
    "plot_fig3",
    "plot_fig4",
    "plot_fig9",
    "plot_optimizers",
    "plot_pareto",
    "plot_theorem2_result",
    "references",
    "run_adam_study_rf",
    "run_beta_rate",
    "run_fig3",
    "run_fig4_alpha0",
    "run_fig4_alpha1",
    "run_fig9",
    "run_optimizers",
    "run_theorem2_experiment",
    "run_unlearning",
    "select_seed",
    "summarize",
    "table1_specs",
    "train_references",
]

# Experiments that fit a rate over log-spaced steps need at least 200 steps.
EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("fig4-alpha1", run_fig4_alpha1, plot_fig4, summary="Fig. 4, alpha = 1"),
    Experiment("fig4-alpha0", run_fig4_alpha0, plot_fig4, summary="Fig. 4, alpha = 0"),
    Experiment("fig9", run_fig9, plot_fig9, summary="forget KL vs step (Fig. 9)"),
    Experiment("fig3", run_fig3, plot_fig3, summary="beta sweep vs GA (Fig. 3)"),
    Experiment("theorem2", run_theorem2_experiment, plot_theorem2_result, 200, "Theorem 2"),
    Experiment("optimizers", run_optimizers, plot_optimizers, 200, "GA/NPO per optimizer"),
    Experiment("beta-rate", run_beta_rate, plot_beta_rate, 200, "NPO log rate vs beta"),
    Experiment(
        "adam-study",
        run_adam_study_rf,
        plot_adam_study_result,
        1000,
        "NPO's regimes under Adam (slow: ~2 min quick, tens of minutes full; not in all)",
        in_all=False,
    ),
)
