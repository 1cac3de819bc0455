"""The paper's synthetic claims (Sec. 4, Fig. 3/4/9) as bounds, at the paper's sizes.

Statistics come from :mod:`synthetic.stats` (median over seeds, log-interpolated first
crossing). A claim that does not reproduce is kept as a strict ``xfail`` with the measured
numbers, never loosened.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from synthetic.experiments import ReproduceConfig, references, run_fig3, run_fig4_alpha1, run_fig9
from synthetic.stats import crossing, median_curve

CONFIG = ReproduceConfig(progress=False)  # 5 seeds, 20000 reference steps, 2000 unlearning steps


@pytest.fixture(scope="module")
def fig4():
    return run_fig4_alpha1(CONFIG)


@pytest.fixture(scope="module")
def fig9():
    return run_fig9(CONFIG)


def _cross(result, method):
    c = result.curves[method]
    return crossing(
        result.steps, c["forget_distance"]["seeds"], c["retain_distance"]["seeds"], 0.02
    )


def test_references_converge():
    _, refs = references(CONFIG, 1.0)
    assert float(refs.grad_norm_ref.max()) < 1e-2
    assert float(refs.grad_norm_retr.max()) < 1e-2


def test_alpha1_start_point(fig4):
    row = fig4.table[0]
    assert 1.3 <= row["start_forget"] <= 2.1, row["start_forget"]
    assert row["start_retain"] < 0.03, row["start_retain"]


def test_ga_forget_kl_is_linear_late_npo_is_not(fig9):
    rows = {r["method"]: r for r in fig9.table}
    for m in ("ga", "ga+rt", "ga+kl"):
        assert rows[m]["late_linear_r2"] >= 0.98, rows[m]
        assert rows[m]["verdict"] == "linear", rows[m]
    for m in ("npo", "npo+rt", "npo+kl"):
        assert rows[m]["verdict"] == "logarithmic", rows[m]
        assert rows[m]["log_r2"] > rows[m]["linear_r2"] + 0.1, rows[m]
        assert rows[m]["final_forget_kl"] < rows["ga"]["final_forget_kl"] / 3


def test_npo_rt_beats_ga_methods_at_forget_distance_002(fig4):
    npo_rt, ga_rt, ga = _cross(fig4, "npo+rt"), _cross(fig4, "ga+rt"), _cross(fig4, "ga")
    assert npo_rt is not None and ga_rt is not None and ga is not None
    assert npo_rt.other < ga_rt.other < ga.other, (npo_rt, ga_rt, ga)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "does not reproduce at forget distance 0.02 (seeds 0-4, Table 1 settings): median "
        "retain distance NPO 0.116 vs GA 0.096; per seed NPO is better on 2, worse on 1, tied "
        "on 1, and seed 2's path never reaches 0.02. The Pareto paths of GA and NPO are "
        "lr-independent (checked at NPO lr 5e-4/1e-3/5e-3) and nearly coincide above forget "
        "distance 0.05; NPO's advantage is where GA overshoots (GA's final retain distance "
        "1.28 vs NPO's 0.21)."
    ),
)
def test_npo_beats_ga_without_retain_data(fig4):
    npo, ga = _cross(fig4, "npo"), _cross(fig4, "ga")
    assert npo is not None and ga is not None
    assert npo.other < ga.other, (npo, ga)


def test_without_retain_data_npo_does_not_collapse_like_ga(fig4):
    rows = {r["method"]: r for r in fig4.table}
    assert rows["npo"]["final_retain_median"] < rows["ga"]["final_retain_median"] / 3
    assert rows["npo"]["final_forget_median"] < rows["ga"]["final_forget_median"]


def test_idk_rt_plateaus_far_above_the_others(fig4):
    rows = {r["method"]: r for r in fig4.table}
    idk = rows["idk+rt"]["min_forget"]
    others = [r["min_forget"] for m, r in rows.items() if m != "idk+rt"]
    assert idk > 0.3 and idk > 20 * max(others), (idk, others)
    f = median_curve(fig4.curves["idk+rt"]["forget_distance"]["seeds"])
    late = f[fig4.steps >= 1000]
    assert np.ptp(late) < 0.05 * late.mean()  # a plateau, not a slow descent


def test_npo_tends_to_ga_as_beta_goes_to_zero():
    result = run_fig3(ReproduceConfig(seeds=5, steps=3000, progress=False))
    gaps = [r["max_forget_gap_to_ga"] for r in result.table]  # beta ascending
    betas = [r["beta"] for r in result.table]
    assert betas == sorted(betas)
    assert all(a < b for a, b in itertools.pairwise(gaps)), dict(zip(betas, gaps))
    assert gaps[0] < 0.25 * gaps[-1], dict(zip(betas, gaps))
