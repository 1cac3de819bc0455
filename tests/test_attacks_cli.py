"""`npo attack relearn|quantize` and `npo eval --calibration-model` on a tiny model over
generated authors: the files they write, their fields, one-line errors."""

from __future__ import annotations

import json

import pytest
from _llm import cli_error

from npo.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from _llm import random_model_dir

    from synthetic.transformer import AuthorsConfig, generate_authors, write_tofu_splits

    data = tmp_path_factory.mktemp("authors")
    write_tofu_splits(generate_authors(AuthorsConfig(n_authors=10, qa_per_author=4)), data, (10,))
    import torch

    from npo.llm.model import load_model, save_model_dir

    root = tmp_path_factory.mktemp("models")
    target = random_model_dir(data, root / "target", seed=0)
    model, tok = load_model(target)  # "unlearned": the target's weights, moved a little
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    other = save_model_dir(model, tok, root / "other")
    retain = root / "retain.json"
    argv = ["eval", "--model", str(other), "--data", str(data), "--out", str(retain)]
    assert main([*argv, "--no-generate", "--no-progress"]) == 0
    return data, target, other, retain


def test_eval_with_calibration_model(setup, tmp_path, capsys):
    data, target, other, retain = setup
    out = tmp_path / "r.json"
    argv = ["eval", "--model", str(target), "--data", str(data), "--out", str(out)]
    argv += ["--retain-results", str(retain), "--calibration-model", str(other)]
    assert main([*argv, "--no-generate", "--no-progress", "--mia-attack", "loss"]) == 0
    assert "membership inference (loss)" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["mia_auc_calibrated"] is not None and doc["privleak"] == doc["privleak_loss"]
    assert len(doc["items"]["holdout"]["mia_calibrated"]) == 4


def test_attack_quantize(setup, tmp_path, capsys):
    data, target, other, retain = setup
    out = tmp_path / "q"
    argv = ["attack", "quantize", "--model", str(other), "--target", str(target)]
    argv += ["--data", str(data), "--retain-results", str(retain), "--out", str(out)]
    assert (
        main(
            [*argv, "--bits", "4", "--group-size", "16", "0", "--no-progress", "--no-eval-generate"]
        )
        == 0
    )
    assert "4bit-g16: forget prob" in capsys.readouterr().out
    doc = json.loads((out / "quantize.json").read_text())
    assert doc["format"] == "npo-attack" and [v["name"] for v in doc["variants"]] == [
        "4bit-g16",
        "4bit-gchannel",
    ]
    v = doc["variants"][0]
    assert v["unlearned"]["model_utility"] is not None and "recovery" in v
    assert doc["update_ratio"]["median_ratio"] > 0
    for name in ("unlearned", "target", "unlearned-4bit-g16", "target-4bit-gchannel"):
        assert json.loads((out / f"{name}.json").read_text())["format"] == "npo-tofu-eval"


def test_attack_relearn(setup, tmp_path, capsys):
    data, target, other, retain = setup
    out = tmp_path / "r"
    argv = ["attack", "relearn", "--model", str(other), "--target", str(target)]
    argv += ["--data", str(data), "--retain-results", str(retain), "--out", str(out)]
    argv += ["--steps", "2", "--eval-every", "1", "--lr", "1e-3", "--batch-size", "2"]
    assert main([*argv, "--no-progress", "--no-eval-generate"]) == 0
    doc = json.loads((out / "relearn.json").read_text())
    assert doc["steps"] == [0, 1, 2] and len(doc["measured"]["forget_prob"]) == 3
    assert sorted(doc["parts"]["relearned"] + doc["parts"]["measured"]) == [0, 1, 2, 3]
    assert doc["measured"]["model_utility"][0] is not None
    assert (out / "train" / "eval" / "step-000002.json").is_file()
    assert "already holds a run" in cli_error([*argv, "--no-progress"], capsys)


def test_attack_errors(setup, tmp_path, capsys):
    data, target, _, _ = setup
    base = ["attack", "quantize", "--model", str(tmp_path / "none"), "--data", str(data)]
    assert "none" in cli_error([*base, "--out", str(tmp_path / "o")], capsys)
    bad = ["attack", "quantize", "--model", str(target), "--data", str(data)]
    assert "--bits" in cli_error([*bad, "--out", str(tmp_path / "o"), "--bits", "1"], capsys)
    rel = ["attack", "relearn", "--model", str(target), "--data", str(data)]
    assert "fraction" in cli_error([*rel, "--out", str(tmp_path / "o"), "--fraction", "1"], capsys)


def test_attack_output_never_over_an_input(setup, capsys):
    data, target, other, _ = setup
    before = sorted(p.name for p in target.iterdir())
    argv = ["attack", "quantize", "--model", str(other), "--target", str(target)]
    err = cli_error([*argv, "--data", str(data), "--out", str(target / "q")], capsys)
    assert "--out" in err and "--target" in err
    assert sorted(p.name for p in target.iterdir()) == before
