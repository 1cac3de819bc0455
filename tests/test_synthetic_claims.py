"""The paper's synthetic claims (Sec. 4, Fig. 3/4/9) as bounds, at the paper's sizes.

Statistics come from :mod:`synthetic.stats` (median over seeds, log-interpolated first
crossing). A claim that does not reproduce is kept as a strict ``xfail`` with the measured
numbers, never loosened.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from npo.experiment import ReproduceConfig
from synthetic.beyond import late_log_slope, run_beta_rate, run_optimizers, run_theorem2_experiment
from synthetic.experiments import references, run_fig3, run_fig4_alpha1, run_fig9
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


def test_late_log_slope_reads_the_log_coefficient():
    steps = np.unique(np.geomspace(1, 1e4, 50).round())
    assert late_log_slope(steps, 3.0 + 0.7 * np.log(steps)) == pytest.approx(0.7, rel=1e-12)
    with pytest.raises(ValueError, match="at least 3 finite points"):
        late_log_slope(np.array([1.0, 10.0]), np.array([0.0, 1.0]))


def test_npo_log_rate_is_one_over_beta_in_simulation():
    """The constant-tangent-kernel prediction d(-log-ratio)/d(log t) -> 1/beta, on the
    random-features task (quick size: 3 seeds, 5000 steps)."""
    result = run_beta_rate(ReproduceConfig(seeds=3, steps=5000, progress=False))
    rows = {r["beta"]: r for r in result.table}
    for beta in (0.25, 0.5, 1.0):
        assert 0.8 <= rows[beta]["slope_times_beta"] <= 1.2, rows[beta]
        assert rows[beta]["verdict"] == "logarithmic", rows[beta]


def test_optimizers_sign_descent_undoes_npo_slowdown():
    result = run_optimizers(ReproduceConfig(seeds=3, steps=5000, progress=False))
    rows = {r["method"]: r for r in result.table}
    for opt in ("gd", "sgd", "momentum", "adam", "signgd"):
        assert rows[f"ga/{opt}"]["drift_verdict"] == "linear", rows[f"ga/{opt}"]
    for opt in ("gd", "sgd", "momentum"):
        assert rows[f"npo/{opt}"]["drift_verdict"] == "logarithmic", rows[f"npo/{opt}"]
    ratio = {
        o: rows[f"npo/{o}"]["final_drift"] / rows[f"ga/{o}"]["final_drift"]
        for o in ("gd", "signgd")
    }
    assert ratio["gd"] < 0.15 and ratio["signgd"] > 0.4, ratio
    assert rows["npo/signgd"]["drift_rate_exponent"] > 0.6, rows["npo/signgd"]


def test_theorem2_experiment_holds_the_bands():
    result = run_theorem2_experiment(ReproduceConfig(steps=20_000, progress=False))
    rows = {r["method"]: r for r in result.table}
    assert rows["ga"]["verdicts"] == "linear" and rows["npo"]["verdicts"] == "logarithmic"
    for m in ("ga", "npo"):
        assert rows[m]["inside_derived_band"] == "8/8" and rows[m]["inside_fitted_band"] == "8/8"
    assert rows["ga"]["min_linear_r2"] >= 0.999
    assert (
        result.curves["npo"]["param_drift"]["median"][-1]
        < result.curves["ga"]["param_drift"]["median"][-1] / 10
    )
