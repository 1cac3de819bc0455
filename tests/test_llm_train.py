"""The LLM trainer on tiny models: per-step logs and hooks, bitwise resume, the NaN guard, no
second model unless a KL term needs one, live and cached references agree, LoRA."""

from __future__ import annotations

import dataclasses
import gc
import inspect
import json
import math

import pytest
import torch

from npo.llm.model import load_model
from npo.llm.train import NonFiniteLossError, UnlearnConfig, read_log, read_weights, unlearn
from npo.losses import LOSSES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(mini_data):
    return mini_data


@pytest.fixture(scope="module")
def model_dir(random_model):
    return random_model


def _config(model_dir, data, out, **kw) -> UnlearnConfig:
    base = dict(
        model=str(model_dir),
        data=str(data),
        forget="forget10",
        method="npo+rt",
        out=str(out),
        batch_size=4,
        micro_batch_size=2,
        epochs=2,
        lr=3e-3,
        progress=False,
        checkpoint_every=0,
        ref_cache=str(out.parent / "cache"),
    )
    base.update(kw)
    return UnlearnConfig(**base)


def test_logs_hooks_and_outputs(model_dir, data, tmp_path):
    seen = []

    def hook(ctx):
        assert not ctx.model.training and not torch.is_grad_enabled()
        seen.append(ctx.step)
        return {"hook_step": ctx.step}

    cfg = _config(model_dir, data, tmp_path / "run", max_steps=5, eval_every=2)
    result = unlearn(cfg, hooks=[hook])
    assert seen == [0, 2, 4, 5]
    logs = read_log(tmp_path / "run")
    assert [r["step"] for r in logs] == [0, 1, 2, 3, 4, 5] and list(result.logs) == logs
    assert logs[0] == {"step": 0, "epoch": 0.0, "hook_step": 0}
    first, last = logs[1], logs[-1]
    keys = ["lr", "loss", "forget_npo", "retain_nll", "forget_loss", "retain_loss"]
    keys += ["forget_logp", "forget_logp_per_token", "log_ratio", "npo_weight"]
    for key in [*keys, "param_drift", "grad_norm", "tokens", "seconds"]:
        assert key in first and math.isfinite(first[key]), key
    assert first["npo_weight"] == pytest.approx(1.0, abs=1e-4)  # W = 1 at the start
    assert first["log_ratio"] == pytest.approx(0.0, abs=1e-3)
    assert first["loss"] == pytest.approx(first["forget_loss"] + first["retain_loss"], rel=1e-6)
    assert first["forget_npo"] == pytest.approx(2 * math.log(2) / 0.1, rel=1e-3)
    assert 0 < first["param_drift"] < last["param_drift"]
    assert last["log_ratio"] < 0 and last["npo_weight"] < 1 and last["hook_step"] == 5
    assert (result.model_dir / "model.safetensors").is_file()
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-000005"]
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["steps"] == 5 and summary["reference_live_model"] is False
    assert summary["reference_cached"] == ["forget"] and summary["accumulation"] == 2
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["method"] == "npo+rt" and config["command"] == "UnlearnConfig"


class Interrupt(Exception):
    pass


def test_resume_is_bitwise(model_dir, data, tmp_path):
    kw = dict(epochs=3, checkpoint_every=2, warmup_epochs=1.0, keep_checkpoints=2)
    whole = unlearn(_config(model_dir, data, tmp_path / "whole", **kw))

    def stop_at_5(ctx):
        if ctx.step == 5:
            raise Interrupt

    cut = _config(model_dir, data, tmp_path / "cut", eval_every=1, **kw)
    with pytest.raises(Interrupt):
        unlearn(cut, hooks=[stop_at_5])
    ckpts = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())
    assert ckpts == ["step-000002", "step-000004"]
    assert len(read_log(tmp_path / "cut")) == 4  # steps 1-4 (step 5 never logged)
    resumed = unlearn(dataclasses.replace(cut, resume=True))
    assert resumed.resumed_from == 4 and resumed.steps == whole.steps == 15
    a, b = read_weights(whole.model_dir), read_weights(resumed.model_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la, lb = read_log(tmp_path / "whole"), read_log(tmp_path / "cut")
    assert [r["step"] for r in lb] == list(range(1, 16))
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    assert [r["param_drift"] for r in la] == [r["param_drift"] for r in lb]


def test_out_dir_guard_and_resume_config_check(model_dir, data, tmp_path):
    cfg = _config(model_dir, data, tmp_path / "run", max_steps=2)
    unlearn(cfg)
    with pytest.raises(ValueError, match=r"already holds a run .* pass --resume"):
        unlearn(cfg)
    with pytest.raises(
        ValueError, match=r"different configuration .*beta: 0\.1 -> 0\.2.*only --lr"
    ):
        unlearn(dataclasses.replace(cfg, resume=True, beta=0.2))


def test_nonfinite_loss_stops_with_the_last_good_checkpoint(model_dir, data, tmp_path, monkeypatch):
    kernel, calls = LOSSES["npo"], []

    def npo_then_nan(policy_logps, ref_logps, *, beta):
        calls.append(1)
        out = kernel.fn(policy_logps, ref_logps, beta=beta)
        return out * float("nan") if len(calls) == 7 else out  # micro-batch 1 of step 4

    assert inspect.signature(npo_then_nan).parameters.keys() == {
        "policy_logps",
        "ref_logps",
        "beta",
    }
    monkeypatch.setitem(LOSSES, "npo", dataclasses.replace(kernel, fn=npo_then_nan))
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as err:
        unlearn(_config(model_dir, data, out, checkpoint_every=2))
    msg = str(err.value)
    assert "non-finite loss at step 4 (forget_npo=nan" in msg
    assert "after the update of step 3 (too high a --lr" in msg
    assert f"the last good checkpoint is {out / 'checkpoints' / 'step-000002'}" in msg
    assert not (out / "model").exists()
    assert [r["step"] for r in read_log(out)] == [1, 2, 3]
    model, _ = load_model(out / "checkpoints" / "step-000002" / "model")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    good = read_weights(out / "checkpoints" / "step-000002" / "model")
    assert not torch.equal(good["lm_head.weight"], read_weights(model_dir)["lm_head.weight"])


def test_nonfinite_weights_are_never_checkpointed(model_dir, data, tmp_path):
    def corrupt_at_2(ctx):  # stands in for an overflowing update
        if ctx.step == 2:
            ctx.model.lm_head.weight[0, 0] = float("inf")

    cfg = _config(model_dir, data, tmp_path / "run", checkpoint_every=1, eval_every=1)
    with pytest.raises(NonFiniteLossError, match=r"non-finite weights at step 2 .*step-000001"):
        unlearn(cfg, hooks=[corrupt_at_2])
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["step-000001"]
    kept = read_weights(tmp_path / "run/checkpoints/step-000001/model")
    assert all(torch.isfinite(t).all() for t in kept.values())


def _models_alive() -> int:
    """Hugging Face causal LMs alive in this process (backbones and peft wrappers not counted)."""
    from transformers import PreTrainedModel

    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if type(o).__name__.endswith("ForCausalLM") and isinstance(o, PreTrainedModel)
    )


@pytest.mark.parametrize(
    ("method", "extra", "models", "live"),
    [
        ("npo+rt", {}, 1, False),
        ("dpo+rt", {}, 1, False),
        ("npo+kl", {}, 2, True),
        ("npo+kl", {"lora_r": 4}, 1, True),  # LoRA: the policy with adapters disabled
        ("npo", {"reference": "live"}, 2, True),  # what the benchmark compares against
    ],
)
def test_a_second_model_only_for_kl_or_live_reference(
    model_dir, data, tmp_path, method, extra, models, live
):
    before = _models_alive()
    during = []
    cfg = _config(model_dir, data, tmp_path / "run", method=method, max_steps=2, **extra)
    result = unlearn(cfg, hooks=[lambda ctx: during.append(_models_alive() - before)])
    assert during == [models, models]
    info = json.loads((tmp_path / "run" / "result.json").read_text())
    assert info["reference_live_model"] is live
    assert all(math.isfinite(r["loss"]) for r in result.logs if r["step"])


def test_live_and_cached_reference_train_alike(model_dir, data, tmp_path):
    runs = {}
    for ref in ("cache", "live"):
        cfg = _config(model_dir, data, tmp_path / ref, method="npo+rt", max_steps=4, reference=ref)
        runs[ref] = read_weights(unlearn(cfg).model_dir)
    for k in runs["cache"]:
        torch.testing.assert_close(runs["cache"][k], runs["live"][k], rtol=1e-4, atol=2e-5)


def test_gradient_checkpointing_gives_the_same_training(model_dir, data, tmp_path):
    runs = []
    for on in (False, True):
        cfg = _config(model_dir, data, tmp_path / str(on), max_steps=3, gradient_checkpointing=on)
        runs.append(read_weights(unlearn(cfg).model_dir))
    for k in runs[0]:
        torch.testing.assert_close(runs[0][k], runs[1][k], rtol=1e-5, atol=1e-6)


def test_lora_trains_adapters_only_and_resumes(model_dir, data, tmp_path):
    kw = dict(method="npo+rt", lora_r=4, epochs=2, checkpoint_every=2)
    whole = unlearn(_config(model_dir, data, tmp_path / "whole", **kw))
    assert (whole.model_dir / "adapter_config.json").is_file()
    merged, _ = load_model(whole.model_dir)  # merges the adapter into its base
    base, _ = load_model(model_dir)
    pairs = zip(merged.named_parameters(), base.parameters())
    diff = {n: float((p - q).detach().abs().max()) for (n, p), q in pairs}
    assert diff["model.embed_tokens.weight"] == 0 and max(diff.values()) > 0

    def stop_at_3(ctx):
        if ctx.step == 3:
            raise Interrupt

    cut = _config(model_dir, data, tmp_path / "cut", eval_every=1, **kw)
    with pytest.raises(Interrupt):
        unlearn(cut, hooks=[stop_at_3])
    resumed = unlearn(dataclasses.replace(cut, resume=True))
    a, b = read_weights(whole.model_dir), read_weights(resumed.model_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
