"""Membership inference, PrivLeak and the attacks on the small-transformer task, where which
items a model was trained on is known by construction. Claims that do not reproduce stay as
strict xfails with their numbers.

The default suite reads the cached quick run (one seed, shared with test_transformer_task);
the median-over-seeds claims and the attack study are slow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from npo.cli import main
from synthetic.transformer import TransformerConfig, ks_levels, run_attacks, run_transformer
from synthetic.transformer.claims import privleak_at_matched_utility, quantization_points

QUICK = TransformerConfig(quick=True, progress=False)
# the median claims: three seeds of the quick size on forget10 (shares seed 0 with QUICK)
SEEDS = TransformerConfig(
    quick=True, progress=False, seeds=3, splits=(10,), methods=("ga+rt", "npo", "npo+rt")
)


@pytest.fixture(scope="module")
def quick():
    return run_transformer(QUICK)


def test_target_separates_forget_from_holdout_and_retain_does_not(quick):
    """Seed 0: the target's AUC is 0 (every forget item looks trained on); the retain model,
    which saw neither set, is far closer to 0.5. With 3 forget and 3 holdout authors its AUC
    still varies widely (the median over seeds is tested in the slow test)."""
    for split, target in quick.extras["target"].items():
        retain = quick.extras["retain"][split]
        for attack in ("loss", "zlib", "min_k", "min_k_plus_plus"):
            assert target[f"mia_auc_{attack}"] <= 0.05, (split, attack, target)
            assert target[f"privleak_{attack}"] < -85, (split, attack, target)
        for attack in ("loss", "min_k"):
            assert abs(retain[f"mia_auc_{attack}"] - 0.5) < 0.35, (split, attack, retain)


@pytest.mark.xfail(
    strict=True,
    reason="measured (seed 0): the retain model's Min-K%++ AUC is 0.126, 0.046, 0.499 at "
    "forget10/20/50 (LOSS 0.34, 0.20, 0.48; Min-K% 0.35, 0.21, 0.55): the standardized "
    "statistic separates 3 forget from 3 holdout authors that the retain model saw neither of",
)
def test_retain_model_min_k_plus_plus_near_half(quick):
    for split, retain in quick.extras["retain"].items():
        assert abs(retain["mia_auc_min_k_plus_plus"] - 0.5) < 0.35, (split, retain)


def test_privacy_outputs_and_granularity(quick, tmp_path):
    curve = quick.curves["forget10"]["npo+rt"]
    assert len(curve["privleak"]["seeds"][0]) == len(quick.steps)
    assert quick.extras["n_forget_items"]["forget10"] == 36
    levels = ks_levels(36)
    assert levels[0] == 1.0 and len(levels) == 37 and np.all(np.diff(levels) <= 0)
    fq = [r["final_forget_quality"] for r in quick.table]
    assert all(any(np.isclose(v, levels, rtol=1e-6)) for v in fq if v is not None)
    row = next(r for r in quick.table if r["method"] == "(target)")
    assert row["final_mia_auc"] == 0.0 and row["final_privleak"] == pytest.approx(-100.0, abs=1e-9)
    iv = quick.extras["intervals"]["forget10"]["npo+rt"]["privleak"]
    assert iv["n"] == 1 and iv["low"] == iv["high"] == iv["median"]


def test_cli_writes_the_privacy_figure(quick, tmp_path):
    argv = ["reproduce", "transformer", "--quick", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert (tmp_path / "transformer-privacy.png").stat().st_size > 1000
    doc = json.loads((tmp_path / "transformer.json").read_text())
    assert "mia_auc_min_k" in doc["curves"]["forget10"]["npo+rt"]
    assert "intervals" in doc["extras"] and "per_seed" in doc["extras"]


@pytest.fixture(scope="module")
def seeds():
    return run_transformer(SEEDS)


@pytest.mark.slow
def test_median_target_and_retain_auc(seeds):
    per = seeds.extras["per_seed"]["forget10"]
    target = np.median(per["(target)"]["mia_auc_min_k"])
    retain = np.median(per["(retain)"]["mia_auc_min_k"])
    assert target <= 0.05, per["(target)"]
    assert abs(retain - 0.5) <= 0.15, per["(retain)"]


@pytest.mark.slow
def test_npo_rt_privleak_nearer_zero_than_ga_rt_at_matched_utility(seeds):
    m = privleak_at_matched_utility(seeds, "forget10")
    assert m["median"]["npo+rt"] < m["median"]["ga+rt"], m


@pytest.fixture(scope="module")
def attacks():
    return run_attacks(SEEDS)


def _relearn(attacks):
    return {r["run"]: r for r in attacks.table if r["attack"] == "relearn"}


@pytest.mark.slow
def test_relearning_brings_forget_knowledge_back(attacks):
    rows = _relearn(attacks)
    for name in ("ga+rt", "npo", "npo+rt"):
        r = rows[name]
        assert r["steps_to_recovery"] is not None, r
        assert r["forget_prob_end"] > r["forget_prob_start"] + 0.2, r


def _slower(sam: dict, plain: dict) -> bool:
    # fewer steps to recovery is faster; never recovering within the budget is slowest, and
    # two runs that never recover are ordered by the forget probability they end at
    a, b = sam["steps_to_recovery"], plain["steps_to_recovery"]
    if a is not None and b is not None:
        return a > b
    if a is None and b is None:
        return sam["forget_prob_end"] < plain["forget_prob_end"]
    return a is None


@pytest.mark.slow
def test_sam_recovers_more_slowly_under_relearning(attacks):
    """Fan et al.'s claim: SAM on the forget side makes unlearning resilient to relearning."""
    rows = _relearn(attacks)
    for base in ("npo", "npo+rt"):
        assert _slower(rows[f"{base}+sam"], rows[base]), (rows[f"{base}+sam"], rows[base])


@pytest.mark.slow
def test_quantization_prediction(attacks):
    points = quantization_points(attacks)
    small = [p for p in points if p["ratio"] < 0.5]
    large = [p for p in points if p["ratio"] > 2]
    assert small and large, points
    assert all(p["recovery"] >= 0.5 for p in small), small
    assert all(p["recovery"] < 0.5 for p in large), large
