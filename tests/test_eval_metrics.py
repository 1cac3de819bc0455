"""TOFU's metrics on hand-computed inputs: probabilities, truth ratio and both aggregations,
the KS forget quality against scipy directly, the harmonic mean, ROUGE-L recall on known
strings, and the repetition (gibberish) criterion."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from npo.llm.eval import metrics as tm

LN2, LN4, LN16 = math.log(2), math.log(4), math.log(16)


def test_probability_is_the_length_normalised_likelihood():
    # average token losses 0 and ln 2 -> per-token probabilities 1 and 1/2
    assert tm.probability([0.0, LN2]) == pytest.approx([1.0, 0.5])


def test_normalized_probability_by_hand():
    # P(a) = 1/2, perturbed 1/4 and 1/4: 0.5 / (0.5 + 0.25 + 0.25) = 1/2
    # P(a) = 1/4, perturbed 1/2 and 1/4: 0.25 / 1.0 = 1/4
    out = tm.normalized_probability([LN2, LN4], [[LN4, LN4], [LN2, LN4]])
    assert out == pytest.approx([0.5, 0.25])
    # every probability far below float range: equal losses still give 1 / (1 + k)
    assert tm.normalized_probability([5000.0], [[5000.0] * 3]) == pytest.approx([0.25])


def test_truth_ratio_geometric_and_arithmetic_by_hand():
    # correct side P = 1/2; perturbed P = 1/4 and 1/16
    # geometric: sqrt(1/4 * 1/16) = 1/8 -> R = (1/8) / (1/2) = 1/4
    # arithmetic: (1/4 + 1/16) / 2 = 5/32 -> R = (5/32) / (1/2) = 5/16
    assert tm.truth_ratio([LN2], [[LN4, LN16]]) == pytest.approx([0.25])
    assert tm.truth_ratio([LN2], [[LN4, LN16]], mean="arithmetic") == pytest.approx([5 / 16])
    with pytest.raises(ValueError, match="geometric' or 'arithmetic"):
        tm.truth_ratio([LN2], [[LN4]], mean="harmonic")


def test_truth_ratio_matches_tofus_loss_formula():
    """TOFU's aggregation stores curr = exp(mean_j perturbed_loss - paraphrased_loss) = 1/R."""
    rng = np.random.default_rng(0)
    para, pert = rng.uniform(0.2, 3, 50), rng.uniform(0.2, 3, (50, 5))
    curr = np.exp(pert.mean(-1) - para)
    r = tm.truth_ratio(para, pert)
    assert r == pytest.approx(1 / curr)
    # both aggregations written TOFU's way (aggregate_eval_stat.py) agree with ours
    assert tm.truth_ratio_score(r, forget=True) == pytest.approx(
        np.mean(np.minimum(curr, 1 / curr))
    )
    assert tm.truth_ratio_score(r, forget=False) == pytest.approx(
        np.mean(np.maximum(0, 1 - 1 / curr))
    )
    # the arithmetic variant is TOFU utils.get_model_utility's mean(exp(-pert)) / exp(-para)
    arith = np.exp(-pert).mean(-1) / np.exp(-para)
    assert tm.truth_ratio(para, pert, mean="arithmetic") == pytest.approx(arith)


def test_truth_ratio_aggregations_by_hand():
    # forget: min(R, 1/R) of 1/2, 2, 1 -> 1/2, 1/2, 1 -> 2/3
    assert tm.truth_ratio_score([0.5, 2.0, 1.0], forget=True) == pytest.approx(2 / 3)
    # others: max(0, 1 - R) of 1/4, 2 -> 3/4, 0 -> 3/8
    assert tm.truth_ratio_score([0.25, 2.0], forget=False) == pytest.approx(3 / 8)
    with pytest.raises(ValueError, match="finite positive"):
        tm.truth_ratio_score([0.5, float("nan")], forget=True)


@given(
    st.lists(st.floats(0.0, 20.0), min_size=2, max_size=6),
    st.floats(0.0, 20.0),
)
def test_arithmetic_truth_ratio_is_never_below_the_geometric(pert, correct):
    """AM >= GM: the legacy (arithmetic) ratio is >= ours, so its utility score is <= ours."""
    g = tm.truth_ratio([correct], [pert])[0]
    a = tm.truth_ratio([correct], [pert], mean="arithmetic")[0]
    assert a >= g * (1 - 1e-12)
    assert (
        tm.truth_ratio_score([a], forget=False) <= tm.truth_ratio_score([g], forget=False) + 1e-12
    )


def test_forget_quality_is_scipys_ks_pvalue_in_either_orientation():
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(0, 1, 40), rng.lognormal(0.4, 1, 40)
    p, d = tm.forget_quality(a, b)
    ref = stats.ks_2samp(a, b)
    assert (p, d) == (pytest.approx(ref.pvalue, rel=1e-12), pytest.approx(ref.statistic))
    # R and TOFU's 1/R give the same p-value (the test only sees the order)
    assert tm.forget_quality(1 / a, 1 / b)[0] == pytest.approx(p, rel=1e-12)
    assert tm.forget_quality(a, a) == (1.0, 0.0)
    # clearly different samples: a small p-value, statistic 1 for disjoint supports
    p_far, d_far = tm.forget_quality(a, a + 100)
    assert p_far < 1e-10 and d_far == 1.0


def test_harmonic_mean_by_hand_and_against_scipy():
    assert tm.harmonic_mean([1.0, 0.5, 0.25]) == pytest.approx(3 / 7)
    assert tm.harmonic_mean([0.4, 0.0, 0.9]) == 0.0  # a zero gives zero
    x = np.random.default_rng(2).uniform(0.01, 1, 9)
    assert tm.harmonic_mean(x) == pytest.approx(stats.hmean(x))
    with pytest.raises(ValueError, match=">= 0"):
        tm.harmonic_mean([0.5, -0.1])


def test_rouge_l_recall_on_known_strings():
    ref = "the cat sat on the mat"
    preds = [
        "the cat on the mat",  # LCS 5 of 6 reference tokens
        "THE CAT SAT, ON THE MAT!",  # case and punctuation do not count
        "mat the on sat cat the",  # LCS "the sat the": 3 of 6
        "",
    ]
    out = tm.rouge_l_recall(preds, [ref] * 4)
    assert out == pytest.approx([5 / 6, 1.0, 3 / 6, 0.0])
    # reversed order keeps one token in common: recall 1/4
    assert tm.rouge_l_recall(
        ["delta gamma beta alpha"], ["alpha beta gamma delta"]
    ) == pytest.approx([0.25])
    # the Porter stemmer: writes/write and novels/novel match, wrote/writes do not
    assert tm.rouge_l_recall(["she wrote two novel"], ["She writes novels"]) == pytest.approx(
        [2 / 3]
    )
    assert tm.rouge_l_recall(["she write novels"], ["She writes novels"]) == pytest.approx([1.0])


def test_degenerate_generations():
    assert tm.is_degenerate([5, 6, 5, 6, 5, 6])  # a 2-token block three times
    assert tm.is_degenerate([1, 2, 3] + [9] * 6 + [4])  # "narr narr narr narr narr narr"
    assert not tm.is_degenerate([9, 9, 9, 9, 9])  # 5 tokens: below the 6-token span
    assert not tm.is_degenerate([2, 0, 0, 0, 7])  # "2000" split into digits
    assert not tm.is_degenerate([1, 2, 1, 2, 3, 4])  # only two copies
    assert not tm.is_degenerate([])
    assert tm.is_degenerate([7, 8, 9] * 3, min_tokens=9)
    assert not tm.is_degenerate([7, 8, 9] * 3, min_copies=4)


def test_reference_answers_are_not_degenerate(tofu_dir):
    """The criterion's false-positive rate on human-like text: none of TOFU's answers."""
    from npo.llm.data import read_split
    from npo.llm.model import train_tokenizer

    full = read_split(tofu_dir, "full")
    tok = train_tokenizer(full.column("question")[:400] + full.column("answer")[:400], 512)
    texts = list(full.column("answer"))
    for name in (
        "forget10_perturbed",
        "retain_perturbed",
        "real_authors_perturbed",
        "world_facts_perturbed",
    ):
        for row in read_split(tofu_dir, name).rows:
            texts += [row["answer"], *row["perturbed_answer"], row.get("paraphrased_answer", "")]
    ids = tok([t for t in texts if t], add_special_tokens=False)["input_ids"]
    assert len(ids) == 10468
    assert sum(tm.is_degenerate(t) for t in ids) == 0
