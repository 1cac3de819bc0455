"""TOFU's split files for the generated authors, written through :mod:`npo.results`."""

from __future__ import annotations

from pathlib import Path

from npo.results import atomic_write_text, ensure_out_dir, write_jsonl
from synthetic.transformer.authors import (
    AuthorsConfig,
    AuthorsData,
    generate_holdout,
    split_authors,
)

__all__ = ["write_holdout_splits", "write_tofu_splits"]


def write_tofu_splits(
    data: AuthorsData, out_dir: str | Path, percents: tuple[int, ...] = (1, 5, 10, 20, 50, 90)
) -> dict:
    """Write TOFU's split files (JSON Lines, as TOFU ships them) for the generated authors.

    The files: ``full``, ``forgetXX`` (the last XX% of authors), ``retainYY`` (the rest),
    ``forgetXX_perturbed``, ``retain_perturbed`` (the first 10% of authors, disjoint from
    every forget split), ``real_authors_perturbed``, ``world_facts_perturbed`` and
    ``idontknow.jsonl``. A percentage that is no whole author, or whose forget split would
    overlap ``retain_perturbed``, is skipped.

    Args:
        data: the generated authors.
        out_dir: the output directory (created if needed).
        percents: the forget percentages.

    Returns:
        A report with ``written`` (forget percentage -> number of authors), ``skipped``
        (forget percentage -> reason) and ``retain_perturbed_authors``.
    """
    out = ensure_out_dir(out_dir)
    n, per = data.config.n_authors, data.config.qa_per_author
    plain = [{"question": r["question"], "answer": r["answer"]} for r in data.rows]
    write_jsonl(out / "full.json", plain)
    n_keep = max(1, int(n * 0.1 + 0.5))
    written, skipped = {}, {}
    for pct in percents:
        count = split_authors(n, pct)
        if count is None:
            skipped[pct] = f"{pct}% of {n} authors is no whole author"
            continue
        if n - count < n_keep:
            skipped[pct] = f"forget{pct:02d} would overlap retain_perturbed ({n_keep} authors)"
            continue
        cut = (n - count) * per
        write_jsonl(out / f"forget{pct:02d}.json", plain[cut:])
        write_jsonl(out / f"forget{pct:02d}_perturbed.json", data.rows[cut:])
        write_jsonl(out / f"retain{100 - pct:02d}.json", plain[:cut])
        written[pct] = count
    write_jsonl(out / "retain_perturbed.json", data.rows[: n_keep * per])
    write_jsonl(out / "real_authors_perturbed.json", data.real_authors)
    write_jsonl(out / "world_facts_perturbed.json", data.world_facts)
    atomic_write_text(out / "idontknow.jsonl", "\n".join(data.idk))
    report = {"written": written, "skipped": skipped, "retain_perturbed_authors": n_keep}
    write_holdout_splits(data.config, out, written)
    return report


def write_holdout_splits(config: AuthorsConfig, out_dir: str | Path, written: dict) -> list[Path]:
    """Write ``holdoutXX`` for each forget percentage: as many never-trained authors as forgetXX.

    The authors come from :func:`~synthetic.transformer.authors.generate_holdout` (nobody is
    fine-tuned on them; the same list whatever the splits); ``holdoutXX`` holds the first
    ``written[XX]`` of them (at most all of them), in the perturbed format (question, answer,
    paraphrase, perturbed answers).

    Args:
        config: the data set's sizes and seed.
        out_dir: the directory of the TOFU files.
        written: forget percentage -> number of forget authors.

    Returns:
        The files written.
    """
    out = ensure_out_dir(out_dir)
    if not written:
        return []
    _, rows = generate_holdout(config)
    paths = []
    for pct, count in written.items():
        rows_pct = rows[: int(count) * config.qa_per_author]
        paths.append(write_jsonl(out / f"holdout{int(pct):02d}.json", rows_pct))
    return paths
