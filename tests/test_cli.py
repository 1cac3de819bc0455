"""The command line: the demo writes its figure and config; bad input gives one clear line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from npo.cli import main
from npo.landscape import LandscapeConfig, run_landscape
from npo.losses import npo_weight


@pytest.mark.slow
def test_demo_writes_every_figure_and_a_summary(tmp_path, capsys):
    from npo.cli import _experiments

    names = [name for name, e in _experiments().items() if e.in_all]
    assert main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "landscape.png").stat().st_size > 10_000
    config = json.loads((tmp_path / "landscape.config.json").read_text())
    assert config["betas"] == [0.1, 0.5, 1.0, 2.0, 5.0]
    assert (tmp_path / "theory_theorem2.png").is_file()
    for name in names:
        for ext in ("png", "json", "md"):
            assert (tmp_path / f"{name}.{ext}").is_file(), f"{name}.{ext}"
    out = capsys.readouterr().out
    assert "Summary" in out and all(name in out for name in names)


def test_demo_smoke_with_one_experiment(tmp_path, capsys, monkeypatch):
    """The demo's wiring (landscape, theory figures, experiments, summary) on one fast entry."""
    import npo.cli
    from npo.experiment import registry

    full = npo.cli._experiments()
    monkeypatch.setattr(npo.cli, "_experiments", lambda: registry([full["theorem2"]]))
    assert main(["demo", "--out", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "landscape.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "landscape.config.json").read_text())["points"] == 601
    assert (tmp_path / "theory_theorem2.png").is_file()
    for ext in ("png", "json", "md"):
        assert (tmp_path / f"theorem2.{ext}").is_file()
    out = capsys.readouterr().out
    assert "Summary" in out and "theorem2" in out


def test_landscape_weight_is_autograd_of_the_kernel():
    data = run_landscape(LandscapeConfig(betas=(0.3, 3.0), points=101))
    r = torch.as_tensor(data.log_ratio)
    for i, beta in enumerate(data.config.betas):
        w = npo_weight(r, torch.zeros_like(r), beta=beta).numpy()
        np.testing.assert_allclose(data.npo_weight[i], w, rtol=1e-12)
    assert np.all(data.ga_weight == 1.0)


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["reproduce", "fig9", "--out", str(tmp_path), "--beta", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "npo: error: beta must be a finite positive number, got -1.0"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["demo", "--out", str(blocker / "sub")]) == 2
    assert "cannot create output directory" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "npo.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "demo" in out


def test_theory_command_writes_figures_with_configs(tmp_path):
    assert main(["theory", "--out", str(tmp_path), "--fast"]) == 0
    for name in (
        "theory_log_ratio",
        "theory_divergence_time",
        "theory_theorem2",
        "theory_optimizers",
    ):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
        assert json.loads((tmp_path / f"{name}.config.json").read_text())
    summary = json.loads((tmp_path / "theory_summary.json").read_text())
    assert "theorem2" in summary


def test_all_leaves_out_the_slow_experiments_that_run_when_named():
    from npo.cli import _experiments
    from npo.experiment import ReproduceConfig, select

    experiments = _experiments()
    config = ReproduceConfig(progress=False)
    slow = {n for n, e in experiments.items() if not e.in_all}
    assert "adam-study" in slow
    everything = {e.name for e in select(experiments, ["all"], config)}
    assert everything == set(experiments) - slow
    assert [e.name for e in select(experiments, ["adam-study"], config)] == ["adam-study"]
