"""Sphinx extension of the npo docs: the notebook pages, from the executed copies.

The notebooks are jupytext ``py:percent`` scripts in ``notebooks/``. The notebook test
(``tests/test_notebooks.py``) executes each one at the test size and saves the executed copy,
outputs included, as ``docs/_build/executed/NAME.ipynb``, with the run recorded in
``metadata.npo`` (``source_sha256``, ``NPO_FAST``, ``executed``, ``seconds``). Before Sphinx
reads its sources, :func:`stage_notebooks` writes ``docs/notebooks/NAME.ipynb`` (git-ignored)
for every script: the executed copy when there is one for the script as it is now, else the
script's cells without outputs. Each page carries a box, after its title, that says which of
the two it is, at what size it ran and when. Sphinx never executes a notebook
(``nb_execution_mode = "off"``).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
SOURCES = ROOT / "notebooks"
EXECUTED = DOCS / "_build" / "executed"  # written by tests/test_notebooks.py
STAGED = DOCS / "notebooks"
LABEL_TAG = "npo-run-label"  # the label cell the test adds; replaced by the box below


def source_digest(path: Path) -> str:
    """The SHA-256 of a notebook script (the test stores it with the executed copy)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _box(kind: str, title: str, text: str) -> Any:
    import nbformat

    cell = nbformat.v4.new_markdown_cell(f":::{{admonition}} {title}\n:class: {kind}\n{text}\n:::")
    cell.metadata["tags"] = [LABEL_TAG]
    return cell


def _executed(src: Path) -> tuple[Any, str] | None:
    """The executed copy of ``src`` and its label, or None if there is none for it now."""
    import nbformat

    path = EXECUTED / f"{src.stem}.ipynb"
    if not path.is_file():
        return None
    nb = nbformat.read(path, as_version=4)
    run = nb.metadata.get("npo", {})
    if run.get("source_sha256") != source_digest(src):
        return None
    return nb, (
        f"The outputs below come from running `notebooks/{src.name}` at "
        f"`NPO_FAST={run.get('NPO_FAST')}` ({run.get('size', 'the test size')}) on "
        f"{run.get('executed', 'an unknown date')}, in {run.get('seconds', float('nan')):.0f} s, "
        "during the test suite. Opened in Jupyter, the notebook reads `NPO_FAST` itself: unset "
        "or 1 gives the same size, 0 the full size."
    )


def _unexecuted(src: Path) -> tuple[Any, str]:
    """The cells of ``src`` without outputs, and a label saying why."""
    import jupytext

    why = (
        "the saved executed copy is older than the notebook's source"
        if (EXECUTED / f"{src.stem}.ipynb").is_file()
        else "no executed copy was saved"
    )
    return jupytext.read(src), (
        f"This page shows the cells of `notebooks/{src.name}` without outputs: {why}. "
        "`pytest tests/test_notebooks.py` (part of `make test`) executes the notebooks and "
        "saves the copies these pages are built from."
    )


def staged_notebook(src: Path) -> Any:
    """The notebook rendered for ``src``: its executed copy or its bare cells, with a label.

    Args:
        src: a notebook script in ``notebooks/``.

    Returns:
        The notebook (an ``nbformat`` node) to write into ``docs/notebooks/``.
    """
    found = _executed(src)
    nb, text = found if found is not None else _unexecuted(src)
    nb = copy.deepcopy(nb)
    cells = [c for c in nb.cells if LABEL_TAG not in c.get("metadata", {}).get("tags", [])]
    if found is not None:
        box = _box("note", "Executed notebook", text)
    else:
        box = _box("warning", "Not executed", text)
    first = 1 if cells and cells[0].cell_type == "markdown" else 0  # after the title cell
    nb.cells = [*cells[:first], box, *cells[first:]]
    nb.metadata.setdefault("language_info", {"name": "python", "pygments_lexer": "ipython3"})
    return nb


def stage_notebooks(app: Any = None) -> list[Path]:
    """Write ``docs/notebooks/NAME.ipynb`` for every script, only where its content changed.

    Args:
        app: the Sphinx application (unused; the hook's signature).

    Returns:
        The staged notebook paths.
    """
    import nbformat

    STAGED.mkdir(exist_ok=True)
    written = []
    for src in sorted(SOURCES.glob("[0-9]*.py")):
        target = STAGED / f"{src.stem}.ipynb"
        text = nbformat.writes(staged_notebook(src)) + "\n"
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        written.append(target)
    for old in STAGED.glob("*.ipynb"):
        if old not in written:  # its script is gone
            old.unlink()
    return written


def setup(app: Any) -> dict[str, Any]:
    """Stage the notebooks before Sphinx looks for its sources.

    Args:
        app: the Sphinx application.

    Returns:
        The extension's metadata.
    """
    app.connect("builder-inited", stage_notebooks, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
