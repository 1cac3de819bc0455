"""The model side of evaluation: batched answer scoring and batched greedy generation.

- :func:`score_groups`: the answer-token log-likelihood of many ``prompt + answer + EOS``
  sequences (through :func:`npo.logprobs.sequence_logprobs`), one padded forward per batch of
  whole *groups* (an item's answer, paraphrase and perturbed answers travel together), with an
  optional per-token KL to a reference model on chosen rows (:func:`npo.logprobs.token_kl`)
  and, on other chosen rows, the per-token statistics of membership inference from the same
  logits (:func:`npo.logprobs.token_stats`) and a calibration model's log-likelihood.
- :func:`generate_greedy`: greedy decoding of many prompts, left-padded batches, KV cache.

Both put the model in eval mode under ``torch.no_grad()`` and restore its mode afterwards
(:func:`~npo.llm.forward.eval_mode`); the forward is :func:`~npo.llm.forward.forward_logits`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from npo.llm.encoding import Encoded, collate
from npo.llm.forward import bf16_autocast, eval_mode, forward_logits
from npo.logprobs import next_token_mask, sequence_logprobs, token_kl, token_stats

__all__ = ["Scores", "generate_greedy", "score_groups"]


@dataclass(frozen=True)
class Scores:
    """Per-sequence scores of an :class:`~npo.llm.encoding.Encoded`, each (n_seq,).

    ``logp`` the summed answer-token log-likelihood ``log pi(y|x)``, ``n_tokens`` its token
    count, ``kl`` the summed per-position ``KL(pi_ref || pi_theta)`` over the answer positions
    (NaN where not requested or without a reference). ``tokens[i]`` (rows asked for with
    ``token_rows``): a ``(3, n_tokens[i])`` float64 array of the answer tokens' log-probs and
    the mean and standard deviation of ``log p`` at their positions
    (:func:`npo.logprobs.token_stats`); ``calibration_logp`` the calibration model's summed
    log-likelihood of those rows (NaN elsewhere, or None without a calibration model).
    """

    logp: np.ndarray
    n_tokens: np.ndarray
    kl: np.ndarray
    tokens: dict[int, np.ndarray] = field(default_factory=dict)
    calibration_logp: np.ndarray | None = None

    @property
    def nll(self) -> np.ndarray:
        """Average token loss ``-logp / n_tokens``."""
        return -self.logp / self.n_tokens


def _device_of(model: Any) -> torch.device:
    return next(model.parameters()).device


def _batches(
    groups: Sequence[Sequence[int]], lengths: Sequence[int], batch_size: int
) -> list[list[int]]:
    # Group indices packed into batches of at most `batch_size` sequences (a group larger than
    # that is a batch of its own), longest groups first so padding stays small.
    order = sorted(range(len(groups)), key=lambda g: -max(lengths[i] for i in groups[g]))
    out: list[list[int]] = []
    size = 0
    for g in order:
        if out and size + len(groups[g]) <= batch_size:
            out[-1].append(g)
            size += len(groups[g])
        else:
            out.append([g])
            size = len(groups[g])
    return out


def score_groups(
    model: Any,
    encoded: Encoded,
    groups: Sequence[Sequence[int]],
    *,
    batch_size: int,
    pad_id: int,
    autocast: bool = False,
    reference: Any = None,
    kl_rows: Sequence[bool] | None = None,
    token_rows: Sequence[bool] | None = None,
    calibration: Any = None,
    progress: Any = None,
) -> Scores:
    """Score every sequence of ``encoded``, whole groups per padded batch.

    ``groups`` partitions its indices into items whose sequences share a batch.
    ``kl_rows[i]``: also compute the KL to ``reference`` for sequence ``i`` (the reference runs
    on those rows only). ``token_rows[i]``: also keep sequence ``i``'s per-token statistics
    (from the same logits) and, with a ``calibration`` model, its log-likelihood under that
    model (which runs on those rows only). ``progress``: a tqdm bar advanced by the number of
    groups scored.

    Per batch: ``logits = model(input_ids, attention_mask).logits`` (B, T, V) on right-padded
    sequences (:func:`~npo.llm.encoding.collate`), ``sequence_logprobs(logits, labels)`` -> (B,);
    KL: ``token_kl(logits[r], ref_logits, mask[r])`` with ``mask =
    next_token_mask(labels)`` (the positions that predict an answer token,
    :func:`~npo.logprobs.next_token_mask`).

    Returns:
        The :class:`Scores`.

    Raises:
        ValueError: a scored sequence has no answer token.
    """
    n = len(encoded)
    logp = np.full(n, np.nan)
    n_tok = np.zeros(n, dtype=np.int64)
    kl = np.full(n, np.nan)
    lengths = [len(ids) for ids in encoded.input_ids]
    want_kl = (
        np.zeros(n, dtype=bool)
        if kl_rows is None or reference is None
        else np.asarray(kl_rows, dtype=bool)
    )
    want_tok = np.zeros(n, dtype=bool) if token_rows is None else np.asarray(token_rows, bool)
    tokens: dict[int, np.ndarray] = {}
    cal = None if calibration is None else np.full(n, np.nan)
    device = _device_of(model)
    with eval_mode(model, reference, calibration):
        for batch_groups in _batches(groups, lengths, batch_size):
            idx = [i for g in batch_groups for i in groups[g]]
            batch = collate([encoded.item(i) for i in idx], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = forward_logits(model, batch, autocast=autocast)  # (B, T, V)
            lp, nt = sequence_logprobs(logits, batch["labels"])  # (B,), (B,)
            logp[idx] = lp.double().cpu().numpy()
            n_tok[idx] = nt.cpu().numpy()
            rows = [b for b, i in enumerate(idx) if want_kl[i]]
            if rows:
                kl[[idx[b] for b in rows]] = _kl(reference, logits, batch, rows, autocast)
            rows = [b for b, i in enumerate(idx) if want_tok[i]]
            if rows:
                tokens.update(_token_arrays(logits, batch, rows, idx))
                if cal is not None:
                    cal[[idx[b] for b in rows]] = _calibration(calibration, batch, rows, autocast)
            if progress is not None:
                progress.update(len(batch_groups))
    scored = [i for g in groups for i in g]
    if (n_tok[scored] == 0).any():
        bad = scored[int(np.flatnonzero(n_tok[scored] == 0)[0])]
        raise ValueError(f"{encoded.name}: sequence {bad} has no answer token to score")
    return Scores(logp=logp, n_tokens=n_tok, kl=kl, tokens=tokens, calibration_logp=cal)


def _token_arrays(
    logits: torch.Tensor, batch: dict[str, torch.Tensor], rows: list[int], idx: list[int]
) -> dict[int, np.ndarray]:
    # Per sequence idx[b] of `rows`: (3, n_answer) log-prob, mean and std of log p.
    sel = torch.as_tensor(rows, device=logits.device)
    st = token_stats(logits.index_select(0, sel), batch["labels"].index_select(0, sel))
    stacked = torch.stack([st.logp, st.mean, st.std]).double().cpu().numpy()  # (3, R, T)
    mask = st.mask.cpu().numpy()
    return {idx[b]: stacked[:, r, mask[r]] for r, b in enumerate(rows)}


def _calibration(
    model: Any, batch: dict[str, torch.Tensor], rows: list[int], autocast: bool
) -> np.ndarray:
    # The calibration model's summed answer log-likelihood of `rows` of the batch.
    device = _device_of(model)
    sel = torch.as_tensor(rows, device=batch["input_ids"].device)
    sub = {k: v.index_select(0, sel).to(device) for k, v in batch.items()}
    lp, _ = sequence_logprobs(forward_logits(model, sub, autocast=autocast), sub["labels"])
    return lp.double().cpu().numpy()


def _kl(
    reference: Any,
    logits: torch.Tensor,
    batch: dict[str, torch.Tensor],
    rows: list[int],
    autocast: bool,
) -> np.ndarray:
    # Summed KL(pi_ref || pi_theta) over the answer positions of `rows` of the batch.
    sel = torch.as_tensor(rows, device=logits.device)
    mask = next_token_mask(batch["labels"].index_select(0, sel))  # (R, T)
    ref_device = _device_of(reference)
    ref_batch = {
        k: batch[k].index_select(0, sel).to(ref_device) for k in ("input_ids", "attention_mask")
    }
    ref_logits = forward_logits(reference, ref_batch, autocast=autocast)  # (R, T, V)
    if ref_logits.shape[-1] != logits.shape[-1]:
        raise ValueError(
            f"the reference model has {ref_logits.shape[-1]} output tokens, the model "
            f"{logits.shape[-1]}: KL needs the same vocabulary"
        )
    out = token_kl(logits.index_select(0, sel), ref_logits.to(logits.device), mask)  # (R,)
    return out.double().cpu().numpy()


def generate_greedy(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    batch_size: int,
    max_new_tokens: int,
    pad_id: int,
    eos_id: int,
    autocast: bool = False,
    max_total: int | None = None,
    sort: bool = True,
    progress: Any = None,
) -> list[list[int]]:
    """Greedy continuations of ``prompts`` (token ids), without the EOS and what follows.

    Batches of ``batch_size`` prompts, left-padded with ``pad_id`` (attention mask 0 there, so
    positions and outputs are those of the unpadded prompt up to float rounding), decoded
    with the KV cache. ``sort``: batch prompts of similar length together (less padding);
    ``max_total``: cap prompt width plus new tokens per batch (TOFU's ``max_length``, which
    counts the padded prompt). Sampling, repetition penalties and the model's own generation
    defaults are all off: plain argmax decoding.

    Returns:
        The generated token ids of each prompt, in ``prompts``' order.
    """
    from transformers import GenerationConfig

    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    order = (
        sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        if sort
        else list(range(len(prompts)))
    )
    out: list[list[int]] = [[] for _ in prompts]
    device = _device_of(model)
    with eval_mode(model):
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            width = max(len(prompts[i]) for i in idx)
            new = max_new_tokens if max_total is None else min(max_new_tokens, max_total - width)
            if new < 1:
                if progress is not None:
                    progress.update(len(idx))
                continue
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for b, i in enumerate(idx):
                p = torch.as_tensor(prompts[i], dtype=torch.long)
                ids[b, width - len(p) :] = p
                mask[b, width - len(p) :] = 1
            config = GenerationConfig(
                max_new_tokens=new,
                do_sample=False,
                num_beams=1,
                temperature=1.0,
                top_p=1.0,
                repetition_penalty=1.0,
                no_repeat_ngram_size=0,
                use_cache=True,
                pad_token_id=pad_id,
                eos_token_id=eos_id,
            )
            with bf16_autocast(device.type, autocast):
                gen = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    generation_config=config,
                )
            for b, i in enumerate(idx):
                cont = gen[b, width:].tolist()
                out[i] = cont[: cont.index(eos_id)] if eos_id in cont else cont
            if progress is not None:
                progress.update(len(idx))
    return out
