"""Per-item values, aggregate metrics and the results file of a TOFU evaluation.

The file (``npo eval --out FILE``, :meth:`EvalResult.to_json`) is one JSON object::

    {"format": "npo-tofu-eval", "version": 1,
     "forget_quality": ..., "model_utility": ..., ... every metric at the top level,
     "notes": [...], "config": {EvalConfig}, "info": {splits, n_items, digests, model, ...},
     "items": {"forget" | "retain" | "real_authors" | "world_facts": {per-item lists}}}

Per-item lists (index i = row i of the split): ``answer_loss`` (average token loss of
``answer``), ``answer_tokens``, ``answer_logp`` (summed log-likelihood), ``correct_loss`` (the
paraphrase's on forget/retain, ``answer``'s on the others), ``perturbed_loss`` (one list per
item), ``truth_ratio`` (geometric, ``M(P_pert)/P_correct``), ``truth_ratio_arithmetic``,
``prob`` (normalized on real authors / world facts), ``kl_sum`` (summed ``KL(ref || model)``
over the answer positions; forget/retain with a reference), and with generation ``generation``,
``rouge`` (ROUGE-L recall), ``degenerate`` (repetition collapse). With a holdout split the
forget items also hold the membership-inference scores ``mia_<attack>`` and ``items.holdout``
those of the holdout items (:mod:`npo.llm.eval.membership`); ``info.mia`` records the AUC's
orientation. Such a file serves as the ``retain_results`` of another run: forget quality needs
``items.forget.truth_ratio``, PrivLeak the retain model's ``mia_auc_<attack>``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from npo.llm.data import QASplit
from npo.llm.eval import metrics as tm
from npo.llm.eval.config import EvalConfig
from npo.llm.eval.membership import membership_metrics
from npo.llm.eval.scoring import Scores
from npo.llm.eval.sets import SETS, UTILITY_SETS, EvalData
from npo.results import to_jsonable

__all__ = [
    "FORMAT",
    "VERSION",
    "EvalResult",
    "check_retain_results",
    "load_eval_results",
    "set_metrics",
    "summary_lines",
    "summary_metrics",
]

FORMAT = "npo-tofu-eval"
VERSION = 1
_RESERVED = {"format", "version", "notes", "config", "info", "items"}


@dataclass(frozen=True)
class EvalResult:
    """The results of one evaluation (the results file, in memory).

    ``metrics``: flat aggregates (None where not computed, with the reason in ``notes``);
    ``items``: per-set per-item lists; ``config``: the
    :class:`~npo.llm.eval.config.EvalConfig`; ``info``: splits, item counts, digests, model;
    ``source``: where it was read from.
    """

    metrics: dict[str, float | None]
    items: dict[str, dict[str, Any]]
    config: EvalConfig
    notes: tuple[str, ...]
    info: dict[str, Any]
    source: str = "<in memory>"

    def to_json(self) -> dict[str, Any]:
        """The results file's object (see the module docstring).

        Returns:
            A JSON-able dict (NaN/inf as None).
        """
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        out.update(self.metrics)
        out.update(notes=list(self.notes), config=self.config, info=self.info, items=self.items)
        return to_jsonable(out)


def _fail(source: str, msg: str) -> ValueError:
    return ValueError(f"results {source}: {msg}")


def _read(path: Path) -> Any:
    # The parsed JSON of a results file, or a one-line ValueError naming it.
    if path.is_dir():
        raise ValueError(
            f"results file {path} is a directory; pass the JSON file `npo eval --out` wrote"
        )
    if not path.is_file():
        raise ValueError(
            f"results file {path} not found (write one with `npo eval ... --out FILE`)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"results file {path} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise ValueError(f"results file {path} cannot be read ({exc.strerror})") from None


def load_eval_results(results: str | Path | Mapping[str, Any]) -> EvalResult:
    """An :class:`EvalResult` from a results file (path) or its ``to_json()`` dict, validated.

    Returns:
        The result, ``source`` the path (or ``"<dict>"``).

    Raises:
        ValueError: naming the file and the missing or malformed field.
    """
    if isinstance(results, Mapping):
        obj, source = results, "<dict>"
    else:
        obj, source = _read(Path(results)), str(results)
    if not isinstance(obj, Mapping) or obj.get("format") != FORMAT:
        raise _fail(source, f'not an `npo eval` results file (no "format": "{FORMAT}")')
    if obj.get("version") != VERSION:
        raise _fail(source, f"version {obj.get('version')!r}, this npo reads version {VERSION}")
    for key in ("config", "info", "items"):
        if not isinstance(obj.get(key), Mapping):
            raise _fail(source, f"missing or malformed field {key!r}")
    known = {f.name for f in fields(EvalConfig)}
    try:
        config = EvalConfig(**{k: v for k, v in obj["config"].items() if k in known})
    except (TypeError, ValueError) as exc:
        raise _fail(source, f"bad 'config' ({exc})") from None
    info = dict(obj["info"])
    for key in ("splits", "n_items", "digests", "model"):
        if not isinstance(info.get(key), Mapping):
            raise _fail(source, f"missing or malformed field 'info.{key}'")
    forget = obj["items"].get("forget")
    ratios = forget.get("truth_ratio") if isinstance(forget, Mapping) else None
    if not isinstance(ratios, list) or not ratios:
        raise _fail(
            source, "missing per-item values 'items.forget.truth_ratio' (needed for forget quality)"
        )
    for i, r in enumerate(ratios):
        if not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
            raise _fail(
                source, f"items.forget.truth_ratio[{i}] is {r!r}, not a finite positive number"
            )
    metrics = {k: v for k, v in obj.items() if k not in _RESERVED}
    notes = tuple(str(n) for n in obj.get("notes", ()))
    items = {k: dict(v) for k, v in obj["items"].items() if isinstance(v, Mapping)}
    return EvalResult(metrics, items, config, notes, info, source)


def check_retain_results(
    retain: EvalResult, data: EvalData, model: Mapping[str, Any] | None
) -> None:
    """Check that ``retain`` can serve as the retain reference of an evaluation on ``data``.

    Raises:
        ValueError: unless ``retain`` was computed on the same forget items as ``data`` and, if
            ``model`` info is given, on a model of the same family.
    """
    src, forget = retain.source, data.sets["forget"]
    split = retain.info["splits"].get("forget")
    if split != forget.name:
        raise _fail(
            src,
            f"retain-model results on forget split {split!r}; this evaluation uses {forget.name!r}",
        )
    n = len(retain.items["forget"]["truth_ratio"])
    if n != len(forget):
        raise _fail(
            src,
            f"{n} per-item forget truth ratios, but this evaluation has {len(forget)} forget items "
            f"(retain run: max_items={retain.config.max_items}, legacy={retain.config.legacy}); "
            "evaluate both models with the same --max-items / --legacy",
        )
    if retain.info["digests"].get("forget") != data.digests["forget"]:
        raise _fail(
            src,
            f"the forget items differ from those of {data.source} (same split name and count, "
            "different text)",
        )
    theirs_holdout = retain.info["digests"].get("holdout")
    mine_holdout = data.digests.get("holdout")
    if theirs_holdout and mine_holdout and theirs_holdout != mine_holdout:
        raise _fail(
            src,
            "its holdout items differ from this evaluation's (PrivLeak compares AUCs on the "
            "same forget and holdout items); evaluate both models on the same data",
        )
    if model is not None:
        theirs = retain.info["model"]
        a = (theirs.get("model_type"), theirs.get("vocab_size"))
        b = (model.get("model_type"), model.get("vocab_size"))
        if a != b:
            raise _fail(
                src,
                f"from a different model family ({a[0]}, vocabulary {a[1]}) than this model "
                f"({b[0]}, vocabulary {b[1]})",
            )


def _floats(x: np.ndarray) -> list[float]:
    return [float(v) for v in x]


def set_metrics(
    key: str,
    split: QASplit,
    scores: Scores,
    groups: list[list[int]],
    roles: list[str],
    generated: tuple[list[list[int]], list[str]] | None,
    config: EvalConfig,
) -> dict[str, Any]:
    """Per-item values of one set from its scored sequences and generations.

    ``roles[j]``: ``answer``, ``correct`` or ``perturbed``; ``generated``: ``(token ids,
    texts)`` or None.

    Returns:
        ``{per-item key: list}`` (see the module docstring).
    """
    spec = SETS[key]
    nll = scores.nll
    pick = lambda g, role: [j for j in g if roles[j] == role]  # noqa: E731
    ans = np.array([pick(g, "answer")[0] for g in groups])
    correct = np.array([(pick(g, "correct") or pick(g, "answer"))[0] for g in groups])
    pert = [nll[pick(g, "perturbed")] for g in groups]
    item: dict[str, Any] = {
        "answer_loss": _floats(nll[ans]),
        "answer_tokens": [int(v) for v in scores.n_tokens[ans]],
        "answer_logp": _floats(scores.logp[ans]),
        "correct_loss": _floats(nll[correct]),
        "perturbed_loss": [_floats(p) for p in pert],
    }
    for name, mean in (("truth_ratio", "geometric"), ("truth_ratio_arithmetic", "arithmetic")):
        item[name] = [
            float(tm.truth_ratio([nll[c]], [p], mean=mean)[0]) for c, p in zip(correct, pert)
        ]
    if spec.normalized:
        item["prob"] = [
            float(tm.normalized_probability([nll[a]], [p])[0]) for a, p in zip(ans, pert)
        ]
    else:
        item["prob"] = _floats(tm.probability(nll[ans]))
    kl = scores.kl[ans]
    item["kl_sum"] = None if np.isnan(kl).all() else _floats(kl)
    if generated is not None:
        ids, texts = generated
        item["generation"] = list(texts)
        item["rouge"] = _floats(tm.rouge_l_recall(texts, split.column("answer")))
        item["degenerate"] = [
            tm.is_degenerate(
                t, min_copies=config.gibberish_copies, min_tokens=config.gibberish_tokens
            )
            for t in ids
        ]
    return item


def summary_metrics(
    per_set: dict[str, dict[str, Any]],
    config: EvalConfig,
    retain: EvalResult | None,
    *,
    has_reference: bool,
) -> tuple[dict[str, float | None], list[str]]:
    """The flat aggregate metrics of the per-set values, and the notes explaining every None.

    Returns:
        ``(metrics, notes)``.
    """
    m: dict[str, float | None] = {}
    notes: list[str] = []
    ratio_key = "truth_ratio_arithmetic" if config.truth_mean == "arithmetic" else "truth_ratio"
    for key in SETS:
        item = per_set[key]
        m[f"{key}_prob"] = float(np.mean(item["prob"]))
        m[f"{key}_truth_ratio"] = tm.truth_ratio_score(item[ratio_key], forget=SETS[key].forget)
        m[f"{key}_rouge"] = float(np.mean(item["rouge"])) if "rouge" in item else None
        m[f"{key}_gibberish_rate"] = (
            float(np.mean(item["degenerate"])) if "degenerate" in item else None
        )
    for key in ("forget", "retain"):
        kl, tokens = per_set[key]["kl_sum"], per_set[key]["answer_tokens"]
        m[f"{key}_kl"] = float(np.sum(kl) / np.sum(tokens)) if kl is not None else None
    m["forget_logp"] = float(np.mean(per_set["forget"]["answer_logp"]))
    flags = [d for item in per_set.values() for d in item.get("degenerate", ())]
    m["gibberish_rate"] = float(np.mean(flags)) if flags else None
    m["forget_quality"] = m["forget_ks_statistic"] = None
    if retain is not None:
        p, d = tm.forget_quality(
            per_set["forget"]["truth_ratio"], retain.items["forget"]["truth_ratio"]
        )
        m["forget_quality"], m["forget_ks_statistic"] = p, d
    else:
        notes.append(
            "forget_quality is null: no retain-model results were given (pass the file "
            "`npo eval` wrote for the retain model: --retain-results FILE)"
        )
    mia, mia_notes = membership_metrics(per_set, config, retain)
    m.update(mia)
    notes += mia_notes
    parts = ["prob", "truth_ratio"] + (["rouge"] if config.generate else [])
    components = [m[f"{k}_{p}"] for k in UTILITY_SETS for p in parts]
    m["model_utility"] = tm.harmonic_mean(components)  # type: ignore[arg-type]
    m["model_utility_components"] = float(len(components))
    if not config.generate:
        notes.append(
            "generation off: ROUGE-L and gibberish_rate are null; model_utility is the "
            "harmonic mean of the 6 probability and truth-ratio components "
            "(model_utility_components = 6), not TOFU's 9"
        )
    if not has_reference:
        notes.append(
            "forget_kl and retain_kl are null: no reference model was given (e.g. the "
            "model before unlearning)"
        )
    cut = {k: item["n_truncated"] for k, item in per_set.items() if item.get("n_truncated")}
    if cut:
        notes.append(
            f"sequences cut at max_length {config.length_limit} (answer tokens lost): {cut}"
        )
    if config.legacy:
        notes.append(
            "legacy: truth-ratio aggregates use the arithmetic mean over perturbed "
            "answers (TOFU utils.get_model_utility; forget quality keeps the geometric "
            f"mean), first {config.items_limit} items, sequences cut at "
            f"{config.length_limit} tokens, generations capped at "
            f"{config.length_limit} tokens including the padded prompt"
        )
    return m, notes


def summary_lines(result: EvalResult) -> list[str]:
    """A short human-readable table of the headline metrics, then the notes.

    Returns:
        The lines, without newlines.
    """
    m = result.metrics
    fmt = lambda v: "null" if v is None else f"{v:.4g}"  # noqa: E731
    lines = [
        f"forget quality {fmt(m.get('forget_quality'))}   "
        f"model utility {fmt(m.get('model_utility'))}   "
        f"forget truth ratio {fmt(m.get('forget_truth_ratio'))}",
        f"{'set':<13}{'prob':>9}{'rouge-L':>9}{'truth':>9}{'gibberish':>11}",
    ]
    for key in SETS:
        vals = [m.get(f"{key}_{p}") for p in ("prob", "rouge", "truth_ratio", "gibberish_rate")]
        lines.append(
            f"{key:<13}" + "".join(f"{fmt(v):>9}" for v in vals[:3]) + f"{fmt(vals[3]):>11}"
        )
    lines.append(
        f"forget_kl {fmt(m.get('forget_kl'))}   retain_kl {fmt(m.get('retain_kl'))}   "
        f"gibberish_rate {fmt(m.get('gibberish_rate'))}   "
        f"forget_logp {fmt(m.get('forget_logp'))}"
    )
    attack = result.config.mia_attack
    lines.append(
        f"membership inference ({attack}): AUC {fmt(m.get(f'mia_auc_{attack}'))} (0: forget set "
        f"looks trained on, 0.5: never seen)   privleak {fmt(m.get('privleak'))}%"
    )
    return lines + [f"note: {n}" for n in result.notes]
