"""TOFU's metrics on per-item numbers: no model, no tokenizer, only numpy/scipy.

``rouge-score`` serves ROUGE-L; :mod:`npo.llm.eval.evaluate` computes the per-item inputs.

Inputs are *average token losses* ``l = -(1/|y|) log pi(y|x)`` (the mean negative log-likelihood
over an answer's tokens, EOS included), so ``exp(-l)`` is the length-normalized probability
``pi(y|x)^(1/|y|)``. Definitions (Maini et al., TOFU, arXiv 2401.06121; code:
``locuslab/tofu``):

- probability, forget/retain: ``mean_i exp(-l_i)``;
- probability, real authors/world facts: ``mean_i P(a_i) / (P(a_i) + sum_j P(a_ij))`` with
  length-normalized ``P`` (``a`` the correct answer, ``a_ij`` the perturbed ones);
- truth ratio per item: ``R = M_j(P(a_pert_j)) / P(a_correct)``, ``M`` the geometric mean
  (TOFU's aggregation scripts: the arithmetic mean of the losses) or, with ``mean=
  "arithmetic"``, the arithmetic mean of the probabilities (TOFU's ``utils.get_model_utility``
  and the paper's formula); the correct side is the paraphrased answer on forget/retain and
  ``answer`` on real authors/world facts;
- truth-ratio score: forget ``mean min(R, 1/R)``, the others ``mean max(0, 1 - R)``;
- forget quality: the p-value of ``scipy.stats.ks_2samp`` between two models' per-item ``R``;
- model utility: the harmonic mean of the utility components (zero if one is zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp

__all__ = [
    "forget_quality",
    "harmonic_mean",
    "is_degenerate",
    "normalized_probability",
    "probability",
    "rouge_l_recall",
    "truth_ratio",
    "truth_ratio_score",
]


def _losses(values: Any, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != ndim or arr.shape[0] == 0 or (ndim == 2 and arr.shape[1] == 0):
        shape = "(n_items,)" if ndim == 1 else "(n_items, n_perturbed)"
        raise ValueError(f"{name} must be a non-empty array of shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (average token losses), got {arr}")
    return arr


def probability(answer_loss: ArrayLike) -> np.ndarray:
    """Per-item ``exp(-l)``: the answer's length-normalized probability.

    Returns:
        (n_items,) probabilities.
    """
    return np.exp(-_losses(answer_loss, "answer_loss", 1))


def normalized_probability(answer_loss: ArrayLike, perturbed_loss: ArrayLike) -> np.ndarray:
    """The real-authors / world-facts probability of each item.

    ``P(a) / (P(a) + sum_j P(a_j))`` with ``P = exp(-l)`` (length-normalized), computed in log
    space (no underflow when every probability is tiny).

    Args:
        answer_loss: (n,) average token losses of the correct answers.
        perturbed_loss: (n, k) those of the perturbed answers.

    Returns:
        (n,) probabilities.
    """
    a = _losses(answer_loss, "answer_loss", 1)
    p = _losses(perturbed_loss, "perturbed_loss", 2)
    if p.shape[0] != a.shape[0]:
        raise ValueError(f"{a.shape[0]} answer losses but {p.shape[0]} rows of perturbed losses")
    everything = np.concatenate([-a[:, None], -p], axis=1)  # log P of every candidate
    return np.exp(-a - logsumexp(everything, axis=1))


def truth_ratio(
    correct_loss: ArrayLike,
    perturbed_loss: ArrayLike,
    *,
    mean: str = "geometric",
) -> np.ndarray:
    """Per-item truth ratio ``R = M_j(P(a_pert_j)) / P(a_correct)``, ``P = exp(-l)``.

    ``mean="geometric"``: ``R = exp(l_correct - mean_j l_pert_j)`` (TOFU's
    ``aggregate_eval_stat.py`` and ``get_forget_quality``; there ``curr = 1/R`` is stored).
    ``mean="arithmetic"``: ``R = mean_j exp(-l_pert_j) / exp(-l_correct)`` (TOFU's
    ``utils.get_model_utility``). ``R < 1``: the correct answer is the more likely.

    Args:
        correct_loss: (n,) average token losses of the correct side.
        perturbed_loss: (n, k) those of the perturbed answers.
        mean: ``"geometric"`` or ``"arithmetic"``.

    Returns:
        (n,) truth ratios.
    """
    c = _losses(correct_loss, "correct_loss", 1)
    p = _losses(perturbed_loss, "perturbed_loss", 2)
    if p.shape[0] != c.shape[0]:
        raise ValueError(
            f"{c.shape[0]} correct-answer losses but {p.shape[0]} rows of perturbed losses"
        )
    if mean == "geometric":
        log_m = -p.mean(axis=1)
    elif mean == "arithmetic":
        log_m = logsumexp(-p, axis=1) - np.log(p.shape[1])
    else:
        raise ValueError(f"mean must be 'geometric' or 'arithmetic', got {mean!r}")
    return np.exp(log_m + c)


def truth_ratio_score(ratios: ArrayLike, *, forget: bool) -> float:
    """TOFU's truth-ratio aggregate.

    ``mean min(R, 1/R)`` on the forget set (1 when the model cannot tell correct from
    perturbed), ``mean max(0, 1 - R)`` elsewhere (1 when it prefers the correct answer by far).

    Returns:
        The score, in [0, 1].
    """
    r = np.asarray(ratios, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or not (np.isfinite(r).all() and (r > 0).all()):
        raise ValueError(
            f"truth ratios must be a non-empty 1-d array of finite positive numbers, got {r}"
        )
    if forget:
        return float(np.mean(np.minimum(r, 1.0 / r)))
    return float(np.mean(np.maximum(0.0, 1.0 - r)))


def forget_quality(ratios: ArrayLike, retain_ratios: ArrayLike) -> tuple[float, float]:
    """TOFU's forget quality: a two-sample Kolmogorov-Smirnov test of the forget truth ratios.

    ``scipy.stats.ks_2samp`` (two-sided, ``method="auto"``) between the unlearned model's and
    the retain model's per-item forget truth ratios. The test depends on the samples only
    through their order, so ``R`` and TOFU's ``1/R`` give the same p-value.

    Returns:
        ``(p-value, statistic)``; the p-value is the forget quality.
    """
    from scipy.stats import ks_2samp

    a = np.asarray(ratios, dtype=np.float64)
    b = np.asarray(retain_ratios, dtype=np.float64)
    for name, x in (("ratios", a), ("retain_ratios", b)):
        if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
            raise ValueError(
                f"forget_quality: {name} must be a non-empty 1-d finite array, got shape {x.shape}"
            )
    res = ks_2samp(a, b)
    return float(res.pvalue), float(res.statistic)


def harmonic_mean(values: ArrayLike) -> float:
    """``n / sum_i 1/x_i`` of non-negative values; 0 if any value is 0.

    As ``scipy.stats.hmean``, which TOFU uses for model utility.

    Returns:
        The harmonic mean.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all() or (x < 0).any():
        raise ValueError(
            f"harmonic mean needs a non-empty list of finite values >= 0, got {list(x)}"
        )
    if (x == 0).any():
        return 0.0
    return float(x.size / np.sum(1.0 / x))


@lru_cache(maxsize=1)
def _scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise ValueError(
            "ROUGE-L needs the 'rouge-score' package (pip install 'npo[llm]')"
        ) from None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-pair ROUGE-L recall ``LCS(pred, ref) / |ref|``, as TOFU scores its generations.

    Over ``rouge-score``'s tokens (lower-cased, non-alphanumerics dropped, Porter stemmer on);
    0 for a reference without tokens.

    Returns:
        (n,) recalls.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    scorer = _scorer()
    return np.array(
        [scorer.score(ref, pred)["rougeL"].recall for pred, ref in zip(predictions, references)],
        dtype=np.float64,
    )


def is_degenerate(tokens: ArrayLike, *, min_copies: int = 3, min_tokens: int = 6) -> bool:
    """Whether a generation has collapsed into repetition (GA's "narr narr narr ...").

    Some block of ``n`` tokens occurs at least ``min_copies`` times back to back, and the
    repetition spans at least ``min_tokens`` tokens (``copies * n >= min_tokens``; this spares
    numbers such as ``2000`` that a subword tokenizer splits into ``2 0 0 0``). With the
    defaults (3, 6) none of TOFU's 10,468 reference, paraphrased and perturbed answers counts
    as degenerate under a 512-token BPE. O(len^2) at worst; generations are short.

    Returns:
        True for a degenerate generation.
    """
    if min_copies < 2 or min_tokens < 1:
        raise ValueError(
            f"need min_copies >= 2 and min_tokens >= 1, got {min_copies}, {min_tokens}"
        )
    t = np.asarray(tokens, dtype=np.int64)
    for n in range(1, t.size // min_copies + 1):
        same = t[n:] == t[:-n]  # same[i]: t[i] == t[i + n]
        if not same.any():
            continue
        # a run of r consecutive True in `same` covers r // n + 1 back-to-back copies of a block
        edges = np.flatnonzero(np.diff(np.concatenate([[0], same.astype(np.int8), [0]])))
        copies = int((edges[1::2] - edges[::2]).max()) // n + 1
        if copies >= min_copies and copies * n >= min_tokens:
            return True
    return False
