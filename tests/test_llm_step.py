"""The LLM training step on tiny models: answer-only loss, the reference cache equals a live
reference, NPO's first step is GA's, the kernels are the shared objects, global token means."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import math
import re
from pathlib import Path

import pytest
import torch

import npo.losses
from npo.llm.data import read_split
from npo.llm.encoding import collate, encode_qa, template_id
from npo.llm.model import load_model
from npo.llm.train.reference import (
    LiveReference,
    cached_ref_logps,
    compute_ref_logps,
    weights_digest,
)
from npo.llm.train.step import StepInputs, micro_step, sequence_batches
from npo.losses import LOSSES
from npo.objectives import preset

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(mini_data):
    return mini_data


@pytest.fixture(scope="module")
def model_dir(random_model):
    return random_model


@pytest.fixture
def setup(model_dir, data):
    model, tok = load_model(model_dir)
    store = {
        "forget": encode_qa(tok, read_split(data, "forget10"), max_length=128),
        "retain": encode_qa(tok, read_split(data, "retain90"), max_length=128),
    }
    return model, tok, store


def _cache(model, tok, store, tmp_path, **kw):
    return cached_ref_logps(
        model,
        {"forget": store["forget"]},
        weights=weights_digest(model),
        template=template_id(tok),
        precision="fp32",
        cache_dir=tmp_path,
        batch_size=4,
        pad_id=tok.pad_token_id,
        device=CPU,
        log=lambda _: None,
        **kw,
    )


def test_only_answer_tokens_carry_loss(setup):
    model, tok, store = setup
    inputs = StepInputs(preset("ga", reduction="sum"), store, tok.pad_token_id, CPU)
    seen = {}

    def keep_logits(_module, _args, output):
        output.logits.retain_grad()
        seen["logits"] = output.logits

    handle = model.register_forward_hook(keep_logits)
    ids = [0, 5, 11, 17]
    sb = sequence_batches(model, {"forget": ids}, inputs)["forget"]
    handle.remove()
    sb.logps.sum().backward()
    labels = collate([store["forget"].item(i) for i in ids], tok.pad_token_id)["labels"]
    next_is_answer = torch.zeros_like(labels, dtype=torch.bool)
    next_is_answer[:, :-1] = labels[:, 1:] != -100
    grad = seen["logits"].grad  # (B, T, V)
    assert grad[~next_is_answer].abs().max() == 0  # prompt and padding positions: no loss
    assert (grad[next_is_answer].abs().sum(-1) > 0).all()
    # Independent check of the value: log_softmax over the answer positions only.
    logp = torch.log_softmax(seen["logits"].detach().double(), -1)
    for b, i in enumerate(ids):
        seq, plen = store["forget"].item(i)
        manual = sum(float(logp[b, t - 1, seq[t]]) for t in range(plen, len(seq)))
        assert float(sb.logps[b].detach()) == pytest.approx(manual, rel=1e-5)
        assert int(sb.n_tokens[b]) == len(seq) - plen


def test_reference_cache_equals_a_live_reference(setup, tmp_path):
    model, tok, store = setup
    model.config.attention_dropout = 0.5  # the cache must be computed with dropout off
    model.train()
    cached = _cache(model, tok, store, tmp_path)["forget"]
    assert model.training  # restored after the eval-mode pass
    live = LiveReference(model, lora=False)
    forget = frozenset({"forget"})
    inputs = StepInputs(
        preset("npo+rt"), store, tok.pad_token_id, CPU, live=live, live_sources=forget
    )
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # mixed with retain sequences: other batch shapes and padding
        f = torch.randperm(len(store["forget"]), generator=g)[:3].tolist()
        r = torch.randperm(len(store["retain"]), generator=g)[:3].tolist()
        sb = sequence_batches(model, {"forget": f, "retain": r}, inputs)["forget"]
        torch.testing.assert_close(sb.ref_logps, cached[f], rtol=1e-5, atol=1e-4)
    model.eval()
    with torch.no_grad():  # and each cached value equals a single unpadded forward
        for i in (0, 7):
            ids, plen = store["forget"].item(i)
            x = torch.tensor([ids])
            logp = torch.log_softmax(model(input_ids=x).logits.double(), -1)[0]
            manual = sum(float(logp[t - 1, ids[t]]) for t in range(plen, len(ids)))
            assert float(cached[i]) == pytest.approx(manual, rel=1e-5)


def test_reference_cache_hits_and_keys(setup, tmp_path, monkeypatch):
    model, tok, store = setup
    first = _cache(model, tok, store, tmp_path)["forget"]
    assert len(list(tmp_path.glob("ref-*.safetensors"))) == 1

    def no_compute(*a, **k):
        raise AssertionError("recomputed despite a valid cache")

    monkeypatch.setattr("npo.llm.train.reference.compute_ref_logps", no_compute)
    assert torch.equal(_cache(model, tok, store, tmp_path)["forget"], first)
    monkeypatch.setattr("npo.llm.train.reference.compute_ref_logps", compute_ref_logps)
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1.0  # other weights: another key
    _cache(model, tok, store, tmp_path)
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %} =>"
    _cache(model, tok, store, tmp_path)  # another template: another key
    assert len(list(tmp_path.glob("ref-*.safetensors"))) == 3


def test_npo_first_step_gradient_is_the_ga_gradient(setup, tmp_path):
    model, tok, store = setup
    cached = _cache(model, tok, store, tmp_path)
    idx = {"forget": [1, 4, 9, 13]}
    grads = {}
    for name in ("npo", "ga"):
        model.zero_grad()
        objective = preset(name, reduction="sum", beta=0.1)
        inputs = StepInputs(objective, store, tok.pad_token_id, CPU, cached_ref=cached)
        stats = torch.zeros(6, dtype=torch.float64)
        micro_step(model, idx, inputs, stats=stats).loss.backward()
        grads[name] = [p.grad.clone() for p in model.parameters()]
        if name == "npo":
            assert float(stats[5] / stats[3]) == pytest.approx(1.0, abs=1e-5)  # mean W = 1
    for gn, gg in zip(grads["npo"], grads["ga"]):
        torch.testing.assert_close(gn, gg, rtol=1e-4, atol=1e-7)
    assert any(g.abs().sum() > 0 for g in grads["ga"])


def test_the_llm_step_calls_the_shared_kernel_objects(setup, tmp_path, monkeypatch):
    model, tok, store = setup
    cached = _cache(model, tok, store, tmp_path)
    assert LOSSES["npo"].fn is npo.losses.npo_loss and LOSSES["nll"].fn is npo.losses.nll_loss
    calls = []
    for key in ("npo", "nll"):
        kernel = LOSSES[key]

        def spy(*args, _fn=kernel.fn, _key=key, **kwargs):
            calls.append(_key)
            return _fn(*args, **kwargs)

        spy.__signature__ = inspect.signature(kernel.fn)
        monkeypatch.setitem(LOSSES, key, dataclasses.replace(kernel, fn=spy))
    inputs = StepInputs(preset("npo+rt"), store, tok.pad_token_id, CPU, cached_ref=cached)
    micro_step(model, {"forget": [0, 1], "retain": [2, 3]}, inputs)
    assert calls == ["npo", "nll"]
    # No loss formula and no log-softmax of its own anywhere in the LLM path, no method names.
    root = Path(npo.losses.__file__).parent / "llm"
    for path in root.rglob("*.py"):
        text = path.read_text()
        for pattern in (
            r"log_softmax",
            r"softplus",
            r"logsigmoid",
            r"\bsigmoid\(",
            r"== \"(npo|ga|dpo)",
        ):
            assert not re.search(pattern, text), f"{path.name} contains {pattern}"


def test_token_means_use_global_counts(setup):
    """Micro-batches evaluated with the global counts sum to the whole batch's objective; with
    per-micro-batch token counts they do not (the micro-batches have different lengths)."""
    model, tok, store = setup
    inputs = StepInputs(preset("ga+rt"), store, tok.pad_token_id, CPU)
    full = {"forget": [0, 1, 2, 3], "retain": [10, 50, 90, 130]}
    halves = [{s: v[:2] for s, v in full.items()}, {s: v[2:] for s, v in full.items()}]
    from npo.llm.train.step import global_counts

    counts = global_counts(full, store)
    with torch.no_grad():
        whole = micro_step(model, full, inputs).loss
        summed = sum(micro_step(model, h, inputs, counts).loss for h in halves)
        naive = sum(micro_step(model, h, inputs).loss for h in halves) / 2
    torch.testing.assert_close(summed, whole, rtol=1e-5, atol=1e-6)
    tokens = [sum(store["retain"].n_tokens(i) for i in h["retain"]) for h in halves]
    assert tokens[0] != tokens[1] and abs(float(naive - whole)) > 1e-4


def test_step_benchmark_runs():
    """benchmarks/bench_llm_step.py measures the trainer's own step (smoke test, no timing goal)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_llm_step.py"
    spec = importlib.util.spec_from_file_location("bench_llm_step", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for variant in bench.VARIANTS:
        r = bench.measure(variant, config="tiny", device="cpu", precision="fp32", steps=1, warmup=0)
        assert r["seconds"] > 0 and math.isfinite(r["loss"]), variant
