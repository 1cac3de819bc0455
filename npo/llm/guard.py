"""Checks made before any work: outputs never over inputs, data that defeats the run, options.

- :func:`check_outputs`: an output path (``--out``, ``--ref-cache``) that is, contains or lies
  inside an input (model, reference, data, retain results, IDK file, tokenizer) is refused,
  comparing resolved paths (symbolic links and ``..`` followed);
- :func:`check_ref_cache`: the reference cache is a directory (or can become one) and never an
  input's directory; it may lie inside ``--out`` (its files are content-addressed and only ever
  added);
- :func:`split_warnings` / :func:`check_overlap`: a split made of copies, a question with
  conflicting answers, a retain split that repeats the forget rows;
- :func:`check_context`: ``--max-length`` within the model's position limit (``config.json``);
- :func:`check_objective_weights` / :func:`check_simnpo_gamma`: objectives that would train
  towards the forget set or do nothing.

Each refusal is a one-line ``ValueError``; warnings are returned as lines for the caller to
print.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from npo.llm.data import QASplit

__all__ = [
    "SIMNPO_MIN_WEIGHT",
    "check_context",
    "check_objective_weights",
    "check_outputs",
    "check_overlap",
    "check_ref_cache",
    "check_simnpo_gamma",
    "model_context",
    "resolved",
    "split_warnings",
]

# The forget term's largest gradient weight below which SimNPO does nothing: float32's
# resolution relative to 1 (2**-24 = 6.0e-8).
SIMNPO_MIN_WEIGHT = 2.0**-24


def resolved(path: str | os.PathLike) -> Path:
    """``path`` made absolute with symbolic links and ``..`` resolved (it need not exist).

    Returns:
        The resolved path.
    """
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def _is_local(path: Any) -> bool:
    return path is not None and not str(path).startswith("hf:") and str(path) != ""


def _relation(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is"
    if out in inp.parents:
        return "contains"
    if inp in out.parents:
        return "lies inside"
    return None


def check_outputs(
    outputs: Mapping[str, str | os.PathLike | None],
    inputs: Mapping[str, str | os.PathLike | None],
) -> None:
    """Refuse an output that is, contains or lies inside an input (resolved paths).

    Args:
        outputs: ``{option: path}`` of what will be written (``--out``); None entries skipped.
        inputs: ``{option: path}`` of what is read (``--model``, ``--data``, ...); None and
            ``hf:`` entries skipped.

    Raises:
        ValueError: naming both options and both paths.
    """
    for oname, out in outputs.items():
        if not _is_local(out):
            continue
        o = resolved(out)  # type: ignore[arg-type]
        for iname, inp in inputs.items():
            if not _is_local(inp):
                continue
            rel = _relation(o, resolved(inp))  # type: ignore[arg-type]
            if rel is not None:
                also = "" if str(inp) == str(resolved(inp)) else f" ({resolved(inp)})"  # type: ignore[arg-type]
                raise ValueError(
                    f"{oname} {out} {rel} the {iname} {inp}{also}: an output never overwrites "
                    f"an input; choose another {oname}"
                )


def check_ref_cache(cache: str | os.PathLike, inputs: Mapping[str, Any]) -> None:
    """Refuse a reference cache that is a file, or is or lies inside an input.

    The cache directory's own files are ``ref-<key>.safetensors``; written into a model
    directory they would become part of its weights. It may lie inside ``--out``. A cache that
    cannot be written (read-only) is not refused here: entries found in it are used, and a
    failed write is a warning.

    Args:
        cache: the ``--ref-cache`` directory.
        inputs: ``{option: path}`` as in :func:`check_outputs`.

    Raises:
        ValueError: naming the cache and the problem.
    """
    path = Path(cache)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--ref-cache {cache} is a file, not a directory of cached log-probs")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--ref-cache {cache}: {parent} is a file, not a directory")
            break
    c = resolved(cache)
    for iname, inp in inputs.items():
        if not _is_local(inp):
            continue
        i = resolved(inp)
        if c == i or i in c.parents:
            raise ValueError(
                f"--ref-cache {cache} {'is' if c == i else 'lies inside'} the {iname} {inp}: "
                "its files would be mixed with an input's; choose another --ref-cache"
            )


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def split_warnings(split: QASplit) -> list[str]:
    """Warnings about a split's rows: copies of other rows, questions with several answers.

    Args:
        split: the validated rows.

    Returns:
        One line per problem (empty when none), naming the file and the first lines.
    """
    out = []
    seen: dict[tuple[str, str], int] = {}
    answers: dict[str, dict[str, int]] = {}
    copies = 0
    for i, row in enumerate(split.rows):
        pair = (row["question"], row["answer"])
        if pair in seen:
            copies += 1
        else:
            seen[pair] = i
        answers.setdefault(row["question"], {}).setdefault(row["answer"], i)
    if copies:
        out.append(
            f"{split.source}: {copies} of {len(split)} rows repeat another row's question and "
            f"answer ({len(seen)} distinct); each copy weighs the same row again"
        )
    conflicts = [rows for rows in answers.values() if len(rows) > 1]
    if conflicts:
        first = sorted(conflicts[0].values())[:2]
        lines = " and ".join(str(split.lines[i]) for i in first)
        n = len(conflicts)
        what = "1 question appears" if n == 1 else f"{n} questions appear"
        out.append(f"{split.source}: {what} with different answers (first: lines {lines})")
    return out


def check_overlap(forget: QASplit, retain: QASplit) -> list[str]:
    """Refuse a retain split that repeats forget rows; warn about near-duplicate questions.

    A row in both splits (same question and answer) is both pushed away and pulled back: the
    run cannot forget it. Questions equal up to case, punctuation and spacing are counted
    and warned about.

    Args:
        forget: the forget split.
        retain: the retain split.

    Returns:
        Warning lines (near-duplicates).

    Raises:
        ValueError: when some forget row is also a retain row, with the count.
    """
    kept = {(r["question"], r["answer"]) for r in retain.rows}
    same = [i for i, r in enumerate(forget.rows) if (r["question"], r["answer"]) in kept]
    if same:
        if len(same) == len(forget) == len(retain):
            what = f"has the same rows as the forget split {forget.source}"
        else:
            what = (
                f"repeats {len(same)} of the {len(forget)} rows of the forget split "
                f"{forget.source} (same question and answer; first: line {forget.lines[same[0]]})"
            )
        raise ValueError(
            f"the retain split {retain.source} {what}: retaining what is to be forgotten "
            "cancels the unlearning; pass a retain split disjoint from the forget split (--retain)"
        )
    questions = {_norm(r["question"]) for r in retain.rows}
    near = [i for i, r in enumerate(forget.rows) if _norm(r["question"]) in questions]
    if not near:
        return []
    return [
        f"{len(near)} of the {len(forget)} forget questions of {forget.source} also appear "
        f"(up to case and punctuation) in the retain split {retain.source} "
        f"(first: line {forget.lines[near[0]]})"
    ]


_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length")


def model_context(model_dir: str | os.PathLike) -> tuple[int, str] | None:
    """The position limit a model's ``config.json`` declares.

    An adapter directory's limit is its base model's (``base_model_name_or_path``, resolved
    against the adapter directory).

    Args:
        model_dir: a saved model (or adapter) directory.

    Returns:
        ``(positions, "FILE: KEY")``, or None when the config declares none.

    Raises:
        ValueError: the config file is not valid JSON.
    """
    path = Path(model_dir)
    adapter = path / "adapter_config.json"
    if adapter.is_file() and not (path / "config.json").is_file():
        from npo.llm.digests import adapter_base

        path = adapter_base(path)
    config = path / "config.json"
    if not config.is_file():
        return None
    try:
        obj = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{config} is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{config} is not a JSON object")
    text = obj.get("text_config")
    scopes: list[dict[str, Any]] = [obj, text if isinstance(text, dict) else {}]
    for scope in scopes:
        for key in _CONTEXT_KEYS:
            value = scope.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value, f"{config}: {key}"
    return None


def check_context(model_dir: str | os.PathLike, max_length: int, option: str) -> None:
    """Refuse a sequence length beyond the model's positions (learned positions index past).

    Args:
        model_dir: the model directory.
        max_length: the tokens per sequence the run would use.
        option: the option that sets it, for the message (``--max-length``).

    Raises:
        ValueError: ``max_length`` exceeds the declared position limit.
    """
    found = model_context(model_dir)
    if found is not None and max_length > found[0]:
        raise ValueError(
            f"{option} {max_length} exceeds the {found[0]} positions of the model in "
            f"{model_dir} ({found[1]}); pass {option} {found[0]} or less"
        )


def check_objective_weights(objective: Any, *, allow_negative: bool) -> None:
    """Refuse negative term weights unless ``allow_negative``.

    A negative weight flips its term: a negative forget term trains towards the forget set, a
    negative retain term away from the retain set.

    Args:
        objective: an :class:`~npo.objectives.Objective`.
        allow_negative: the user asked for it (``--allow-negative-weights``).

    Raises:
        ValueError: naming the term and its weight.
    """
    if allow_negative:
        return
    for term in objective.terms:
        if term.weight < 0:
            raise ValueError(
                f"term {term.name} has weight {term.weight:g} < 0, which reverses it (a negative "
                "forget term learns the forget set); pass --allow-negative-weights if intended"
            )


def check_simnpo_gamma(objective: Any) -> None:
    """Refuse a SimNPO margin that makes the forget term vanish (a run that changes nothing).

    SimNPO's gradient weight on ``log pi`` never exceeds
    :func:`~npo.losses.simnpo_max_weight` of ``gamma``. Below :data:`SIMNPO_MIN_WEIGHT`
    (float32's resolution relative to 1, reached at ``gamma = -16.6``) the term's loss and
    gradient are zero to working precision at every step.

    Args:
        objective: an :class:`~npo.objectives.Objective`.

    Raises:
        ValueError: naming gamma and the bound.
    """
    from npo.losses import simnpo_max_weight

    for term in objective.terms:
        if term.loss != "simnpo":
            continue
        gamma = float(term.hparams.get("gamma", 0.0))
        bound = simnpo_max_weight(gamma)
        if bound < SIMNPO_MIN_WEIGHT:
            raise ValueError(
                f"gamma {gamma:g} makes SimNPO's forget term vanish: its gradient weight is at "
                f"most {bound:.3g} (npo.losses.simnpo_max_weight), below float32 resolution "
                f"{SIMNPO_MIN_WEIGHT:.2g}, so every step would change nothing; use gamma >= -16"
            )
