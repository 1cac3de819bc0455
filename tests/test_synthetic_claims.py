"""The paper's synthetic claims (Sec. 4, Fig. 3/4/9) as bounds, at the paper's sizes.

Statistics come from :mod:`synthetic.stats` (median over seeds, log-interpolated first
crossing). A claim that does not reproduce is kept as a strict ``xfail`` with the measured
numbers, never loosened.
"""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest

from npo.experiment import ReproduceConfig
from synthetic.beyond import late_log_slope, run_beta_rate, run_optimizers, run_theorem2_experiment
from synthetic.experiments import references, run_fig3, run_fig4_alpha1, run_fig9
from synthetic.plots import plot_beta_rate, plot_fig9
from synthetic.stats import crossing, median_curve

CONFIG = ReproduceConfig(progress=False)  # 5 seeds, 20000 reference steps, 2000 unlearning steps
pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: threads only contend


@pytest.fixture(scope="module")
def optimizers_5000():
    return run_optimizers(ReproduceConfig(seeds=3, steps=5000, progress=False))


@pytest.fixture(scope="module")
def beta_rate():
    return run_beta_rate(ReproduceConfig(seeds=3, steps=5000, progress=False))


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
        assert rows[m]["horizon"].startswith("asymptotic (gd flow"), rows[m]
        assert rows[m]["log_r2"] > rows[m]["linear_r2"] + 0.1, rows[m]
        assert rows[m]["final_forget_kl"] < rows["ga"]["final_forget_kl"] / 3
        assert rows[m]["seed_verdicts"] == "5/5 logarithmic", rows[m]
    # DPO's weight at beta 0.1 is barely damped after 2000 steps: too short to decide
    assert rows["dpo+rt"]["verdict"].startswith("not asymptotic at this horizon"), rows["dpo+rt"]


def test_fig9_figure_groups_the_families_and_prints_the_flags(fig9):
    fig = plot_fig9(fig9)
    styles = {ln.get_label(): ln.get_linestyle() for ln in fig.axes[1].lines}
    rows = {r["method"]: r for r in fig9.table}
    for m, r in rows.items():
        assert styles[m] == {"ga": "-", "npo": "--", "other": ":"}[r["family"]], (m, r["family"])
    texts = [t.get_text() for t in fig.axes[1].get_legend().texts]
    assert any(t.startswith("dpo+rt: not asymptotic (beta|u| = ") for t in texts), texts
    assert any(t.startswith("npo: logarithmic, g ") for t in texts), texts
    plt.close(fig)


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


def test_npo_log_rate_is_one_over_beta_in_simulation(beta_rate):
    """The constant-tangent-kernel prediction d(-log-ratio)/d(log t) -> 1/beta, on the
    random-features task (quick size: 3 seeds, 5000 steps at lr 5e-2, lr t = 250). The many
    forget samples settle at 0.86 to 0.94 of it (a quarter of them keep u > 0), so the honest
    bounds are [0.8, 1.0]."""
    rows = {r["beta"]: r for r in beta_rate.table}
    for beta in (0.25, 0.5, 1.0):
        assert 0.8 <= rows[beta]["slope_times_beta"] <= 1.0, rows[beta]
        assert rows[beta]["verdict"] == "logarithmic", rows[beta]
        assert rows[beta]["claim"] == "1/beta within 20%", rows[beta]


@pytest.mark.xfail(
    strict=True,
    reason=(
        "for beta >= 2 the late slope does not approach 1/beta: slope x beta (median of 3 "
        "seeds, lr 5e-2) at beta 2 is -0.08 / 2.36 / 3.15 / 2.95 / 2.90 at lr t = 25 / 250 / "
        "1000 / 2500 / 10000, at beta 4 0.25 / 0.91 / 1.94 / 2.80 / 3.33; forget samples whose "
        "likelihood rose (27% at the start) stay undamped and are unlearned one after another "
        "(14% left at beta 2, 4% at beta 4 by lr t = 5000), each adding to -mean u. At lr t = "
        "250 both runs read 'not asymptotic' (the log rate still rises)."
    ),
)
def test_npo_log_rate_is_one_over_beta_for_large_beta(beta_rate):
    rows = {r["beta"]: r for r in beta_rate.table}
    for beta in (2.0, 4.0):
        assert rows[beta]["claim"] == "1/beta within 20%", rows[beta]


def test_beta_rate_figure_marks_runs_that_are_not_asymptotic(beta_rate):
    fig = plot_beta_rate(beta_rate)
    panel = fig.axes[1]
    asym = beta_rate.extras["asymptotic"]
    assert list(asym) == [True, True, True, False, False]
    hollow = [t.get_text() for t in panel.texts if t.get_text() == "not asymptotic"]
    assert len(hollow) == int((~asym & (beta_rate.extras["slopes"] > 0)).sum())
    plt.close(fig)


def test_optimizers_sign_descent_undoes_npo_slowdown(optimizers_5000):
    result = optimizers_5000
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
    # Adam's state: the capped regime (normalized steps, small rho), not NPO's asymptote
    adam = rows["npo/adam"]
    assert adam["adam_q"] > 0.9 and adam["adam_rho"] < 0.5, adam
    assert adam["drift_verdict"].startswith("not asymptotic at this horizon (adam capped"), adam


def test_a_tenth_of_the_horizon_agrees_or_says_not_asymptotic(optimizers_5000):
    """The acceptance check on one experiment: ``optimizers`` at T = 500 against 10T = 5000
    (3 seeds). Every verdict of the shorter run is the longer run's, or 'not asymptotic'."""
    short = run_optimizers(ReproduceConfig(seeds=3, steps=500, progress=False))
    long = {r["method"]: r for r in optimizers_5000.table}
    flagged = 0
    for row in short.table:
        for key in ("drift_verdict", "forget_kl_verdict"):
            later = long[row["method"]][key]
            if row[key].startswith("not asymptotic at this horizon"):
                flagged += 1
            elif not later.startswith("not asymptotic at this horizon"):  # a verdict to match
                assert row[key] == later, (row["method"], key, row[key], later)
    assert flagged >= 4  # NPO under gd, sgd, momentum and adam cannot decide at T = 500


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
