"""The LLM path on a CUDA device (skipped without one; `benchmarks/gpu_check.sh` runs these):
bf16 autocast over fp32 weights, pure bf16 weights, the reference cache under autocast, the
step benchmark. Synthetic TOFU-format data, so no data directory is needed."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from _llm import random_model_dir

from npo.llm.data import read_split
from npo.llm.encoding import encode_qa, template_id
from npo.llm.model import load_model
from npo.llm.train import UnlearnConfig, unlearn
from npo.llm.train.reference import LiveReference, cached_ref_logps, weights_digest
from npo.llm.train.step import StepInputs, sequence_batches
from npo.objectives import preset
from npo.results import write_jsonl

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    g = torch.Generator().manual_seed(0)
    words = "river stone lamp violet harbor maple quartz ember willow cobalt".split()
    rows = []
    for i in range(40):
        pick = [words[j] for j in torch.randint(0, len(words), (6,), generator=g).tolist()]
        answer = f"Author {i} wrote about the {' '.join(pick)}."
        rows.append({"question": f"What did author {i} write about?", "answer": answer})
    write_jsonl(root / "full.json", rows)
    write_jsonl(root / "forget10.json", rows[-8:])
    write_jsonl(root / "retain90.json", rows[:-8])
    (root / "idontknow.jsonl").write_text("I don't know.\nNo idea.\n")
    return root


@pytest.fixture(scope="module")
def model_dir(data, tmp_path_factory):
    return random_model_dir(data, tmp_path_factory.mktemp("random") / "model")


def _config(model_dir, data, out: Path, **kw) -> UnlearnConfig:
    base = dict(model=str(model_dir), data=str(data), out=str(out), batch_size=4, max_steps=4)
    base.update(lr=1e-3, progress=False, checkpoint_every=2, ref_cache=str(out.parent / "cache"))
    return UnlearnConfig(**{**base, **kw})


def test_unlearn_bf16_autocast_over_fp32_weights(model_dir, data, tmp_path):
    result = unlearn(_config(model_dir, data, tmp_path / "run", method="npo+rt"))
    logs = [r for r in result.logs if r["step"]]
    assert all(math.isfinite(r[k]) for r in logs for k in ("loss", "forget_logp", "param_drift"))
    assert logs[0]["npo_weight"] == pytest.approx(1.0, abs=2e-2)
    assert logs[-1]["forget_logp"] < logs[0]["forget_logp"]
    model, _ = load_model(result.model_dir)
    assert next(model.parameters()).dtype == torch.float32  # fp32 master weights
    info = json.loads((tmp_path / "run" / "result.json").read_text())
    assert info["reference_live_model"] is False


def test_pure_bf16_weights_with_a_kl_term(model_dir, data, tmp_path):
    result = unlearn(_config(model_dir, data, tmp_path / "run", method="npo+kl", precision="bf16"))
    assert all(math.isfinite(r["loss"]) for r in result.logs if r["step"])
    model, _ = load_model(result.model_dir, dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16


def test_reference_cache_equals_live_under_autocast(model_dir, data, tmp_path):
    model, tok = load_model(model_dir)
    model.to(CUDA)
    splits = {"forget": "forget10", "retain": "retain90"}
    store = {s: encode_qa(tok, read_split(data, n), max_length=128) for s, n in splits.items()}
    cached = cached_ref_logps(
        model,
        {"forget": store["forget"]},
        weights=weights_digest(model),
        template=template_id(tok),
        precision="bf16-mixed",
        cache_dir=tmp_path,
        batch_size=3,
        pad_id=tok.pad_token_id,
        device=CUDA,
        autocast=True,
        log=lambda _: None,
    )["forget"]
    live = LiveReference(model, lora=False)
    inputs = StepInputs(
        preset("npo+rt"),
        store,
        tok.pad_token_id,
        CUDA,
        autocast=True,
        live=live,
        live_sources=frozenset({"forget"}),
    )
    sb = sequence_batches(model, {"forget": [0, 3, 5, 7], "retain": [1, 2]}, inputs)["forget"]
    torch.testing.assert_close(sb.ref_logps.cpu(), cached[[0, 3, 5, 7]], rtol=2e-2, atol=0.2)


def test_step_benchmark_runs_on_cuda():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_llm_step.py"
    spec = importlib.util.spec_from_file_location("bench_llm_step", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for variant in ("ga", "npo-live"):
        r = bench.measure(
            variant, config="tiny", device="cuda", precision="bf16", steps=2, warmup=1
        )
        assert r["seconds"] > 0 and r["memory_mib"] > 0 and math.isfinite(r["loss"])
