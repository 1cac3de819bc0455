"""The quantities the small-transformer privacy and attack claims are judged on.

- :func:`privleak_at_matched_utility`: per seed, two methods' absolute PrivLeak where each
  last keeps a common utility level (the lower of their final utilities), from the evaluation
  curves;
- :func:`quantization_points`: per quantized run and seed, the median update-to-step ratio at
  4 bits and the share of the forget gap that 4-bit rounding gives back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from npo.experiment import ExperimentResult

__all__ = ["privleak_at_matched_utility", "quantization_points"]


def _at_utility(mu: np.ndarray, leak: np.ndarray, level: float) -> float:
    # absolute PrivLeak at the last evaluation whose utility is at least `level` (NaN if none)
    ok = np.flatnonzero((mu >= level - 1e-12) & np.isfinite(leak))
    return float(abs(leak[ok[-1]])) if ok.size else float("nan")


def privleak_at_matched_utility(
    result: ExperimentResult, split: str, a: str = "npo+rt", b: str = "ga+rt"
) -> dict[str, Any]:
    """The absolute PrivLeak of two methods at a matched model utility, per seed and median.

    Per seed ``u* = min(MU_a(T), MU_b(T))`` (each run's last evaluation, no generation); each
    method's value is its absolute PrivLeak at its last evaluation step with ``MU >= u*``: how
    close to the retain model's AUC it gets while keeping that utility.

    Args:
        result: from :func:`~synthetic.transformer.runs.run_transformer`.
        split: the forget split.
        a: the first method.
        b: the second method.

    Returns:
        ``{"utility": [u* per seed], a: [...], b: [...], "median": {a: m, b: m}}``.
    """
    ca, cb = result.curves[split][a], result.curves[split][b]
    out: dict[str, Any] = {"utility": [], a: [], b: []}
    for s in range(len(ca["model_utility"]["seeds"])):
        mu = {k: np.asarray(c["model_utility"]["seeds"][s], float) for k, c in ((a, ca), (b, cb))}
        pl = {k: np.asarray(c["privleak"]["seeds"][s], float) for k, c in ((a, ca), (b, cb))}
        level = min(mu[a][-1], mu[b][-1])
        out["utility"].append(float(level))
        for k in (a, b):
            out[k].append(_at_utility(mu[k], pl[k], level))
    out["median"] = {k: float(np.nanmedian(out[k])) for k in (a, b)}
    return out


def quantization_points(result: ExperimentResult, variant: str = "4bit-g32") -> list[dict]:
    """Per quantized run and seed: the update-to-step ratio and the gap recovered at ``variant``.

    Args:
        result: from :func:`~synthetic.transformer.attacks.run_attacks`.
        variant: the quantization variant (``4bit-g32``: 4 bits, groups of 32).

    Returns:
        One dict per run and seed: ``run``, ``seed``, ``ratio``, ``recovery``, ``utility_q``.
    """
    points = []
    for seed, rec in zip(result.extras["seeds"], result.extras["per_seed"]):
        for name, q in rec["quantize"].items():
            v = next(x for x in q["variants"] if x["name"] == variant)
            points.append(
                {
                    "run": name,
                    "seed": seed,
                    "ratio": q["update_ratio"]["median_ratio"],
                    "recovery": v["recovery"],
                    "utility_q": v["unlearned"]["model_utility"],
                }
            )
    return points
