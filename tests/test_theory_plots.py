"""theory.curves / theory.plots / theory.figures: figures are returned (never shown or saved by
the plot functions), draw what they claim, and the writer puts PNG + config JSON side by side."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from theory.curves import (
    DivergenceTimeConfig,
    LogRatioConfig,
    OptimizerDynamicsConfig,
    run_divergence_time,
    run_log_ratio,
    run_optimizer_dynamics,
)
from theory.figures import FIGURES, TheoryFiguresConfig, write_theory_figures
from theory.flows import npo_log_ratio
from theory.plots import (
    plot_divergence_time,
    plot_log_ratio,
    plot_optimizer_dynamics,
    plot_theorem2,
)
from theory.theorem2 import Theorem2Config, run_theorem2


@pytest.fixture(autouse=True)
def _no_show_or_save(monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("plot functions must not show or save")

    monkeypatch.setattr(plt, "show", boom)
    monkeypatch.setattr(plt.Figure, "savefig", boom)
    yield
    plt.close("all")


def test_log_ratio_figure():
    data = run_log_ratio(LogRatioConfig(betas=(0.5, 2.0), points=50))
    np.testing.assert_array_equal(data.npo_log[1], npo_log_ratio(data.t_log, beta=2.0, K=1.0))
    fig = plot_log_ratio(data)
    assert len(fig.axes) == 2 and fig.axes[1].get_xscale() == "log"
    assert len(fig.axes[0].lines) == 1 + 2 * 2  # GA, then NPO + asymptote per beta


def test_divergence_time_figure_draws_into_given_axes():
    data = run_divergence_time(DivergenceTimeConfig(betas=(1.0,), D_max=800.0, points=40))
    assert np.all(np.isfinite(data.log10_npo))  # e^{800} overflows; the log does not
    _, ax = plt.subplots()
    fig = plot_divergence_time(data, ax=ax)
    assert fig is ax.figure and len(ax.lines) == 2


def test_theorem2_and_optimizer_figures():
    t2 = run_theorem2(Theorem2Config(n_instances=3, fit_instances=2, steps=2000, fit_steps=100))
    fig = plot_theorem2(t2)
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "log"
    op = run_optimizer_dynamics(OptimizerDynamicsConfig(steps=2000, points=30))
    fig = plot_optimizer_dynamics(op)
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="4 Axes"):
        plot_optimizer_dynamics(op, ax=plt.subplots(1, 2)[1])


def test_configs_validate():
    with pytest.raises(ValueError, match="beta"):
        LogRatioConfig(betas=(0.0,))
    with pytest.raises(ValueError, match="t_min < t_max"):
        LogRatioConfig(t_min=10.0, t_max=1.0)
    with pytest.raises(ValueError, match="K"):
        DivergenceTimeConfig(K=-1.0)
    with pytest.raises(ValueError, match="beta1"):
        OptimizerDynamicsConfig(beta1=0.99, beta2=0.9)


def test_writer(tmp_path, monkeypatch):
    monkeypatch.undo()  # the writer must save
    paths = write_theory_figures(tmp_path / "out", TheoryFiguresConfig(fast=True))
    names = {p.name for p in paths}
    for name in FIGURES:
        assert f"{name}.png" in names
        assert (tmp_path / "out" / f"{name}.config.json").is_file()
    summary = json.loads((tmp_path / "out" / "theory_summary.json").read_text())
    assert set(summary["theorem2"]["npo_verdicts"]) == {"logarithmic"}
    assert summary["optimizers"]["adam_npo_linear_rate_eps0"] > 0


def test_optimizer_dynamics_show_the_adam_claims():
    """The claims of the optimizers figure at its fast size (notebook 01's test size)."""
    op = run_optimizer_dynamics(OptimizerDynamicsConfig(steps=20_000))
    half = op.steps > op.steps[-1] / 2
    sim = -np.diff(op.adam_npo_eps0[half]) / np.diff(op.steps[half])
    np.testing.assert_allclose(sim, op.adam_npo_rate, rtol=1e-2)  # linear, at the predicted rate
    assert op.adam_npo_rate < 0.2 * op.config.lr * op.l1  # capped well below sign descent's
    assert op.adam_npo[-1] > op.adam_npo_eps0[-1]  # eps slows NPO once past the crossover
    assert np.all(op.gd_npo >= op.gd_ga)  # under GD, NPO's weight slows it
    np.testing.assert_allclose(op.sign, -op.config.lr * op.l1 * op.steps, rtol=1e-12)


def test_theory_figure_shows_each_panels_effect_at_the_demo_size():
    """``npo theory --fast`` (2e4 steps): read the drawn data, panel by panel."""
    op = run_optimizer_dynamics(OptimizerDynamicsConfig(steps=20_000))
    fig = plot_optimizer_dynamics(op)
    gd, _sign, _adam, rate = fig.axes
    ga, npo = (line.get_ydata() for line in gd.lines[:2])
    assert ga[-1] >= 2 * npo[-1], (ga[-1], npo[-1])  # NPO bends away from GA: 7.2x below
    assert "7.2x below GA" in gd.get_title()
    assert npo[-1] > 3 and op.crossover > op.adam_npo[-1]  # past the eps crossover
    rates = {line.get_label().split(":")[0]: line.get_ydata() for line in rate.lines}
    assert 0.95 <= rates["NPO, GD"][-1] <= 1.1  # logarithmic: 1/beta
    assert rates["NPO, Adam, eps=0"][-1] > 5  # linear: the log rate grows like n
    assert rates["NPO, Adam, eps=0.0001"][-1] < 0.25 * rates["NPO, Adam, eps=0"][-1]
    assert rates["NPO, sign descent"][-1] > 100
