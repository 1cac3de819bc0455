"""theory.sliders: the sliders' figure runs headless, reads the closed forms, and falls back to a
static figure with a one-line hint without ipywidgets."""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from theory import divergence_panels, explore, npo_log_ratio, npo_time_to_divergence
from theory.sliders import HINT


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("optimizer", ["gd", "sign", "adam"])
def test_panels_draw_u_the_weight_and_the_time_to_divergence(optimizer):
    fig = divergence_panels(beta=2.0, K=0.04, lr=0.05, optimizer=optimizer, eps=1e-6, steps=2000)
    a_u, a_w, a_t = fig.axes
    n, neg_npo = a_u.lines[1].get_xdata(), a_u.lines[1].get_ydata()
    w = a_w.lines[0].get_ydata()
    np.testing.assert_allclose(w, 2.0 / (1.0 + np.exp(2.0 * neg_npo)), rtol=1e-12)
    if optimizer == "gd":
        u = np.asarray(npo_log_ratio(0.05 * n, beta=2.0, K=0.04))
        np.testing.assert_allclose(neg_npo, -u, rtol=1e-12)
        D, steps = a_t.lines[1].get_xdata(), a_t.lines[1].get_ydata()
        want = np.asarray(npo_time_to_divergence(D, beta=2.0, K=0.04)) / 0.05
        np.testing.assert_allclose(steps, want, rtol=1e-12)
    if optimizer == "sign":  # the weight cancels: NPO's curve is GA's
        np.testing.assert_array_equal(a_u.lines[0].get_ydata(), neg_npo)
    assert np.all(np.diff(neg_npo) >= 0)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        divergence_panels(optimizer="rmsprop")
    with pytest.raises(ValueError, match="beta must be a finite positive number"):
        divergence_panels(beta=0.0)


def test_without_ipywidgets_a_static_figure_and_a_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails
    fig = explore(steps=500)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert capsys.readouterr().out.strip() == HINT
    with pytest.raises(ImportError, match="ipywidgets"):
        explore(interactive=True)
    assert isinstance(explore(interactive=False, steps=500), Figure)
    assert capsys.readouterr().out == ""  # no hint when the static figure was asked for


def test_with_ipywidgets_sliders_for_every_parameter():
    widgets = pytest.importorskip("ipywidgets")
    ui = explore(optimizer="adam", eps=1e-6, steps=500)
    assert isinstance(ui, widgets.interactive)
    names = {getattr(w, "description", "") for w in ui.children}
    assert {"beta", "K", "lr", "optimizer", "eps"} <= names
