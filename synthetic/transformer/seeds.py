"""Seeds of the small-transformer experiment: per-seed arrays, medians and bootstrap intervals.

Each seed draws its own authors, initialization and data order
(``synthetic.transformer.runs._seed_run``). Claims are judged on the **median over
seeds**; its 95% interval is a percentile bootstrap of the median over seeds
(``scipy.stats.bootstrap``, 2000 resamples, seeded): with 3 seeds it can only span the
seeds' own values, so it says how much the seeds disagree rather than pinning the median.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthetic.experiments import verdict
from synthetic.stats import summarize
from synthetic.transformer.task import ResolvedTransformerConfig

__all__ = ["INTERVAL_METRICS", "assemble_seeds", "bootstrap_median", "seed_notes"]

INTERVAL_METRICS = ("forget_quality", "model_utility", "mia_auc_min_k", "privleak")


def bootstrap_median(values: Any, *, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """The median of ``values`` (NaN and None dropped) and its percentile-bootstrap interval.

    Args:
        values: one value per seed.
        level: the interval's confidence level.
        seed: the bootstrap's random seed.

    Returns:
        ``{"median", "low", "high", "values", "n"}`` (None for no finite value; low = high =
        the value for one).
    """
    x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    x = x[np.isfinite(x)]
    out: dict[str, Any] = {"values": x.tolist(), "n": int(x.size)}
    if x.size == 0:
        return {**out, "median": None, "low": None, "high": None}
    med = float(np.median(x))
    if x.size == 1 or np.all(x == x[0]):
        return {**out, "median": med, "low": med, "high": med}
    from scipy.stats import bootstrap

    res = bootstrap(
        (x,),
        np.median,
        n_resamples=2000,
        confidence_level=level,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return {**out, "median": med, "low": float(ci.low), "high": float(ci.high)}


def _medians(dicts: list[dict]) -> dict[str, Any]:
    # Per key the median over seeds of numeric values (None when none is numeric).
    keys = dict.fromkeys(k for d in dicts for k in d)
    out: dict[str, Any] = {}
    for k in keys:
        vals = [d.get(k) for d in dicts]
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        out[k] = float(np.median(nums)) if nums else None
    return out


def _row(split: str, method: str, seeds: list[dict], steps: np.ndarray) -> dict[str, Any]:
    fq = np.array([s["curves"][split][method]["forget_quality"] for s in seeds])
    mu = np.array([s["curves"][split][method]["model_utility"] for s in seeds])
    fq_med, mu_med = np.nanmedian(fq, axis=0), np.nanmedian(mu, axis=0)
    best = int(np.nanargmax(fq_med))
    final = _medians([s["final"][split][method] for s in seeds])
    d_steps, d_vals = (np.array(x, float) for x in zip(*seeds[0]["drift"][split][method]))
    return {
        "split": split,
        "method": method,
        "best_forget_quality": float(fq_med[best]),
        "utility_at_best": float(mu_med[best]),
        "step_at_best": int(steps[best]),
        "final_forget_quality": final.get("forget_quality"),
        "final_model_utility": final.get("model_utility"),
        "final_gibberish_rate": final.get("gibberish_rate"),
        "final_mia_auc": final.get("mia_auc_min_k"),
        "final_privleak": final.get("privleak"),
        "drift_verdict": verdict(d_steps, d_vals)["verdict"],
    }


def _target_row(split: str, tm: dict) -> dict[str, Any]:
    return {
        "split": split,
        "method": "(target)",
        "best_forget_quality": None,
        "utility_at_best": None,
        "step_at_best": None,
        "final_forget_quality": tm.get("forget_quality"),
        "final_model_utility": tm.get("model_utility"),
        "final_gibberish_rate": tm.get("gibberish_rate"),
        "final_mia_auc": tm.get("mia_auc_min_k"),
        "final_privleak": tm.get("privleak"),
        "drift_verdict": None,
    }


def assemble_seeds(
    c: ResolvedTransformerConfig, seeds: list[dict]
) -> tuple[dict, list[dict], dict[str, Any]]:
    """Curves over seeds, the table of medians and the per-seed values with their intervals.

    Args:
        c: the resolved options.
        seeds: one ``_seed_run`` record per seed (:mod:`synthetic.transformer.runs`).

    Returns:
        ``(curves, rows, extras)``: ``curves[split][method][metric]`` summaries whose
        ``seeds`` rows are the seeds; one row per split and method plus the target's
        (medians over seeds); ``extras`` with ``target`` and ``retain`` (medians of their
        metrics), ``seeds`` (the seed values), ``per_seed[split][method][metric]`` (final
        metrics, one value per seed; ``(target)`` and ``(retain)`` too) and
        ``intervals[split][method][metric]`` (:func:`bootstrap_median` of
        :data:`INTERVAL_METRICS`).
    """
    steps = seeds[0]["steps"]
    curves: dict[str, dict] = {}
    rows: list[dict] = []
    per_seed: dict[str, dict] = {}
    intervals: dict[str, dict] = {}
    target, retain = {}, {}
    for split in seeds[0]["curves"]:
        target[split] = _medians([s["target"][split] for s in seeds])
        retain[split] = _medians([_flat(s["retain"][split]) for s in seeds])
        rows.append(_target_row(split, target[split]))
        curves[split], per_seed[split], intervals[split] = {}, {}, {}
        groups = {"(target)": [s["target"][split] for s in seeds]}
        groups["(retain)"] = [_flat(s["retain"][split]) for s in seeds]
        for method in c.methods:
            per = [s["curves"][split][method] for s in seeds]
            curves[split][method] = {m: summarize(np.stack([p[m] for p in per])) for m in per[0]}
            rows.append(_row(split, method, seeds, steps))
            groups[method] = [s["final"][split][method] for s in seeds]
        for name, finals in groups.items():
            per_seed[split][name] = {
                m: [f.get(m) for f in finals] for m in dict.fromkeys(k for f in finals for k in f)
            }
            intervals[split][name] = {
                m: bootstrap_median(per_seed[split][name].get(m, [])) for m in INTERVAL_METRICS
            }
    extras = {
        "target": target,
        "retain": retain,
        "seeds": list(c.seed_list),
        "per_seed": per_seed,
        "intervals": intervals,
    }
    return curves, rows, extras


def _flat(result_json: dict) -> dict[str, Any]:
    # The metrics of an `npo eval` results file (its top-level numbers).
    return {k: v for k, v in result_json.items() if isinstance(v, (int, float, type(None)))}


def seed_notes(c: ResolvedTransformerConfig, extras: dict[str, Any]) -> list[str]:
    """Notes on membership inference and, with several seeds, the medians' intervals.

    Args:
        c: the resolved options.
        extras: from :func:`assemble_seeds`.

    Returns:
        One line per note.
    """
    fmt = lambda v: "null" if v is None else f"{v:.3g}"  # noqa: E731
    notes = [
        "Membership inference (Min-K%, k = 0.4): AUC of forget vs holdout authors (never "
        "trained on) in MUSE's orientation (0: the forget set looks trained on, 0.5: never "
        "seen); privleak = 100 (AUC - AUC_retain) / AUC_retain (negative: under-unlearning)."
    ]
    for split, t in extras["target"].items():
        r = extras["retain"][split]
        notes.append(
            f"{split}: Min-K% AUC target {fmt(t.get('mia_auc_min_k'))}, retain model "
            f"{fmt(r.get('mia_auc_min_k'))} (LOSS: {fmt(t.get('mia_auc_loss'))}, "
            f"{fmt(r.get('mia_auc_loss'))})."
        )
    if c.seeds < 2:
        notes.append("One seed: no intervals (run with --seeds N for medians over N seeds).")
        return notes
    notes.append(
        f"Seeds {list(c.seed_list)}: table values are medians over seeds; intervals below are "
        "95% percentile-bootstrap intervals of the median."
    )
    for split, methods in extras["intervals"].items():
        for method, iv in methods.items():
            parts = [
                f"{m} {fmt(v['median'])} [{fmt(v['low'])}, {fmt(v['high'])}]"
                for m, v in iv.items()
                if v["n"]
            ]
            notes.append(f"{split} {method}: " + "; ".join(parts))
    return notes
