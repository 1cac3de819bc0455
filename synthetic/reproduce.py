"""Registry of the synthetic experiments behind ``npo reproduce NAME``."""

from __future__ import annotations

from collections.abc import Callable

from synthetic.beyond import run_beta_rate, run_optimizers, run_theorem2_experiment
from synthetic.experiments import PAPER_EXPERIMENTS, ExperimentResult, ReproduceConfig


def run_transformer_experiment(config: ReproduceConfig) -> ExperimentResult:
    """``transformer``: the small-transformer task (:mod:`synthetic.transformer_runs`) with the
    shared options mapped onto its own config (``--steps``: unlearning steps, ``--methods``,
    ``--lr``, ``--beta``, ``--optimizer``, ``--eval-every``, ``--quick``, ``--cache-dir``)."""
    from synthetic.transformer_runs import run_transformer

    return run_transformer(transformer_config(config))


def transformer_config(config: ReproduceConfig):
    from synthetic.transformer_task import TransformerConfig

    pairs = (("lr", config.lr), ("beta", config.beta), ("cache_dir", config.cache_dir))
    extra = {k: v for k, v in pairs if v is not None}
    return TransformerConfig(
        quick=config.quick,
        steps=config.steps,
        methods=config.methods or None,
        optimizer=config.optimizer,
        eval_every=config.eval_every or 10,
        progress=config.progress,
        **extra,
    )


__all__ = ["EXPERIMENTS", "MIN_STEPS", "expand", "run_experiments"]

EXPERIMENTS: dict[str, Callable[[ReproduceConfig], ExperimentResult]] = {
    **PAPER_EXPERIMENTS,
    "theorem2": run_theorem2_experiment,
    "optimizers": run_optimizers,
    "beta-rate": run_beta_rate,
    "transformer": run_transformer_experiment,
}


# Experiments that fit a rate over log-spaced steps need enough of them.
MIN_STEPS = {"optimizers": 200, "beta-rate": 200, "theorem2": 200}


def expand(names: list[str], config: ReproduceConfig) -> list[str]:
    """The experiments to run (``all`` expands to every one), validated against ``config``
    before any work: unknown names and step counts too small for an experiment fail here."""
    expanded: list[str] = []
    for name in names:
        if name == "all":
            expanded += list(EXPERIMENTS)
        elif name in EXPERIMENTS:
            expanded.append(name)
        else:
            raise ValueError(f"unknown experiment {name!r}; valid: {['all', *EXPERIMENTS]}")
    expanded = list(dict.fromkeys(expanded))
    if "transformer" in expanded:
        transformer_config(config)  # validates its options too
    for name in expanded:
        need = MIN_STEPS.get(name, 1)
        if config.steps is not None and config.steps < need:
            raise ValueError(f"experiment {name!r} needs --steps >= {need}, got {config.steps}")
    return expanded


def run_experiments(names: list[str], config: ReproduceConfig):
    """Yield ``(name, result)`` for each experiment of :func:`expand`."""
    for name in expand(names, config):
        yield name, EXPERIMENTS[name](config)
