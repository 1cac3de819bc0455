"""Data parallelism: a 2-process ``torchrun`` run (gloo, CPU) ends where the 1-process run
with the same global batch and sample order ends."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from npo.llm.train import read_log, read_weights


@pytest.fixture(scope="module")
def data(mini_data):
    return mini_data


@pytest.fixture(scope="module")
def model_dir(random_model):
    return random_model


def _run(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("ACCELERATE_USE_DEEPSPEED", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def test_two_processes_match_one(model_dir, data, tmp_path):
    args = ["unlearn", "--model", str(model_dir), "--data", str(data), "--forget", "forget10"]
    args += ["--method", "npo+rt", "--batch-size", "8", "--micro-batch-size", "2"]
    args += ["--max-steps", "4", "--lr", "3e-3", "--warmup-epochs", "0.5"]
    args += ["--checkpoint-every", "2", "--no-progress"]
    one, two = tmp_path / "one", tmp_path / "two"
    one_args = [*args, "--out", str(one), "--ref-cache", str(tmp_path / "cache1")]
    _run([sys.executable, "-m", "npo.cli", *one_args], tmp_path)
    two_args = [*args, "--out", str(two), "--ref-cache", str(tmp_path / "cache2")]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    proc = _run([*torchrun, "--nproc_per_node", "2", "-m", "npo.cli", *two_args], tmp_path)
    assert proc.stdout.count("wrote ") == 1  # only the main process reports
    a, b = read_weights(one / "model"), read_weights(two / "model")
    start = read_weights(model_dir)
    for k in a:
        # Relative in the L2 norm of each tensor. Elementwise, AdamW's g / (sqrt(v) + eps)
        # turns float summation-order noise in near-zero gradients into differences up to
        # ~6e-5 of a tensor's largest entry (measured; with SGD the elementwise figure is 5e-8).
        rel = float((a[k] - b[k]).norm() / a[k].norm())
        assert rel < 1e-5, (k, rel)
        assert float((a[k] - start[k]).norm() / start[k].norm()) > 1e-3, k  # it did train
    la, lb = read_log(one), read_log(two)
    assert [r["step"] for r in la] == [r["step"] for r in lb] == [1, 2, 3, 4]
    for ra, rb in zip(la, lb):
        assert ra["tokens"] == rb["tokens"]  # the same global batches
        for key in ("loss", "forget_npo", "retain_nll", "forget_logp", "npo_weight"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5, abs=1e-6), key
    assert (two / "checkpoints" / "step-000004" / "rng-1.safetensors").is_file()
    # The cached reference log-probs computed by two ranks equal one rank's.
    (c1,), (c2,) = (list((tmp_path / c).glob("ref-*.safetensors")) for c in ("cache1", "cache2"))
    from safetensors.torch import load_file

    torch.testing.assert_close(load_file(c1)["logps"], load_file(c2)["logps"], rtol=1e-5, atol=1e-4)
