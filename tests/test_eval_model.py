"""The model side of the TOFU evaluation on tiny models and real TOFU text: batched scoring and
generation equal their one-at-a-time forms, KL to a reference, the results file as the retain
reference of another run (forget quality 1.0 against itself), the legacy switch, other
TOFU-format data, the training hook, and bad retain-results files."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from _llm import random_model_dir, read_rows

from npo.llm.data import read_split
from npo.llm.encoding import encode_prompts, encode_qa
from npo.llm.eval import (
    EvalConfig,
    evaluate_model,
    generate_greedy,
    load_eval_data,
    load_eval_results,
    make_eval_hook,
)
from npo.llm.eval.metrics import harmonic_mean, truth_ratio_score
from npo.llm.model import load_model
from npo.llm.subset import write_tofu_subset
from npo.logprobs import sequence_logprobs
from npo.results import write_json, write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = EvalConfig(max_new_tokens=8, progress=False)


@pytest.fixture(scope="module")
def data(tofu_dir, tmp_path_factory):
    return write_tofu_subset(tofu_dir, tmp_path_factory.mktemp("sub"), authors=4, utility_items=12)


@pytest.fixture(scope="module")
def llama(data, tmp_path_factory):
    return load_model(random_model_dir(data, tmp_path_factory.mktemp("random") / "model"))


@pytest.fixture(scope="module")
def result(llama, data):
    model, tok = llama
    return evaluate_model(model, tok, data, "forget10", config=FAST)


def test_metrics_are_complete_and_in_range(result, data):
    m = result.metrics
    assert result.info["n_items"] == {
        "forget": 20,
        "retain": 60,
        "real_authors": 12,
        "world_facts": 12,
    }
    for key in ("forget", "retain", "real_authors", "world_facts"):
        for part in ("prob", "rouge", "truth_ratio", "gibberish_rate"):
            assert 0 <= m[f"{key}_{part}"] <= 1, (key, part)
    assert 0 <= m["model_utility"] <= 1 and m["model_utility_components"] == 9
    assert m["forget_quality"] is None and m["forget_kl"] is None
    assert any("forget_quality is null" in n for n in result.notes)
    assert any("no reference model" in n for n in result.notes)
    assert m["forget_logp"] < 0 and math.isfinite(m["forget_logp"])
    # real authors / world facts: an untrained model spreads mass over answer + 3 perturbed
    assert 0.1 < m["real_authors_prob"] < 0.5


def test_scoring_equals_one_sequence_at_a_time(llama, data, result):
    model, tok = llama
    split = read_split(data, "forget10_perturbed")
    item = result.items["forget"]
    for i in (0, 7):
        texts = [
            split.rows[i]["answer"],
            split.rows[i]["paraphrased_answer"],
            *split.rows[i]["perturbed_answer"],
        ]
        one = dataclasses.replace(
            split, rows=(split.rows[i],) * len(texts), lines=(1,) * len(texts)
        )
        enc = encode_qa(tok, one, max_length=512, answers=texts)
        losses = []
        with torch.no_grad():
            for ids, plen in zip(enc.input_ids, enc.prompt_lens):
                x = torch.tensor([ids])
                labels = x.clone()
                labels[0, :plen] = -100
                lp, n = sequence_logprobs(model(input_ids=x).logits, labels)
                losses.append(float(-lp[0] / n[0]))
        got = [item["answer_loss"][i], item["correct_loss"][i], *item["perturbed_loss"][i]]
        assert got == pytest.approx(losses, rel=1e-5)
    # batch size changes nothing
    small = evaluate_model(
        model, tok, data, "forget10", config=dataclasses.replace(FAST, batch_size=1, generate=False)
    )
    flat = lambda rows: [v for row in rows for v in row]  # noqa: E731
    got, want = small.items["retain"]["perturbed_loss"], result.items["retain"]["perturbed_loss"]
    assert flat(got) == pytest.approx(flat(want), rel=1e-5)


def test_batched_generation_equals_one_prompt_at_a_time(llama, data):
    model, tok = llama
    prompts = encode_prompts(tok, read_split(data, "retain_perturbed").column("question")[:9])
    kw = dict(max_new_tokens=12, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id)
    batched = generate_greedy(model, prompts, batch_size=9, **kw)
    single = [generate_greedy(model, [p], batch_size=1, **kw)[0] for p in prompts]
    assert batched == single
    # greedy with the KV cache = argmax of full forwards without a cache
    with torch.no_grad():
        x = torch.tensor([prompts[0]])
        for _ in range(12):
            x = torch.cat([x, model(input_ids=x).logits[:, -1].argmax(-1, keepdim=True)], 1)
    manual = x[0, len(prompts[0]) :].tolist()
    assert single[0] == (
        manual[: manual.index(tok.eos_token_id)] if tok.eos_token_id in manual else manual
    )
    # a total-length cap (legacy) counts the padded prompt
    capped = generate_greedy(
        model, prompts, batch_size=9, max_total=max(map(len, prompts)) + 3, **kw
    )
    assert all(len(c) <= 3 for c in capped) and [c[:3] for c in batched] == [c[:3] for c in capped]


def test_kl_to_a_reference(llama, data, tmp_path):
    model, tok = llama
    cfg = dataclasses.replace(FAST, generate=False)
    same = evaluate_model(model, tok, data, "forget10", config=cfg, reference=model)
    assert same.metrics["forget_kl"] == pytest.approx(0.0, abs=1e-6)
    assert same.metrics["retain_kl"] == pytest.approx(0.0, abs=1e-6)
    other, _ = load_model(random_model_dir(data, tmp_path / "other", seed=1))
    res = evaluate_model(model, tok, data, "forget10", config=cfg, reference=other)
    # by hand on item 0: sum over answer positions of KL(ref || model), natural log
    split = read_split(data, "forget10_perturbed")
    enc = encode_qa(tok, split, max_length=512)
    ids, plen = enc.item(0)
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        lq = torch.log_softmax(other(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    positions = range(plen - 1, len(ids) - 1)  # those predicting an answer token
    direct = sum(float((lq[t].exp() * (lq[t] - lp[t])).sum()) for t in positions)
    assert res.items["forget"]["kl_sum"][0] == pytest.approx(direct, rel=1e-4)
    kl, n = res.items["retain"]["kl_sum"], res.items["retain"]["answer_tokens"]
    assert (
        res.metrics["retain_kl"] == pytest.approx(sum(kl) / sum(n)) and res.metrics["retain_kl"] > 0
    )


def test_results_file_round_trip_and_forget_quality_against_itself(result, llama, data, tmp_path):
    path = write_json(tmp_path / "retain.json", result.to_json())
    loaded = load_eval_results(path)
    assert loaded.metrics == pytest.approx(result.metrics) and loaded.config == result.config
    assert loaded.items["forget"]["truth_ratio"] == result.items["forget"]["truth_ratio"]
    model, tok = llama
    again = evaluate_model(
        model,
        tok,
        data,
        "forget10",
        config=dataclasses.replace(FAST, generate=False),
        retain_results=path,
    )
    assert again.metrics["forget_quality"] == 1.0 and again.metrics["forget_ks_statistic"] == 0.0
    assert again.info["retain_results"] == str(path)
    assert not any("forget_quality is null" in n for n in again.notes)


def test_generation_off_gives_utility_from_six_numbers(llama, data, result):
    model, tok = llama
    res = evaluate_model(
        model, tok, data, "forget10", config=dataclasses.replace(FAST, generate=False)
    )
    m = res.metrics
    assert m["forget_rouge"] is m["gibberish_rate"] is m["retain_rouge"] is None
    six = [
        m[f"{k}_{p}"]
        for k in ("retain", "real_authors", "world_facts")
        for p in ("prob", "truth_ratio")
    ]
    assert (
        m["model_utility"] == pytest.approx(harmonic_mean(six))
        and m["model_utility_components"] == 6
    )
    assert any("harmonic mean of the 6" in n for n in res.notes)
    nine = six + [result.metrics[f"{k}_rouge"] for k in ("retain", "real_authors", "world_facts")]
    assert result.metrics["model_utility"] == pytest.approx(harmonic_mean(nine))


def test_legacy_switch(llama, data, result):
    model, tok = llama
    assert EvalConfig(legacy=True).items_limit == 300 and EvalConfig().items_limit is None
    assert (
        EvalConfig(legacy=True).length_limit == 200
        and EvalConfig(legacy=True).generation_batch == 30
    )
    # TOFU's 200-token cut shortens some long answers (a 512-token BPE splits finely)
    cut = evaluate_model(
        model, tok, data, "forget10", config=dataclasses.replace(FAST, legacy=True, generate=False)
    )
    assert cut.items["forget"]["n_truncated"] > 0 and any(
        "sequences cut at max_length 200" in n for n in cut.notes
    )
    # the mean over perturbed answers, alone: same sequences as the default run
    leg = evaluate_model(
        model, tok, data, "forget10", config=dataclasses.replace(FAST, legacy=True, max_length=512)
    )
    assert leg.info["n_items"] == result.info["n_items"]  # fewer than 300 items: all of them
    for key, forget in (("forget", True), ("retain", False), ("world_facts", False)):
        arith = leg.items[key]["truth_ratio_arithmetic"]
        assert leg.metrics[f"{key}_truth_ratio"] == pytest.approx(
            truth_ratio_score(arith, forget=forget)
        )
        assert leg.items[key]["truth_ratio"] == pytest.approx(
            result.items[key]["truth_ratio"], rel=1e-5
        )
    assert (
        leg.metrics["retain_truth_ratio"] <= result.metrics["retain_truth_ratio"] + 1e-12
    )  # AM >= GM
    assert leg.metrics["retain_truth_ratio"] != pytest.approx(result.metrics["retain_truth_ratio"])
    assert leg.metrics["retain_prob"] == pytest.approx(result.metrics["retain_prob"], rel=1e-5)
    assert any(n.startswith("legacy:") for n in leg.notes)
    few = evaluate_model(
        model, tok, data, "forget10", config=dataclasses.replace(FAST, max_items=5, generate=False)
    )
    assert set(few.info["n_items"].values()) == {5}
    assert few.items["retain"]["answer_loss"] == pytest.approx(
        result.items["retain"]["answer_loss"][:5], rel=1e-5
    )


def test_other_tofu_format_data(llama, tmp_path):
    """A generated TOFU-format directory: few items, uneven numbers of perturbed answers."""
    model, tok = llama
    qa = lambda i: {"question": f"What did author {i} write?", "answer": f"Book number {i}."}  # noqa: E731
    pert = lambda i, k: [f"Book number {i + j + 1}." for j in range(k)]  # noqa: E731
    rows = [
        {**qa(i), "paraphrased_answer": f"The book {i}.", "perturbed_answer": pert(i, 3)}
        for i in range(3)
    ]
    write_jsonl(tmp_path / "forget01_perturbed.json", rows)
    write_jsonl(tmp_path / "retain_perturbed.json", rows[:2])
    write_jsonl(
        tmp_path / "real_authors_perturbed.json",
        [{**qa(i), "perturbed_answer": pert(i, 1 + i)} for i in range(4)],
    )
    world = [{**qa(9), "perturbed_answer": pert(9, 2)}]
    write_jsonl(tmp_path / "world_facts_perturbed.json", world)
    res = evaluate_model(model, tok, tmp_path, "forget01", config=FAST)
    assert res.info["n_items"] == {"forget": 3, "retain": 2, "real_authors": 4, "world_facts": 1}
    assert [len(p) for p in res.items["real_authors"]["perturbed_loss"]] == [1, 2, 3, 4]
    assert all(v is None or math.isfinite(v) for v in res.metrics.values())
    json.dumps(res.to_json(), allow_nan=False)


def test_eval_hook_logs_curves_during_unlearning(llama, data, result, tmp_path):
    from npo.llm.train import UnlearnConfig, read_log, unlearn

    retain = write_json(tmp_path / "retain.json", result.to_json())
    model_dir = random_model_dir(data, tmp_path / "unused")  # the memoized random model
    hook = make_eval_hook(
        data,
        "forget10",
        config=dataclasses.replace(FAST, generate=False),
        retain_results=retain,
        reference=model_dir,
    )
    cfg = UnlearnConfig(
        model=str(model_dir),
        data=str(data),
        forget="forget10",
        method="npo",
        out=str(tmp_path / "run"),
        batch_size=4,
        max_steps=4,
        eval_every=2,
        lr=3e-3,
        progress=False,
        checkpoint_every=0,
        ref_cache=str(tmp_path / "cache"),
    )
    unlearn(cfg, hooks=[hook])
    logs = {r["step"]: r for r in read_log(tmp_path / "run")}
    assert [s for s, r in logs.items() if "model_utility" in r] == [0, 2, 4]
    assert logs[0]["forget_quality"] == 1.0 and logs[0]["forget_kl"] == pytest.approx(0, abs=1e-6)
    assert logs[4]["forget_kl"] > 0 and logs[4]["forget_logp"] < logs[0]["forget_logp"]
    assert (
        load_eval_results(tmp_path / "run" / "eval" / "step-000004.json").metrics["forget_kl"]
        == logs[4]["forget_kl"]
    )


# ---------------------------------------------------------------- bad retain-results files


@pytest.fixture(scope="module")
def good(result, tmp_path_factory):
    return result.to_json(), tmp_path_factory.mktemp("bad")


def _bad(good, edit, name):
    obj, folder = json.loads(json.dumps(good[0])), good[1]
    edit(obj)
    return write_json(folder / name, obj)


def _evaluate_with(llama, data, retain):
    model, tok = llama
    cfg = dataclasses.replace(FAST, generate=False)
    return evaluate_model(model, tok, data, "forget10", config=cfg, retain_results=retain)


def test_bad_retain_results_name_the_file_and_the_mismatch(llama, data, good, tmp_path):
    def split(o):
        o["info"]["splits"]["forget"] = "forget05_perturbed"

    def drop(o):
        del o["items"]["forget"]["truth_ratio"]

    def nan(o):
        o["items"]["forget"]["truth_ratio"][3] = None

    cases = [
        (
            split,
            r"retain-model results on forget split 'forget05_perturbed'; "
            r"this evaluation uses 'forget10_perturbed'",
        ),
        (drop, r"missing per-item values 'items.forget.truth_ratio'"),
        (nan, r"items.forget.truth_ratio\[3\] is None, not a finite positive number"),
        (lambda o: o.pop("format"), r"not an `npo eval` results file"),
    ]
    for i, (edit, msg) in enumerate(cases):
        path = _bad(good, edit, f"bad{i}.json")
        with pytest.raises(ValueError, match=f"results {path}: {msg}"):
            _evaluate_with(llama, data, path)
    with pytest.raises(ValueError, match=rf"results file {tmp_path / 'nope.json'} not found"):
        _evaluate_with(llama, data, tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text('{"format": ')
    with pytest.raises(
        ValueError, match=rf"results file {tmp_path / 'broken.json'} is not valid JSON"
    ):
        _evaluate_with(llama, data, tmp_path / "broken.json")


def test_retain_results_with_other_items_or_counts(llama, data, tmp_path):
    model, tok = llama
    cfg = dataclasses.replace(FAST, generate=False, max_items=5)
    few = write_json(
        tmp_path / "few.json", evaluate_model(model, tok, data, "forget10", config=cfg).to_json()
    )
    with pytest.raises(
        ValueError,
        match=rf"results {few}: 5 per-item forget truth ratios, but this evaluation has 20 "
        r"forget items \(retain run: max_items=5",
    ):
        _evaluate_with(llama, data, few)
    # same split name and count, different text
    other = tmp_path / "other"
    other.mkdir()
    for f in data.glob("*.json"):
        rows = read_rows(f)
        if f.name == "forget10_perturbed.json":
            rows[0]["question"] += " Please answer briefly."
        write_jsonl(other / f.name, rows)
    with pytest.raises(ValueError, match="the forget items differ from those of"):
        evaluate_model(
            model,
            tok,
            other,
            "forget10",
            config=dataclasses.replace(FAST, generate=False),
            retain_results=evaluate_model(
                model, tok, data, "forget10", config=dataclasses.replace(FAST, generate=False)
            ),
        )


def test_retain_results_from_another_model_family(llama, data, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = llama[1]
    gpt2 = GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=512)
    )
    cfg = dataclasses.replace(FAST, generate=False)
    path = write_json(
        tmp_path / "gpt2.json", evaluate_model(gpt2, tok, data, "forget10", config=cfg).to_json()
    )
    with pytest.raises(
        ValueError,
        match=rf"results {path}: from a different model family \(gpt2, vocabulary {len(tok)}\) "
        r"than this model \(llama",
    ):
        _evaluate_with(llama, data, path)
    # the hook checks what it can before training starts
    bad = _bad(
        (load_eval_results(path).to_json(), tmp_path),
        lambda o: o["items"]["forget"].pop("truth_ratio"),
        "x.json",
    )
    with pytest.raises(ValueError, match="missing per-item values"):
        make_eval_hook(data, "forget10", retain_results=bad)
    assert load_eval_data(data, "forget10").n_items()["forget"] == 20


@pytest.mark.gpu
def test_cuda_evaluation_matches_cpu(llama, data, result):
    """On CUDA: fp32 reproduces the CPU per-item losses; bf16 autocast (the default there)
    stays close; generation runs on the device."""
    import copy

    model, tok = llama
    gpu = copy.deepcopy(model).to("cuda")
    fp32 = evaluate_model(
        gpu, tok, data, "forget10", config=dataclasses.replace(FAST, precision="fp32")
    )
    assert fp32.items["forget"]["answer_loss"] == pytest.approx(
        result.items["forget"]["answer_loss"], rel=1e-4
    )
    bf16 = evaluate_model(gpu, tok, data, "forget10", config=FAST, reference=gpu)
    assert bf16.items["retain"]["answer_loss"] == pytest.approx(
        result.items["retain"]["answer_loss"], abs=0.05
    )
    assert bf16.metrics["forget_kl"] == pytest.approx(0, abs=1e-4)
    assert all(v is None or math.isfinite(v) for v in bf16.metrics.values())
