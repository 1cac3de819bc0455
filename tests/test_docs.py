"""The documentation's code: every Python block of README.md and docs/ imports what exists.

The blocks are illustrations (they name models and directories the reader has), so only their
import statements are executed; a moved or renamed module or function fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def _blocks():
    for page in PAGES:
        if "_build" in page.parts:
            continue
        for i, code in enumerate(BLOCK.findall(page.read_text(encoding="utf-8"))):
            yield pytest.param(code, id=f"{page.relative_to(ROOT)}#{i}")


@pytest.mark.parametrize("code", list(_blocks()))
def test_python_blocks_import_what_exists(code):
    tree = ast.parse(code)
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    module = ast.Module(body=imports, type_ignores=[])
    exec(compile(module, "<docs>", "exec"), {})


def test_there_are_blocks_to_check():
    assert len(list(_blocks())) >= 8
