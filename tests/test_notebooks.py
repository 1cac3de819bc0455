"""Execute every jupytext notebook in notebooks/ at its test size (their assert cells must hold).

A notebook is a ``py:percent`` script; it reads ``NPO_FAST`` (set to 1 here, the test size) to
pick small sizes. Each executed notebook, outputs and figures included, is saved as
``docs/_build/executed/NAME.ipynb`` (ignored by git) with the size it ran at and when, in its
metadata and in a cell after its title. The documentation renders these copies, so no notebook
runs twice in ``make test``. Notebooks listed in ``SLOW`` run only with ``make test-slow``.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.py"))
EXECUTED = ROOT / "docs" / "_build" / "executed"  # read by docs/_ext/npo_docs.py
SLOW: set[str] = set()
# Notebooks on real TOFU text: skipped when the data is absent (they fail loudly when run alone).
NEEDS_TOFU: set[str] = {"05_llm_tofu.py"}
TOFU_DIR = Path(os.environ.get("NPO_TOFU_DIR", ROOT.parent / "shared" / "data" / "tofu"))
FAST = "1"  # the test size
LABEL_TAG = "npo-run-label"
# Figures become image outputs of their cells (a headless backend would drop them).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def _params():
    for path in NOTEBOOKS:
        marks = [pytest.mark.slow] if path.name in SLOW else []
        yield pytest.param(path, id=path.stem, marks=marks)


def _label(nb, path: Path, started: datetime, seconds: float) -> None:
    """Record the run in the notebook's metadata and in a cell after the title cell."""
    import nbformat

    when = started.strftime("%Y-%m-%d %H:%M UTC")
    nb.metadata["npo"] = {
        "source": f"notebooks/{path.name}",
        "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "NPO_FAST": FAST,
        "size": "the test size",
        "executed": when,
        "seconds": round(seconds, 1),
    }
    cell = nbformat.v4.new_markdown_cell(
        f"> Executed {when} at `NPO_FAST={FAST}` (the test size) by `tests/test_notebooks.py`, "
        f"in {seconds:.0f} s. Run from `notebooks/{path.name}`, the notebook reads `NPO_FAST` "
        "itself: unset or 1 gives this size, 0 the full size."
    )
    cell.metadata["tags"] = [LABEL_TAG]
    first = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(first, cell)


@pytest.mark.parametrize("path", list(_params()))
def test_notebook_executes(path, tmp_path, monkeypatch):
    if path.name in NEEDS_TOFU and not (TOFU_DIR / "full.json").is_file():
        pytest.skip(f"{path.name} needs the TOFU data: none at {TOFU_DIR} (set NPO_TOFU_DIR)")
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    saved = EXECUTED / f"{path.stem}.ipynb"
    saved.unlink(missing_ok=True)  # a failed run leaves no copy for the docs
    monkeypatch.setenv("NPO_FAST", FAST)
    monkeypatch.setenv("MPLBACKEND", INLINE_BACKEND)
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    started, t0 = datetime.now(UTC), time.perf_counter()
    client.execute(env=dict(os.environ))
    _label(nb, path, started, time.perf_counter() - t0)
    EXECUTED.mkdir(parents=True, exist_ok=True)
    tmp = saved.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(saved)
