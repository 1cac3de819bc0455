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

from npo.experiment import Experiment
from npo.llm.studies.knowledge import (
    KnowledgeConfig,
    check_reproduce_config,
    knowledge_claims,
    run_knowledge,
    run_reproduce,
)
from npo.llm.studies.plots import plot_knowledge, plot_real_tofu
from npo.llm.studies.tofu import (
    RealTofuConfig,
    check_tofu_reproduce,
    run_real_tofu,
    run_tofu_reproduce,
    tofu_claims,
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

EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        "smollm2-knowledge",
        run_reproduce,
        plot_knowledge,
        summary="unlearning facts a real pretrained model knows (SmolLM2-135M, CPU)",
        check=check_reproduce_config,
        in_all=False,
    ),
    Experiment(
        "smollm2-tofu",
        run_tofu_reproduce,
        plot_real_tofu,
        summary="the TOFU protocol at subset size on a real pretrained model (SmolLM2-135M, CPU)",
        check=check_tofu_reproduce,
        in_all=False,
    ),
)
