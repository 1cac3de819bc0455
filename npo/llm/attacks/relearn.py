"""The relearning attack: fine-tune an unlearned model on part of its forget set.

From an unlearned model, fine-tune ``k`` steps (the answers' token-mean NLL, AdamW, constant
learning rate) on a fixed part of the forget evaluation set, drawn once from ``seed``
(``other-part``: the answers of the drawn share ``fraction`` of the items; ``paraphrases``:
the paraphrased answers of the *other* items), and measure the forget metrics on the other
items over ``k`` (:func:`part_metrics`). Relearning on some facts and bringing back others
says the knowledge was hidden rather than removed (Deeb and Roger, arXiv 2410.08827; Hu et
al., arXiv 2406.13356).

Steps to recovery (:func:`steps_to_recovery`): the first step, linearly interpolated between
evaluations, at which the measured items' forget probability has regained half the gap
between the unlearned model (step 0) and the target, ``p_0 + (p_target - p_0) / 2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from npo.llm.eval import metrics as tm
from npo.llm.eval import privacy

__all__ = ["PART_METRICS", "part_metrics", "split_items", "steps_to_recovery"]

PART_METRICS = ("forget_prob", "forget_truth_ratio", "forget_quality", "mia_auc_min_k")


def split_items(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded draw of ``round(fraction n)`` items (relearned) and the others (measured).

    Args:
        n: the number of forget items.
        fraction: the relearned share, in (0, 1).
        seed: the draw's seed.

    Returns:
        ``(relearned, measured)`` item indices, each sorted and non-empty.

    Raises:
        ValueError: when either part would be empty.
    """
    k = round(fraction * n)
    if not 0 < k < n:
        raise ValueError(f"fraction {fraction} of {n} forget items leaves an empty part")
    drawn = np.random.default_rng(seed).permutation(n)
    return sorted(int(i) for i in drawn[:k]), sorted(int(i) for i in drawn[k:])


def part_metrics(
    result: Mapping[str, Any], idx: Sequence[int], retain: Mapping[str, Any] | None = None
) -> dict[str, float | None]:
    """Forget metrics of the items ``idx`` of an evaluation's results file.

    Args:
        result: an ``npo eval`` results object (``EvalResult.to_json()``).
        idx: forget item indices.
        retain: the retain model's results object (forget quality), or None.

    Returns:
        ``forget_prob`` (mean ``exp(-loss)``), ``forget_truth_ratio`` (TOFU's forget
        aggregate), ``forget_quality`` (KS p-value against the retain model's ratios of the
        same items; None without ``retain``), ``mia_auc_min_k`` (these items against the
        holdout; None without one), and the whole model's ``model_utility``.
    """
    items = result["items"]["forget"]
    pick = lambda key: np.asarray([items[key][i] for i in idx], float)  # noqa: E731
    ratios = pick("truth_ratio")
    out: dict[str, float | None] = {
        "forget_prob": float(pick("prob").mean()),
        "forget_truth_ratio": tm.truth_ratio_score(ratios, forget=True),
        "forget_quality": None,
        "mia_auc_min_k": None,
        "model_utility": result.get("model_utility"),
    }
    if retain is not None:
        theirs = retain["items"]["forget"]["truth_ratio"]
        out["forget_quality"] = tm.forget_quality(ratios, [theirs[i] for i in idx])[0]
    holdout = result["items"].get("holdout")
    if holdout is not None and items.get("mia_min_k") is not None:
        out["mia_auc_min_k"] = privacy.mia_auc(pick("mia_min_k"), holdout["mia_min_k"])
    return out


def steps_to_recovery(
    steps: Sequence[float], prob: Sequence[float], target_prob: float
) -> float | None:
    """Steps until the forget probability regains half the gap to the target.

    The threshold is ``p_0 + (p_target - p_0) / 2`` with ``p_0 = prob[0]`` (the unlearned
    model); the crossing is interpolated linearly between the evaluations around it.

    Args:
        steps: the evaluation steps, increasing, from 0.
        prob: the forget probability at each.
        target_prob: the target model's.

    Returns:
        The (fractional) step, 0 when there is no gap, None if never reached.
    """
    s, p = np.asarray(steps, float), np.asarray(prob, float)
    if s.size == 0 or s.size != p.size:
        raise ValueError(
            f"steps and prob must be non-empty and equal in length: {s.size}, {p.size}"
        )
    if target_prob <= p[0]:
        return 0.0
    thr = p[0] + (target_prob - p[0]) / 2
    hit = np.flatnonzero(p >= thr)
    if not hit.size:
        return None
    i = int(hit[0])
    if i == 0:
        return float(s[0])
    frac = (thr - p[i - 1]) / (p[i] - p[i - 1])
    return float(s[i - 1] + frac * (s[i] - s[i - 1]))
