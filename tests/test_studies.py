"""The real-checkpoint studies' pieces without the real model: the probe set and its match rule,
where an answer states its fact, the frozen prefix against the full forward, the evaluation
schedule, the claims' arithmetic, and the registry keeping long experiments out of ``all``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from npo.experiment import Experiment, ExperimentResult, ReproduceConfig, registry, select
from npo.llm.encoding import encode_qa
from npo.llm.studies.knowledge import KnowledgeConfig, knowledge_claims, knowledge_config
from npo.llm.studies.knowledge_eval import crossing
from npo.llm.studies.knowledge_runs import evaluation_due
from npo.llm.studies.probe import ProbeAnswer, answer_span, is_hit, load_probe, select_items


def test_probe_set_is_valid_and_balanced():
    rows = load_probe()
    assert len(rows) == 298 and len({r["question"] for r in rows}) == 298
    country = sum(r["category"] in ("capital", "language", "currency") for r in rows)
    assert country == 148 and len(rows) - country == 150


def test_is_hit_matches_whole_words_and_symbols_case_sensitively():
    capital = {"aliases": ["Paris"], "match": "word"}
    assert is_hit("The capital of France is paris.", capital)
    assert not is_hit("Parisian cafes", capital)
    carbon = {"aliases": ["C"], "match": "symbol"}
    assert is_hit("The chemical symbol for carbon is C.", carbon)
    assert not is_hit("Carbon is c.", carbon)


@pytest.fixture(scope="module")
def tok():
    from npo.llm.model import train_tokenizer

    texts = ["The capital of France is Paris. It is big.", "Who wrote it? Nobody knows."] * 20
    return train_tokenizer(texts, 320)


def test_answer_span_ends_at_the_sentence_that_states_the_fact(tok):
    item = {
        "question": "What is the capital of France?",
        "category": "capital",
        "answer": "Paris",
        "aliases": ["Paris"],
        "match": "word",
    }
    text = "The capital of France is Paris. It is big."
    ids = tuple(tok(text, add_special_tokens=False)["input_ids"])
    fact, end = answer_span(tok, item, ProbeAnswer(ids, text, False, True))
    assert tok.decode(ids[:end]) == "The capital of France is Paris."
    assert tok.decode(ids[:fact]).endswith("Paris") and "Paris" not in tok.decode(ids[: fact - 1])
    wrong = "Nobody knows. It is big"
    wids = tuple(tok(wrong, add_special_tokens=False)["input_ids"])
    assert answer_span(tok, item, ProbeAnswer(wids, wrong, True, False))[0] == 0
    splits = select_items(
        tok,
        [item, item],
        [ProbeAnswer(ids, text, False, True), ProbeAnswer(wids, wrong, True, False)],
    )
    assert splits["forget"].rows[0]["answer"] == "The capital of France is Paris."
    assert splits["heldout"].rows[0]["answer"] == "Nobody knows."
    assert len(splits["retain"]) == 0


def test_frozen_prefix_scores_equal_the_full_forward(tok):
    from transformers import LlamaConfig, LlamaForCausalLM

    from npo.llm.data import QASplit
    from npo.llm.layers import freeze_below
    from npo.llm.studies.frozen import FrozenPrefix
    from npo.logprobs import packed_sequence_logprobs, sequence_logprobs

    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    freeze_below(model, 1)
    rows = tuple(
        {"question": q, "answer": a}
        for q, a in [("Who?", "Nobody knows."), ("Capital of France?", "It is Paris.")]
    )
    enc = encode_qa(tok, QASplit("s", "-", rows, (1, 2)), max_length=64)
    prefix = FrozenPrefix(model, {"s": enc}, split=2, pad_id=0, progress=False)
    p = prefix.packed([("s", 1), ("s", 0)])
    lp, n = packed_sequence_logprobs(p.logits, p.targets, p.rows, p.n_seq)
    from npo.llm.encoding import collate

    batch = collate([enc.item(1), enc.item(0)], 0)
    full, fn = sequence_logprobs(
        model(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits, batch["labels"]
    )
    assert torch.equal(n, fn)
    torch.testing.assert_close(lp, full, rtol=1e-5, atol=1e-5)


def test_evaluation_schedule_is_dense_early_then_sparse():
    due = [s for s in range(1, 65) if evaluation_due(s, 64, 2)]
    assert due == [2, 4, 6, 8, 10, 12, 14, 16, 24, 32, 40, 48, 56, 64]
    assert [s for s in range(1, 9) if evaluation_due(s, 8, 4)] == [8]


def test_crossing_interpolates_the_first_reach():
    level = np.array([1.0, 0.6, 0.1, 0.0])
    assert crossing(level, 0.2, np.array([0.0, 10.0, 20.0, 30.0])) == pytest.approx(18.0)
    assert crossing(level, 1.0, np.array([5.0, 6.0, 7.0, 8.0])) == 5.0
    assert crossing(level, -0.5, level) is None


def _curves(fa, ra, ppl):
    def one(x):
        a = np.asarray(x, dtype=float)
        return {"median": a}

    return {
        "forget_accuracy": one(fa),
        "retain_accuracy": one(ra),
        "heldout_ppl": one(ppl),
        "retain_kl": one(np.zeros(len(fa))),
    }


def test_claims_arithmetic():
    steps = np.array([0, 1, 2])
    curves = {
        "ga": _curves([1, 0.5, 0.0], [1, 0.5, 0.1], [2, 4, 10]),
        "npo": _curves([1, 0.5, 0.0], [1, 0.9, 0.8], [2, 2.2, 3]),
        "npo+rt": _curves([1, 0.3, 0.05], [1, 0.95, 0.92], [2, 2, 2]),
    }
    claims = knowledge_claims(curves, steps)
    assert claims["ga_loses_retain_first"]["holds"] is True  # at the level: 0.34 vs 0.86
    assert claims["ga_loses_fluency_first"]["holds"] is True  # 8.8 vs 2.84
    assert claims["npo_rt_forgets_and_retains"]["holds"] is True
    curves["npo"] = _curves([1, 0.5, 0.0], [1, 0.5, 0.1], [2, 4, 10])  # the same path as GA
    curves["npo+rt"] = _curves([1, 0.3, 0.2], [1, 0.95, 0.92], [2, 2, 2])
    claims = knowledge_claims(curves, steps)
    assert claims["ga_loses_retain_first"]["holds"] is False
    assert claims["ga_loses_fluency_first"]["holds"] is False
    assert claims["npo_rt_forgets_and_retains"]["holds"] is False
    del curves["npo"]
    assert knowledge_claims(curves, steps)["ga_loses_retain_first"]["holds"] is None


def test_config_validation_and_mapping(tmp_path):
    with pytest.raises(ValueError, match="unknown method 'dpo\\+rt' for this study"):
        KnowledgeConfig(methods=("dpo+rt",))
    with pytest.raises(ValueError, match="gen_tokens"):
        KnowledgeConfig(gen_tokens=4)
    c = knowledge_config(ReproduceConfig(quick=True, lr=3e-4, cache_dir=str(tmp_path), model="M"))
    r = c.resolved()
    assert (r.methods, r.steps, r.lr, r.model) == (("ga", "npo", "npo+rt"), 8, 3e-4, "M")
    assert r.cache_dir == str(tmp_path / "knowledge")


def test_all_skips_experiments_that_run_only_by_name():
    def run(config):
        return ExperimentResult("x", {}, np.zeros(0), {}, [])

    reg = registry(
        (
            Experiment("short", run, lambda r: None),
            Experiment("long", run, lambda r: None, in_all=False),
        ),
    )
    config = ReproduceConfig()
    assert [e.name for e in select(reg, ["all"], config)] == ["short"]
    assert [e.name for e in select(reg, ["all", "long"], config)] == ["short", "long"]
    from npo.cli import _experiments

    real = _experiments()
    assert not real["smollm2-knowledge"].in_all and real["transformer"].in_all
