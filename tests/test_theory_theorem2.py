"""Theorem 2 made checkable: the generator meets the assumptions, the b-coordinate iterates are
GD in parameter space through the project's kernels, the derived bands hold on every instance
to 1e5 steps, and the fitted bands hold on held-out instances and later times."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from npo.logprobs import class_logprobs
from npo.losses import ga_loss, npo_loss
from theory.logistic import gd_drift, make_instances, theorem2_constants
from theory.theorem2 import Theorem2Config, run_theorem2

SPEC = dict(n_f=12, d=20, b_x=0.8, B_x=1.2, C0=0.3, B_theta=1.0)


@pytest.fixture(scope="module")
def default_run():
    return run_theorem2(Theorem2Config())


@pytest.fixture(scope="module")
def coupled_run():
    # C0 = 0.1: inner products up to 0.1/n_f, too large for the derived NPO constants
    return run_theorem2(Theorem2Config(C0=0.1, seed=1))


def test_instances_meet_the_assumptions():
    inst = make_instances(6, seed=3, **SPEC)
    norms = np.linalg.norm(inst.X, axis=2)
    assert np.all(norms >= SPEC["b_x"] - 1e-12) and np.all(norms <= SPEC["B_x"] + 1e-12)
    gram = inst.gram
    off = gram - np.einsum("ifg,fg->ifg", gram, np.eye(SPEC["n_f"]))
    assert np.max(np.abs(off)) <= SPEC["C0"] / SPEC["n_f"]
    assert np.max(np.abs(off)) > 0.5 * SPEC["C0"] / SPEC["n_f"]  # not trivially orthogonal
    assert np.all(np.linalg.norm(inst.theta_init, axis=1) <= SPEC["B_theta"] + 1e-12)
    assert np.all(np.abs(inst.z0) <= SPEC["B_x"] * SPEC["B_theta"])
    assert np.all(np.linalg.eigvalsh(gram) > 0)  # X X^T invertible
    again = make_instances(6, seed=3, **SPEC)
    np.testing.assert_array_equal(inst.X, again.X)


@pytest.mark.parametrize("beta", [None, 0.5, 2.0])
def test_b_iterates_are_parameter_space_gd_on_the_kernels(beta):
    inst = make_instances(1, seed=0, **SPEC)
    eta, steps = 1.0, 300
    cps = np.arange(0, steps + 1, 25)
    drift, monotone = gd_drift(inst, eta=eta, steps=steps, checkpoints=cps, beta=beta)
    X = torch.as_tensor(inst.X[0])
    theta0 = torch.as_tensor(inst.theta_init[0])
    ones = torch.ones(X.shape[0], dtype=torch.float64)
    ref = class_logprobs(X @ theta0, ones)
    theta = theta0.clone()
    got = []
    for t in range(steps + 1):
        if t in cps:
            got.append(torch.linalg.vector_norm(X @ (theta - theta0)).item())
        th = theta.clone().requires_grad_()
        logp = class_logprobs(X @ th, ones)
        loss = ga_loss(logp) if beta is None else npo_loss(logp, ref, beta=beta)
        (g,) = torch.autograd.grad(loss.mean(), th)
        theta = theta - eta * g
    np.testing.assert_allclose(drift[0], got, rtol=1e-10, atol=1e-12)
    assert monotone[0]


def test_study_runs_to_1e5_steps_and_is_deterministic(default_run):
    d = default_run
    assert d.steps[-1] >= 1e5 and d.steps[0] == 1
    assert d.ga_drift.shape == d.npo_drift.shape == (8, d.steps.size)
    assert d.held_out.sum() == 4 and not d.held_out[:4].any()
    small = dataclasses.replace(Theorem2Config(), steps=2000, fit_steps=100)
    a, b = run_theorem2(small), run_theorem2(small)
    np.testing.assert_array_equal(a.npo_drift, b.npo_drift)
    common, ia, idx = np.intersect1d(a.steps, d.steps, return_indices=True)
    assert common.size >= 5  # the same instances give the same iterates at shared steps
    np.testing.assert_array_equal(a.npo_drift[:, ia], d.npo_drift[:, idx])
    assert np.all(np.isfinite(a.npo_drift))


def test_derived_bands_hold_everywhere(default_run):
    d = default_run
    assert d.proof.ga_feasible and d.proof.npo_feasible
    assert d.ga_inside_proof.all() and d.npo_inside_proof.all(), d.summary()
    assert d.monotone.all()  # the proofs' hypothesis: every b_i keeps decreasing


def test_fitted_bands_hold_on_held_out_instances_and_later_times(default_run, coupled_run):
    for d in (default_run, coupled_run):
        # never checked where fitted: fitting points are (fit instances, t <= fit_steps)
        fit_points = ~d.held_out[:, None] & (d.steps <= d.config.fit_steps)[None, :]
        assert not np.any(fit_points & d.check_mask)
        assert d.check_mask[d.held_out].all()
        assert d.ga_inside_fit.all() and d.npo_inside_fit.all(), d.summary()
    assert not coupled_run.proof.npo_feasible and not coupled_run.npo_inside_proof.any()
    assert coupled_run.ga_inside_proof.all()


def test_ga_linear_npo_logarithmic(default_run, coupled_run):
    for d in (default_run, coupled_run):
        assert np.all(d.ga_r2 >= 0.999), d.ga_r2
        assert set(d.ga_verdicts) == {"linear"}
        assert set(d.npo_verdicts) == {"logarithmic"}
        # exponentially separated: GA's drift is orders of magnitude larger at the end
        assert np.all(d.ga_drift[:, -1] > 100 * d.npo_drift[:, -1])


def test_bands_can_fail(default_run):
    """The checks are not vacuous: NPO's curves leave GA's band, GA's leave NPO's, and a band
    fitted only to early times of a faster-growing curve does not contain its later values."""
    d = default_run
    late = d.steps > 1e3
    assert np.all(d.npo_drift[:, late] < d.ga_band_fit[0][late])
    assert np.all(d.ga_drift[:, late] > d.npo_band_proof[1][late])
    fast = run_theorem2(Theorem2Config(beta=2.0, C0=1e-5, margin=1.0, steps=20_000))
    assert not fast.npo_inside_fit.all()  # implied constant still rising after t = fit_steps


def test_derived_constants():
    c = theorem2_constants(n_f=16, b_x=0.9, B_x=1.1, C0=0.0, B_theta=0.5, beta=1.0, eta=1.0)
    cpos = 1 / (1 + np.exp(0.55))
    assert c.ga_lower == pytest.approx(0.81 * cpos) and c.ga_upper == pytest.approx(1.21)
    assert c.npo_lower == pytest.approx(0.81 * cpos) and c.npo_scale == 1.0
    assert c.npo_upper > c.npo_lower and c.rho >= c.npo_upper / c.npo_lower * (1 - 1e-12)
    worse = theorem2_constants(n_f=16, b_x=0.9, B_x=1.1, C0=1e-4, B_theta=0.5, beta=1.0, eta=1.0)
    assert worse.npo_lower < c.npo_lower and worse.npo_upper > c.npo_upper
    assert not theorem2_constants(
        n_f=16, b_x=0.9, B_x=1.1, C0=0.5, B_theta=0.5, beta=1.0, eta=1.0
    ).ga_feasible


def test_bad_input():
    with pytest.raises(ValueError, match="d >= n_f"):
        make_instances(2, n_f=10, d=5, b_x=1.0, B_x=1.0, C0=0.0, B_theta=1.0)
    with pytest.raises(ValueError, match="C0"):
        make_instances(2, n_f=4, d=5, b_x=0.5, B_x=1.0, C0=0.3, B_theta=1.0)
    with pytest.raises(ValueError, match=r"^beta must"):
        theorem2_constants(n_f=4, b_x=1.0, B_x=1.0, C0=0.0, B_theta=1.0, beta=0.0, eta=1.0)
    with pytest.raises(ValueError, match="held out"):
        Theorem2Config(fit_instances=8)
    with pytest.raises(ValueError, match="fit_steps"):
        Theorem2Config(fit_steps=50_000)
    with pytest.raises(ValueError, match=r"^eta must"):
        Theorem2Config(eta=-1.0)
    with pytest.raises(ValueError, match="checkpoints"):
        gd_drift(make_instances(1, **SPEC), eta=1.0, steps=10, checkpoints=[5, 3])
