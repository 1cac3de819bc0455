"""A small TOFU-format directory cut from the real data, for CPU demos and tests.

TOFU's files keep 20 consecutive rows per author, the forget splits are the tail of ``full``
and ``retain_perturbed`` is its head (authors 0-19). :func:`write_tofu_subset` keeps the text
of a few authors and the split *names* a forget-10% run reads, with smaller sizes: ``full`` =
the first ``authors - forget_authors`` authors plus the last ``forget_authors``; ``forget10``
= those last ones (a true tail of TOFU's ``forget10``), ``retain90`` = the others;
``forget10_perturbed`` their evaluation rows; ``retain_perturbed`` the retained authors'
(at most TOFU's 20); ``real_authors_perturbed`` / ``world_facts_perturbed`` the first
``utility_items`` rows; ``idontknow.jsonl`` as is (local sources).

``knowledge=True`` also teaches the utility sets: their question/answer rows join ``full`` and
``retain90`` (before the forget authors, so ``forget10`` stays the tail). A model trained from
scratch then has the "general knowledge" that real authors / world facts probe in a
pre-trained LLM, and model utility has something to lose.
"""

from __future__ import annotations

import json
from pathlib import Path

from npo.llm.data import read_split
from npo.results import atomic_write_text, ensure_out_dir

__all__ = ["write_tofu_subset"]

ROWS_PER_AUTHOR = 20
UTILITY = ("real_authors_perturbed", "world_facts_perturbed")


def _write(path: Path, rows: tuple | list) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def write_tofu_subset(
    source: str | Path,
    dst: str | Path,
    *,
    authors: int = 10,
    forget_authors: int = 1,
    utility_items: int = 20,
    knowledge: bool = False,
) -> Path:
    """Write the subset of ``source`` (a TOFU directory or ``hf:locuslab/TOFU``) described in
    the module docstring to ``dst``; returns ``dst``."""
    if not 1 <= forget_authors < authors:
        raise ValueError(f"need 1 <= forget_authors < authors, got {forget_authors}, {authors}")
    if forget_authors > 20 or utility_items < 1:
        raise ValueError("forget_authors must be <= 20 (TOFU's forget10) and utility_items >= 1")
    keep = authors - forget_authors
    n_f, n_k = ROWS_PER_AUTHOR * forget_authors, ROWS_PER_AUTHOR * keep
    full = read_split(source, "full").rows
    if len(full) < ROWS_PER_AUTHOR * authors:
        raise ValueError(f"{source} has {len(full)} rows in full, fewer than {authors} authors")
    out = ensure_out_dir(dst)
    forget, retain = full[-n_f:], full[:n_k]
    utility = {n: read_split(source, n).rows[:utility_items] for n in UTILITY}
    if knowledge:
        retain += tuple({"question": r["question"], "answer": r["answer"]} for rows in utility.values() for r in rows)  # fmt: skip
    _write(out / "full.json", retain + forget)
    _write(out / "forget10.json", forget)
    _write(out / "retain90.json", retain)
    _write(out / "forget10_perturbed.json", read_split(source, "forget10_perturbed").rows[-n_f:])
    n_rp = ROWS_PER_AUTHOR * min(keep, 20)
    _write(out / "retain_perturbed.json", read_split(source, "retain_perturbed").rows[:n_rp])
    for name, rows in utility.items():
        _write(out / f"{name}.json", rows)
    idk = Path(str(source)) / "idontknow.jsonl"
    if not str(source).startswith("hf:") and idk.is_file():
        atomic_write_text(out / "idontknow.jsonl", idk.read_text(encoding="utf-8"))
    return out
