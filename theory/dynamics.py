"""Exact divergence dynamics of GA and NPO, and the shared divergence-rate estimator.

Public names used across the project: :func:`fit_divergence` (from :mod:`theory.divergence`).
"""

from __future__ import annotations

from theory.divergence import DivergenceFit, LinearFit, LogFit, fit_divergence

__all__ = ["DivergenceFit", "LinearFit", "LogFit", "fit_divergence"]
