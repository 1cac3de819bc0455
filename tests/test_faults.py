"""Faults a run survives, against the real operating system: Ctrl-C (SIGINT to a subprocess)
and a full or read-only disk (a small tmpfs, where one can be mounted; the in-process
ENOSPC/EROFS variants of the same cases are in test_bad_inputs.py). Each ends with one line,
leaves no temporary files, keeps the last complete checkpoint, and --resume finishes the run
bitwise as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _corpus import mount_tmpfs, umount, unlearn_argv

from npo.cli import main
from npo.llm.train import read_log, read_weights

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
# Constant rate, no warm-up: the first K steps of a run do not depend on its length.
FLAT = ["--lr-schedule", "constant", "--warmup-epochs", "0"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _argv(model, data, out, cache, steps, *extra):
    return [*unlearn_argv(model, data, out, cache, *FLAT, *extra), "--max-steps", str(steps)]


def _same_weights(a: Path, b: Path) -> None:
    x, y = read_weights(a), read_weights(b)
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _no_temporaries(run: Path) -> None:
    left = [*run.glob(".model.*"), *run.glob("checkpoints/.tmp-step-*"), *run.glob(".*.tmp")]
    assert not left, left


def test_ctrl_c_stops_with_one_line_and_resumes_bitwise(mini_data, random_model, cache, tmp_path):
    out = tmp_path / "cut"
    argv = _argv(random_model, mini_data, out, cache, 5000, "--checkpoint-every", "2")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "npo.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 240
    log = out / "log.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("npo: interrupted at step ") and "Traceback" not in err
    assert lines[-1].endswith("; resume with --resume"), lines[-1]
    _no_temporaries(out)
    last = sorted((out / "checkpoints").glob("step-*"))[-1]
    assert f"the last checkpoint is {last};" in lines[-1]
    # resume, now to two steps past the checkpoint; the same as an uninterrupted run
    upto = int(last.name[5:]) + 2
    assert (
        main(
            [
                *_argv(random_model, mini_data, out, cache, upto, "--checkpoint-every", "2"),
                "--resume",
            ]
        )
        == 0
    )
    whole = tmp_path / "whole"
    assert main(_argv(random_model, mini_data, whole, cache, upto, "--checkpoint-every", "2")) == 0
    _same_weights(whole / "model", out / "model")
    assert [r["loss"] for r in read_log(whole)] == [r["loss"] for r in read_log(out)]


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def mount(name, size_kb, **kw):
        path = tmp_path / name
        if not mount_tmpfs(path, size_kb, **kw):
            pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        umount(path)


def test_disk_full_at_a_later_checkpoint_keeps_the_earlier(
    mini_data, random_model, cache, tmp_path, tmpfs, capsys
):
    # About 1.3 MB per checkpoint of the tiny model: step 5's fits in 2 MB, step 10's does not.
    disk = tmpfs("disk", 2048)
    out = disk / "run"
    argv = _argv(random_model, mini_data, out, cache, 12, "--checkpoint-every", "5")
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("npo: error: "), err
    assert "No space left on device" in err[0] and "step-000005 is intact" in err[0]
    _no_temporaries(out)
    assert [p.name for p in (out / "checkpoints").glob("step-*")] == ["step-000005"]
    kept = read_weights(out / "checkpoints" / "step-000005" / "model")
    assert all(torch.isfinite(t).all() for t in kept.values())
    # room again: --resume finishes the run as if nothing had happened
    subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True, timeout=20)
    assert main([*argv, "--resume"]) == 0
    whole = tmp_path / "whole"
    assert main(_argv(random_model, mini_data, whole, cache, 12, "--checkpoint-every", "5")) == 0
    _same_weights(whole / "model", out / "model")
    assert [r["loss"] for r in read_log(whole)] == [r["loss"] for r in read_log(out)]


def test_disk_full_at_the_first_checkpoint(mini_data, random_model, cache, tmpfs, capsys):
    disk = tmpfs("small", 1024)
    out = disk / "run"
    assert main(_argv(random_model, mini_data, out, cache, 4, "--checkpoint-every", "2")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0], err
    _no_temporaries(out)


def test_reference_cache_on_a_read_only_or_full_disk(
    mini_data, random_model, tmp_path, tmpfs, capsys
):
    for name, kw in (("ro", {"read_only": True}), ("full", {})):
        place = tmpfs(name, 8, **kw)
        if name == "full":
            with pytest.raises(OSError):
                (place / "filler").write_bytes(b"0" * 65536)
        out = tmp_path / f"out-{name}"
        argv = _argv(random_model, mini_data, out, place / "cache", 2)
        assert main(argv) == 0
        text = capsys.readouterr().out
        assert "cannot write the reference cache" in text, text[-2000:]
        assert (out / "model").is_dir()
