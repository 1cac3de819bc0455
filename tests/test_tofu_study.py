"""The ``smollm2-tofu`` study's pieces without the real model: its claims' arithmetic, its
options, and the whole pipeline (subset, fine-tuning, evaluation, unlearning, result, files)
on a tiny untrained Llama over real TOFU rows, in seconds."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from npo.experiment import ReproduceConfig
from npo.llm.studies.tofu import (
    RealTofuConfig,
    run_real_tofu,
    tofu_claims,
    tofu_reproduce_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _m(fp, mu):
    return {"forget_prob": fp, "model_utility": mu}


def test_claims_arithmetic():
    target = _m(0.95, 0.5)
    final = {
        "ga": _m(0.01, 0.1),
        "ga+rt": _m(0.02, 0.3),
        "npo": _m(0.1, 0.2),
        "npo+rt": _m(0.3, 0.45),
    }
    claims = tofu_claims(target, final)
    assert claims["target_memorised"]["holds"] is True
    assert claims["npo_keeps_more_utility"]["holds"] is True
    assert claims["npo_rt_forgets_keeps_utility"]["holds"] is True  # 0.3 <= 0.475, 0.45 >= 0.4
    assert tofu_claims(_m(0.89, 0.5), final)["target_memorised"]["holds"] is False
    worse = final | {"npo+rt": _m(0.3, 0.3)}  # utility 0.3 = GA+RT's: not higher, < 0.4
    claims = tofu_claims(target, worse)
    assert claims["npo_keeps_more_utility"]["holds"] is False
    assert claims["npo_rt_forgets_keeps_utility"]["holds"] is False
    kept = final | {"npo+rt": _m(0.5, 0.45)}  # utility kept, but forget prob above 0.475
    assert tofu_claims(target, kept)["npo_rt_forgets_keeps_utility"]["holds"] is False
    partial = tofu_claims(target, {"ga": final["ga"]})
    assert partial["npo_keeps_more_utility"]["holds"] is None
    assert partial["npo_rt_forgets_keeps_utility"]["holds"] is None


def test_config_validation_and_mapping(tmp_path):
    with pytest.raises(ValueError, match="unknown method 'simnpo\\+rt' for this study"):
        RealTofuConfig(methods=("simnpo+rt",))
    with pytest.raises(ValueError, match="need 1 <= forget_authors < authors"):
        RealTofuConfig(authors=2, forget_authors=2)
    with pytest.raises(ValueError, match="unlearn_batch 8 must divide the forget split's 20"):
        RealTofuConfig(unlearn_batch=8)
    with pytest.raises(ValueError, match="finetune_lr"):
        RealTofuConfig(finetune_lr=0.0)
    shared = ReproduceConfig(quick=True, lr=3e-4, cache_dir=str(tmp_path), model="M", data="D")
    c = tofu_reproduce_config(shared)
    assert (c.methods, c.unlearn_lr, c.model, c.data) == (("ga", "npo+rt"), 3e-4, "M", "D")
    assert c.cache_dir == str(tmp_path / "real-tofu") and c.finetune_lr == 1e-3
    assert tofu_reproduce_config(ReproduceConfig(methods=("npo",))).methods == ("npo",)


def test_cli_refuses_bad_input_before_any_work(capsys, tmp_path, tofu_dir):
    from _llm import cli_error

    cache = tmp_path / "cache"
    base = ["reproduce", "smollm2-tofu", "--cache-dir", str(cache), "--out", str(tmp_path / "o")]
    err = cli_error([*base, "--methods", "dpo+rt"], capsys)
    assert "unknown method 'dpo+rt' for this study" in err
    err = cli_error([*base, "--model", str(tmp_path / "none"), "--data", str(tofu_dir)], capsys)
    assert err.endswith(f"{tmp_path / 'none'} is not a model directory (no config.json)")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    err = cli_error([*base, "--model", str(model), "--data", str(tmp_path / "no-data")], capsys)
    assert f"data directory '{tmp_path / 'no-data'}' does not exist" in err
    assert not cache.exists()  # nothing cached, and no result written:
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.fixture(scope="module")
def tiny_study(random_model, tofu_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("real-tofu")
    config = RealTofuConfig(
        model=str(random_model),
        data=str(tofu_dir),
        methods=("ga", "npo+rt"),
        authors=2,
        utility_items=2,
        train_top_layers=1,
        finetune_lr=3e-3,
        finetune_epochs=1,
        unlearn_lr=1e-3,
        unlearn_epochs=2,
        unlearn_batch=10,
        eval_every=1,
        max_new_tokens=8,
        cache_dir=str(cache),
        progress=False,
    )
    return config, run_real_tofu(config)


def test_pipeline_end_to_end_on_a_tiny_model(tiny_study, tmp_path):
    from npo.llm.studies import plot_real_tofu
    from npo.results import write_result

    _, result = tiny_study
    assert [r["model"] for r in result.table] == [
        "target (before unlearning)",
        "retain model",
        "ga",
        "npo+rt",
    ]
    # 20 forget rows / batch 10 = 2 steps per epoch, 2 epochs: the target at 0, hooks at 1-3.
    assert result.steps.tolist() == [0, 1, 2, 3, 4]
    for method in ("ga", "npo+rt"):
        fq = result.curves[method]["forget_quality"]["median"]
        assert fq.shape == (5,) and np.all((fq > 0) & (fq <= 1)), fq
        assert result.extras["runs"][method]["steps"] == 4
    target, retain = result.table[0], result.table[1]
    assert result.curves["ga"]["forget_prob"]["median"][0] == target["forget_prob"]
    assert retain["forget_quality"] is None  # the retain model is the reference of the test
    for row in result.table:
        assert 0 <= row["gibberish_rate"] <= 1 and 0 <= row["model_utility"] <= 1, row
    ft = result.extras["finetune"]
    assert ft["target"]["steps"] == 4 and ft["retain"]["steps"] == 2  # 40 / 10 and 20 / 10 rows
    assert set(result.extras["claims"]) == {
        "target_memorised",
        "npo_keeps_more_utility",
        "npo_rt_forgets_keeps_utility",
    }
    assert result.extras["claims"]["npo_keeps_more_utility"]["holds"] is None  # no NPO, GA+RT
    paths = write_result(result, tmp_path, plot_real_tofu)
    assert [p.name for p in paths] == ["smollm2-tofu.png", "smollm2-tofu.json", "smollm2-tofu.md"]
    doc = json.loads(paths[1].read_text())
    assert doc["name"] == "smollm2-tofu" and doc["config"]["authors"] == 2
    assert "Claim 1" in paths[2].read_text()


def test_every_stage_is_cached(tiny_study):
    config, first = tiny_study
    root = config.cache_dir
    from pathlib import Path

    done = sorted(Path(root).glob("*/done.json"))
    assert len(done) == 4  # target, retain model, two unlearning runs
    assert not any((p.parent / "checkpoints").exists() for p in done)  # removed when done
    stamps = [p.stat().st_mtime_ns for p in done]
    again = run_real_tofu(config)
    assert [p.stat().st_mtime_ns for p in done] == stamps  # nothing retrained
    assert again.table == first.table
    other = run_real_tofu(replace(config, methods=("ga",), unlearn_lr=2e-3))
    assert len(sorted(Path(root).glob("*/done.json"))) == 5  # a new setting is a new run
    assert other.table[:2] == first.table[:2]  # the same target and retain model
    shorter = run_real_tofu(replace(config, methods=("ga",), max_new_tokens=4))
    assert len(sorted(Path(root).glob("*/done.json"))) == 6  # the final evaluation changes
    assert shorter.table[0]["model"] == first.table[0]["model"]
