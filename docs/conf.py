"""Sphinx configuration of the npo documentation.

The build runs offline: no intersphinx inventories, nothing fetched. The API pages are
generated from the docstrings at build time (autosummary, recursive over the packages as they
are; ``_ext/npo_api.py``), the command-line page from the argparse parser, and the notebook
pages from the executed copies that ``tests/test_notebooks.py`` saves
(``_ext/npo_notebooks.py``). Nothing is executed here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]  # this checkout's packages, then the local ext

import npo_api  # noqa: E402

project = "npo"
author = "the npo authors"
copyright = "2024-2026, the npo authors"
release = version = "0.1.0"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinxarg.ext",
    "npo_api",
    "npo_notebooks",
]

exclude_patterns = ["_build", "_ext", "_templates", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# MyST Markdown and notebooks: rendered from stored outputs, never executed here.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"
nb_merge_streams = True

# API reference from the docstrings (Google style), each object where it is defined.
autosummary_generate = True
autosummary_ignore_module_all = True
# A package's __main__ runs a command when imported: never import it.
autosummary_mock_imports = ["npo.llm.configs.__main__"]
# The public constants of each module (names in __all__ bound by assignment).
autosummary_context = {"constants": npo_api.package_constants("npo", "theory", "synthetic")}
add_function_parentheses = False  # pages write signatures out where they matter
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Nitpicky mode: every project reference must resolve. Without intersphinx the types of the
# standard library and of third-party packages have no target; only those are exempt.
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|scipy|sympy|matplotlib|transformers|accelerate|peft)(\..*)?"),
    (r"py:.*", r"(pathlib|os|argparse|collections\.abc|types|enum|dataclasses)\..*"),
    # the same types named bare, in annotations autodoc cannot evaluate
    (r"py:.*", r"(Tensor|Figure|Axes|Path|PathLike|Callable|Iterable|Mapping|Sequence)"),
]

html_theme = "pydata_sphinx_theme"
html_title = "npo"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_static_path: list[str] = []

THEORY_INDEX = DOCS / "theory" / "index.md"
THEORY_MARKER = "(theory-pages)="


def drop_missing_theory(app: Any, docname: str, source: list[str]) -> None:
    """Cut the section listing the theory pages (from its label to the end of the page) while
    ``docs/theory/index.md`` does not exist."""
    if THEORY_MARKER in source[0] and not THEORY_INDEX.is_file():
        source[0] = source[0][: source[0].index(THEORY_MARKER)]


def setup(app: Any) -> None:
    app.connect("source-read", drop_missing_theory)
