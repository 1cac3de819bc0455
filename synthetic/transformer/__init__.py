"""TOFU in miniature: unlearning a tiny transformer on generated fictitious authors.

The only part of :mod:`synthetic` that imports the LLM path (``npo.llm``), which it runs
end to end on data whose truth is known by construction:

- :mod:`synthetic.transformer.authors`: the seeded generator of fictitious authors;
- :mod:`synthetic.transformer.tofu_files`: their TOFU-format split files;
- :mod:`synthetic.transformer.task`: the options, the data and the fine-tuned models;
- :mod:`synthetic.transformer.cached`: the runs' configs, cached records and models;
- :mod:`synthetic.transformer.drift`: the divergence study (GA and NPO under SGD and AdamW);
- :mod:`synthetic.transformer.runs`: unlearning with evaluation curves and the result, with
  its notes and headline from :mod:`synthetic.transformer.summary`;
- :mod:`synthetic.transformer.seeds`: medians and bootstrap intervals over seeds;
- :mod:`synthetic.transformer.plots`: its figures;
- :mod:`synthetic.transformer.attacks`: relearning (with SAM) and quantization attacks on the
  unlearned models, with figures in :mod:`synthetic.transformer.attack_plots`.

``EXPERIMENTS`` holds the ``transformer`` and ``transformer-attacks`` entries of the ``npo
reproduce`` registry (the latter not in ``all``).
"""

from __future__ import annotations

from npo.experiment import Experiment
from synthetic.transformer.attack_plots import plot_attacks, plot_quantize, plot_relearn
from synthetic.transformer.attacks import (
    AttacksConfig,
    check_attacks_config,
    run_attacks,
    run_attacks_reproduce,
)
from synthetic.transformer.authors import (
    ATTRIBUTES,
    AuthorsConfig,
    AuthorsData,
    generate_authors,
    generate_holdout,
    split_authors,
)
from synthetic.transformer.plots import (
    ks_levels,
    plot_transformer,
    plot_transformer_drift,
    plot_transformer_privacy,
    plot_transformer_steps,
    plot_transformer_tradeoff,
)
from synthetic.transformer.runs import (
    CURVE_METRICS,
    check_reproduce_config,
    run_reproduce,
    run_transformer,
    transformer_config,
)
from synthetic.transformer.task import (
    ALL_METHODS,
    MAIN_METHODS,
    ResolvedTransformerConfig,
    TransformerConfig,
    memorization_accuracy,
    prepare_data,
    train_models,
)
from synthetic.transformer.tofu_files import write_tofu_splits

__all__ = [
    "ALL_METHODS",
    "ATTRIBUTES",
    "CURVE_METRICS",
    "EXPERIMENTS",
    "MAIN_METHODS",
    "AttacksConfig",
    "AuthorsConfig",
    "AuthorsData",
    "ResolvedTransformerConfig",
    "TransformerConfig",
    "generate_authors",
    "generate_holdout",
    "ks_levels",
    "memorization_accuracy",
    "plot_attacks",
    "plot_quantize",
    "plot_relearn",
    "plot_transformer",
    "plot_transformer_drift",
    "plot_transformer_privacy",
    "plot_transformer_steps",
    "plot_transformer_tradeoff",
    "prepare_data",
    "run_attacks",
    "run_transformer",
    "split_authors",
    "train_models",
    "transformer_config",
    "write_tofu_splits",
]

EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        "transformer",
        run_reproduce,
        plot_transformer,
        summary="TOFU in miniature on a tiny transformer",
        check=check_reproduce_config,
    ),
    Experiment(
        "transformer-attacks",
        run_attacks_reproduce,
        plot_attacks,
        summary="relearning (with SAM) and quantization attacks on the small transformer",
        check=check_attacks_config,
        in_all=False,
    ),
)
