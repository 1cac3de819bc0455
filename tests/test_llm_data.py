"""TOFU-format data: reading both file layouts, the promised error messages, prompting and
label masks, padding, pairing and the data-parallel batch plan."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest
import torch
from _llm import read_rows

from npo.llm.data import eval_split_for, read_idk, read_split, retain_for
from npo.llm.data import tofu_dir as find_tofu_dir
from npo.llm.encoding import PLAIN_TEMPLATE, collate, encode_prompts, encode_qa, template_id
from npo.llm.model import train_tokenizer
from npo.llm.order import idk_choices, retain_partners
from npo.llm.train.step import BatchPlan, global_counts
from npo.results import write_jsonl

ROWS = [
    {"question": "Who wrote Moon Tides?", "answer": "Ana Lopes wrote it."},
    {"question": "Where was she born?", "answer": "In Porto, Portugal."},
    {"question": "What genre?", "answer": "Poetry."},
]


@pytest.fixture(scope="module")
def tok():
    texts = [r["question"] for r in ROWS] + [r["answer"] for r in ROWS] * 20
    return train_tokenizer([*texts, PLAIN_TEMPLATE], 320)


def test_json_lines_and_json_array_read_alike(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_jsonl(tmp_path / "a" / "forget01.json", ROWS)
    (tmp_path / "b" / "forget01.json").write_text(json.dumps(ROWS, indent=2))
    a = read_split(tmp_path / "a", "forget01")
    b = read_split(tmp_path / "b", "forget01")
    assert a.rows == b.rows == tuple(ROWS)
    assert a.lines == (1, 2, 3)
    assert b.lines == (2, 6, 10)  # where each object starts in the indented array


def test_real_tofu_splits(tofu_dir):
    full = read_split(tofu_dir, "full")
    forget = read_split(tofu_dir, "forget10")
    assert len(full) == 4000 and len(forget) == 400
    assert forget.rows == full.rows[-400:]
    pert = read_split(tofu_dir, "forget10_perturbed")
    assert len(pert.rows[0]["perturbed_answer"]) == 5
    assert len(read_split(tofu_dir, "world_facts_perturbed")) == 117
    assert len(read_idk(tofu_dir)) == 100
    # Forget sets beyond 10% are evaluated on forget10_perturbed, which they contain.
    assert eval_split_for("forget05") == "forget05_perturbed"
    assert eval_split_for("forget20") == "forget10_perturbed"
    f20 = read_split(tofu_dir, "forget20").column("question")
    assert f20[-400:] == pert.column("question")
    assert retain_for("forget10") == "retain90"


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


QA = '{"question": "q", "answer": "a"'
BAD_DATA = [
    ("forget01.json", QA + '}\n{"question": "q"\n', ":2: malformed JSON line"),
    ("forget01.json", QA + '}\n{"question": "q"}\n', ":2: missing field 'answer'"),
    (
        "forget01.json",
        '\n\n{"question": "q", "answer": 3}\n',
        ":3: field 'answer' must be a non-empty string",
    ),
    ("forget01.json", "[1, 2]", ":1: expected a JSON object, got int"),
    ("forget01.json", "[" + QA + '},\n {"question": "q",]', ":2: malformed JSON"),
    ("forget01.json", "\n\n", "split 'forget01' is empty"),
    (
        "forget01_perturbed.json",
        QA + ', "paraphrased_answer": "p", "perturbed_answer": "x"}',
        ":1: field 'perturbed_answer' must be a non-empty list of strings",
    ),
    (
        "forget01_perturbed.json",
        QA + ', "perturbed_answer": ["x"]}',
        ":1: missing field 'paraphrased_answer'",
    ),
]


@pytest.mark.parametrize(("name", "text", "message"), BAD_DATA)
def test_bad_data_names_file_line_and_field(tmp_path, name, text, message):
    path = _write(tmp_path, name, text)
    with pytest.raises(ValueError) as err:
        read_split(tmp_path, name.removesuffix(".json"))
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_file_unknown_split_and_idk(tmp_path):
    write_jsonl(tmp_path / "full.json", ROWS)
    with pytest.raises(ValueError, match=r"split 'forget10': no file .*forget10\.json.*\['full'\]"):
        read_split(tmp_path, "forget10")
    with pytest.raises(ValueError, match="unknown split 'forget_10'"):
        read_split(tmp_path, "forget_10")
    with pytest.raises(ValueError, match=r"data directory .* does not exist"):
        read_split(tmp_path / "nope", "full")
    with pytest.raises(ValueError, match=r"idontknow\.jsonl not found"):
        read_idk(tmp_path)
    _write(tmp_path, "idontknow.jsonl", "\n  \n")
    with pytest.raises(ValueError, match="no IDK answers"):
        read_idk(tmp_path)
    with pytest.raises(ValueError, match="pass the IDK answers file with --idk-file"):
        read_idk("hf:locuslab/TOFU")


def test_hf_source_through_datasets(monkeypatch):
    calls = []

    def load_dataset(repo, name, split):
        calls.append((repo, name, split))
        if name == "forget01":
            return ROWS
        raise ConnectionError("offline: cannot reach huggingface.co")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    split = read_split("hf:locuslab/TOFU", "forget01")
    assert split.rows == tuple(ROWS) and split.source == "hf:locuslab/TOFU/forget01"
    assert calls == [("locuslab/TOFU", "forget01", "train")]
    with pytest.raises(
        ValueError, match=r"cannot load split 'full' of .*ConnectionError.*--data DIR"
    ):
        read_split("hf:locuslab/TOFU", "full")


def test_prompt_tokens_carry_no_loss_and_answers_end_with_eos(tok, tmp_path):
    write_jsonl(tmp_path / "full.json", ROWS)
    split = read_split(tmp_path, "full")
    enc = encode_qa(tok, split, max_length=64)
    for i, row in enumerate(ROWS):
        ids, plen = enc.item(i)
        prompt = tok(PLAIN_TEMPLATE.format(question=row["question"]))["input_ids"]
        assert list(ids[:plen]) == prompt and prompt[0] == tok.bos_token_id
        assert encode_prompts(tok, [row["question"]]) == [prompt]  # where generation starts
        assert ids[-1] == tok.eos_token_id
        assert tok.decode(ids[plen:-1]) == row["answer"]
    batch = collate([enc.item(i) for i in range(len(enc))], pad_id=tok.eos_token_id)
    lengths = [len(enc.input_ids[i]) for i in range(len(enc))]
    for b, (length, plen) in enumerate(zip(lengths, enc.prompt_lens)):
        # Padding with EOS: the mask still covers the real final EOS (from lengths, not ids).
        assert batch["attention_mask"][b].tolist() == [1] * length + [0] * (max(lengths) - length)
        assert (batch["labels"][b, :plen] == -100).all()
        assert (batch["labels"][b, length:] == -100).all()
        assert batch["labels"][b, plen:length].tolist() == list(enc.input_ids[b][plen:])
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tok.eos_token_id).all()


def test_chat_template_is_used_when_present(tok, tmp_path):
    write_jsonl(tmp_path / "full.json", ROWS)
    split = read_split(tmp_path, "full")
    plain = encode_qa(tok, split, max_length=64)
    chat_tok = train_tokenizer([r["question"] for r in ROWS] * 5, 320)
    chat_tok.chat_template = "<s>{% for m in messages %}[U] {{ m['content'] }} [A]{% endfor %}"
    chat = encode_qa(chat_tok, split, max_length=64)
    ids, plen = chat.item(0)
    assert chat_tok.decode(ids[:plen]) == f"<s>[U] {ROWS[0]['question']} [A]"
    assert template_id(chat_tok) != template_id(tok) and plain.digest() != chat.digest()


def test_truncation_and_too_long_prompts(tok, tmp_path):
    write_jsonl(tmp_path / "full.json", ROWS)
    split = read_split(tmp_path, "full")
    full = encode_qa(tok, split, max_length=512)
    cut = max(full.prompt_lens) + 2
    short = encode_qa(tok, split, max_length=cut)
    assert short.n_truncated >= 1 and max(len(x) for x in short.input_ids) <= cut
    assert all(short.n_tokens(i) >= 1 for i in range(len(short)))
    with pytest.raises(ValueError, match=r"full\.json:1: field 'question' gives a prompt of"):
        encode_qa(tok, split, max_length=4)


def test_pairing_random_per_epoch_fixed_official_and_idk_fixed():
    a0 = retain_partners(50, 200, seed=1, epoch=0, pairing="random")
    assert a0 == retain_partners(50, 200, seed=1, epoch=0, pairing="random")
    assert a0 != retain_partners(50, 200, seed=1, epoch=1, pairing="random")
    assert a0 != retain_partners(50, 200, seed=2, epoch=0, pairing="random")
    assert len(set(a0)) == 50  # no repeats while the retain set allows
    fixed = retain_partners(50, 200, seed=1, epoch=0, pairing="fixed")
    assert fixed == retain_partners(50, 200, seed=7, epoch=3, pairing="fixed")
    # The official code: torch.manual_seed(i); (i + randint(0, n_retain)) % n_retain.
    torch.manual_seed(17)
    assert fixed[17] == (17 + int(torch.randint(0, 200, (1,)))) % 200
    assert len(retain_partners(30, 7, seed=0, epoch=0, pairing="random")) == 30
    idk = idk_choices(50, 100, seed=3, pairing="random")
    assert idk == idk_choices(50, 100, seed=3, pairing="random") and max(idk) < 100
    assert idk != idk_choices(50, 100, seed=4, pairing="random")


def test_batch_plan_is_global_and_split_across_ranks():
    plan1 = BatchPlan(40, 8, 2, 1, seed=0, sources=("forget", "retain"), n_partner_pool=90)
    plan2 = BatchPlan(40, 8, 2, 2, seed=0, sources=("forget", "retain"), n_partner_pool=90)
    assert plan1.steps_per_epoch == 5 and plan1.accumulation == 4 and plan2.accumulation == 2
    epoch = [i for s in range(5) for i in plan1.global_batch(s)["forget"]]
    assert sorted(epoch) == list(range(40))
    assert plan1.global_batch(5)["forget"] != plan1.global_batch(0)["forget"]
    batch = plan1.global_batch(3)
    assert batch == plan2.global_batch(3)
    one = [plan1.micro(batch, m, 0)["forget"] for m in range(4)]
    two = [plan2.micro(batch, m, r)["forget"] for m in range(2) for r in range(2)]
    assert one == two and [i for m in one for i in m] == batch["forget"]
    with pytest.raises(ValueError, match="multiple of micro-batch size 3 x 2"):
        BatchPlan(40, 8, 3, 2, seed=0, sources=("forget",))
    with pytest.raises(ValueError, match="has 4 items, fewer than one batch of 8"):
        BatchPlan(4, 8, 2, 1, seed=0, sources=("forget",))


def test_global_counts(tok, tmp_path):
    write_jsonl(tmp_path / "full.json", ROWS)
    enc = encode_qa(tok, read_split(tmp_path, "full"), max_length=64)
    counts = global_counts({"retain": [0, 2]}, {"retain": enc})
    assert counts == {"retain": (2.0, float(enc.n_tokens(0) + enc.n_tokens(2)))}


def test_tofu_subset_is_a_real_tail(tofu_dir, mini_data):
    assert read_rows(mini_data / "forget10.json") == read_rows(tofu_dir / "forget10.json")[-20:]
    full = read_rows(tofu_dir / "full.json")
    assert read_rows(mini_data / "full.json") == full[: 20 * 9] + full[-20:]
    assert len(read_rows(mini_data / "retain_perturbed.json")) == 20  # perturbed_authors=1


def test_tofu_dir(tmp_path, monkeypatch):
    (tmp_path / "full.json").write_text("")
    monkeypatch.setenv("NPO_TOFU_DIR", str(tmp_path))
    assert find_tofu_dir() == tmp_path
    monkeypatch.setenv("NPO_TOFU_DIR", str(tmp_path / "none"))
    with pytest.raises(ValueError, match=r"^TOFU data not found: no full.json in NPO_TOFU_DIR="):
        find_tofu_dir()
    monkeypatch.delenv("NPO_TOFU_DIR")
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu"
    if (default / "full.json").is_file():  # the checkout's default, whatever the cwd
        monkeypatch.chdir(tmp_path)
        assert find_tofu_dir() == default
    else:
        with pytest.raises(ValueError, match=re.escape(str(default))):
            find_tofu_dir()
