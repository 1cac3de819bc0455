"""The synthetic package's writer: experiment results (``DIR/NAME.png``, ``DIR/NAME.json`` with
config, steps, curves, table, notes, and ``DIR/NAME.md``) and generated TOFU-format split files,
through :mod:`npo.results`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt

from npo.results import atomic_write_text, ensure_out_dir, write_figure, write_json
from synthetic.authors import AuthorsData, split_authors
from synthetic.experiments import ExperimentResult

__all__ = ["markdown_table", "result_json", "write_result", "write_tofu_splits"]


def result_json(result: ExperimentResult) -> dict:
    """The JSON document: ``curves[method][metric] = {mean, std, median, q25, q75, seeds}``."""
    return {
        "name": result.name,
        "config": result.config,
        "steps": result.steps,
        "curves": result.curves,
        "table": result.table,
        "notes": result.notes,
        "extras": result.extras,
        "failed_runs": result.failed_runs,
    }


def _fmt(value, column: str = "") -> str:
    if value is None:  # crossings that never happen; otherwise not applicable
        return "never" if "_at_0." in column else "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c), c) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_result(result: ExperimentResult, out_dir: str | Path, plot) -> list[Path]:
    """Write the figure(s) drawn by ``plot(result)`` (a Figure, or ``{suffix: Figure}`` written
    as ``NAME{suffix}.png``), the JSON and the Markdown summary."""
    out = ensure_out_dir(out_dir)
    drawn = plot(result)
    figures = drawn if isinstance(drawn, dict) else {"": drawn}
    pngs = []
    for suffix, fig in figures.items():
        try:
            pngs.append(write_figure(fig, out, f"{result.name}{suffix}"))
        finally:
            plt.close(fig)
    js = write_json(out / f"{result.name}.json", result_json(result))
    md = [f"# {result.name}", "", markdown_table(result.table), ""]
    md += [f"- {n}" for n in result.notes]
    names = ", ".join(f"`{p.name}`" for p in pngs)
    md += ["", f"Figures: {names}; data: `{js.name}`.", ""]
    mdp = atomic_write_text(out / f"{result.name}.md", "\n".join(md))
    return [*pngs, js, mdp]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def write_tofu_splits(
    data: AuthorsData, out_dir: str | Path, percents: tuple[int, ...] = (1, 5, 10, 20, 50, 90)
) -> dict:
    """Write TOFU's split files (JSON Lines, as TOFU ships them) for the generated authors.

    ``full``, ``forgetXX`` (last XX% of authors), ``retainYY`` (the rest), ``forgetXX_perturbed``,
    ``retain_perturbed`` (the first 10% of authors, disjoint from every forget split),
    ``real_authors_perturbed``, ``world_facts_perturbed`` and ``idontknow.jsonl``. Returns a
    report: ``{"written": {percent: n_authors}, "skipped": {percent: reason}}``.
    """
    out = ensure_out_dir(out_dir)
    n, per = data.config.n_authors, data.config.qa_per_author
    plain = [{"question": r["question"], "answer": r["answer"]} for r in data.rows]
    _jsonl(out / "full.json", plain)
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
        _jsonl(out / f"forget{pct:02d}.json", plain[cut:])
        _jsonl(out / f"forget{pct:02d}_perturbed.json", data.rows[cut:])
        _jsonl(out / f"retain{100 - pct:02d}.json", plain[:cut])
        written[pct] = count
    _jsonl(out / "retain_perturbed.json", data.rows[: n_keep * per])
    _jsonl(out / "real_authors_perturbed.json", data.real_authors)
    _jsonl(out / "world_facts_perturbed.json", data.world_facts)
    atomic_write_text(out / "idontknow.jsonl", "\n".join(data.idk))
    return {"written": written, "skipped": skipped, "retain_perturbed_authors": n_keep}
