"""Attacks on the small transformer's unlearned models: relearning (with SAM) and quantization.

The ``transformer-attacks`` experiment (not in ``npo reproduce all``; the ``transformer``
experiment stays as fast as before). On the first forget split of the task, per seed:

- **relearning**: every method of ``relearn_methods`` (the task's cached runs) and the same
  methods with SAM on the forget side (``--sam-rho``; runs named ``npo+sam``), each relearned
  for ``relearn_steps`` steps on a seeded half of the forget items and measured on the other
  half (:func:`npo.llm.attacks.run_relearn`); steps to recovery per run;
- **quantization**: every method of ``quantize_methods`` unlearned at the task's learning rate
  and at each of ``quantize_lrs`` (smaller and larger updates), then RTN-quantized at ``bits`` x
  ``group_sizes`` with the target quantized alike (:func:`npo.llm.attacks.run_quantize`); per
  run the median update-to-step ratio at 4 bits and the share of the forget gap recovered.

Every stage is cached under the task's cache, beside the runs it attacks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from npo.experiment import ExperimentResult, ReproduceConfig
from npo.validate import check_fields
from synthetic.stats import summarize
from synthetic.transformer.cached import cached_run, load_model_eval
from synthetic.transformer.runs import _retain_path, _retain_results, _unlearn_run
from synthetic.transformer.seeds import bootstrap_median
from synthetic.transformer.task import (
    ResolvedTransformerConfig,
    TransformerConfig,
    prepare_data,
    run_key,
    train_models,
)

__all__ = ["AttacksConfig", "check_attacks_config", "run_attacks", "run_attacks_reproduce"]


@dataclass(frozen=True)
class AttacksConfig:
    """Options of the attack study (beside the task's :class:`TransformerConfig`)."""

    relearn_methods: tuple[str, ...] = field(
        default=("ga+rt", "npo", "npo+rt"), metadata={"help": "runs relearned"}
    )
    sam_methods: tuple[str, ...] = field(
        default=("npo", "npo+rt"), metadata={"help": "methods also run with SAM"}
    )
    sam_rho: float = field(default=0.1, metadata={"help": "SAM radius on the forget side"})
    relearn_steps: int = field(default=30, metadata={"help": "relearning steps"})
    relearn_every: int = field(default=5, metadata={"help": "evaluate every N relearning steps"})
    relearn_lr: float = field(default=5e-4, metadata={"help": "relearning AdamW lr"})
    quantize_methods: tuple[str, ...] = field(
        default=("ga+rt", "npo+rt"), metadata={"help": "runs quantized"}
    )
    quantize_lrs: tuple[float, ...] = field(
        default=(2e-5, 1e-4, 2e-3),
        metadata={"help": "other unlearning lrs (smaller and larger updates), besides the task's"},
    )
    bits: tuple[int, ...] = field(default=(8, 4), metadata={"help": "bit widths"})
    group_sizes: tuple[int, ...] = field(default=(32, 0), metadata={"help": "0: per channel"})

    def __post_init__(self) -> None:
        check_fields(self, at_least_1=("relearn_steps", "relearn_every"))
        check_fields(self, positive=("sam_rho", "relearn_lr"))


def _tag(name: str) -> str:
    return name.replace("+", "_")


def _seed_attacks(c: ResolvedTransformerConfig, a: AttacksConfig) -> dict[str, Any]:
    # One seed: the runs attacked (cached), their relearning and quantization (cached).
    from npo.llm.attacks import QuantizeConfig, RelearnConfig, run_quantize, run_relearn
    from npo.llm.eval import EvalConfig

    train_dir, eval_dir, report = prepare_data(c)
    models = train_models(c, train_dir, report)
    pct = int(next(iter(report["written"])))
    forget = f"forget{pct:02d}"
    root = Path(c.cache_dir) / f"runs-{run_key(c)}"
    retain_file = _retain_results(
        models["retain"][pct], eval_dir, forget, _retain_path(root, forget)
    )
    target, _ = load_model_eval(models["target"])
    ev = EvalConfig(generate=False, progress=False)
    common: dict[str, Any] = {
        "target": str(models["target"]),
        "data": str(eval_dir),
        "forget": forget,
        "retain_results": str(retain_file),
        "calibration_model": str(models["retain"][pct]),
        "progress": False,
    }

    def unlearned(method: str, name: str, **extra: Any) -> Path:
        _unlearn_run(c, models, eval_dir, pct, method, root, target, name=name, **extra)
        return root / forget / _tag(name) / "model"

    relearn: dict[str, Any] = {}
    runs: list[tuple[str, str, dict[str, Any]]] = [(m, m, {}) for m in a.relearn_methods]
    runs += [(m, f"{m}+sam", {"sam_rho": a.sam_rho}) for m in a.sam_methods]
    for method, name, extra in runs:
        model = unlearned(method, name, **extra)
        out = root / "attacks" / f"relearn-{_tag(name)}-{a.relearn_lr:g}-{a.relearn_steps}"
        rcfg = RelearnConfig(
            model=str(model),
            out=str(out),
            steps=a.relearn_steps,
            eval_every=a.relearn_every,
            lr=a.relearn_lr,
            seed=c.seed,
            max_length=256,
            **common,
        )
        relearn[name] = cached_run(out.parent / f"{out.name}.json", partial(run_relearn, rcfg, ev))
    quantize: dict[str, Any] = {}
    for method in a.quantize_methods:
        for lr in (c.lr, *a.quantize_lrs):
            name = method if lr == c.lr else f"{method}@lr{lr:g}"
            model = unlearned(method, name, **({} if lr == c.lr else {"lr": lr}))
            grid = "-".join(map(str, a.bits)) + "b-" + "-".join(map(str, a.group_sizes)) + "g"
            out = root / "attacks" / f"quantize-{_tag(name)}-{grid}"
            qcfg = QuantizeConfig(
                model=str(model), out=str(out), bits=a.bits, group_size=a.group_sizes, **common
            )
            record = cached_run(out.parent / f"{out.name}.json", partial(run_quantize, qcfg, ev))
            quantize[name] = {**record, "method": method, "lr": lr}
    return {"relearn": relearn, "quantize": quantize, "split": forget}


def _relearn_table(seeds: list[dict]) -> tuple[dict, list[dict], np.ndarray]:
    names = list(seeds[0]["relearn"])
    steps = np.asarray(seeds[0]["relearn"][names[0]]["steps"])
    curves: dict[str, dict] = {}
    rows = []
    for name in names:
        recs = [s["relearn"][name] for s in seeds]
        curves[name] = {
            m: summarize(
                np.array([[np.nan if v is None else v for v in r["measured"][m]] for r in recs])
            )
            for m in ("forget_prob", "mia_auc_min_k", "model_utility", "forget_quality")
        }
        curves[name]["relearned_forget_prob"] = summarize(
            np.array([r["relearned_forget_prob"] for r in recs])
        )
        rec = bootstrap_median([r["steps_to_recovery"] for r in recs])
        rows.append(
            {
                "attack": "relearn",
                "run": name,
                "steps_to_recovery": rec["median"],
                "recovered_seeds": f"{rec['n']}/{len(recs)}",
                "forget_prob_start": float(
                    np.median([r["measured"]["forget_prob"][0] for r in recs])
                ),
                "forget_prob_end": float(
                    np.median([r["measured"]["forget_prob"][-1] for r in recs])
                ),
                "target_forget_prob": float(np.median([r["target"]["forget_prob"] for r in recs])),
                "utility_end": float(np.median([r["measured"]["model_utility"][-1] for r in recs])),
            }
        )
    return curves, rows, steps


def _quantize_rows(seeds: list[dict]) -> list[dict]:
    rows = []
    for name in seeds[0]["quantize"]:
        recs = [s["quantize"][name] for s in seeds]
        for i, v in enumerate(recs[0]["variants"]):
            med = lambda f: float(np.nanmedian([f(r) for r in recs]))  # noqa: E731,B023
            rows.append(
                {
                    "attack": "quantize",
                    "run": name,
                    "variant": v["name"],
                    "update_ratio": med(lambda r: r["update_ratio"]["median_ratio"]),
                    "forget_prob": med(lambda r: r["base"]["unlearned"]["forget_prob"]),
                    "forget_prob_q": med(
                        lambda r, i=i: r["variants"][i]["unlearned"]["forget_prob"]
                    ),
                    "target_forget_prob": med(lambda r: r["base"]["target"]["forget_prob"]),
                    "target_forget_prob_q": med(
                        lambda r, i=i: r["variants"][i]["target"]["forget_prob"]
                    ),
                    "recovery": med(lambda r, i=i: _none(r["variants"][i]["recovery"])),
                    "utility": med(lambda r: r["base"]["unlearned"]["model_utility"]),
                    "utility_q": med(lambda r, i=i: r["variants"][i]["unlearned"]["model_utility"]),
                    "target_utility_q": med(
                        lambda r, i=i: r["variants"][i]["target"]["model_utility"]
                    ),
                    "target_grid_error": med(lambda r, i=i: r["variants"][i]["target_grid_error"]),
                }
            )
    return rows


def _none(v: Any) -> float:
    return np.nan if v is None else float(v)


def run_attacks(
    config: TransformerConfig, attacks: AttacksConfig | None = None
) -> ExperimentResult:
    """Run the attack study over the task's seeds (every stage cached).

    Args:
        config: the task's options (resolved here; its first split is attacked).
        attacks: the study's options (None: the defaults).

    Returns:
        ``curves["relearn"][run][metric]`` over the relearning steps (rows: seeds), a table
        (one row per relearned run, one per quantized run and variant; medians over seeds),
        notes, and ``extras["seeds"]`` with every seed's records.
    """
    a = attacks or AttacksConfig()
    c = config.resolved()
    seeds = [_seed_attacks(replace(c, seed=s), a) for s in c.seed_list]
    curves, rows, steps = _relearn_table(seeds)
    rows += _quantize_rows(seeds)
    notes = attack_notes(c, a, rows, seeds[0]["split"])
    extras = {"seeds": list(c.seed_list), "per_seed": seeds, "split": seeds[0]["split"]}
    cfg = {"transformer": asdict(c), "attacks": asdict(a)}
    rl = {r["run"]: r["steps_to_recovery"] for r in rows if r["attack"] == "relearn"}
    headline = "steps to recovery " + ", ".join(
        f"{k} {'never' if v is None else f'{v:.0f}'}" for k, v in rl.items()
    )
    return ExperimentResult(
        "transformer-attacks", cfg, steps, {"relearn": curves}, rows, notes, extras, headline
    )


def attack_notes(
    c: ResolvedTransformerConfig, a: AttacksConfig, rows: list[dict], split: str
) -> list[str]:
    """The notes of the attack study: the protocol and what the numbers say.

    Returns:
        One line per note.
    """
    return [
        f"{split}, seeds {list(c.seed_list)} (table: medians over seeds). Relearning: AdamW lr "
        f"{a.relearn_lr}, {a.relearn_steps} steps, batch 8, on a seeded half of the forget items; "
        "measured on the other half. Steps to recovery: until the measured forget probability "
        "regains half the gap between the unlearned model and the target (None: never).",
        f"SAM runs (+sam): rho {a.sam_rho} on the forget-side loss, retain side unperturbed.",
        f"Quantization: weight-only RTN (asymmetric min-max) of every linear layer but the head, "
        f"bits {list(a.bits)} x groups {[g or 'channel' for g in a.group_sizes]}; recovery = "
        "(p_q - p_unlearned) / (p_target - p_unlearned) of the forget probability; update_ratio = "
        "median |theta_unlearned - theta_target| / the target's 4-bit step (groups of 32); "
        f"runs at the task's lr {c.lr} and at {list(a.quantize_lrs)}.",
    ]


def attacks_config(config: ReproduceConfig) -> TransformerConfig:
    """The task's options of ``npo reproduce transformer-attacks`` (as for ``transformer``).

    Args:
        config: the shared options.

    Returns:
        The task's options.
    """
    from synthetic.transformer.runs import transformer_config

    return transformer_config(config)


def run_attacks_reproduce(config: ReproduceConfig) -> ExperimentResult:
    """The ``transformer-attacks`` experiment of ``npo reproduce``.

    Args:
        config: the shared options (``--quick``, ``--seeds``, ``--cache-dir``, ...).

    Returns:
        The experiment's result.
    """
    return run_attacks(attacks_config(config))


def check_attacks_config(config: ReproduceConfig) -> None:
    """Validate the options before any work.

    Args:
        config: the shared options.
    """
    attacks_config(config)
