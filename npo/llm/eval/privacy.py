"""Membership inference and privacy leakage on per-item numbers: numpy/scipy only.

Scores (one per item; all *loss-like*: lower means "looks like a training member"), from
the answer tokens of ``prompt + answer + EOS`` (EOS included, as every other metric here):

- ``loss``: the mean answer-token NLL ``l = -(1/n) sum_t log p(y_t)`` (Yeom et al. 2018);
- ``zlib``: ``l / z`` with ``z`` the length in bytes of ``zlib.compress`` (level 6) of the
  item's answer text, UTF-8 encoded, as stored in the data (Carlini et al. 2021);
- ``min_k``: ``-mean`` of the ``max(1, floor(k n))`` lowest token log-probs (Min-K% Prob,
  Shi et al., arXiv 2310.16789; ``k = 0.4`` by default, as open-unlearning uses);
- ``min_k_plus_plus``: the same over ``(log p(y_t) - mu_t) / sigma_t``, each token's log-prob
  standardized by the mean and standard deviation of ``log p`` under the model's next-token
  distribution at that position (Min-K%++, Zhang et al., arXiv 2404.02936; ``sigma^2``
  floored at 1e-6);
- ``calibrated``: ``l - l_cal``, the loss minus that of a calibration model on the same item
  (the reference-model attack of Carlini et al. 2022; e.g. the retain model).

AUC (:func:`mia_auc`), stored in **MUSE's orientation**: the probability that a random forget
item (a member of the target's training data) scores *less* like a member than a random
holdout item (never trained on), ties counting 1/2:
``AUC = U / (n_f n_h)``, ``U`` the Mann-Whitney statistic of the forget scores against the
holdout scores. The target model scores near 0, a model that never saw the forget set near
0.5, and an over-unlearned model above 0.5. (open-unlearning stores ``1 - AUC``.)

PrivLeak (MUSE, Shi et al., arXiv 2407.06460): ``100 (AUC - AUC_ref) / AUC_ref`` percent,
``AUC_ref`` the retain model's AUC (or, open-unlearning's fixed-reference variant, a given
value such as 0.5). Negative: under-unlearning (the forget set still looks trained on);
positive: over-unlearning; 0: indistinguishable from the retain model.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "ATTACKS",
    "attack_scores",
    "holdout_split_for",
    "mia_auc",
    "min_k",
    "min_k_plus_plus",
    "privleak",
    "zlib_length",
]

ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus", "calibrated")
_VAR_FLOOR = 1e-6


def holdout_split_for(eval_split: str) -> str:
    """The holdout split of a forget evaluation split: ``forget10_perturbed`` -> ``holdout10``.

    TOFU (``hf:locuslab/TOFU``) publishes ``holdout01/05/10``: as many never-trained authors as
    ``forget01/05/10``.

    Returns:
        The holdout split's name.
    """
    m = re.fullmatch(r"forget(\d\d)(_perturbed)?", eval_split)
    if not m:
        raise ValueError(f"not a forget split: {eval_split!r}")
    return f"holdout{m[1]}"


def _tokens(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a non-empty 1-d finite array, got shape {arr.shape}")
    return arr


def _check_k(k: float) -> None:
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")


def min_k(logp: ArrayLike, k: float = 0.4) -> float:
    """Min-K% Prob of one item: ``-mean`` of its ``max(1, floor(k n))`` lowest token log-probs.

    Args:
        logp: (n,) the answer tokens' log-probs.
        k: the fraction of tokens kept, in (0, 1].

    Returns:
        The score (loss-like: lower for members).
    """
    _check_k(k)
    lp = np.sort(_tokens(logp, "logp"))
    return float(-lp[: max(1, int(k * lp.size))].mean())


def min_k_plus_plus(logp: ArrayLike, mean: ArrayLike, std: ArrayLike, k: float = 0.4) -> float:
    """Min-K%++ of one item: :func:`min_k` over ``(logp - mu) / sigma``.

    ``sigma^2`` is floored at 1e-6 (a next-token distribution on one token).

    Args:
        logp: (n,) the answer tokens' log-probs.
        mean: (n,) ``mu``, the mean of ``log p`` under each position's distribution.
        std: (n,) ``sigma``, its standard deviation.
        k: the fraction of tokens kept, in (0, 1].

    Returns:
        The score (loss-like: lower for members).
    """
    lp, mu, sd = (_tokens(x, n) for x, n in ((logp, "logp"), (mean, "mean"), (std, "std")))
    if not lp.shape == mu.shape == sd.shape:
        raise ValueError(f"logp, mean, std shapes differ: {lp.shape}, {mu.shape}, {sd.shape}")
    z = (lp - mu) / np.sqrt(np.maximum(sd * sd, _VAR_FLOOR))
    return min_k(z, k)


def zlib_length(text: str) -> int:
    """Bytes of ``zlib.compress(text.encode("utf-8"))`` (level 6, the default).

    Returns:
        The compressed length (>= 1).
    """
    return len(zlib.compress(text.encode("utf-8")))


def attack_scores(
    tokens: Sequence[np.ndarray],
    texts: Sequence[str],
    *,
    k: float = 0.4,
    calibration_loss: ArrayLike | None = None,
) -> dict[str, list[float] | None]:
    """Every attack's score of each item (see the module docstring).

    Args:
        tokens: per item a ``(3, n)`` array: the answer tokens' log-probs, ``mu`` and ``sigma``.
        texts: per item the answer text (for ``zlib``).
        k: the Min-K% fraction.
        calibration_loss: per item the calibration model's mean answer NLL (None: no
            ``calibrated`` scores).

    Returns:
        ``{attack: per-item scores}``; ``calibrated`` is None without a calibration model.
    """
    if len(tokens) != len(texts):
        raise ValueError(f"{len(tokens)} token arrays for {len(texts)} texts")
    loss = np.array([-_tokens(t[0], "logp").mean() for t in tokens])
    out: dict[str, list[float] | None] = {
        "loss": loss.tolist(),
        "zlib": [float(v / zlib_length(s)) for v, s in zip(loss, texts)],
        "min_k": [min_k(t[0], k) for t in tokens],
        "min_k_plus_plus": [min_k_plus_plus(t[0], t[1], t[2], k) for t in tokens],
        "calibrated": None,
    }
    if calibration_loss is not None:
        cal = _tokens(calibration_loss, "calibration_loss")
        if cal.shape != loss.shape:
            raise ValueError(f"{cal.size} calibration losses for {loss.size} items")
        out["calibrated"] = (loss - cal).tolist()
    return out


def mia_auc(forget: ArrayLike, holdout: ArrayLike) -> float:
    """AUC of forget (members) versus holdout (non-members), in MUSE's orientation.

    ``U / (n_f n_h)`` with ``U = scipy.stats.mannwhitneyu(forget, holdout).statistic``: the
    number of (forget, holdout) pairs where the forget item's loss-like score is the higher,
    ties counting 1/2. 0: every forget item looks more trained-on than every holdout item
    (the target model); 0.5: indistinguishable; 1: the reverse.

    Args:
        forget: (n_f,) loss-like scores of the forget items.
        holdout: (n_h,) those of the holdout items.

    Returns:
        The AUC in [0, 1].
    """
    from scipy.stats import mannwhitneyu

    f, h = _tokens(forget, "forget scores"), _tokens(holdout, "holdout scores")
    u = mannwhitneyu(f, h, alternative="two-sided", method="asymptotic").statistic
    return float(u) / (f.size * h.size)


def privleak(auc: float, reference_auc: float) -> float:
    """MUSE's PrivLeak in percent: ``100 (AUC - AUC_ref) / AUC_ref``.

    Args:
        auc: the model's AUC (:func:`mia_auc`'s orientation).
        reference_auc: the retain model's AUC, or a fixed value such as 0.5.

    Returns:
        The leak: negative under-unlearning, positive over-unlearning, 0 perfect.
    """
    if not 0 < reference_auc <= 1:
        raise ValueError(f"the reference AUC must be in (0, 1], got {reference_auc}")
    if not 0 <= auc <= 1:
        raise ValueError(f"auc must be in [0, 1], got {auc}")
    return 100.0 * (auc - reference_auc) / reference_auc
