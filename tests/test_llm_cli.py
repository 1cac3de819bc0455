"""``npo finetune`` / ``npo unlearn``: documented options, one-line errors, and the end-to-end
path on real TOFU text (tiny models): finetune, retain model, unlearn with GA and NPO+RT."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from _llm import TINY_ARGS, cli_error, read_rows

from npo.cli import build_parser, main
from npo.llm.data import read_split
from npo.llm.encoding import encode_qa
from npo.llm.model import load_model
from npo.llm.train import FinetuneConfig, UnlearnConfig, read_log, read_weights
from npo.llm.train.reference import compute_ref_logps
from npo.results import write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")

COMMANDS = [("finetune", FinetuneConfig), ("unlearn", UnlearnConfig)]


@pytest.mark.parametrize(("command", "cls"), COMMANDS)
def test_every_option_is_documented(command, cls, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(cls):
        if f.name != "eval_every" or command == "unlearn":  # finetune has no evaluation
            assert "--" + f.name.replace("_", "-") in text, f.name
    assert "Writes OUT/model" in text
    assert set(build_parser()._subparsers._group_actions[0].choices) >= {"finetune", "unlearn"}


@pytest.fixture(scope="module")
def data(mini_data):
    return mini_data


def test_bad_input_is_one_line(data, random_model, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    rows = read_rows(data / "forget10.json")
    del rows[1]["answer"]
    write_jsonl(bad / "forget10.json", rows)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "pytorch_model.bin").write_bytes(b"pickle")
    out = ["--out", str(tmp_path / "out")]
    err = cli_error(["finetune", "--data", str(data), *out], capsys)
    assert "give exactly one of --model DIR and --init tiny-llama" in err
    err = cli_error(["unlearn", "--data", str(bad), "--model", str(model), *out], capsys)
    assert "no *.safetensors weights" in err and "pickled .bin checkpoints are refused" in err
    (model / "model.safetensors").write_bytes(b"")
    err = cli_error(["unlearn", "--data", str(bad), "--model", str(model), *out], capsys)
    assert f"{model / 'model.safetensors'} is empty (0 bytes)" in err
    model = random_model  # a sound model: the data is checked next
    err = cli_error(["unlearn", "--data", str(bad), "--model", str(model), *out], capsys)
    assert f"{bad / 'forget10.json'}:2: missing field 'answer'" in err
    unlearn = ["unlearn", "--data", str(data), "--model", str(model), *out]
    err = cli_error([*unlearn, "--method", "nope"], capsys)
    assert "unknown method 'nope'" in err
    err = cli_error([*unlearn, "--terms", "npo:x"], capsys)
    assert "--terms entry 'npo:x' is not KEY:WEIGHT" in err
    err = cli_error([*unlearn, "--beta", "-1"], capsys)
    assert "beta must be a finite positive number" in err
    finetune = ["finetune", "--init", "tiny-llama", "--data", str(data), *out]
    err = cli_error([*finetune, "--split", "forget10"], capsys)
    assert "--split must be full or retainYY" in err
    assert not (tmp_path / "out").exists()  # nothing written for invalid input


def test_hf_data_offline_gives_a_clearcli_error(tmp_path):
    pytest.importorskip("datasets")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache: nothing to fall back on
    args = ["finetune", "--init", "tiny-llama", "--data", "hf:locuslab/TOFU"]
    cmd = [sys.executable, "-m", "npo.cli", *args, "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()[-1]
    expected = "cannot load split 'full' of the Hugging Face dataset 'locuslab/TOFU'"
    assert err.startswith(f"npo: error: {expected}")
    assert "--data DIR" in err


def _forget_logps(model_dir, data) -> torch.Tensor:
    """Summed forget-answer log-probs under a saved model (eval mode, independent of the logs)."""
    model, tok = load_model(model_dir)
    enc = encode_qa(tok, read_split(data, "forget10"), max_length=512)
    cpu = torch.device("cpu")
    return compute_ref_logps(model, enc, batch_size=8, pad_id=tok.pad_token_id, device=cpu)


def _end_to_end(data, tmp_path, *, ft_epochs, ft_batch, un_epochs, un_batch, lr, fit):
    common = ["--data", str(data), "--no-progress"]
    ft = ["finetune", "--init", "tiny-llama", *TINY_ARGS, *common, "--checkpoint-every", "0"]
    ft += ["--epochs", str(ft_epochs), "--batch-size", str(ft_batch)]
    assert main([*ft, "--split", "full", "--out", str(tmp_path / "target")]) == 0
    assert main([*ft, "--split", "retain90", "--out", str(tmp_path / "retain")]) == 0
    target = tmp_path / "target" / "model"
    # target and retain model share the tokenizer (trained on `full` of the same data)
    tokenizers = [(tmp_path / m / "init/tokenizer.json").read_text() for m in ("target", "retain")]
    assert tokenizers[0] == tokenizers[1]
    ft_log = read_log(tmp_path / "target")
    spe = json.loads((tmp_path / "target/result.json").read_text())["steps_per_epoch"]
    first = sum(r["loss"] for r in ft_log[:spe]) / spe
    last = sum(r["loss"] for r in ft_log[-spe:]) / spe
    assert last < fit * first  # fine-tuning learns
    before = _forget_logps(target, data)
    after = {}
    for method in ("ga", "npo+rt"):
        out = tmp_path / method.replace("+", "_")
        argv = ["unlearn", "--model", str(target), *common, "--forget", "forget10"]
        argv += ["--method", method, "--epochs", str(un_epochs), "--batch-size", str(un_batch)]
        argv += ["--lr", str(lr), "--checkpoint-every", "3", "--keep-checkpoints", "2"]
        argv += ["--ref-cache", str(tmp_path / "cache"), "--out", str(out)]
        assert main(argv) == 0
        logs = read_log(out)
        keys = ("loss", "forget_logp", "param_drift")
        assert all(math.isfinite(r[k]) for r in logs for k in keys)
        assert logs[-1]["forget_logp"] < logs[0]["forget_logp"]
        after[method] = _forget_logps(out / "model", data)
        assert float(after[method].mean()) < float(before.mean())
        # checkpoints reload: the final one equals the exported model, the earlier one loads
        earlier, final = sorted((out / "checkpoints").iterdir())
        assert final.name == f"step-{logs[-1]['step']:06d}" and earlier.name < final.name
        a, b = read_weights(final / "model"), read_weights(out / "model")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        model, _ = load_model(earlier / "model")
        assert all(torch.isfinite(p).all() for p in model.parameters())
    return before, after


def _summary(before, after) -> str:
    means = {"target": before, **after}
    shown = ", ".join(f"{name} {float(v.mean()):.1f}" for name, v in means.items())
    return f"\nforget log-likelihood (mean summed): {shown}"


def test_end_to_end_on_real_tofu_text(data, tmp_path, capsys):
    sizes = dict(ft_epochs=10, ft_batch=10, un_epochs=4, un_batch=4, lr=1e-3, fit=0.6)
    before, after = _end_to_end(data, tmp_path, **sizes)
    assert "wrote" in capsys.readouterr().out
    with capsys.disabled():
        print(_summary(before, after))


@pytest.mark.slow
def test_end_to_end_on_the_full_tofu_files(tofu_dir, tmp_path):
    """The real directory: finetune on the 4000-row `full`, retain90, unlearn forget10."""
    sizes = dict(ft_epochs=3, ft_batch=32, un_epochs=2, un_batch=32, lr=1e-3, fit=0.75)
    before, after = _end_to_end(tofu_dir, tmp_path, **sizes)
    print(_summary(before, after))
