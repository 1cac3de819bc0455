"""Registry of the synthetic experiments behind ``npo reproduce NAME``."""

from __future__ import annotations

from collections.abc import Callable

from synthetic.beyond import run_beta_rate, run_optimizers, run_theorem2_experiment
from synthetic.experiments import PAPER_EXPERIMENTS, ExperimentResult, ReproduceConfig

__all__ = ["EXPERIMENTS", "run_experiments"]

EXPERIMENTS: dict[str, Callable[[ReproduceConfig], ExperimentResult]] = {
    **PAPER_EXPERIMENTS,
    "theorem2": run_theorem2_experiment,
    "optimizers": run_optimizers,
    "beta-rate": run_beta_rate,
}


def run_experiments(names: list[str], config: ReproduceConfig):
    """Yield ``(name, result)`` for each name (``all`` expands to every experiment)."""
    expanded: list[str] = []
    for name in names:
        if name == "all":
            expanded += list(EXPERIMENTS)
        elif name in EXPERIMENTS:
            expanded.append(name)
        else:
            raise ValueError(f"unknown experiment {name!r}; valid: {['all', *EXPERIMENTS]}")
    for name in dict.fromkeys(expanded):
        yield name, EXPERIMENTS[name](config)
