"""Membership inference and PrivLeak: the formulas against hand-computed values, Min-K%++'s
per-token statistics against a direct float64 computation on a tiny model, the holdout
reader, and the metrics inside an evaluation (per-item scores, aggregates, notes)."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch

from npo.llm.eval import EvalConfig, evaluate_model, load_eval_data
from npo.llm.eval.privacy import (
    attack_scores,
    holdout_split_for,
    mia_auc,
    min_k,
    min_k_plus_plus,
    privleak,
    zlib_length,
)
from npo.logprobs import token_stats

pytestmark = pytest.mark.usefixtures("one_thread")


def test_auc_exactly_one_half_zero_with_ties():
    # loss-like scores: forget higher than every holdout item = the forget set looks unseen
    assert mia_auc([3.0, 4.0, 4.0], [1.0, 2.0, 2.0]) == 1.0
    assert mia_auc([1.0, 2.0, 2.0], [1.0, 2.0, 2.0]) == 0.5
    assert mia_auc([1.0, 2.0, 2.0], [3.0, 4.0, 4.0]) == 0.0
    assert mia_auc([5.0, 5.0], [5.0, 5.0, 5.0]) == 0.5  # all tied
    # pairs (1,1)=1/2, (1,0)=1, (2,1)=1, (2,0)=1 -> 3.5 / 4
    assert mia_auc([1.0, 2.0], [1.0, 0.0]) == pytest.approx(0.875)
    with pytest.raises(ValueError, match="forget scores"):
        mia_auc([], [1.0])


def test_privleak_hand_values_and_sign():
    assert privleak(0.0, 0.5) == -100.0  # the target: under-unlearned
    assert privleak(0.25, 0.5) == -50.0
    assert privleak(0.6, 0.4) == pytest.approx(50.0)  # over-unlearned
    assert privleak(0.5, 0.5) == 0.0
    with pytest.raises(ValueError, match="reference AUC"):
        privleak(0.5, 0.0)


def test_min_k_and_zlib_by_hand():
    lp = [-1.0, -5.0, -3.0, -2.0, -4.0]
    assert min_k(lp, 0.4) == 4.5  # floor(0.4 * 5) = 2 lowest: -5, -4
    assert min_k(lp, 0.1) == 5.0  # at least one token
    assert min_k(lp, 1.0) == 3.0
    # (lp - mu) / sigma with sigma^2 floored at 1e-6: z = [1, -1, 0, 2, -3] -> lowest two
    z = min_k_plus_plus([0.0, -2.0, -1.0, 1.0, -4.0], [-1.0] * 5, [1.0] * 5, 0.4)
    assert z == 2.0
    assert min_k_plus_plus([-1.0], [-1.0], [0.0], 1.0) == 0.0
    text = "Ilsa Doran was born in Lisbon."
    assert zlib_length(text) == len(zlib.compress(text.encode("utf-8")))
    tokens = [np.array([[-1.0, -3.0], [-2.0, -2.0], [1.0, 1.0]])]
    s = attack_scores(tokens, [text], k=0.5, calibration_loss=[0.5])
    assert s["loss"] == [2.0] and s["zlib"] == [2.0 / zlib_length(text)]
    assert s["min_k"] == [3.0] and s["calibrated"] == [1.5]
    assert s["min_k_plus_plus"] == [1.0]  # z = [1, -1], lowest one
    assert attack_scores(tokens, [text])["calibrated"] is None
    assert holdout_split_for("forget10_perturbed") == "holdout10"


def _direct(logits, labels):
    # float64, no chunks: log p of the next label, mean and std of log p
    lp = torch.log_softmax(logits.double(), -1)[:, :-1]
    y = labels[:, 1:]
    mask = y != -100
    picked = lp.gather(-1, y.clamp_min(0)[..., None])[..., 0]
    p = lp.exp()
    mu = (p * lp).sum(-1)
    sd = (p * (lp - mu[..., None]) ** 2).sum(-1).sqrt()
    return picked[mask], mu[mask], sd[mask]


@pytest.fixture(scope="module")
def tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=61,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(cfg).eval()


def test_token_stats_match_float64_on_a_tiny_model(tiny):
    ids = torch.randint(0, 61, (3, 9))
    labels = ids.clone()
    labels[:, :4] = -100
    labels[2, 7:] = -100  # padding
    with torch.no_grad():
        logits = tiny(input_ids=ids).logits * 4  # sharper distributions
    want = _direct(logits, labels)
    for chunk in (None, 1, 5):
        st = token_stats(logits, labels, chunk_rows=chunk)
        got = [x[st.mask].double() for x in (st.logp, st.mean, st.std)]
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    st64 = token_stats(logits.double(), labels)
    torch.testing.assert_close(st64.std[st64.mask], want[2], rtol=1e-12, atol=1e-12)
    # Min-K%++ from the kernel's statistics equals the direct float64 one
    n = int(st.mask[0].sum())
    kernel = min_k_plus_plus(*(x[0][st.mask[0]].double().numpy() for x in st[:3]), k=0.4)
    direct = min_k_plus_plus(*(w[:n].numpy() for w in want), k=0.4)
    assert kernel == pytest.approx(direct, rel=1e-5)
    with pytest.raises(ValueError, match="token_stats expects"):
        token_stats(logits[0], labels[0])


# ---------------------------------------------------------------- inside an evaluation


@pytest.fixture(scope="module")
def authors_dir(tmp_path_factory):
    from synthetic.transformer import AuthorsConfig, generate_authors, write_tofu_splits

    out = tmp_path_factory.mktemp("authors")
    data = generate_authors(AuthorsConfig(n_authors=10, qa_per_author=3, n_utility=3))
    write_tofu_splits(data, out, (10, 20))
    return out


@pytest.fixture(scope="module")
def tiny_llama(authors_dir, tmp_path_factory):
    from _llm import random_model_dir

    from npo.llm.model import load_model

    path = random_model_dir(authors_dir, tmp_path_factory.mktemp("m") / "model")
    return load_model(path)


def test_holdout_reader(authors_dir, tmp_path):
    data = load_eval_data(authors_dir, "forget10")
    assert data.holdout is not None and data.holdout.name == "holdout10"
    assert len(data.holdout) == 3 and "holdout" in data.digests
    forget_q = set(data.sets["forget"].column("question"))
    assert not forget_q & set(data.holdout.column("question"))
    # the same data without its holdout file: None, with a note naming the split
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in authors_dir.iterdir():
        if not f.name.startswith("holdout"):
            (bare / f.name).write_bytes(f.read_bytes())
    none = load_eval_data(bare, "forget10")
    assert none.holdout is None and "no holdout10 split" in none.holdout_note
    # a holdout file the test writes
    rows = [{"question": "Who is Nobody?", "answer": "Nobody is a painter."}]
    (bare / "holdout10.json").write_text("\n".join(json.dumps(r) for r in rows))
    mine = load_eval_data(bare, "forget10")
    assert mine.holdout is not None and mine.holdout.column("answer") == [rows[0]["answer"]]
    (bare / "holdout10.json").write_text('{"question": "Q?"}\n')
    with pytest.raises(ValueError, match=r"holdout10.json:1: missing field 'answer'"):
        load_eval_data(bare, "forget10")
    off = load_eval_data(authors_dir, "forget10", EvalConfig(mia=False))
    assert off.holdout is None and "off" in off.holdout_note


def test_membership_in_an_evaluation(authors_dir, tiny_llama, tmp_path):
    model, tok = tiny_llama
    cfg = EvalConfig(generate=False, progress=False, batch_size=5)
    retain = evaluate_model(model, tok, authors_dir, "forget10", config=cfg)
    res = evaluate_model(
        model, tok, authors_dir, "forget10", config=cfg, retain_results=retain, calibration=model
    )
    forget, holdout = res.items["forget"], res.items["holdout"]
    assert len(forget["mia_min_k"]) == 3 and len(holdout["mia_loss"]) == 3
    # LOSS equals the answer loss the other metrics use (the same forward)
    np.testing.assert_allclose(forget["mia_loss"], forget["answer_loss"], rtol=1e-6)
    want = mia_auc(forget["mia_min_k"], holdout["mia_min_k"])
    assert res.metrics["mia_auc_min_k"] == want
    # the same model is its own retain model: PrivLeak 0 for every attack
    assert res.metrics["privleak"] == 0.0 and res.metrics["privleak_loss"] == 0.0
    np.testing.assert_allclose(forget["mia_calibrated"], 0.0, atol=1e-5)
    assert retain.metrics["privleak"] is None and retain.metrics["mia_auc_calibrated"] is None
    assert any("no retain-model results" in n for n in retain.notes)
    assert "MUSE" in res.info["mia"]["auc_orientation"] and res.info["mia"]["k"] == 0.4
    fixed = evaluate_model(
        model,
        tok,
        authors_dir,
        "forget10",
        config=EvalConfig(generate=False, progress=False, privleak_reference=0.5),
    )
    assert fixed.metrics["privleak"] == pytest.approx(privleak(want, 0.5))
    # a file round trip keeps the per-item scores; no holdout: nulls with a note
    doc = json.loads(json.dumps(res.to_json()))
    assert doc["items"]["holdout"]["mia_min_k"] == holdout["mia_min_k"]
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in authors_dir.iterdir():
        if not f.name.startswith("holdout"):
            (bare / f.name).write_bytes(f.read_bytes())
    none = evaluate_model(model, tok, bare, "forget10", config=cfg)
    assert none.metrics["mia_auc_loss"] is None and none.metrics["privleak"] is None
    assert any("membership inference" in n and "holdout10" in n for n in none.notes)
    # retain results on other holdout items cannot be PrivLeak's reference
    rows = [{"question": "Who is Nobody?", "answer": "Nobody is a painter."}]
    (bare / "holdout10.json").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(ValueError, match="holdout items differ"):
        evaluate_model(model, tok, bare, "forget10", config=cfg, retain_results=retain)


def test_bad_mia_options():
    with pytest.raises(ValueError, match="mia_k"):
        EvalConfig(mia_k=1.5)
    with pytest.raises(ValueError, match="privleak_reference"):
        EvalConfig(privleak_reference=2.0)
