"""Membership inference in a TOFU evaluation: per-item attack scores, AUCs and PrivLeak.

The forget set's scores come from the forward that scores its answers for the other metrics
(:func:`~npo.llm.eval.scoring.score_groups` with ``token_rows``); the holdout split (authors
never trained on, :func:`~npo.llm.eval.sets.encode_holdout`) is scored the same way. The
formulas, the AUC's orientation (MUSE's: the target near 0, the retain model near 0.5) and
PrivLeak's sign are in :mod:`npo.llm.eval.privacy`.

Per-item lists (``items.forget`` and ``items.holdout`` of the results file): ``mia_loss``,
``mia_zlib``, ``mia_min_k``, ``mia_min_k_plus_plus`` and ``mia_calibrated`` (None without a
calibration model). Aggregates: ``mia_auc_<attack>`` and ``privleak_<attack>`` for each
attack, and ``privleak`` (the attack of ``config.mia_attack``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from npo.llm.eval import privacy
from npo.llm.eval.config import EvalConfig
from npo.llm.eval.scoring import Scores, score_groups
from npo.llm.eval.sets import EvalData, encode_holdout

__all__ = [
    "ORIENTATION",
    "forget_answer_rows",
    "holdout_items",
    "membership_info",
    "membership_metrics",
    "score_items",
]

ORIENTATION = (
    "MUSE: AUC = P(a forget item scores less like a training member than a holdout item), "
    "ties 1/2; the target model near 0, a model that never saw the forget set near 0.5"
)


def score_items(
    scores: Scores, rows: list[int], texts: list[str], config: EvalConfig
) -> dict[str, list[float] | None]:
    """The per-item attack scores of the sequences ``rows`` (one per item) of ``scores``.

    Args:
        scores: from :func:`~npo.llm.eval.scoring.score_groups` with these ``token_rows``.
        rows: the sequence index of each item's answer.
        texts: each item's answer text.
        config: the options (``mia_k``).

    Returns:
        ``{"mia_<attack>": per-item scores or None}``.
    """
    cal = None
    if scores.calibration_logp is not None:
        cal = -scores.calibration_logp[rows] / scores.n_tokens[rows]
    per = privacy.attack_scores(
        [scores.tokens[r] for r in rows], texts, k=config.mia_k, calibration_loss=cal
    )
    return {f"mia_{a}": v for a, v in per.items()}


def holdout_items(
    model: Any,
    tokenizer: Any,
    data: EvalData,
    config: EvalConfig,
    *,
    autocast: bool,
    calibration: Any = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Score the holdout answers and return their per-item values.

    Returns:
        ``answer_loss``, ``answer_tokens`` and the ``mia_*`` lists of the holdout items.
    """
    enc = encode_holdout(data, tokenizer, config.length_limit)  # raises without a holdout
    texts = [row["answer"] for row in data.holdout.rows] if data.holdout else []
    n = len(enc)
    scores = score_groups(
        model,
        enc,
        [[i] for i in range(n)],
        batch_size=config.batch_size,
        pad_id=tokenizer.pad_token_id,
        autocast=autocast,
        token_rows=[True] * n,
        calibration=calibration,
        progress=progress,
    )
    item: dict[str, Any] = {
        "answer_loss": [float(v) for v in scores.nll],
        "answer_tokens": [int(v) for v in scores.n_tokens],
    }
    item.update(score_items(scores, list(range(n)), texts, config))
    item["n_truncated"] = enc.n_truncated
    return item


def _retain_auc(retain: Any, attack: str) -> float | None:
    value = None if retain is None else retain.metrics.get(f"mia_auc_{attack}")
    return float(value) if isinstance(value, (int, float)) else None


def membership_metrics(
    per_set: Mapping[str, Mapping[str, Any]], config: EvalConfig, retain: Any
) -> tuple[dict[str, float | None], list[str]]:
    """AUC and PrivLeak of every attack from the forget and holdout per-item scores.

    Args:
        per_set: the per-item values; ``holdout`` absent when there is no holdout split.
        config: the options (``mia_attack``, ``privleak_reference``).
        retain: the retain model's :class:`~npo.llm.eval.results.EvalResult` or None.

    Returns:
        ``(metrics, notes)``: ``mia_auc_<attack>``, ``privleak_<attack>``, ``privleak``.
    """
    m: dict[str, float | None] = {}
    notes: list[str] = []
    forget, holdout = per_set["forget"], per_set.get("holdout")
    for a in privacy.ATTACKS:
        f = forget.get(f"mia_{a}") if holdout is not None else None
        h = None if holdout is None else holdout.get(f"mia_{a}")
        m[f"mia_auc_{a}"] = None if f is None or h is None else privacy.mia_auc(f, h)
    missing_ref = []
    for a in privacy.ATTACKS:
        auc = m[f"mia_auc_{a}"]
        ref = config.privleak_reference
        if ref is None:
            ref = _retain_auc(retain, a)
            if auc is not None and ref is None:
                missing_ref.append(a)
        ok = auc is not None and ref is not None and ref > 0
        m[f"privleak_{a}"] = privacy.privleak(auc, ref) if ok else None  # type: ignore[arg-type]
    m["privleak"] = m[f"privleak_{config.mia_attack}"]
    if holdout is not None and forget.get("mia_calibrated") is None:
        notes.append(
            "mia_auc_calibrated is null: no calibration model was given (--calibration-model)"
        )
    if missing_ref:
        why = (
            "no retain-model results were given"
            if retain is None
            else "the retain-model results have no membership-inference AUC for them"
        )
        notes.append(
            f"privleak is null for {missing_ref}: {why} (pass the retain model's `npo eval` "
            "results, computed with the holdout split, or a fixed --privleak-reference)"
        )
    return m, notes


def membership_info(data: EvalData, config: EvalConfig, calibration: Any) -> dict[str, Any]:
    """What the results file records about membership inference (``info.mia``).

    Returns:
        The holdout split, its size, the orientation of the stored AUC, ``k``, the headline
        attack, the PrivLeak reference and the calibration model (or None).
    """
    holdout = data.holdout
    cfg = getattr(calibration, "config", None)
    return {
        "holdout": None if holdout is None else holdout.name,
        "n_holdout": None if holdout is None else len(holdout),
        "note": data.holdout_note or None,
        "auc_orientation": ORIENTATION,
        "scores": "loss-like: lower = more like a training member",
        "k": config.mia_k,
        "attack": config.mia_attack,
        "privleak_reference": (
            "retain model's AUC"
            if config.privleak_reference is None
            else f"fixed AUC {config.privleak_reference}"
        ),
        "calibration_model": None
        if calibration is None
        else getattr(cfg, "_name_or_path", None) or type(calibration).__name__,
    }


def forget_answer_rows(roles: list[str]) -> list[bool]:
    """Which sequences of the forget set get per-token statistics: each item's answer.

    Returns:
        One flag per sequence.
    """
    return [r == "answer" for r in roles]
