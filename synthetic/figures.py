"""The synthetic package's writer: ``DIR/NAME.png``, ``DIR/NAME.json`` (config, steps, curves,
table, notes) and ``DIR/NAME.md`` (a table), through :mod:`npo.results`."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from npo.results import atomic_write_text, ensure_out_dir, write_figure, write_json
from synthetic.experiments import ExperimentResult

__all__ = ["markdown_table", "result_json", "write_result"]


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
    }


def _fmt(value) -> str:
    if value is None:
        return "never"
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
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_result(result: ExperimentResult, out_dir: str | Path, plot) -> list[Path]:
    """Write the figure drawn by ``plot(result)``, the JSON and the Markdown summary."""
    out = ensure_out_dir(out_dir)
    fig = plot(result)
    try:
        png = write_figure(fig, out, result.name)
    finally:
        plt.close(fig)
    js = write_json(out / f"{result.name}.json", result_json(result))
    md = [f"# {result.name}", "", markdown_table(result.table), ""]
    md += [f"- {n}" for n in result.notes]
    md += ["", f"Figure: `{png.name}`; data: `{js.name}`.", ""]
    mdp = atomic_write_text(out / f"{result.name}.md", "\n".join(md))
    return [png, js, mdp]
