"""Experiments on real pretrained checkpoints (SmolLM2-135M-Instruct by default).

- :mod:`npo.llm.studies.probe`: what the model knows (the probe set, greedy answers, the
  forget / retain / held-out split);
- :mod:`npo.llm.studies.frozen`: the top blocks trained on cached lower-block hidden states;
- :mod:`npo.llm.studies.knowledge` (with ``knowledge_runs``, ``knowledge_eval``,
  ``knowledge_summary``): the ``smollm2-knowledge`` experiment, unlearning facts the model
  knows with GA, GA+RT, NPO, NPO+RT and SimNPO+RT at matched budgets;
- :mod:`npo.llm.studies.tofu` (with ``tofu_runs``, ``tofu_summary``): the ``smollm2-tofu``
  experiment, the TOFU protocol at subset size (fine-tune target and retain model, unlearn
  with GA, GA+RT, NPO, NPO+RT, evaluate) through the LLM path's own functions;
- :mod:`npo.llm.studies.plots`: the figures.

``EXPERIMENTS`` holds their ``npo reproduce`` entries; they are not part of ``all`` (they need
the real model and take minutes on a CPU), so ``npo demo`` does not run them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from npo.experiment import Experiment, ExperimentResult, ReproduceConfig
from npo.llm.studies.knowledge import (
    KnowledgeConfig,
    knowledge_claims,
    knowledge_config,
    run_knowledge,
)
from npo.llm.studies.plots import plot_knowledge, plot_real_tofu
from npo.llm.studies.tofu import (
    RealTofuConfig,
    run_real_tofu,
    tofu_claims,
    tofu_reproduce_config,
)

__all__ = [
    "EXPERIMENTS",
    "KnowledgeConfig",
    "RealTofuConfig",
    "knowledge_claims",
    "plot_knowledge",
    "plot_real_tofu",
    "run_knowledge",
    "run_real_tofu",
    "tofu_claims",
]


def _opt_in(
    name: str,
    run: Callable[[Any], ExperimentResult],
    options: Callable[[ReproduceConfig], Any],
    plot: Callable[[ExperimentResult], Any],
    summary: str,
) -> Experiment:
    """An opt-in registry entry of a study with its own options.

    The entry runs ``run(options(config))``, validates with ``options(config)`` before any
    work, and runs only by name (not in ``all``).

    Returns:
        The :class:`~npo.experiment.Experiment`.
    """

    def check(config: ReproduceConfig) -> None:
        options(config)

    def run_shared(config: ReproduceConfig) -> ExperimentResult:
        return run(options(config))

    return Experiment(name, run_shared, plot, summary=summary, check=check, in_all=False)


EXPERIMENTS: tuple[Experiment, ...] = (
    _opt_in(
        "smollm2-knowledge",
        run_knowledge,
        knowledge_config,
        plot_knowledge,
        "unlearning facts a real pretrained model knows (SmolLM2-135M, CPU)",
    ),
    _opt_in(
        "smollm2-tofu",
        run_real_tofu,
        tofu_reproduce_config,
        plot_real_tofu,
        "the TOFU protocol at subset size on a real pretrained model (SmolLM2-135M, CPU)",
    ),
)
