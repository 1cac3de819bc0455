"""Objectives: presets, reductions, global counts, and validation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from npo.losses import LOSSES, npo_loss, npo_weight
from npo.objectives import (
    PRESETS,
    Objective,
    SeqBatch,
    Term,
    objective_from_terms,
    preset,
)


def _batch(seed=0, b=4, runs=None, tokens=True):
    g = torch.Generator().manual_seed(seed)
    shape = (b,) if runs is None else (runs, b)

    def seq():
        n = torch.randint(1, 9, shape, generator=g) if tokens else None
        lp = -torch.rand(shape, generator=g, dtype=torch.float64) * 20
        return SeqBatch(
            logps=lp.requires_grad_(),
            n_tokens=n,
            ref_logps=lp.detach() + torch.randn(shape, generator=g, dtype=torch.float64),
            kl=torch.rand(shape, generator=g, dtype=torch.float64).requires_grad_(),
        )

    return {"forget": seq(), "retain": seq(), "idk": seq()}


def test_every_preset_builds_and_evaluates():
    batch = _batch()
    keys = "ga ga+rt ga+kl npo npo+rt npo+kl simnpo simnpo+rt dpo+rt idk+rt"
    assert set(PRESETS) == set(keys.split())
    for name in PRESETS:
        out = preset(name, beta=0.5)(batch)
        assert out.loss.shape == () and math.isfinite(out.loss.item()), name
        assert set(out.terms) == {t.name for t in preset(name).terms}


def test_npo_rt_by_hand_with_official_reductions():
    batch = _batch(1)
    out = preset("npo+rt", beta=0.3, retain_weight=5.0)(batch)
    f, r = batch["forget"], batch["retain"]
    npo = npo_loss(f.logps, f.ref_logps, beta=0.3).mean()  # summed log-probs, mean over seqs
    nll = -r.logps.sum() / r.n_tokens.sum()  # token mean over the batch
    assert torch.allclose(out.terms["forget_npo"], npo)
    assert torch.allclose(out.terms["retain_nll"], nll)
    assert torch.allclose(out.loss, npo + 5.0 * nll)


def test_reduction_options():
    batch = _batch(2)
    f = batch["forget"]
    n = f.n_tokens.double()
    mean = preset("npo", beta=1.0, reduction="mean")(batch).loss
    assert torch.allclose(mean, npo_loss(f.logps / n, f.ref_logps / n, beta=1.0).mean())
    ga_sum = preset("ga", reduction="sum")(batch).loss
    assert torch.allclose(ga_sum, f.logps.mean())
    ga_tok = preset("ga")(batch).loss
    assert torch.allclose(ga_tok, f.logps.sum() / n.sum())
    with pytest.raises(ValueError, match="reduction 'token' needs a linear kernel"):
        preset("npo", reduction="token")


def test_global_counts_override_denominators():
    batch = _batch(3)
    f, r = batch["forget"], batch["retain"]
    obj = preset("ga+rt")
    out = obj(batch, counts={"forget": (10.0, 100.0), "retain": (10.0, 250.0)})
    assert torch.allclose(out.terms["forget_ga"], f.logps.sum() / 100.0)
    assert torch.allclose(out.terms["retain_nll"], -r.logps.sum() / 250.0)


def test_leading_run_dimensions_reduce_per_run():
    batch = _batch(4, b=5, runs=3, tokens=False)
    out = preset("npo+kl", beta=2.0)(batch)
    assert out.loss.shape == (3,)
    f, r = batch["forget"], batch["retain"]
    expected = npo_loss(f.logps, f.ref_logps, beta=2.0).mean(-1) + r.kl.mean(-1)
    assert torch.allclose(out.loss, expected)


@given(st.floats(0.01, 10.0), st.integers(0, 1000))
def test_first_npo_step_is_a_ga_step(beta, seed):
    """At theta = theta_ref, W = 1: NPO's gradient equals GA's (sum reductions)."""
    g = torch.Generator().manual_seed(seed)
    lp = -torch.rand(6, generator=g, dtype=torch.float64) * 30
    a = lp.clone().requires_grad_()
    preset("npo", beta=beta)({"forget": SeqBatch(a, ref_logps=lp)}).loss.backward()
    b = lp.clone().requires_grad_()
    preset("ga", reduction="sum")({"forget": SeqBatch(b)}).loss.backward()
    assert torch.allclose(a.grad, b.grad, rtol=1e-12)
    assert torch.equal(npo_weight(lp, lp, beta=beta), torch.ones(6, dtype=torch.float64))


def test_objectives_call_the_registered_kernels(monkeypatch):
    calls = []
    orig = LOSSES["npo"]
    monkeypatch.setitem(
        LOSSES,
        "npo",
        orig.__class__(lambda **kw: calls.append(kw) or orig.fn(**kw), orig.args, orig.hparams),
    )
    preset("npo", beta=1.0)(_batch())
    assert len(calls) == 1 and set(calls[0]) == {"policy_logps", "ref_logps", "beta"}


def test_custom_term_lists():
    obj = objective_from_terms([("npo", 1.0), ("retain_nll", 2.5), ("retain_kl", 0.1)], beta=0.2)
    names = [(t.name, t.weight) for t in obj.terms]
    assert names == [("forget_npo", 1.0), ("retain_nll", 2.5), ("retain_kl", 0.1)]
    assert obj.needs() == {"forget": {"logps", "ref_logps"}, "retain": {"logps", "kl"}}
    assert preset("dpo+rt").needs()["idk"] == {"logps", "ref_logps"}


def test_validation_messages():
    batch = _batch()
    with pytest.raises(ValueError, match=r"unknown method 'npo\+foo'; valid: \["):
        preset("npo+foo")
    with pytest.raises(ValueError, match="unknown term 'retain'"):
        objective_from_terms([("retain", 1.0)])
    with pytest.raises(ValueError, match="unknown loss"):
        Term("gd")
    with pytest.raises(ValueError, match="unknown source 'forgett'"):
        Term("ga", source="forgett")
    with pytest.raises(ValueError, match="needs a chosen source"):
        Term("dpo", hparams={"beta": 1.0})
    with pytest.raises(ValueError, match=r"needs hparams \['beta'\]"):
        Term("npo")
    with pytest.raises(ValueError, match="beta must be a finite positive number"):
        preset("npo", beta=0.0)
    with pytest.raises(ValueError, match="normalises by length itself"):
        Term("simnpo", reduction="mean", hparams={"beta": 1.0})
    with pytest.raises(ValueError, match="at least one term"):
        Objective(())
    no_ref = {"forget": SeqBatch(batch["forget"].logps, batch["forget"].n_tokens)}
    with pytest.raises(ValueError, match="needs 'ref_logps' for source 'forget'"):
        preset("npo")(no_ref)
    with pytest.raises(ValueError, match=r"reads source 'retain', not in batch \['forget'\]"):
        preset("ga+rt")(no_ref)
    empty = SeqBatch(torch.zeros(3), torch.tensor([2, 0, 1]), ref_logps=torch.zeros(3))
    with pytest.raises(ValueError, match=r"source 'forget': sequences \[1\].*no answer tokens"):
        preset("npo")({"forget": empty})


def test_reproduce_method_keys_are_the_presets():
    from npo.experiment import METHOD_KEYS

    assert set(METHOD_KEYS) == set(PRESETS)
