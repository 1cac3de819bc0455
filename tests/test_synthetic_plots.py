"""The synthetic figures read as data: families in their styles, verdicts with their horizon
flags in the legends, and values a log axis cannot show marked at its edge."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from npo.experiment import ExperimentResult
from synthetic.plots import family_styles, plot_beta_rate, plot_fig4, plot_fig9, verdict_label
from synthetic.runner import MethodSpec
from synthetic.stats import summarize
from synthetic.verdicts import FAMILY_LABELS, family

METHODS = ("ga", "ga+rt", "idk+rt", "npo", "npo+rt", "dpo+rt", "simnpo")


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_families_follow_the_forget_term():
    fams = {m: family(MethodSpec(m, 1e-3)) for m in METHODS}
    assert fams == {
        "ga": "ga",
        "ga+rt": "ga",
        "idk+rt": "other",
        "npo": "npo",
        "npo+rt": "npo",
        "dpo+rt": "npo",
        "simnpo": "npo",
    }


def _result(name: str = "fig9") -> ExperimentResult:
    steps = np.array([0, 1, 10, 100, 1000])
    rng = np.random.default_rng(0)
    metrics = ("forget_distance", "retain_distance", "forget_kl")
    curves = {
        m: {k: summarize(1e-3 + rng.random((2, 5)).cumsum(axis=1)) for k in metrics}
        for m in METHODS
    }
    rows = []
    for m in METHODS:
        short = "not asymptotic (beta|u| = 0.81)" if m == "dpo+rt" else "asymptotic"
        rows.append(
            {
                "method": m,
                "family": family(MethodSpec(m, 1e-3)),
                "verdict": "logarithmic",
                "fit_verdict": "logarithmic",
                "horizon_short": short,
                "growth_exponent_seeds": "0.20 [0.10, 0.30]",
            }
        )
    return ExperimentResult(name, {}, steps, curves, rows)


def test_fig4_and_fig9_draw_each_family_in_its_style():
    result = _result()
    for fig in (plot_fig4(result), plot_fig9(result)):
        styles = {ln.get_label(): ln.get_linestyle() for ln in fig.axes[0].lines}
        assert {styles[m] for m in ("ga", "ga+rt")} == {"-"}
        assert {styles[m] for m in ("npo", "npo+rt", "dpo+rt", "simnpo")} == {"--"}
        assert styles["idk+rt"] == ":"
        texts = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts]
        for title in FAMILY_LABELS.values():
            assert title in texts
    assert "dpo+rt: not asymptotic (beta|u| = 0.81)" in texts  # fig9's legend: the flag
    assert "npo: logarithmic, g 0.20 [0.10, 0.30]" in texts


def test_family_styles_fall_back_without_families():
    result = _result()
    plain = ExperimentResult("x", {}, result.steps, result.curves, [{"method": "ga"}])
    assert all(s["ls"] == "-" for s in family_styles(plain).values())
    assert verdict_label({"verdict": "linear"}) == "linear"


def test_beta_rate_marks_slopes_a_log_axis_cannot_show():
    steps = np.array([0, 1, 10, 100, 1000, 10000])
    logp = -np.log1p(steps)[None, :] * np.array([[1.0], [1.1]])
    curves = {f"npo[beta={b:g}]": {"forget_logp": summarize(logp)} for b in (0.5, 1.0, 2.0)}
    extras = {
        "betas": np.array([0.5, 1.0, 2.0]),
        "slopes": np.array([1.8, 0.9, -0.03]),
        "theory": np.array([2.0, 1.0, 0.5]),
        "slope_seeds": np.array([[1.7, 1.9], [-0.2, 1.0], [-0.05, -0.01]]),
        "asymptotic": np.array([True, True, False]),
    }
    fig = plot_beta_rate(ExperimentResult("beta-rate", {}, steps, curves, [], extras=extras))
    panel = fig.axes[1]
    bottom = panel.get_ylim()[0]
    edge = [ln for ln in panel.lines if ln.get_marker() == "v"]
    assert edge and all(ln.get_ydata()[0] == pytest.approx(bottom) for ln in edge)
    assert all(ln.get_markerfacecolor() == "none" for ln in edge)
    assert {ln.get_xdata()[0] for ln in edge} == {1.0, 2.0}  # beta 1's bad seed, beta 2
    notes = [t.get_text() for t in panel.texts]
    assert "-0.03" in notes and any(n.startswith("1 seed(s) -0.20") for n in notes)
    for line in panel.lines:  # nothing is drawn below the axis
        y = np.asarray(line.get_ydata(), dtype=float)
        assert np.all(y[np.isfinite(y)] >= bottom * (1 - 1e-9))
