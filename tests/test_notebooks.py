"""Execute every jupytext notebook in notebooks/ at its FAST size (their assert cells must hold).

A notebook is a ``py:percent`` script; it reads ``NPO_FAST`` (set to 1 here) to pick small sizes.
Notebooks listed in ``SLOW`` run only with ``make test-slow``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.py"))
SLOW: set[str] = set()
# Notebooks on real TOFU text: skipped when the data is absent (they fail loudly when run alone).
NEEDS_TOFU: set[str] = {"05_llm_tofu.py"}
TOFU_DIR = Path(os.environ.get("NPO_TOFU_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu"))  # fmt: skip


def _params():
    for path in NOTEBOOKS:
        marks = [pytest.mark.slow] if path.name in SLOW else []
        yield pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.parametrize("path", list(_params()))
def test_notebook_executes(path, tmp_path, monkeypatch):
    if path.name in NEEDS_TOFU and not (TOFU_DIR / "full.json").is_file():
        pytest.skip(f"{path.name} needs the TOFU data: none at {TOFU_DIR} (set NPO_TOFU_DIR)")
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("NPO_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=dict(os.environ))
