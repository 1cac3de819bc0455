"""Theory of NPO vs GA divergence: closed forms, exact recursions, Theorem 2 and its figures.

Model-free: numpy and scipy, and sympy in :mod:`theory.symbolic` (imported on first use);
never torch. The names below are the public API; the modules that hold them are

- :mod:`theory.symbolic`: the loss, its limits and the flows' exact solutions in sympy;
- :mod:`theory.flows`: the constant-tangent-kernel flows of GA and NPO;
- :mod:`theory.logistic_flow`: the flows on one logistic sample;
- :mod:`theory.discrete`: gradient descent in discrete time and its distance to the flows;
- :mod:`theory.optimizers`: sign descent and Adam;
- :mod:`theory.divergence`: the linear / logarithmic / undecided verdict on a curve;
- :mod:`theory.regimes` and :mod:`theory.horizon`: whether a run has reached the regime its
  verdict describes, and the flag that says so;
- :mod:`theory.logistic` and :mod:`theory.theorem2`: the paper's Theorem 2 and its study;
- :mod:`theory.adam_study`: the constant-kernel half of the Adam study;
- :mod:`theory.curves`, :mod:`theory.plots`, :mod:`theory.figures`: the figures' data, their
  drawings and the writer behind ``npo theory``;
- :mod:`theory.sliders`: sliders over the closed forms in Jupyter.

The derivations are written out as math in the documentation (:doc:`/theory/index`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from theory.adam_study import AdamStudyConfig, AdamStudyData, plot_adam_study, run_adam_study
from theory.curves import (
    DivergenceTimeConfig,
    DivergenceTimeData,
    LogRatioConfig,
    LogRatioData,
    OptimizerDynamicsConfig,
    OptimizerDynamicsData,
    run_divergence_time,
    run_log_ratio,
    run_optimizer_dynamics,
)
from theory.discrete import (
    ga_log_ratio_gd,
    logistic_ga_gd,
    logistic_ga_gd_gap_bound,
    logistic_npo_gd,
    logistic_npo_gd_gap_bound,
    npo_gd_gap_bound,
    npo_log_ratio_gd,
)
from theory.divergence import (
    DivergenceFit,
    LinearFit,
    LogFit,
    SeedFits,
    fit_divergence,
    fit_divergence_seeds,
)
from theory.figures import FIGURES, TheoryFiguresConfig, write_theory_figures
from theory.flows import (
    ga_log_ratio,
    ga_time_to_divergence,
    npo_local_log_rate,
    npo_log_rate,
    npo_log_ratio,
    npo_log_ratio_asymptote,
    npo_log_ratio_bounds,
    npo_log_time_to_divergence,
    npo_time_to_divergence,
    npo_weight_along_flow,
    omega_shift,
)
from theory.horizon import (
    Horizon,
    adam_horizon,
    adam_memory_horizon,
    adam_regime,
    horizon_verdict,
    linear_horizon,
    npo_gd_horizon,
)
from theory.logistic import (
    LogisticInstances,
    Theorem2Constants,
    ga_band,
    gd_drift,
    make_instances,
    npo_band,
    theorem2_constants,
)
from theory.logistic_flow import (
    logistic_ga_logit,
    logistic_ga_logit_asymptote,
    logistic_npo_logit,
    logistic_npo_logit_asymptote,
    logistic_npo_time,
)
from theory.optimizers import (
    AdamTrace,
    adam_eps_crossover,
    adam_ga_rate,
    adam_log_ratio,
    adam_log_ratio_sweep,
    adam_npo_linear_rate,
    adam_ratio_lag,
    signgd_log_ratio,
)
from theory.plots import (
    plot_divergence_time,
    plot_log_ratio,
    plot_optimizer_dynamics,
    plot_theorem2,
)
from theory.regimes import (
    HORIZON_BETA_U,
    local_exponent,
    local_log_rate,
    log_rate_change,
    npo_asymptotic_threshold,
    npo_decade_slope,
    npo_flow_log_rate,
    npo_flow_overshoot,
    npo_rate_change,
    npo_verdict_threshold,
)
from theory.sliders import divergence_panels, explore
from theory.theorem2 import Theorem2Config, Theorem2Data, run_theorem2

if TYPE_CHECKING:
    from theory import symbolic

__all__ = [
    "FIGURES",
    "HORIZON_BETA_U",
    "AdamStudyConfig",
    "AdamStudyData",
    "AdamTrace",
    "DivergenceFit",
    "DivergenceTimeConfig",
    "DivergenceTimeData",
    "Horizon",
    "LinearFit",
    "LogFit",
    "LogRatioConfig",
    "LogRatioData",
    "LogisticInstances",
    "OptimizerDynamicsConfig",
    "OptimizerDynamicsData",
    "SeedFits",
    "Theorem2Config",
    "Theorem2Constants",
    "Theorem2Data",
    "TheoryFiguresConfig",
    "adam_eps_crossover",
    "adam_ga_rate",
    "adam_horizon",
    "adam_log_ratio",
    "adam_log_ratio_sweep",
    "adam_memory_horizon",
    "adam_npo_linear_rate",
    "adam_ratio_lag",
    "adam_regime",
    "divergence_panels",
    "explore",
    "fit_divergence",
    "fit_divergence_seeds",
    "ga_band",
    "ga_log_ratio",
    "ga_log_ratio_gd",
    "ga_time_to_divergence",
    "gd_drift",
    "horizon_verdict",
    "linear_horizon",
    "local_exponent",
    "local_log_rate",
    "log_rate_change",
    "logistic_ga_gd",
    "logistic_ga_gd_gap_bound",
    "logistic_ga_logit",
    "logistic_ga_logit_asymptote",
    "logistic_npo_gd",
    "logistic_npo_gd_gap_bound",
    "logistic_npo_logit",
    "logistic_npo_logit_asymptote",
    "logistic_npo_time",
    "make_instances",
    "npo_asymptotic_threshold",
    "npo_band",
    "npo_decade_slope",
    "npo_flow_log_rate",
    "npo_flow_overshoot",
    "npo_gd_gap_bound",
    "npo_gd_horizon",
    "npo_local_log_rate",
    "npo_log_rate",
    "npo_log_ratio",
    "npo_log_ratio_asymptote",
    "npo_log_ratio_bounds",
    "npo_log_ratio_gd",
    "npo_log_time_to_divergence",
    "npo_rate_change",
    "npo_time_to_divergence",
    "npo_verdict_threshold",
    "npo_weight_along_flow",
    "omega_shift",
    "plot_adam_study",
    "plot_divergence_time",
    "plot_log_ratio",
    "plot_optimizer_dynamics",
    "plot_theorem2",
    "run_adam_study",
    "run_divergence_time",
    "run_log_ratio",
    "run_optimizer_dynamics",
    "run_theorem2",
    "signgd_log_ratio",
    "symbolic",
    "theorem2_constants",
    "write_theory_figures",
]


def __getattr__(name: str) -> Any:
    # theory.symbolic imports sympy (about half a second), so it loads on first use.
    if name == "symbolic":
        return importlib.import_module("theory.symbolic")
    raise AttributeError(f"module 'theory' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
