"""A small TOFU-format directory cut from the real data, for CPU demos and tests.

TOFU's files keep 20 consecutive rows per author, the forget splits are the tail of ``full``
and ``retain_perturbed`` is its head (authors 0-19). :func:`write_tofu_subset` keeps the text
of a few authors and the split *names* a forget-10% run reads, with smaller sizes: ``full`` =
the first ``authors - forget_authors`` authors plus the last ``forget_authors``; ``forget10``
= those last ones (a true tail of TOFU's ``forget10``), ``retain90`` = the others;
``forget10_perturbed`` their evaluation rows; ``retain_perturbed`` the first
``perturbed_authors`` retained authors' (at most TOFU's 20); ``real_authors_perturbed`` /
``world_facts_perturbed`` the first ``utility_items`` rows; ``idontknow.jsonl`` as is (local
sources). Every split is written as JSON Lines (:func:`npo.results.write_jsonl`).

``knowledge=True`` also teaches the utility sets: their question/answer rows join ``full`` and
``retain90`` (before the forget authors, so ``forget10`` stays the tail). A model trained from
scratch then has the "general knowledge" that real authors / world facts probe in a
pre-trained LLM, and model utility has something to lose.
"""

from __future__ import annotations

from pathlib import Path

from npo.llm.data import read_split
from npo.results import atomic_write_text, ensure_out_dir, write_jsonl

__all__ = ["write_tofu_subset"]

ROWS_PER_AUTHOR = 20
UTILITY = ("real_authors_perturbed", "world_facts_perturbed")


def write_tofu_subset(
    source: str | Path,
    dst: str | Path,
    *,
    authors: int = 10,
    forget_authors: int = 1,
    utility_items: int = 20,
    knowledge: bool = False,
    perturbed_authors: int = 20,
) -> Path:
    """Write the subset of ``source`` described in the module docstring to ``dst``.

    Args:
        source: a TOFU directory or ``hf:locuslab/TOFU``.
        dst: the directory to write (created if needed).
        authors: authors kept, forgotten ones included.
        forget_authors: the last authors of ``full``, the forget split (at most 20).
        utility_items: rows of ``real_authors_perturbed`` and ``world_facts_perturbed`` (>= 1).
        knowledge: also teach the utility sets' question/answer rows (``full``, ``retain90``).
        perturbed_authors: retained authors in ``retain_perturbed`` (1 to TOFU's 20).

    Returns:
        ``dst``.
    """
    if not 1 <= forget_authors < authors:
        raise ValueError(f"need 1 <= forget_authors < authors, got {forget_authors}, {authors}")
    if forget_authors > 20 or utility_items < 1:
        raise ValueError("forget_authors must be <= 20 (TOFU's forget10) and utility_items >= 1")
    if not 1 <= perturbed_authors <= 20:
        raise ValueError(f"perturbed_authors must be in 1..20 (TOFU's), got {perturbed_authors}")
    keep = authors - forget_authors
    n_f, n_k = ROWS_PER_AUTHOR * forget_authors, ROWS_PER_AUTHOR * keep
    full = read_split(source, "full").rows
    if len(full) < ROWS_PER_AUTHOR * authors:
        raise ValueError(f"{source} has {len(full)} rows in full, fewer than {authors} authors")
    out = ensure_out_dir(dst)
    forget, retain = full[-n_f:], full[:n_k]
    utility = {n: read_split(source, n).rows[:utility_items] for n in UTILITY}
    if knowledge:
        taught = [r for rows in utility.values() for r in rows]
        retain += tuple({"question": r["question"], "answer": r["answer"]} for r in taught)
    write_jsonl(out / "full.json", retain + forget)
    write_jsonl(out / "forget10.json", forget)
    write_jsonl(out / "retain90.json", retain)
    forget_eval = read_split(source, "forget10_perturbed").rows[-n_f:]
    write_jsonl(out / "forget10_perturbed.json", forget_eval)
    n_rp = ROWS_PER_AUTHOR * min(keep, perturbed_authors)
    write_jsonl(out / "retain_perturbed.json", read_split(source, "retain_perturbed").rows[:n_rp])
    for name, rows in utility.items():
        write_jsonl(out / f"{name}.json", rows)
    idk = Path(str(source)) / "idontknow.jsonl"
    if not str(source).startswith("hf:") and idk.is_file():
        atomic_write_text(out / "idontknow.jsonl", idk.read_text(encoding="utf-8"))
    return out
