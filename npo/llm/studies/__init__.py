"""Experiments on real pretrained checkpoints (SmolLM2-135M-Instruct by default).

- :mod:`npo.llm.studies.probe`: what the model knows (the probe set, greedy answers, the
  forget / retain / held-out split);
- :mod:`npo.llm.studies.frozen`: the top blocks trained on cached lower-block hidden states;
- :mod:`npo.llm.studies.knowledge` (with ``knowledge_runs``, ``knowledge_eval``,
  ``knowledge_summary``): the ``smollm2-knowledge`` experiment, unlearning facts the model
  knows with GA, GA+RT, NPO, NPO+RT and SimNPO+RT at matched budgets;
- :mod:`npo.llm.studies.plots`: the figures.

``EXPERIMENTS`` holds their ``npo reproduce`` entries; they are not part of ``all`` (they need
the real model and take minutes on a CPU), so ``npo demo`` does not run them.
"""

from __future__ import annotations

from npo.experiment import Experiment
from npo.llm.studies.knowledge import (
    KnowledgeConfig,
    check_reproduce_config,
    knowledge_claims,
    run_knowledge,
    run_reproduce,
)
from npo.llm.studies.plots import plot_knowledge

__all__ = [
    "EXPERIMENTS",
    "KnowledgeConfig",
    "knowledge_claims",
    "plot_knowledge",
    "run_knowledge",
]

EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        "smollm2-knowledge",
        run_reproduce,
        plot_knowledge,
        summary="unlearning facts a real pretrained model knows (SmolLM2-135M, CPU)",
        check=check_reproduce_config,
        in_all=False,
    ),
)
