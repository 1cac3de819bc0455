"""The bad-input corpus: every bad input and fault of the robustness review, as a table of
(command, setup, expected one-line message fragment, exit code, files that must not change).

Each case builds its bad input from a shared world of tiny models (tests/_corpus.py), runs the
command line in-process and checks: the exit code; for a failure, exactly one stderr line
``npo: ...`` containing the fragment (never a traceback); for an accepted input, the warning
or result that makes it visible; and that the inputs are byte-for-byte unchanged. The verdict
each case had before the fix is its group (silent, traceback, misleading)."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import torch
from _corpus import (
    build_world,
    copy,
    edit_json,
    edit_rows,
    eval_argv,
    fail_writes,
    finetune_argv,
    snapshot,
    unlearn_argv,
)

from npo.cli import main
from npo.llm.train import read_log

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class Case:
    name: str
    verdict: str  # before the fix: silent, traceback, misleading (or the review's other lines)
    setup: Callable  # (world, tmp, monkeypatch, keep) -> argv; `keep`: more unchanged paths
    fragment: str
    code: int
    unchanged: tuple[str, ...]  # World fields
    check: Callable | None = None  # (world, tmp, stdout, stderr) -> None


CASES: list[Case] = []


def case(verdict, fragment, code, unchanged=("model", "data"), check=None):
    def register(fn):
        CASES.append(Case(fn.__name__, verdict, fn, fragment, code, unchanged, check))
        return fn

    return register


@pytest.fixture(scope="module")
def world(mini_data, random_model, tmp_path_factory):
    return build_world(mini_data, random_model, tmp_path_factory.mktemp("world"))


def _un(w, tmp, *extra, model=None, data=None):
    return unlearn_argv(model or w.model, data or w.data, tmp / "out", w.cache, *extra)


def _ev(w, tmp, *extra, model=None, data=None, out=None):
    return eval_argv(model or w.model, data or w.data, out or tmp / "r.json", *extra)


def _model_copy(w, tmp, name="m"):
    return copy(w.model, tmp / name)


def _data_copy(w, tmp):
    return copy(w.data, tmp / "data")


def _weights(model_dir: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    path = model_dir / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


# ---------------------------------------------------------------- outputs over inputs


@case("silent", "is the --model", 2)
def unlearn_out_is_the_model(w, tmp, mp, keep):
    return unlearn_argv(w.model, w.data, w.model, w.cache)


@case("silent", "is the --model", 2)
def finetune_out_is_the_model(w, tmp, mp, keep):
    return finetune_argv(w.model, w.data, w.model)


@case("silent", "lies inside the --model", 2)
def eval_out_is_the_model_config(w, tmp, mp, keep):
    return _ev(w, tmp, out=w.model / "config.json")


@case("silent", "is the --retain-results", 2, ("model", "data", "results"))
def eval_out_is_the_retain_results(w, tmp, mp, keep):
    return _ev(w, tmp, "--retain-results", str(w.results), out=w.results)


@case("review", "contains the adapter base of --model", 2, ("model", "adapter"))
def unlearn_out_contains_an_adapters_base(w, tmp, mp, keep):
    return unlearn_argv(w.adapter, w.data, w.model.parent, w.cache)


# ---------------------------------------------------------------- resume checks content


def _run_in(tmp, w, model, data, *extra):
    # A finished 2-step run of `model` on `data` (paths as given) in tmp/run.
    assert main(unlearn_argv(model, data, tmp / "run", w.cache, *extra)) == 0
    return tmp / "run"


@case("silent", "the starting model's weights (--model) differ in content", 2)
def resume_after_the_model_changed(w, tmp, mp, keep):
    model = _model_copy(w, tmp)
    run = _run_in(tmp, w, model, w.data)
    copy(w.other / "model.safetensors", model / "model.safetensors")
    keep += [run / "checkpoints"]
    return unlearn_argv(model, w.data, run, w.cache, "--resume")


def _two_cwds(w, tmp, mp):
    # cwd a/ and b/ each hold a `data` directory; b's forget split lost a row.
    for d in ("a", "b"):
        copy(w.data, tmp / d / "data")
    edit_rows(
        tmp / "b" / "data", "forget10", lambda rows: [{**rows[0], "answer": "Other."}, *rows[1:]]
    )
    mp.chdir(tmp / "a")
    return _run_in(tmp, w, w.model, "data")


@case("silent", "the forget data (tokens of --data) differ in content", 2)
def resume_from_another_cwd_with_other_data(w, tmp, mp, keep):
    run = _two_cwds(w, tmp, mp)
    mp.chdir(tmp / "b")
    keep += [run / "checkpoints", tmp / "b" / "data"]
    return unlearn_argv(w.model, "data", run, w.cache, "--resume")


def _resumed(w, tmp, out, err):
    events = [r for r in read_log(tmp / "run", events=True) if r.get("event") == "resume"]
    assert events and events[-1]["step"] == 2


@case("misleading", "resumed from", 0, check=_resumed)
def resume_with_absolute_data_after_relative(w, tmp, mp, keep):
    run = _two_cwds(w, tmp, mp)
    return unlearn_argv(w.model, str(tmp / "a" / "data"), run, w.cache, "--resume")


# ---------------------------------------------------------------- data that defeats the run


@case("silent", "has the same rows as the forget split", 2)
def retain_is_the_forget_split(w, tmp, mp, keep):
    return _un(w, tmp, "--retain", "forget10")


@case("silent", "has the same rows as the forget split", 2)
def retain_file_identical_to_forget(w, tmp, mp, keep):
    data = _data_copy(w, tmp)
    copy(data / "forget10.json", data / "retain90.json")
    return _un(w, tmp, data=data)


def _stdout_has(text):
    def check(w, tmp, out, err):
        assert text in out, out[-2000:]

    return check


@case("silent", "19 of 20 rows repeat another row's question and answer", 0)
def forget_split_of_copies(w, tmp, mp, keep):
    data = _data_copy(w, tmp)
    edit_rows(data, "forget10", lambda rows: [rows[0]] * len(rows))
    return _un(w, tmp, "--max-steps", "1", data=data)


@case("silent", "19 of 20 rows repeat another row's question and answer", 0)
def eval_forget_perturbed_of_copies(w, tmp, mp, keep):
    data = _data_copy(w, tmp)
    edit_rows(data, "forget10_perturbed", lambda rows: [rows[0]] * len(rows))
    return _ev(w, tmp, "--max-items", "20", data=data)


@case("silent", "1 question appears with different answers (first: lines 1 and 2)", 0)
def same_question_two_answers(w, tmp, mp, keep):
    data = _data_copy(w, tmp)
    edit_rows(
        data,
        "forget10",
        lambda rows: [rows[0], {**rows[1], "question": rows[0]["question"]}, *rows[2:]],
    )
    return _un(w, tmp, "--max-steps", "1", data=data)


@case("review", "sequences cut to max_length 512", 0, check=_stdout_has("cut to max_length"))
def ten_megabyte_answer(w, tmp, mp, keep):
    data = _data_copy(w, tmp)
    big = ("The author writes long sentences about Santiago. " * 210_000)[:10_000_000]
    edit_rows(data, "forget10", lambda rows: [{**rows[0], "answer": big}, *rows[1:]])
    return _un(w, tmp, "--max-steps", "1", data=data)


# ---------------------------------------------------------------- objectives and options


@case("silent", "term forget_npo has weight -1 < 0", 2)
def negative_terms(w, tmp, mp, keep):
    return _un(w, tmp, "--terms", "npo:-1", "retain_nll:0")


@case("silent", "term retain_kl has weight -5 < 0", 2)
def negative_kl_weight(w, tmp, mp, keep):
    return _un(w, tmp, "--method", "npo+kl", "--kl-weight", "-5")


@case("silent", "gamma must be finite, got nan", 2)
def gamma_nan(w, tmp, mp, keep):
    return _un(w, tmp, "--method", "npo+rt", "--gamma", "nan")


@case("silent", "makes SimNPO's forget term vanish", 2)
def simnpo_gamma_minus_1e9(w, tmp, mp, keep):
    return _un(w, tmp, "--method", "simnpo", "--gamma=-1e9")


@case("traceback", "is a file, not a directory of cached log-probs", 2)
def ref_cache_is_a_file(w, tmp, mp, keep):
    (tmp / "cache").write_text("")
    return [*_un(w, tmp), "--ref-cache", str(tmp / "cache")]


def _cache_warning(reason):
    def check(w, tmp, out, err):
        assert reason in out, out[-2000:]
        assert (tmp / "out" / "model").is_dir() and not list((tmp / "fresh-cache").glob("*"))

    return check


@case("traceback", "cannot write the reference cache", 0, check=_cache_warning("No space left"))
def ref_cache_on_a_full_disk(w, tmp, mp, keep):
    fail_writes(mp, str(tmp / "fresh-cache"))
    return [*_un(w, tmp), "--ref-cache", str(tmp / "fresh-cache")]


@case("traceback", "cannot write the reference cache", 0, check=_cache_warning("Read-only"))
def ref_cache_read_only(w, tmp, mp, keep):
    fail_writes(mp, str(tmp / "fresh-cache"), errno.EROFS)
    return [*_un(w, tmp), "--ref-cache", str(tmp / "fresh-cache")]


def _nothing_cached(w, tmp, out, err):
    assert not list((tmp / "fresh-cache").glob("*")), list((tmp / "fresh-cache").iterdir())


@case("review", "sequences are non-finite (first: item 1)", 2, check=_nothing_cached)
def reference_logprobs_non_finite(w, tmp, mp, keep):
    # Finite weights whose reference log-probs underflow: refused, named, never cached.
    import npo.llm.train.reference as reference

    real = reference.compute_ref_logps

    def underflow(*args, **kw):
        values = real(*args, **kw)
        values[1] = float("-inf")
        return values

    mp.setattr(reference, "compute_ref_logps", underflow)
    return [*_un(w, tmp), "--ref-cache", str(tmp / "fresh-cache")]


@case("review", "from a different model family (llama, vocabulary 7)", 2, check=_nothing_cached)
def unlearn_retain_results_of_another_vocabulary(w, tmp, mp, keep):
    # Refused before the model loads: no reference log-probs computed (the cache stays empty).
    results = copy(w.results, tmp / "retain.json")
    obj = json.loads(results.read_text())
    obj["info"]["model"]["vocab_size"] = 7
    results.write_text(json.dumps(obj))
    extra = ("--retain-results", str(results), "--eval-max-items", "2")
    extra += ("--ref-cache", str(tmp / "fresh-cache"))
    return [*_un(w, tmp), *extra]


# ---------------------------------------------------------------- model files


def _broken(edit):
    # A copy of the model with `edit(model_dir)` applied.
    def make(w, tmp):
        model = _model_copy(w, tmp)
        edit(model)
        return model

    return make


def _truncate(model):
    path = model / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(model):
    path = model / "model.safetensors"
    path.write_bytes(b"\xff" * 64 + path.read_bytes()[64:])


EMPTY = _broken(lambda m: (m / "model.safetensors").write_bytes(b""))
TRUNCATED = _broken(_truncate)
GARBLED = _broken(_garble)
BAD_CONFIG = _broken(lambda m: (m / "config.json").write_text("{bad"))
SHAPES = _broken(lambda m: edit_json(m / "config.json", hidden_size=32, intermediate_size=64))
NAN = _broken(lambda m: _weights(m, lambda t: t["lm_head.weight"].view(-1)[:3].fill_(float("nan"))))


@case("traceback", "model.safetensors is empty (0 bytes)", 2)
def empty_safetensors(w, tmp, mp, keep):
    return _un(w, tmp, model=EMPTY(w, tmp))


@case("traceback", "is not a valid safetensors file", 2)
def truncated_safetensors_eval(w, tmp, mp, keep):
    return _ev(w, tmp, model=TRUNCATED(w, tmp))


@case("traceback", "is not a valid safetensors file", 2)
def truncated_safetensors_unlearn(w, tmp, mp, keep):
    return _un(w, tmp, model=TRUNCATED(w, tmp))


@case("traceback", "is not a valid safetensors file", 2)
def garbage_safetensors_header(w, tmp, mp, keep):
    return _ev(w, tmp, model=GARBLED(w, tmp))


@case("traceback", "is not a valid safetensors file", 2)
def eval_reference_truncated(w, tmp, mp, keep):
    return _ev(w, tmp, "--reference", str(TRUNCATED(w, tmp)))


@case("traceback", "config.json is not valid JSON (Expecting property name", 2)
def invalid_config_json_eval(w, tmp, mp, keep):
    return _ev(w, tmp, model=BAD_CONFIG(w, tmp))


@case("traceback", "config.json is not valid JSON (Expecting property name", 2)
def invalid_config_json_unlearn(w, tmp, mp, keep):
    return _un(w, tmp, model=BAD_CONFIG(w, tmp))


@case("traceback", "do not fit its config.json: ", 2)
def config_shapes_differ_from_weights(w, tmp, mp, keep):
    return _ev(w, tmp, model=SHAPES(w, tmp))


@case("misleading", "has non-finite weights: 3 NaN/inf values in lm_head.weight", 2)
def nan_weights_eval(w, tmp, mp, keep):
    return _ev(w, tmp, model=NAN(w, tmp))


@case("misleading", "has non-finite weights: 3 NaN/inf values in lm_head.weight", 2)
def nan_weights_unlearn(w, tmp, mp, keep):
    return _un(w, tmp, model=NAN(w, tmp))


@case("review", "is a run directory, not a model; its model is", 2)
def model_is_a_run_directory(w, tmp, mp, keep):
    return _ev(w, tmp, model=w.run)


@case("traceback", "--max-length 512 exceeds the 32 positions of the model", 2)
def learned_positions_eval(w, tmp, mp, keep):
    return _ev(w, tmp, model=w.gpt2)


@case("traceback", "--max-length 512 exceeds the 32 positions of the model", 2)
def learned_positions_unlearn(w, tmp, mp, keep):
    return _un(w, tmp, model=w.gpt2)


# ---------------------------------------------------------------- adapters and tokenizers


def _adapter_copy(w, tmp, **config):
    adapter = copy(w.adapter, tmp / "adapter")
    if config:
        edit_json(adapter / "adapter_config.json", **config)
    return adapter


@case("silent", "was trained on the base model", 2, ("model", "other", "adapter"))
def adapter_on_another_base(w, tmp, mp, keep):
    model = _adapter_copy(w, tmp, base_model_name_or_path=str(w.other))
    return _ev(w, tmp, model=model)


@case("traceback", "names no base model (field 'base_model_name_or_path')", 2)
def adapter_without_base(w, tmp, mp, keep):
    return _ev(w, tmp, model=_adapter_copy(w, tmp, base_model_name_or_path=None))


@case("misleading", "adapter_config.json is not valid JSON", 2)
def adapter_config_invalid_json(w, tmp, mp, keep):
    adapter = _adapter_copy(w, tmp)
    (adapter / "adapter_config.json").write_text("{nope")
    return _ev(w, tmp, model=adapter)


def _wrote_results(w, tmp, out, err):
    assert json.loads((tmp / "r.json").read_text())["format"] == "npo-tofu-eval"


@case("misleading", "wrote", 0, check=_wrote_results)
def adapter_relative_base_from_another_cwd(w, tmp, mp, keep):
    pair = tmp / "pair"
    copy(w.model, pair / "base")
    adapter = copy(w.adapter, pair / "adapter")
    edit_json(adapter / "adapter_config.json", base_model_name_or_path="../base")
    (tmp / "elsewhere").mkdir()
    mp.chdir(tmp / "elsewhere")
    return _ev(w, tmp, model=adapter)


def _foreign_tokenizer(w, tmp):
    from npo.llm.data import read_split
    from npo.llm.model import train_tokenizer

    model = _model_copy(w, tmp)
    texts = read_split(w.data, "retain_perturbed").column("answer")
    train_tokenizer(texts, 300).save_pretrained(model)  # fewer tokens than the 512 rows
    return model


@case("silent", "is not the one saved with these weights", 2)
def foreign_tokenizer_eval(w, tmp, mp, keep):
    return _ev(w, tmp, model=_foreign_tokenizer(w, tmp))


@case("silent", "is not the one saved with these weights", 2)
def foreign_tokenizer_unlearn(w, tmp, mp, keep):
    return _un(w, tmp, model=_foreign_tokenizer(w, tmp))


# ---------------------------------------------------------------- one-liners that misled


@case("misleading", "is a file; pass the directory that holds the TOFU files", 2)
def data_is_a_file_eval(w, tmp, mp, keep):
    return _ev(w, tmp, data=w.data / "forget10.json")


@case("misleading", "is a file; pass the directory that holds the TOFU files", 2)
def data_is_a_file_finetune(w, tmp, mp, keep):
    return finetune_argv(w.model, w.data / "full.json", tmp / "out")


@case("misleading", "is a file; pass the directory that holds the TOFU files", 2)
def data_is_a_file_unlearn(w, tmp, mp, keep):
    return _un(w, tmp, data=w.data / "forget10.json")


@case("misleading", "is a directory; pass the JSON file `npo eval --out` wrote", 2)
def retain_results_is_a_directory(w, tmp, mp, keep):
    return _ev(w, tmp, "--retain-results", str(w.root))


@case("misleading", "idontknow.jsonl: not UTF-8 text", 2)
def idk_file_not_utf8(w, tmp, mp, keep):
    data = _data_copy(w, tmp)
    (data / "idontknow.jsonl").write_bytes(b"I don't know.\n\xff\xfe nope\n")
    return _un(w, tmp, "--method", "idk+rt", data=data)


def _no_at_at(w, tmp, out, err):
    assert "at at" not in err


@case("review", "malformed JSON line (Unterminated string starting at column", 2, check=_no_at_at)
def malformed_line_says_at_once(w, tmp, mp, keep):
    data = _data_copy(w, tmp)
    path = data / "forget10.json"
    path.write_text(path.read_text() + '{"question": "Who?", "answer": "unfinished\n')
    return _un(w, tmp, data=data)


def _no_idk_split(w, tmp, out, err):
    assert "'idontknow'" not in err and "'forget10_perturbed'" in err


@case("review", "splits there:", 2, check=_no_idk_split)
def split_listing_leaves_out_the_idk_file(w, tmp, mp, keep):
    return _ev(w, tmp, "--forget", "forget05")


# ---------------------------------------------------------------- logs, disks, interrupts


def _follow_the_advice(w, tmp, out, err):
    # The stop names the checkpoint before the damage; doing what it says finishes the run.
    import re

    named = re.search(r"the last good checkpoint is (\S+) ", err)
    assert named and named[1] == str(tmp / "out" / "checkpoints" / "step-000002"), err
    assert (tmp / "out" / "checkpoints" / "step-000003.nonfinite").is_dir()  # set aside
    told = io.StringIO()
    with contextlib.redirect_stderr(told):
        status = main(_un(w, tmp, "--resume", "--max-steps", "6"))  # --lr 1e-3 again
    assert status == 0, told.getvalue()
    assert "resume: --max-steps changed from 2 to 6 at step 2" in told.getvalue()
    logs = read_log(tmp / "out")
    assert [r["step"] for r in logs] == [1, 2, 3, 4, 5, 6]
    assert all(0 < r["lr"] <= 1e-3 and r["loss"] is not None for r in logs)  # 1e30 is gone
    events = [r for r in read_log(tmp / "out", events=True) if "event" in r]
    assert [e["changes"] for e in events] == [
        {"lr": [0.001, 1e30], "max_steps": [2, 6]},
        {"max_steps": [2, 6]},
    ]


@case("misleading", "(resume from it with --resume and a lower --lr)", 1, check=_follow_the_advice)
def nan_advice_is_followed(w, tmp, mp, keep):
    copy(w.run, tmp / "out")  # 2 good steps; then extended at an absurd learning rate
    return _un(w, tmp, "--resume", "--max-steps", "6", "--lr", "1e30")


def _half_run(w, tmp, *, torn: bool, drop_last_checkpoint: bool = True):
    # The finished run, as a crash would leave it: no final model, maybe a step beyond the
    # last checkpoint in the log, maybe a torn last line.
    run = copy(w.run, tmp / "run")
    if drop_last_checkpoint:
        import shutil

        shutil.rmtree(run / "checkpoints" / "step-000002")
        shutil.rmtree(run / "model")
    if torn:
        with open(run / "log.jsonl", "a") as f:
            f.write('{"step": 3, "epoch": 0.6, "loss": 1.2')
    return run


def _same_as_the_whole_run(w, tmp, out, err):
    from npo.llm.train import read_weights

    a, b = read_weights(w.run / "model"), read_weights(tmp / "run" / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in read_log(w.run)] == [r["loss"] for r in read_log(tmp / "run")]


@case("misleading", "dropped 1 torn last line", 0, check=_same_as_the_whole_run)
def resume_after_a_torn_log_line(w, tmp, mp, keep):
    return unlearn_argv(w.model, w.data, _half_run(w, tmp, torn=True), w.cache, "--resume")


@case("misleading", "dropped 1 torn last line", 0)
def resume_finished_run_with_a_torn_line(w, tmp, mp, keep):
    run = _half_run(w, tmp, torn=True, drop_last_checkpoint=False)
    return unlearn_argv(w.model, w.data, run, w.cache, "--resume")


def _leftovers_removed(w, tmp, out, err):
    _no_temporaries(tmp / "run")
    _same_as_the_whole_run(w, tmp, out, err)


@case("review", "wrote", 0, check=_leftovers_removed)
def resume_after_kill_9_during_saves(w, tmp, mp, keep):
    # What kill -9 leaves mid-save: a final model's, a checkpoint's and a file's temporaries.
    run = _half_run(w, tmp, torn=False)
    (run / ".model.k9x2").mkdir()
    (run / ".model.k9x2" / "model.safetensors").write_bytes(b"half")
    (run / "checkpoints" / ".tmp-step-000002").mkdir()
    (run / ".result.json.k9.tmp").write_text("{")
    return unlearn_argv(w.model, w.data, run, w.cache, "--resume")


@case("traceback", "No space left on device", 1)
def resume_on_a_still_full_disk(w, tmp, mp, keep):
    run = _half_run(w, tmp, torn=True)
    keep += [run]
    fail_writes(mp, "log.jsonl")
    return unlearn_argv(w.model, w.data, run, w.cache, "--resume")


def _no_temporaries(run: Path):
    left = [*run.glob(".model.*"), *run.glob("checkpoints/.tmp-step-*"), *run.glob(".*.tmp")]
    assert not left, left


def _resumes_to_the_whole_run(first: str):
    # One checkpoint survives, nothing temporary is left, and --resume finishes the run
    # bitwise as the uninterrupted one.
    def check(w, tmp, out, err):
        run = tmp / "out"
        _no_temporaries(run)
        kept = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert kept == [first], kept
        assert main([*unlearn_argv(w.model, w.data, run, w.cache), "--resume"]) == 0
        from npo.llm.train import read_weights

        a, b = read_weights(w.run / "model"), read_weights(run / "model")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    return check


@case("traceback", "cannot write checkpoint", 1, check=_resumes_to_the_whole_run("step-000001"))
def disk_full_at_the_second_checkpoint(w, tmp, mp, keep):
    fail_writes(mp, ".tmp-step-000002/")
    return _un(w, tmp)


def _nothing_checkpointed(w, tmp, out, err):
    _no_temporaries(tmp / "out")
    assert not list((tmp / "out" / "checkpoints").glob("step-*"))
    assert "no checkpoint exists yet" in err


@case("traceback", "cannot write checkpoint", 1, check=_nothing_checkpointed)
def disk_full_at_the_first_checkpoint(w, tmp, mp, keep):
    fail_writes(mp, ".tmp-step-000001/")
    return _un(w, tmp)


def _torn_then_resumes(w, tmp, out, err):
    run = tmp / "out"
    assert not (run / "log.jsonl").read_text().endswith("\n")  # the append was cut short
    assert main([*unlearn_argv(w.model, w.data, run, w.cache), "--resume"]) == 0
    assert [r["step"] for r in read_log(run)] == [1, 2]


@case("traceback", "cannot append to", 1, check=_torn_then_resumes)
def log_append_on_a_full_disk(w, tmp, mp, keep):
    fail_writes(mp, "out/log.jsonl", after=1)
    return _un(w, tmp)


@case("traceback", "r.json: No space left on device", 1)
def eval_out_on_a_full_disk(w, tmp, mp, keep):
    fail_writes(mp, "r.json")
    return _ev(w, tmp)


def _interrupted(first: str):
    def check(w, tmp, out, err):
        _no_temporaries(tmp / "out")
        assert f"the last checkpoint is {tmp / 'out' / 'checkpoints' / first}" in err
        assert err.strip().endswith("resume with --resume")

    return check


@case("traceback", "npo: interrupted at step 2;", 130, check=_interrupted("step-000001"))
def sigint_mid_checkpoint_write(w, tmp, mp, keep):
    import npo.llm.train.checkpoint as ck

    real = ck.save_optimizer

    def interrupt(osd, folder):
        if folder.name == ".tmp-step-000002":
            raise KeyboardInterrupt
        return real(osd, folder)

    mp.setattr(ck, "save_optimizer", interrupt)
    return _un(w, tmp)


@case("traceback", "npo: interrupted at step 2;", 130, check=_interrupted("step-000001"))
def sigint_mid_step(w, tmp, mp, keep):
    import dataclasses

    from npo.losses import LOSSES

    kernel, calls = LOSSES["npo"], []

    def npo(policy_logps, ref_logps, *, beta):
        calls.append(1)
        if len(calls) == 2:  # step 2
            raise KeyboardInterrupt
        return kernel.fn(policy_logps, ref_logps, beta=beta)

    mp.setitem(LOSSES, "npo", dataclasses.replace(kernel, fn=npo))
    return _un(w, tmp)


def _interrupted_in_the_final_save(w, tmp, out, err):
    _interrupted("step-000002")(w, tmp, out, err)
    assert not (tmp / "out" / "model").exists()


@case("review", "npo: interrupted", 130, check=_interrupted_in_the_final_save)
def sigint_during_the_final_save(w, tmp, mp, keep):
    import npo.llm.digests as digests

    real = digests.write_model_meta

    def interrupt(model_dir, *args, **kw):
        if Path(model_dir).name.startswith(".model."):  # OUT/model's temporary directory
            raise KeyboardInterrupt
        return real(model_dir, *args, **kw)

    mp.setattr(digests, "write_model_meta", interrupt)
    return _un(w, tmp)


def _modes(w, tmp, out, err):
    assert (tmp / "r.json").stat().st_mode & 0o777 == 0o644
    model = tmp / "out" / "model"
    assert model.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in model.iterdir()} == {0o644}
    step = tmp / "out" / "checkpoints" / "step-000002"
    assert step.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in step.rglob("*") if p.is_file()} == {0o644}


@case("silent", "wrote", 0, check=_modes)
def modes_follow_the_umask(w, tmp, mp, keep):
    os.umask(0o022)  # the usual default, kept for the rest of the session
    assert main(_ev(w, tmp)) == 0
    return _un(w, tmp)


# ---------------------------------------------------------------- the synthetic study


def _synthetic(key, method):
    def check(w, tmp, out, err):
        result = json.loads((tmp / "syn" / "fig4-alpha1.json").read_text())
        assert method in result[key], result[key]
        assert "RuntimeWarning" not in err
        record = result["provenance"]
        assert len(record["seed"]) == 1 and record["config"]["lr"] == float(SYN_LR[method])
        assert record["libraries"]["numpy"] == metadata.version("numpy")

    return check


SYN_LR = {"simnpo": "1e308", "ga": "1e3"}
SYN = ["--steps", "20", "--seeds", "1", "--ref-steps", "50", "--eval-every", "5", "--no-progress"]


@case("silent", "Summary", 0, (), check=_synthetic("failed_runs", "simnpo"))
def synthetic_lr_1e308(w, tmp, mp, keep):
    args = ["--methods", "simnpo", "--lr", "1e308", *SYN]
    return ["reproduce", "fig4-alpha1", "--out", str(tmp / "syn"), *args]


@case("review", "Summary", 0, (), check=_synthetic("exploding_runs", "ga"))
def synthetic_ga_lr_1e3(w, tmp, mp, keep):
    args = ["--methods", "ga", "--lr", "1e3", *SYN]
    return ["reproduce", "fig4-alpha1", "--out", str(tmp / "syn"), *args]


def test_results_record_their_provenance(world):
    # result.json of a run and an evaluation's results: what reproduces them.
    import platform

    run = json.loads((world.run / "result.json").read_text())["provenance"]
    ev = json.loads(world.results.read_text())["info"]["provenance"]
    for p in (run, ev):
        assert p["python"] == platform.python_version()
        for lib in ("torch", "transformers", "accelerate", "numpy"):
            assert p["libraries"][lib] == metadata.version(lib)
        assert p["git"] is None or len(p["git"]["commit"]) == 40
        assert p["world_size"] == 1
    assert run["seed"] == run["config"]["seed"] and run["per_device_batch"] == 4
    assert run["config"]["lr"] == 1e-3 and run["config"]["max_steps"] == 2
    assert run["paths"]["model"] == str(world.model.resolve())
    state = json.loads(
        (world.run / "checkpoints" / "step-000002" / "trainer_state.json").read_text()
    )
    assert run["digests"] == state["digests"]  # what --resume compares
    assert set(run["digests"]["data"]) >= {"forget", "retain"}
    assert ev["digests"]["tokenizer"] == run["digests"]["tokenizer"]  # the same tokenizer
    assert ev["config"]["max_items"] == 2


# ---------------------------------------------------------------- the corpus


def test_the_corpus_covers_the_review():
    counts = {v: sum(c.verdict == v for c in CASES) for v in ("silent", "traceback", "misleading")}
    assert counts == {"silent": 20, "traceback": 21, "misleading": 13}, counts


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_bad_input(c, world, tmp_path, monkeypatch, capsys):
    keep: list[Path] = []
    argv = c.setup(world, tmp_path, monkeypatch, keep)
    capsys.readouterr()
    before = snapshot([getattr(world, name) for name in c.unchanged] + keep)
    status = main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == c.code, err[-3000:]
    if c.code:  # one line says it; before it at most what the run reported on its way
        assert lines and lines[-1].startswith("npo: "), err[-3000:]
        assert all(line.startswith(("warning: ", "resume: ")) for line in lines[:-1]), err
        assert c.fragment in lines[-1], lines[-1]
    else:
        assert c.fragment in out + err, (out + err)[-3000:]
    assert snapshot([getattr(world, name) for name in c.unchanged] + keep) == before
    monkeypatch.undo()  # the checks resume runs: without the injected faults
    if c.check is not None:
        c.check(world, tmp_path, out, err)
