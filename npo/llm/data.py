"""TOFU-format question/answer data: reading and validation.

A *data source* is a directory of TOFU files (JSON Lines as TOFU ships them, or JSON arrays,
named ``<split>.json`` or ``<split>.jsonl``) or ``hf:<repo>`` (``hf:locuslab/TOFU``), read through
``datasets``. Splits: ``full``, ``forgetXX``, ``retainYY``, ``forgetXX_perturbed``,
``retain_perturbed``, ``real_authors[_perturbed]``, ``world_facts[_perturbed]``, ``holdoutXX``
(authors never trained on, as many as in ``forgetXX``); the "I don't
know" answers are ``idontknow.jsonl`` (plain text, one answer per line).

Every error names the file, the line and the field. :func:`tofu_dir` finds the real TOFU
data. Prompting and tokenization are in :mod:`npo.llm.encoding`, the data order and the
forget/retain pairing in :mod:`npo.llm.order`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "IDK_FILE",
    "QASplit",
    "eval_split_for",
    "read_idk",
    "read_split",
    "retain_for",
    "tofu_dir",
]

IDK_FILE = "idontknow.jsonl"

_STR_LIST = "list of strings"
_SPLIT_FIELDS: tuple[tuple[str, dict[str, str]], ...] = (
    (
        r"forget\d\d_perturbed|retain_perturbed",
        {"paraphrased_answer": "str", "perturbed_answer": _STR_LIST},
    ),
    (r"real_authors_perturbed|world_facts_perturbed", {"perturbed_answer": _STR_LIST}),
    (r"full|forget\d\d|retain\d\d|holdout\d\d|real_authors|world_facts", {}),
)


def _required_fields(name: str) -> dict[str, str]:
    for pattern, extra in _SPLIT_FIELDS:
        if re.fullmatch(pattern, name):
            return {"question": "str", "answer": "str", **extra}
    raise ValueError(
        f"unknown split {name!r}; valid: full, forgetXX, retainYY, holdoutXX, forgetXX_perturbed, "
        "retain_perturbed, real_authors[_perturbed], world_facts[_perturbed] (XX, YY two digits)"
    )


def _checkout_root() -> Path | None:
    # The checkout this module runs from, if any (not a site-packages copy).
    root = Path(__file__).resolve().parents[2]  # ROOT/npo/llm/data.py
    return root if (root / "pyproject.toml").is_file() else None


def tofu_dir() -> Path:
    """The directory of the real TOFU data.

    ``NPO_TOFU_DIR`` if set, else the documented default ``../shared/data/tofu`` beside the
    checkout this package runs from (found from the repository root, never from the working
    directory; an installed copy outside a checkout has no default).

    Returns:
        The directory; it holds ``full.json``.

    Raises:
        ValueError: one line naming the path tried, when it holds no ``full.json``.
    """
    env = os.environ.get("NPO_TOFU_DIR")
    root = _checkout_root()
    if env:
        path, tried = Path(env), f"NPO_TOFU_DIR={env}"
    elif root is not None:
        path = root.parent / "shared" / "data" / "tofu"
        tried = f"{path} (NPO_TOFU_DIR is not set)"
    else:
        raise ValueError(
            "TOFU data not found: NPO_TOFU_DIR is not set and npo does not run from a checkout "
            f"(no ../shared/data/tofu beside {Path(__file__).resolve().parents[2]}); "
            "set NPO_TOFU_DIR to a TOFU directory"
        )
    if not (path / "full.json").is_file():
        raise ValueError(
            f"TOFU data not found: no full.json in {tried}; set NPO_TOFU_DIR to a TOFU directory"
        )
    return path


def retain_for(forget: str) -> str:
    """The retain split that complements a forget split: ``forget10`` -> ``retain90``.

    Returns:
        The retain split's name.
    """
    m = re.fullmatch(r"forget(\d\d)", forget)
    if not m or not 0 < int(m[1]) < 100:
        raise ValueError(f"forget split must look like 'forget10' (01-99), got {forget!r}")
    return f"retain{100 - int(m[1]):02d}"


def eval_split_for(forget: str) -> str:
    """The perturbed evaluation split of a forget split.

    TOFU ships ``forget01/05/10_perturbed`` only; larger forget sets are evaluated on
    ``forget10_perturbed``, which they contain (forgetXX is the tail of ``full``).

    Returns:
        The evaluation split's name.
    """
    retain_for(forget)  # validates the name
    return f"{forget}_perturbed" if int(forget[6:]) <= 10 else "forget10_perturbed"


@dataclass(frozen=True)
class QASplit:
    """Validated rows of one split.

    ``lines[i]`` is row i's line in ``source`` (1-based), for error messages further down (e.g.
    a prompt too long for ``max_length``).
    """

    name: str
    source: str
    rows: tuple[dict[str, Any], ...]
    lines: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, field: str) -> list[Any]:
        """Field ``field`` of every row.

        Returns:
            The values, in row order.
        """
        return [row[field] for row in self.rows]

    def where(self, i: int) -> str:
        """Where row ``i`` came from, for error messages.

        Returns:
            ``"SOURCE:LINE"``.
        """
        return f"{self.source}:{self.lines[i]}"


def _check_row(row: Any, where: str, fields: dict[str, str]) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for field, kind in fields.items():
        if field not in row:
            raise ValueError(f"{where}: missing field {field!r} (has {sorted(row)})")
        value = row[field]
        if kind == "str":
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"{where}: field {field!r} must be a non-empty string, got {value!r}"
                )
        elif not (
            isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
        ):
            raise ValueError(f"{where}: field {field!r} must be a non-empty {kind}, got {value!r}")
    return row


def _json_msg(exc: json.JSONDecodeError) -> str:
    # "Unterminated string starting at" + " at column 5" would read "at at".
    return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"


def _parse_json_array(text: str, path: Path) -> list[tuple[int, Any]]:
    # The items of a JSON array, each with the line it starts on.
    decoder = json.JSONDecoder()
    items: list[tuple[int, Any]] = []
    pos = text.index("[") + 1
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            raise ValueError(
                f"{path}:{text.count(chr(10)) + 1}: malformed JSON array (no closing ])"
            )
        if text[pos] == "]":
            return items
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}: malformed JSON ({_json_msg(exc)})") from None
        items.append((line, obj))


def _read_file_rows(path: Path) -> list[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if text.lstrip().startswith("["):
        return _parse_json_array(text, path)
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: malformed JSON line ({_json_msg(exc)})") from None
    return rows


def _read_hf_rows(repo: str, name: str) -> list[tuple[int, Any]]:
    try:
        import datasets
    except ImportError:
        raise ValueError(
            f"--data hf:{repo} needs the 'datasets' package (pip install datasets); "
            "or pass a local directory of TOFU files"
        ) from None
    try:
        ds = datasets.load_dataset(repo, name, split="train")
    except Exception as exc:  # network, missing config, offline mode: all the user's to fix
        raise ValueError(
            f"cannot load split {name!r} of the Hugging Face dataset {repo!r} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) or no network? "
            "Pass a local directory of TOFU files with --data DIR"
        ) from None
    return [(i + 1, dict(row)) for i, row in enumerate(ds)]


def _local_dir(data: str | Path) -> Path:
    path = Path(data)
    if path.is_file():
        raise ValueError(
            f"data directory {str(path)!r} is a file; pass the directory that holds the TOFU "
            f"files (here {str(path.parent)!r})"
        )
    if not path.is_dir():
        raise ValueError(f"data directory {str(path)!r} does not exist (or use hf:locuslab/TOFU)")
    return path


def _is_split_name(name: str) -> bool:
    return any(re.fullmatch(pattern, name) for pattern, _ in _SPLIT_FIELDS)


def read_split(data: str | Path, name: str) -> QASplit:
    """Read and validate split ``name`` from a directory or ``hf:<repo>``.

    Returns:
        The split's validated rows.

    Raises:
        ValueError: naming the file, line and field on a missing file, malformed line, missing
            or mistyped field, or an empty split.
    """
    fields = _required_fields(name)
    if str(data).startswith("hf:"):
        repo = str(data)[3:]
        source = f"hf:{repo}/{name}"
        items = _read_hf_rows(repo, name)
    else:
        folder = _local_dir(data)
        candidates = [folder / f"{name}.json", folder / f"{name}.jsonl"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            have = sorted(p.stem for p in folder.glob("*.json*") if _is_split_name(p.stem))
            raise ValueError(
                f"split {name!r}: no file {candidates[0]} (or .jsonl); splits there: {have}"
            )
        source = str(path)
        items = _read_file_rows(path)
    if not items:
        raise ValueError(f"{source}: split {name!r} is empty")
    rows = tuple(_check_row(obj, f"{source}:{line}", fields) for line, obj in items)
    return QASplit(name, source, rows, tuple(line for line, _ in items))


def read_idk(data: str | Path, idk_file: str | Path | None = None) -> tuple[str, ...]:
    """The "I don't know" answers: ``idk_file``, else ``<data>/idontknow.jsonl``; one per line.

    Returns:
        The non-empty answers, stripped.
    """
    if idk_file is None:
        if str(data).startswith("hf:"):
            raise ValueError(
                f"{data} has no {IDK_FILE}; pass the IDK answers file with --idk-file FILE"
            )
        idk_file = _local_dir(data) / IDK_FILE
    path = Path(idk_file)
    if path.is_dir():
        raise ValueError(f"IDK answers file {path} is a directory (one answer per line)")
    if not path.is_file():
        raise ValueError(f"IDK answers file {path} not found (one answer per line)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"IDK answers file {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    answers = tuple(line.strip() for line in text.splitlines())
    answers = tuple(a for a in answers if a)
    if not answers:
        raise ValueError(f"{path}: no IDK answers (expected one answer per line)")
    return answers
