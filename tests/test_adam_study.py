"""The Adam study's claims as bounds: the constant kernel (theory.adam_study), the reduced
random-features check (the capped rate), and Adam's state statistics in the batched runner.

The full random-features study (``npo reproduce adam-study``, 1e5 steps) is ``slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from npo.experiment import ReproduceConfig
from synthetic.adam import ADAM_CAP, run_adam_study_rf
from synthetic.experiments import references
from synthetic.optim import adam_stats, init_state, update
from synthetic.runner import MethodSpec, RunConfig, run_unlearning
from synthetic.stats import median_curve
from theory import AdamStudyConfig, adam_npo_linear_rate, run_adam_study

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ck():
    # the constant kernel at two lrs (uncapped / capped), eps 0 and 1e-4, 1e5 steps: seconds
    return run_adam_study(AdamStudyConfig(lrs=(1e-3, 1e-2), epss=(0.0, 1e-4), steps=100_000))


def _rows(ck):
    return {(r["lr"], r["eps"]): r for r in ck.rows()}


def test_ck_without_eps_npo_is_linear_at_the_predicted_rate(ck):
    late = ck.steps >= ck.steps[-1] / 2
    for c in np.flatnonzero(ck.eps == 0):
        u = ck.adam_npo[c]
        rate = -np.polyfit(ck.steps[late], u[late], 1)[0]
        assert rate == pytest.approx(ck.linear_rate[c], rel=0.01), (ck.lr[c], rate)
        assert ck.log_rate_end[c] > 20  # beta (-du/dlog n) grows like n: linear
    cap = (1 - ck.config.beta2) / (2 * ck.config.beta)
    assert ck.linear_rate[ck.lr == 1e-2][0] == pytest.approx(cap, rel=0.02)
    assert ck.linear_rate[ck.lr == 1e-3][0] == pytest.approx(1e-3 * ck.l1, rel=0.5)


def test_ck_past_the_eps_crossover_adam_is_gradient_descent_with_step_lr_over_eps(ck):
    for (lr, eps), r in _rows(ck).items():
        if eps == 0:
            continue
        assert np.isfinite(r["n_x"]), (lr, r)
        assert 0.95 <= r["tail_ratio"] <= 1.02, (lr, r["tail_ratio"])
    r = _rows(ck)[(1e-2, 1e-4)]
    assert 1.0 <= r["log_rate_end"] <= 1.2, r  # back towards 1/beta from above
    assert r["n_x"] == pytest.approx(4.2e3, rel=0.1)


def test_ck_crossover_step_is_u_x_over_the_linear_rate_when_lr_is_below_the_cap(ck):
    r = _rows(ck)[(1e-3, 1e-4)]
    assert 0.8 <= r["n_x"] / r["n_x_pred"] <= 1.2, r


@pytest.mark.xfail(
    strict=True,
    reason=(
        "n_x = |u_x| / c (adam_eps_crossover over adam_npo_linear_rate) ignores the GA-like "
        "start's head start: at lr 1e-2 (lr ||g||_1 = 9.6x the cap) the crossover comes at "
        "0.39 x the prediction for eps 1e-4 (4.2e3 vs 1.07e4 steps), 0.67 for 1e-6, 0.76 for "
        "1e-8 (1e6 steps); at lr 1e-3 it is 1.02 to 1.04 x."
    ),
)
def test_ck_crossover_step_prediction_holds_at_every_lr(ck):
    for (lr, eps), r in _rows(ck).items():
        if eps > 0:
            assert 0.8 <= r["n_x"] / r["n_x_pred"] <= 1.2, (lr, eps, r)


def test_adam_with_per_group_eps_is_torch_adam():
    torch.manual_seed(0)
    theta0 = torch.randn(3, 2, 5, dtype=torch.float64)
    target = torch.randn(3, 2, 5, dtype=torch.float64)
    lrs = torch.tensor([1e-2, 3e-2, 1e-1], dtype=torch.float64)
    eps = torch.tensor([1e-8, 1e-3, 0.5], dtype=torch.float64)
    theta, states = theta0.clone(), init_state(["adam"] * 3)
    refs = [theta0[g].clone().requires_grad_() for g in range(3)]
    opts = [torch.optim.Adam([refs[g]], lr=float(lrs[g]), eps=float(eps[g])) for g in range(3)]
    for step in range(1, 30):
        grad = 2 * (theta - target) + 2 * theta**3
        theta = update(theta, grad, lrs, ["adam"] * 3, states, step, eps)
        for g in range(3):
            opts[g].zero_grad()
            ((refs[g] - target[g]) ** 2 + (refs[g] ** 4 - target[g] ** 4) / 2).sum().backward()
            opts[g].step()
    for g in range(3):
        torch.testing.assert_close(theta[g], refs[g].detach(), rtol=1e-10, atol=1e-12)
    q, rho, step_max = adam_stats(states["adam"], eps)
    b1, b2 = 0.9, 0.999
    m = (states["adam"]["m"] / (1 - b1**29)).abs()
    r = (states["adam"]["v"] / (1 - b2**29)).sqrt()
    torch.testing.assert_close(q, (m * r / (r + eps[:, None, None])).sum(-1) / m.sum(-1))
    torch.testing.assert_close(rho, (m / r).mean(-1))
    torch.testing.assert_close(step_max, (m / (r + eps[:, None, None])).amax(-1))
    assert bool((q[2] < q[0]).all())  # a large eps takes over the denominator


def test_reduced_check_npo_under_adam_runs_at_the_lr_independent_cap():
    """FINDINGS' reduced check: on the random-features task NPO's -mean u falls at
    (1 - beta2)/(2 beta) per step over [3e3, 1e4] under Adam at lr 1e-4 and 1e-3 alike
    (the capped regime), and slower, decelerating, under GD."""
    config = ReproduceConfig(seeds=3, progress=False)  # the references other tests use
    task, refs = references(config, 1.0)
    specs = (
        MethodSpec("npo", 5e-3, label="gd"),
        MethodSpec("npo", 1e-4, optimizer="adam", label="adam 1e-4"),
        MethodSpec("npo", 1e-3, optimizer="adam", label="adam 1e-3"),
    )
    curves = run_unlearning(task, refs, specs, RunConfig(10_000, 1000, 30, progress=False))
    n = curves.steps
    i, j = np.searchsorted(n, 3000), np.searchsorted(n, 10_000)
    ratio = {}
    for s in specs:
        logp = curves.metric(s.key, "forget_logp")
        mu = median_curve(-(logp - logp[:, :1]))
        ratio[s.key] = (mu[j] - mu[i]) / (n[j] - n[i]) / ADAM_CAP
    assert 0.75 <= ratio["adam 1e-4"] <= 1.1 and 0.75 <= ratio["adam 1e-3"] <= 1.1, ratio
    assert ratio["gd"] < 0.5, ratio
    for key in ("adam 1e-4", "adam 1e-3"):
        q = curves.metric(key, "adam_q")[:, -1]
        rho = curves.metric(key, "adam_rho")[:, -1]
        assert np.all(q > 0.9) and np.all(rho < 0.5), (key, q, rho)  # the capped regime
    cap = adam_npo_linear_rate(lr=1.0, l1=1.0, beta=1.0)  # lr ||g||_1 >> cap: the cap itself
    assert cap == pytest.approx(ADAM_CAP, rel=0.01)


@pytest.mark.slow
def test_adam_study_full_size_claims():
    result = run_adam_study_rf(ReproduceConfig(seeds=3, progress=False))
    rows = {r["method"]: r for r in result.table}
    for lr in ("0.0001", "0.001"):
        r = rows[f"npo/adam/lr{lr}/eps1e-08"]
        assert 0.75 <= r["cap_slope_over_cap"] <= 1.1, r
        assert r["verdict"].startswith("not asymptotic"), r
    assert rows["npo/gd"]["fit_verdict"] == "logarithmic"
    assert rows["npo/adam/lr0.0001/eps0.0001"]["eps_since"] is not None
    assert rows["npo/adam/lr0.001/eps1e-08"]["max_step_over_lr"] > 3  # the late jumps
    for opt in ("signgd", "adam/lr0.001/eps1e-08"):
        assert rows[f"ga/{opt}"]["verdict"] == "linear"
