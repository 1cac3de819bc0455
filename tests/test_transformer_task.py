"""The small-transformer task (TOFU in miniature) at its quick size.

All claims read one quick run (cached on disk under .npo-cache/transformer, shared with `make
demo` and notebook 04, so it is computed once per clean checkout). A claim that does not
reproduce stays as a strict xfail with the measured numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from npo.cli import main
from synthetic.transformer import TransformerConfig, prepare_data, run_transformer

QUICK = TransformerConfig(quick=True, progress=False)


@pytest.fixture(scope="module")
def quick():
    return run_transformer(QUICK)


def _rows(result):
    return {(r["split"], r["method"]): r for r in result.table if r["method"] != "(target)"}


def test_quick_run_shapes_and_memorization(quick):
    c = QUICK.resolved()
    assert list(quick.curves) == [f"forget{p:02d}" for p in c.splits]
    for _split, methods in quick.curves.items():
        assert list(methods) == list(c.methods)
        for curves in methods.values():
            assert len(curves["forget_quality"]["seeds"][0]) == len(quick.steps)
    assert quick.steps[0] == 0 and quick.steps[-1] == c.steps
    assert quick.extras["memorization_accuracy"] > 0.98
    assert quick.extras["params"] < 300_000


def test_ga_collapses_and_ga_rt_degenerates(quick):
    """TOFU's protocol judges the model at the end of unlearning (final_* columns)."""
    rows = _rows(quick)
    for split, target in quick.extras["target"].items():
        ga, ga_rt = rows[split, "ga"], rows[split, "ga+rt"]
        assert ga["final_model_utility"] < 0.1 * target["model_utility"], (split, ga, target)
        assert ga["final_gibberish_rate"] > 0.9, (split, ga)
        assert ga_rt["final_gibberish_rate"] >= target["gibberish_rate"] + 0.25, (split, ga_rt)
        assert ga_rt["final_model_utility"] < 0.8 * target["model_utility"], (split, ga_rt)


def test_npo_rt_beats_ga_rt_at_forget10(quick):
    rows = _rows(quick)
    target = quick.extras["target"]["forget10"]
    npo, ga = rows["forget10", "npo+rt"], rows["forget10", "ga+rt"]
    assert npo["final_forget_quality"] > 10 * target["forget_quality"], (npo, target)
    assert npo["final_forget_quality"] > ga["final_forget_quality"], (npo, ga)
    assert npo["final_model_utility"] >= ga["final_model_utility"], (npo, ga)


def test_npo_rt_well_above_ga_methods_at_forget50(quick):
    rows = _rows(quick)
    npo = rows["forget50", "npo+rt"]
    for method in ("ga", "ga+rt"):
        other = rows["forget50", method]
        assert npo["final_forget_quality"] > 10 * other["final_forget_quality"], (npo, other)
        assert npo["final_model_utility"] > other["final_model_utility"], (npo, other)


def test_sgd_drift_linear_for_ga_logarithmic_for_npo(quick):
    verdicts = {k: v["verdict"] for k, v in quick.extras["drift"]["verdicts"].items()}
    assert verdicts["ga/sgd"] == "linear", verdicts
    assert verdicts["npo[beta=0.1]/sgd"] == "logarithmic", verdicts
    curves = quick.extras["drift"]["curves"]
    finals = {k: np.asarray(v["param_drift"])[-1] for k, v in curves.items()}
    assert finals["ga/sgd"] > 10 * finals["npo[beta=0.1]/sgd"], finals
    # 300 AdamW steps are shorter than the second moment's memory (1000): no verdict
    for key, v in quick.extras["drift"]["verdicts"].items():
        if key.endswith("/adamw"):
            assert v["verdict"].startswith("not asymptotic at this horizon (adam memory"), v
            assert v["fit_verdict"] in {"linear", "logarithmic", "undecided"}, v


def test_cli_writes_the_transformer_outputs(quick, tmp_path):
    assert (
        main(["reproduce", "transformer", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    )
    for name in (
        "transformer.png",
        "transformer-steps.png",
        "transformer-drift.png",
        "transformer.md",
    ):
        assert (tmp_path / name).stat().st_size > 1000, name
    doc = json.loads((tmp_path / "transformer.json").read_text())
    assert set(doc["curves"]) == set(quick.curves)
    curve = doc["curves"]["forget10"]["npo+rt"]["model_utility"]
    assert set(curve) >= {"mean", "std", "median", "seeds"}
    assert np.isfinite(curve["median"][0])


def test_data_files_and_bad_config(tmp_path):
    train, evald, _report = prepare_data(TransformerConfig(quick=True, cache_dir=str(tmp_path)))
    assert (evald / "forget10_perturbed.json").is_file() and (train / "retain90.json").is_file()
    full = (train / "full.json").read_text().splitlines()
    assert any("capital" in line for line in full)  # utility facts are in the training data
    assert not any("capital" in line for line in (evald / "full.json").read_text().splitlines())
    with pytest.raises(ValueError, match="unknown method 'gd'"):
        TransformerConfig(methods=("gd",))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TransformerConfig(optimizer="adam")
    with pytest.raises(ValueError, match="splits are forget percentages"):
        TransformerConfig(splits=(0,))
