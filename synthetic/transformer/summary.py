"""The notes and the headline of the small-transformer result."""

from __future__ import annotations

from synthetic.transformer.task import ResolvedTransformerConfig

__all__ = ["result_headline", "result_notes"]


def result_notes(
    c: ResolvedTransformerConfig, report: dict, models: dict, target_metrics: dict, drift: dict
) -> list[str]:
    """The notes of the result: sizes, the unlearning recipe, the target, the divergence study.

    Args:
        c: the resolved options.
        report: the split report of :func:`~synthetic.transformer.task.prepare_data`.
        models: from :func:`~synthetic.transformer.task.train_models`.
        target_metrics: the target's metrics per forget split.
        drift: the divergence study (curves and verdicts).

    Returns:
        One line per note.
    """
    notes = [
        f"{c.n_authors} authors x {c.qa_per_author} questions; tiny Llama with "
        f"{models['params']} parameters, memorization accuracy {models['memorization']:.4f} "
        f"(answer tokens predicted exactly, teacher forcing) after {c.finetune_epochs} epochs.",
        f"Unlearning: {c.optimizer}, lr {c.lr}, constant, no weight decay, {c.steps} steps of "
        f"{c.batch_size} forget sequences, beta {c.beta}, retain weight {c.retain_weight} "
        f"({c.large_retain_weight} at forget >= 50%); evaluation every {c.eval_every} steps "
        "without generation (model utility then from probability and truth ratio only), with "
        "generation at the end (final_*).",
    ]
    if report.get("skipped"):
        notes.append(
            "Skipped splits: " + "; ".join(f"{k}%: {v}" for k, v in report["skipped"].items())
        )
    for split, m in target_metrics.items():
        shown = ", ".join(
            f"{k.replace('_', ' ')} {m[k]:.4g}"
            for k in ("forget_quality", "model_utility", "forget_truth_ratio", "gibberish_rate")
            if m.get(k) is not None
        )
        notes.append(f"Target on {split}: {shown}.")
    notes.append(
        "best_*: the highest forget quality over the evaluation steps and the utility there "
        "(no generation); final_*: the model at the end of unlearning, with generation (TOFU's "
        "protocol). Forget quality is a KS p-value over few items, so it moves in steps."
    )
    verdicts = ", ".join(f"{k}: {v['verdict']}" for k, v in drift["verdicts"].items())
    notes.append(f"Divergence study (no clipping, {c.drift_steps} steps): {verdicts}.")
    return notes


def result_headline(rows: list[dict], drift: dict) -> str:
    """The one-line summary ``npo reproduce`` prints.

    Args:
        rows: the result's table.
        drift: the divergence study.

    Returns:
        NPO+RT against GA+RT per split, and the SGD drift verdicts.
    """
    by = {(r["split"], r["method"]): r for r in rows}
    parts = []
    for split in dict.fromkeys(r["split"] for r in rows):
        npo, ga = by.get((split, "npo+rt")), by.get((split, "ga+rt"))
        if npo and ga:
            parts.append(
                f"{split} final FQ/MU "
                f"npo+rt {npo['final_forget_quality']:.2g}/{npo['final_model_utility']:.2f} vs "
                f"ga+rt {ga['final_forget_quality']:.2g}/{ga['final_model_utility']:.2f}"
            )
    sgd = {k: v["verdict"] for k, v in drift["verdicts"].items() if k.endswith("/sgd")}
    drift_txt = ", ".join(f"{k.split('/')[0]} {v}" for k, v in sgd.items())
    return "; ".join([*parts, f"SGD drift {drift_txt}"])
