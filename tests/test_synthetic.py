"""Synthetic task: data generator, batched runner, failure handling, outputs and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import integrate, special

from npo.cli import main
from npo.experiment import ReproduceConfig
from synthetic.data import TaskConfig, make_task
from synthetic.experiments import from_curves, table1_specs
from synthetic.models import select_seed, train_references
from synthetic.runner import MethodSpec, RunConfig, record_steps, run_unlearning
from synthetic.stats import crossing, summarize


def _expected_rate(bias: float) -> float:
    """P(y=1) = E sigmoid(Z + bias), Z ~ N(0, 1) (||theta_f|| = 1)."""
    f = lambda z: special.expit(z + bias) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # noqa: E731
    return integrate.quad(f, -np.inf, np.inf)[0]


@pytest.mark.parametrize("alpha", [1.0, 0.0])
def test_data_generator_matches_its_definition(alpha):
    n = 40000
    task = make_task(TaskConfig(alpha=alpha, seeds=(7,), n_forget=n, n_retain=n, n_eval=10))
    xf, xr = task.inputs["forget"][0], task.inputs["retain"][0]
    se = 4 / np.sqrt(n)
    assert np.all(np.abs(xf.mean(0) - alpha) < se) and np.all(np.abs(xr.mean(0) + alpha) < se)
    assert np.all(np.abs(xf.std(0) - 1) < 0.05)
    for labels, bias in ((task.forget.labels, 1.0), (task.retain.labels, -1.0)):
        p = _expected_rate(bias)
        assert abs(labels.double().mean().item() - p) < 4 * np.sqrt(p * (1 - p) / n)
    assert abs(task.idk_labels.double().mean().item() - 0.5) < 4 * 0.5 / np.sqrt(n)
    # labels depend on x as defined: correlation of y with (x - mu) . theta has the right sign
    proj_f = (xf - alpha) @ np.ones(16) / 4
    assert np.corrcoef(proj_f, task.forget.labels[0].numpy())[0, 1] > 0.2
    proj_r = (xr + alpha) @ np.ones(16) / 4
    assert np.corrcoef(proj_r, task.retain.labels[0].numpy())[0, 1] < -0.2


def test_generator_is_deterministic_per_seed():
    a = make_task(TaskConfig(seeds=(3, 5), n_forget=20, n_retain=30, n_eval=10))
    b = make_task(TaskConfig(seeds=(5,), n_forget=20, n_retain=30, n_eval=10))
    assert torch.equal(a.forget.features[1], b.forget.features[0])
    assert torch.equal(a.retain_eval.labels[1], b.retain_eval.labels[0])


@pytest.fixture(scope="module")
def small():
    task = make_task(TaskConfig(seeds=(0, 1), n_forget=40, n_retain=80, n_eval=50))
    return task, train_references(task, steps=500)


@pytest.mark.parametrize("batch_size", [None, 8])
def test_batched_runner_equals_each_run_alone(small, batch_size):
    task, refs = small
    specs = (
        MethodSpec("ga+kl", 5e-4),
        MethodSpec("npo+rt", 5e-3, beta=1.0, optimizer="adam"),
        MethodSpec("dpo+rt", 5e-3, beta=0.1, optimizer="momentum"),
        MethodSpec("idk+rt", 1e-3),
        MethodSpec("simnpo", 5e-3, beta=2.0, gamma=0.5, optimizer="signgd"),
    )
    run = RunConfig(steps=150, eval_every=25, log_points=5, batch_size=batch_size, progress=False)
    batched = run_unlearning(task, refs, specs, run)
    for g, spec in enumerate(specs):
        for s in range(2):
            alone = run_unlearning(*select_seed(task, refs, s), (spec,), run)
            for name, values in alone.metrics.items():
                np.testing.assert_allclose(
                    batched.metrics[name][g, s], values[0, 0], rtol=1e-9, atol=1e-12, err_msg=name
                )


def test_nonfinite_run_stops_and_others_continue(small):
    task, refs = small
    specs = (MethodSpec("ga", 1e306, label="exploding"), MethodSpec("npo", 5e-3, beta=1.0))
    run = RunConfig(steps=60, eval_every=1, log_points=0, progress=False)
    out = run_unlearning(task, refs, specs, run)
    assert np.all(out.failed_step[0] > 0) and np.all(out.failed_step[1] == -1)
    fd, drift = out.metrics["forget_distance"], out.metrics["param_drift"]
    assert np.all(np.isnan(fd[0, :, -1])) and np.all(np.isfinite(fd[1]))
    for s, step in enumerate(out.failed_step[0]):
        # recorded up to the last good parameters, NaN from the bad ones on: those after
        # step - 1 updates when the loss or gradient at step turned non-finite, those after
        # step updates when the parameters themselves overflowed at the evaluation of step
        first = int(np.flatnonzero(np.isnan(drift[0, s]))[0])
        assert first in (step - 1, step), (s, step, first)
        assert not np.any(np.isnan(drift[0, s, :first]))
        assert np.all(np.isnan(drift[0, s, first:]))
    result = from_curves("x", {}, out, [], [])
    seeds = [f["seed"] for f in result.failed_runs["exploding"]]
    assert seeds == list(task.config.seeds) and "npo" not in result.failed_runs
    assert "non-finite" in result.notes[-1] and "exploding" in result.notes[-1]


def test_record_steps_are_log_and_linear():
    steps = record_steps(2000, 25, 40)
    assert steps[0] == 0 and steps[-1] == 2000 and 1 in steps and 25 in steps and 1975 in steps
    assert np.all(np.diff(steps) > 0)


def test_crossing_interpolates_in_log_space():
    steps = np.array([0, 10, 20])
    forget = np.array([[1.0, 0.1, 0.01]])
    other = np.array([[0.01, 0.04, 0.16]])
    c = crossing(steps, forget, other, 10**-1.5)  # halfway in log between 0.1 and 0.01
    assert c.step == pytest.approx(15.0) and c.other == pytest.approx(0.08)
    assert crossing(steps, forget, other, 1e-3) is None
    s = summarize(np.array([[1.0, np.nan], [3.0, 2.0], [2.0, 4.0]]))
    assert s["median"].tolist() == [2.0, 3.0] and s["mean"].tolist() == [2.0, 3.0]


def test_table1_settings():
    specs = {s.method: s for s in table1_specs(1.0)}
    assert (specs["ga"].lr, specs["npo+rt"].lr, specs["npo"].beta) == (5e-4, 5e-3, 1.0)
    assert (specs["dpo+rt"].lr, specs["dpo+rt"].beta) == (5e-3, 0.1)
    specs0 = {s.method: s for s in table1_specs(0.0)}
    assert (specs0["idk+rt"].lr, specs0["npo+kl"].lr, specs0["npo+kl"].beta) == (1e-4, 5e-2, 10.0)
    assert specs0["dpo+rt"].beta == 5.0


def test_reproduce_writes_json_md_png(tmp_path, capsys):
    args = ["reproduce", "fig9", "--out", str(tmp_path), "--seeds", "2", "--steps", "300"]
    args += ["--ref-steps", "300", "--methods", "ga", "npo", "--no-progress"]
    assert main(args) == 0
    doc = json.loads((tmp_path / "fig9.json").read_text())
    assert set(doc) >= {"config", "steps", "curves", "table"}
    assert set(doc["curves"]) == {"ga", "npo"}
    curve = doc["curves"]["npo"]["forget_kl"]
    assert set(curve) >= {"mean", "std", "median", "seeds"}
    assert len(curve["seeds"]) == 2 and len(curve["seeds"][0]) == len(doc["steps"])
    metrics = {"forget_distance", "retain_distance", "forget_kl", "param_drift", "npo_weight"}
    assert set(doc["curves"]["ga"]) >= metrics
    assert (tmp_path / "fig9.png").stat().st_size > 10_000
    assert "| ga |" in (tmp_path / "fig9.md").read_text()
    assert "Summary" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["fig4-alpha3"], "unknown experiment 'fig4-alpha3'; valid: ['all', 'fig4-alpha1'"),
        (["fig9", "--methods", "npo", "gaa"], "unknown method 'gaa'; valid: ['dpo+rt'"),
        (["fig9", "--lr", "0"], "lr must be a finite positive number, got 0.0"),
        (["fig9", "--beta", "-1"], "beta must be a finite positive number, got -1.0"),
        (["fig9", "--steps", "0"], "steps must be >= 1, got 0"),
        (["fig9", "--seeds", "0"], "seeds must be >= 1, got 0"),
        (["fig9", "--methods", "ga", "ga"], "methods must be distinct"),
        (["fig3", "theorem2", "--steps", "50"], "experiment 'theorem2' needs --steps >= 200"),
        (["all", "--steps", "100"], "experiment 'theorem2' needs --steps >= 200"),
    ],
)
def test_bad_input_fails_before_any_work(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["reproduce", *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_output_directory(tmp_path, capsys):
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert main(["reproduce", "fig9", "--out", str(blocker / "x")]) == 2
    assert "cannot create output directory" in capsys.readouterr().err


def test_bad_specs():
    with pytest.raises(ValueError, match="unknown method 'gd'; valid"):
        MethodSpec("gd", 1e-3)
    with pytest.raises(ValueError, match="lr must be a finite positive number"):
        MethodSpec("ga", -1.0)
    with pytest.raises(ValueError, match="beta must be a finite positive number"):
        MethodSpec("npo", 1e-3, beta=0.0)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        MethodSpec("npo", 1e-3, optimizer="rmsprop")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        RunConfig(steps=0)
    with pytest.raises(ValueError, match="Table 1 has settings for alpha"):
        table1_specs(0.5)
    with pytest.raises(ValueError, match="seeds must be >= 1"):
        ReproduceConfig(seeds=0)
