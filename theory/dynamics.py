"""Exact divergence dynamics of GA and NPO, and the shared divergence-rate estimator.

The public names used across the project, re-exported from the modules that hold them:

- constant-tangent-kernel flows (:mod:`theory.flows`): :func:`ga_log_ratio`,
  :func:`npo_log_ratio`, :func:`npo_log_ratio_asymptote`, :func:`npo_log_ratio_bounds`,
  :func:`npo_weight_along_flow`, :func:`ga_time_to_divergence`, :func:`npo_time_to_divergence`,
  :func:`npo_log_time_to_divergence`, :func:`npo_log_rate` (``1/beta``, the long-time slope of
  ``-u`` against ``log t``), :func:`npo_local_log_rate`;
- one logistic sample (:mod:`theory.logistic_flow`): :func:`logistic_ga_logit`,
  :func:`logistic_npo_logit`, :func:`logistic_npo_time` and their asymptotes;
- gradient descent in discrete time and its distance to the flows (:mod:`theory.discrete`);
- sign descent and Adam (:mod:`theory.optimizers`): :func:`signgd_log_ratio`,
  :func:`adam_log_ratio`, :func:`adam_npo_linear_rate`, :func:`adam_eps_crossover`, ...;
- :func:`fit_divergence` (:mod:`theory.divergence`): linear / logarithmic / undecided verdicts.
"""

from __future__ import annotations

from theory.discrete import (
    ga_log_ratio_gd,
    logistic_ga_gd,
    logistic_ga_gd_gap_bound,
    logistic_npo_gd,
    logistic_npo_gd_gap_bound,
    npo_gd_gap_bound,
    npo_log_ratio_gd,
)
from theory.divergence import DivergenceFit, LinearFit, LogFit, fit_divergence
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
    adam_npo_linear_rate,
    adam_ratio_lag,
    signgd_log_ratio,
)

__all__ = [
    "AdamTrace",
    "DivergenceFit",
    "LinearFit",
    "LogFit",
    "adam_eps_crossover",
    "adam_ga_rate",
    "adam_log_ratio",
    "adam_npo_linear_rate",
    "adam_ratio_lag",
    "fit_divergence",
    "ga_log_ratio",
    "ga_log_ratio_gd",
    "ga_time_to_divergence",
    "logistic_ga_gd",
    "logistic_ga_gd_gap_bound",
    "logistic_ga_logit",
    "logistic_ga_logit_asymptote",
    "logistic_npo_gd",
    "logistic_npo_gd_gap_bound",
    "logistic_npo_logit",
    "logistic_npo_logit_asymptote",
    "logistic_npo_time",
    "npo_gd_gap_bound",
    "npo_local_log_rate",
    "npo_log_rate",
    "npo_log_ratio",
    "npo_log_ratio_asymptote",
    "npo_log_ratio_bounds",
    "npo_log_ratio_gd",
    "npo_log_time_to_divergence",
    "npo_time_to_divergence",
    "npo_weight_along_flow",
    "signgd_log_ratio",
]
