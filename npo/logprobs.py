"""Logits become log-probabilities here, and nowhere else.

- :func:`class_logprobs`: classifiers (binary logit or K-class logits), no shift.
- :func:`sequence_logprobs`: causal LMs; shifts labels, masks ``ignore_index``, sums the
  per-token log-likelihoods per sequence and returns the token counts.
- :func:`next_token_mask`: the positions whose next label is scored (the same shift), e.g. the
  positions of a per-token KL over the answer.
- :func:`token_kl`: masked per-sequence KL between two causal-LM output distributions.
- :func:`class_kl`: the same for classifiers.
- :func:`token_stats`: per answer token, the label's log-prob and the mean and standard
  deviation of ``log p`` under the next-token distribution (membership-inference scores).
- :func:`answer_targets` and the ``packed_*`` functions: the same quantities from logits
  computed at the scored positions only (the LM head applied where an answer token is
  predicted).

Memory: an LM's logits are ``(B, T, V)`` with ``V`` in the tens of thousands. A naive
``log_softmax(logits.float()).gather(...)`` materializes (and autograd saves) a full float32
``(B, T, V)`` tensor, and its backward another. The functions here are custom
``torch.autograd.Function`` s that save only the logits and a per-row float32 logsumexp, process
rows in chunks (each chunk upcast to float32, or float64 for float64 logits), and recompute
each chunk's softmax in backward. The only full-size tensor they allocate is the logits'
gradient, in the logits' dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = [
    "TokenStats",
    "answer_targets",
    "class_kl",
    "class_logprobs",
    "greedy_matches",
    "next_token_mask",
    "packed_greedy_matches",
    "packed_sequence_logprobs",
    "packed_token_kl",
    "sequence_logprobs",
    "token_kl",
    "token_logprobs",
    "token_stats",
]

# Elements per chunk: 8 MiB of float32 on the CPU (keeps glibc from hoarding freed blocks),
# 64 MiB on accelerators (fewer kernel launches).
_CHUNK_ELEMENTS = {"cpu": 1 << 21}
_CHUNK_ELEMENTS_ACCEL = 1 << 24


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _rows_per_chunk(logits: Tensor, chunk_rows: int | None) -> int:
    if chunk_rows is not None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        return chunk_rows
    elements = _CHUNK_ELEMENTS.get(logits.device.type, _CHUNK_ELEMENTS_ACCEL)
    return max(1, elements // max(logits.shape[-1], 1))


class _TokenLogProbs(torch.autograd.Function):
    """Per-row ``log_softmax(logits)[target]`` for the rows ``rows`` of flat ``(N, V)`` logits."""

    @staticmethod
    def forward(ctx, flat: Tensor, rows: Tensor, targets: Tensor, chunk: int) -> Tensor:
        cdt = _compute_dtype(flat.dtype)
        out = torch.empty(rows.shape[0], dtype=cdt, device=flat.device)  # (M,)
        lse = torch.empty_like(out)  # (M,)
        for s in range(0, rows.shape[0], chunk):
            r = rows[s : s + chunk]
            block = flat.index_select(0, r).to(cdt)  # (m, V)
            lse[s : s + chunk] = torch.logsumexp(block, dim=-1)
            picked = block.gather(1, targets[s : s + chunk, None]).squeeze(1)
            out[s : s + chunk] = picked - lse[s : s + chunk]
        ctx.save_for_backward(flat, rows, targets, lse)
        ctx.chunk = chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        flat, rows, targets, lse = ctx.saved_tensors
        grad = torch.zeros_like(flat)  # (N, V), the logits' own gradient
        cdt = lse.dtype
        for s in range(0, rows.shape[0], ctx.chunk):
            r = rows[s : s + ctx.chunk]
            g = grad_out[s : s + ctx.chunk].to(cdt)[:, None]  # (m, 1)
            block = flat.index_select(0, r).to(cdt)  # a fresh (m, V) copy: update in place
            block.sub_(lse[s : s + ctx.chunk, None]).exp_().mul_(-g)  # -g * softmax
            block.scatter_add_(1, targets[s : s + ctx.chunk, None], g)
            grad.index_copy_(0, r, block.to(flat.dtype))
        return grad, None, None, None


def _check_labels(logits: Tensor, labels: Tensor, ignore_index: int) -> None:
    if logits.dim() < 2 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not match: "
            "expected logits (..., V) and labels (...)"
        )
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be integer, got {labels.dtype}")
    vocab = logits.shape[-1]
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= vocab))
    if bool(bad.any()):
        value = int(labels[bad][0])
        raise ValueError(
            f"label {value} is outside the vocabulary of size {vocab} (logits "
            f"{tuple(logits.shape)}); tokenizer and model vocabularies probably differ"
        )


def token_logprobs(
    logits: Tensor, labels: Tensor, *, ignore_index: int = -100, chunk_rows: int | None = None
) -> Tensor:
    """Log-likelihood of each label under ``logits``, with **no shift**, 0 where ignored.

    ``out[..., t] = log_softmax(logits[..., t, :])[labels[..., t]]``, chunked over rows as the
    module docstring describes (no full float32 ``(..., V)`` log-softmax).

    Args:
        logits: ``(..., V)`` logits of any float dtype.
        labels: ``(...)`` integer labels; ``ignore_index`` marks positions without a target.
        ignore_index: the label value that is ignored.
        chunk_rows: rows per chunk (None: about 8 MiB of float32 on the CPU, 64 MiB elsewhere).

    Returns:
        ``(...)`` log-probs in float32 (float64 for float64 logits), with autograd.

    Raises:
        ValueError: if shapes do not match, labels are not integers or lie outside the vocabulary.
    """
    _check_labels(logits, labels, ignore_index)
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)  # (N, V); a view for contiguous logits
    flat_labels = labels.reshape(-1)
    rows = torch.nonzero(flat_labels != ignore_index).flatten()  # (M,)
    targets = flat_labels.index_select(0, rows).long()
    picked = _TokenLogProbs.apply(flat, rows, targets, _rows_per_chunk(logits, chunk_rows))
    out = torch.zeros(flat_labels.shape[0], dtype=picked.dtype, device=logits.device)
    return out.index_put((rows,), picked).reshape(labels.shape)


def _shift(labels: Tensor, ignore_index: int) -> Tensor:
    # Labels for position t become those of t+1; the last position is ignored. Shifting the
    # labels instead of slicing the logits keeps the logits a contiguous view.
    pad = torch.full_like(labels[..., :1], ignore_index)
    return torch.cat([labels[..., 1:], pad], dim=-1)


def next_token_mask(labels: Tensor, *, ignore_index: int = -100) -> Tensor:
    """The positions whose *next* label is scored.

    ``mask[b, t] = labels[b, t + 1] != ignore_index``, and ``False`` at the last position: the
    positions whose logits predict a label that :func:`sequence_logprobs` scores (the same
    shift), so ``next_token_mask(labels).sum(-1)`` equals its ``n_tokens``. With answer-only
    labels these are the positions of a per-token KL over the answer (:func:`token_kl`).

    Args:
        labels: (B, T) integer labels, ``ignore_index`` on prompt and padding.
        ignore_index: the label value that is not scored.

    Returns:
        (B, T) bool mask.
    """
    return _shift(labels, ignore_index) != ignore_index


def greedy_matches(
    logits: Tensor, labels: Tensor, *, ignore_index: int = -100
) -> tuple[Tensor, Tensor]:
    """Per sequence, how many scored labels are the logits' argmax (teacher forcing).

    ``hits[b] = sum_t [argmax_v logits[b, t, v] == labels[b, t+1]]`` over the positions of
    :func:`next_token_mask` (the shift of :func:`sequence_logprobs`). ``hits == n_tokens``
    means greedy decoding from the prompt reproduces the labelled answer exactly (each greedy
    token is the next label, so the teacher-forced prefix is the greedy one); ties in the
    argmax are broken as ``torch.argmax`` breaks them.

    Args:
        logits: (B, T, V) logits of any float dtype (no copy in float32 is made).
        labels: (B, T) labels, ``ignore_index`` on prompt and padding.
        ignore_index: the label value that is not scored.

    Returns:
        ``(hits, n_tokens)``, each (B,) int64.

    Raises:
        ValueError: for shapes other than ``(B, T, V)`` and ``(B, T)``.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"greedy_matches expects logits (B, T, V) and labels (B, T); got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    target = _shift(labels, ignore_index)
    mask = target != ignore_index
    hits = (logits.argmax(-1) == target) & mask
    return hits.sum(-1), mask.sum(-1)


def sequence_logprobs(
    logits: Tensor,
    labels: Tensor,
    *,
    ignore_index: int = -100,
    shift: bool = True,
    chunk_rows: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Summed per-sequence log-likelihood of a causal LM's labels.

    ``logps[b] = sum_t log softmax(logits[b, t])[labels[b, t+1]]`` over the positions whose
    (shifted) label is not ``ignore_index``: the sum, not the mean, over answer tokens; divide by
    ``n_tokens`` for the length-normalized form. The labels are shifted, not the logits, which
    stay a contiguous view.

    Args:
        logits: ``(B, T, V)`` logits of any float dtype.
        labels: ``(B, T)`` labels aligned with the inputs (-100 on prompt and padding).
        ignore_index: the label value that is ignored.
        shift: shift the labels by one position (False if they are already aligned with the
            logits' predictions).
        chunk_rows: rows per chunk, as in :func:`token_logprobs`.

    Returns:
        ``(logps, n_tokens)``: ``(B,)`` float32/float64 with autograd, and ``(B,)`` int64.

    Raises:
        ValueError: for shapes other than ``(B, T, V)`` and ``(B, T)``, or bad labels.
    """
    if logits.dim() != 3 or labels.dim() != 2:
        raise ValueError(
            f"sequence_logprobs expects logits (B, T, V) and labels (B, T); got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    if shift:
        labels = _shift(labels, ignore_index)
    tok = token_logprobs(logits, labels, ignore_index=ignore_index, chunk_rows=chunk_rows)
    return tok.sum(-1), (labels != ignore_index).sum(-1)


def class_logprobs(logits: Tensor, labels: Tensor) -> Tensor:
    """Log-probability of each label for a classifier.

    Binary: ``logits`` (...) are logits of class 1, ``labels`` (...) in {0, 1}, and
    ``log pi(y|x) = logsigmoid((2y - 1) z)``. K-class: ``logits`` (..., K), ``labels`` (...)
    integers, and ``log pi(y|x) = log_softmax(logits)[y]``.

    Args:
        logits: ``(...)`` binary logits or ``(..., K)`` class logits.
        labels: ``(...)`` labels.

    Returns:
        ``(...)`` log-probabilities with autograd.

    Raises:
        ValueError: for labels outside {0, 1} (binary) or the classes, or mismatched shapes.
    """
    if logits.shape == labels.shape:
        if not bool(((labels == 0) | (labels == 1)).all()):
            raise ValueError("binary class_logprobs needs labels in {0, 1}")
        sign = 2.0 * labels.to(logits.dtype) - 1.0
        return F.logsigmoid(sign * logits)
    if logits.shape[:-1] == labels.shape:
        _check_labels(logits, labels, ignore_index=-(10**9))
        return torch.log_softmax(logits, dim=-1).gather(-1, labels.long()[..., None])[..., 0]
    raise ValueError(
        f"class_logprobs: logits {tuple(logits.shape)} fit neither binary labels nor K-class "
        f"labels of shape {tuple(labels.shape)}"
    )


def _plogp_ratio(la: Tensor, lb: Tensor) -> Tensor:
    """``a (log a - log b)`` elementwise from log-probs, 0 where ``a = 0`` (logits of -inf)."""
    a = la.exp()
    return torch.where(a > 0, a * (la - lb), torch.zeros_like(a))


def _kl_rows(lp: Tensor, lq: Tensor, direction: str) -> Tensor:
    """Row KL from log-probs ``lp`` (policy) and ``lq`` (reference), each (m, V)."""
    if direction == "ref||policy":
        return _plogp_ratio(lq, lp).sum(-1)
    return _plogp_ratio(lp, lq).sum(-1)


class _TokenKL(torch.autograd.Function):
    """Per-row KL between policy and (constant) reference logits for the selected rows."""

    @staticmethod
    def forward(ctx, pol: Tensor, ref: Tensor, rows: Tensor, direction: str, chunk: int):
        cdt = _compute_dtype(pol.dtype)
        out = torch.empty(rows.shape[0], dtype=cdt, device=pol.device)  # (M,)
        for s in range(0, rows.shape[0], chunk):
            r = rows[s : s + chunk]
            lp = torch.log_softmax(pol.index_select(0, r).to(cdt), -1)
            lq = torch.log_softmax(ref.index_select(0, r).to(cdt), -1)
            out[s : s + chunk] = _kl_rows(lp, lq, direction)
        ctx.save_for_backward(pol, ref, rows, out)
        ctx.direction, ctx.chunk = direction, chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        pol, ref, rows, kl = ctx.saved_tensors
        grad = torch.zeros_like(pol)
        cdt = kl.dtype
        for s in range(0, rows.shape[0], ctx.chunk):
            r = rows[s : s + ctx.chunk]
            g = grad_out[s : s + ctx.chunk].to(cdt)[:, None]
            lp = torch.log_softmax(pol.index_select(0, r).to(cdt), -1)
            lq = torch.log_softmax(ref.index_select(0, r).to(cdt), -1)
            if ctx.direction == "ref||policy":  # d/dz sum q (log q - log p) = p - q
                block = lp.exp() - lq.exp()
            else:  # d/dz sum p (log p - log q) = p * (log p - log q - KL)
                p = lp.exp()
                diff = lp - lq - kl[s : s + ctx.chunk, None]
                block = torch.where(p > 0, p * diff, torch.zeros_like(p))
            grad.index_copy_(0, r, (g * block).to(pol.dtype))
        return grad, None, None, None, None


def token_kl(
    policy_logits: Tensor,
    ref_logits: Tensor,
    mask: Tensor,
    *,
    direction: str = "ref||policy",
    chunk_rows: int | None = None,
) -> Tensor:
    """Per-sequence KL summed over the masked positions, with autograd through the policy.

    ``direction="ref||policy"``: ``KL(pi_ref || pi_theta) = sum_v q_v (log q_v - log p_v)`` per
    position (the official NPO code's ``+KL`` term); ``"policy||ref"`` the reverse. The
    reference logits are constants. No shift: pass the mask of the positions whose next-token
    distributions should match (e.g. the shifted answer-label mask). Chunked like
    :func:`token_logprobs`; entries of probability 0 (logits of -inf) contribute 0.

    Args:
        policy_logits: ``(B, T, V)`` logits of the trained model.
        ref_logits: ``(B, T, V)`` logits of the reference model.
        mask: ``(B, T)`` bool, the positions to compare.
        direction: ``"ref||policy"`` or ``"policy||ref"``.
        chunk_rows: rows per chunk, as in :func:`token_logprobs`.

    Returns:
        ``(B,)`` summed KL per sequence.

    Raises:
        ValueError: for an unknown ``direction`` or mismatched shapes.
    """
    if direction not in ("ref||policy", "policy||ref"):
        raise ValueError(f"direction must be 'ref||policy' or 'policy||ref', got {direction!r}")
    if policy_logits.shape != ref_logits.shape or mask.shape != policy_logits.shape[:-1]:
        raise ValueError(
            f"token_kl shape mismatch: policy {tuple(policy_logits.shape)}, ref "
            f"{tuple(ref_logits.shape)}, mask {tuple(mask.shape)}"
        )
    vocab = policy_logits.shape[-1]
    pol = policy_logits.reshape(-1, vocab)
    ref = ref_logits.detach().reshape(-1, vocab)
    rows = torch.nonzero(mask.reshape(-1)).flatten()
    per_row = _TokenKL.apply(pol, ref, rows, direction, _rows_per_chunk(pol, chunk_rows))
    out = torch.zeros(pol.shape[0], dtype=per_row.dtype, device=pol.device)
    return out.index_put((rows,), per_row).reshape(mask.shape).sum(-1)


def class_kl(
    policy_logits: Tensor, ref_logits: Tensor, *, direction: str = "ref||policy"
) -> Tensor:
    """KL between two binary classifiers' output distributions, per sample, with autograd.

    Args:
        policy_logits: ``(...)`` logits of class 1 under the trained model.
        ref_logits: ``(...)`` logits of class 1 under the reference (a constant).
        direction: ``"ref||policy"`` or ``"policy||ref"``, as in :func:`token_kl`.

    Returns:
        ``(...)`` KL per sample.

    Raises:
        ValueError: for an unknown ``direction`` or mismatched shapes.
    """
    if policy_logits.shape != ref_logits.shape:
        raise ValueError(
            f"class_kl shape mismatch: {tuple(policy_logits.shape)} vs {tuple(ref_logits.shape)}"
        )
    if direction not in ("ref||policy", "policy||ref"):
        raise ValueError(f"direction must be 'ref||policy' or 'policy||ref', got {direction!r}")
    ref = ref_logits.detach()
    lp = torch.stack([F.logsigmoid(-policy_logits), F.logsigmoid(policy_logits)], -1)
    lq = torch.stack([F.logsigmoid(-ref), F.logsigmoid(ref)], -1)
    return _kl_rows(lp, lq, direction)


class TokenStats(NamedTuple):
    """Per-position statistics of :func:`token_stats`, each ``(B, T)``; 0 where ``mask`` is off."""

    logp: Tensor  # log p(label)
    mean: Tensor  # mu = sum_v p_v log p_v
    std: Tensor  # sigma = sqrt(sum_v p_v (log p_v - mu)^2)
    mask: Tensor  # bool, the scored positions


@torch.no_grad()
def token_stats(
    logits: Tensor,
    labels: Tensor,
    *,
    ignore_index: int = -100,
    shift: bool = True,
    chunk_rows: int | None = None,
) -> TokenStats:
    """The label's log-prob and the mean and std of ``log p`` at every scored position.

    At position ``t`` with next-token distribution ``p = softmax(logits[b, t])`` and label
    ``y = labels[b, t + 1]`` (the shift of :func:`sequence_logprobs`):
    ``logp = log p_y``, ``mean = mu = sum_v p_v log p_v`` (minus the entropy) and
    ``std = sigma = sqrt(sum_v p_v (log p_v - mu)^2)``. Min-K%++ (Zhang et al., arXiv
    2404.02936) standardizes ``(logp - mu) / sigma``. Rows are processed in chunks upcast to
    float32 (float64 for float64 logits), as :func:`token_logprobs` does; no full float32
    ``(B, T, V)`` tensor is made. The variance is the centered second moment (two passes over
    the chunk), and entries of probability 0 contribute 0. No autograd (evaluation only).

    Args:
        logits: ``(B, T, V)`` logits of any float dtype.
        labels: ``(B, T)`` labels (-100 on prompt and padding).
        ignore_index: the label value that is not scored.
        shift: shift the labels by one position (False if already aligned with the logits).
        chunk_rows: rows per chunk, as in :func:`token_logprobs`.

    Returns:
        The :class:`TokenStats`, each ``(B, T)`` float32 (float64 for float64 logits).

    Raises:
        ValueError: for shapes other than ``(B, T, V)`` and ``(B, T)``, or bad labels.
    """
    if logits.dim() != 3 or labels.dim() != 2:
        raise ValueError(
            f"token_stats expects logits (B, T, V) and labels (B, T); got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    if shift:
        labels = _shift(labels, ignore_index)
    _check_labels(logits, labels, ignore_index)
    cdt = _compute_dtype(logits.dtype)
    vocab = logits.shape[-1]
    flat = logits.reshape(-1, vocab)
    flat_labels = labels.reshape(-1)
    rows = torch.nonzero(flat_labels != ignore_index).flatten()  # (M,)
    targets = flat_labels.index_select(0, rows).long()
    out = torch.zeros(3, flat.shape[0], dtype=cdt, device=logits.device)
    chunk = _rows_per_chunk(logits, chunk_rows)
    for s in range(0, rows.shape[0], chunk):
        r = rows[s : s + chunk]
        lp = torch.log_softmax(flat.index_select(0, r).to(cdt), dim=-1)  # (m, V)
        p = lp.exp()
        plogp = torch.where(p > 0, p * lp, torch.zeros_like(p))
        mu = plogp.sum(-1)  # (m,)
        dev = torch.where(p > 0, lp - mu[:, None], torch.zeros_like(p))
        var = (p * dev * dev).sum(-1)
        out[0, r] = lp.gather(1, targets[s : s + chunk, None]).squeeze(1)
        out[1, r] = mu
        out[2, r] = var.clamp_min(0).sqrt()
    logp, mean, std = (x.reshape(labels.shape) for x in out)
    return TokenStats(logp, mean, std, labels != ignore_index)


# ---------------------------------------------------------------- packed answer positions


def answer_targets(labels: Tensor, *, ignore_index: int = -100) -> tuple[Tensor, Tensor, Tensor]:
    """The positions whose next label is scored, and those labels, in row-major order.

    The same shift as :func:`sequence_logprobs`: position ``(b, t)`` is listed when
    ``labels[b, t + 1] != ignore_index``. Gathering the hidden states at these positions and
    applying the LM head there only gives the *packed* logits of the ``packed_*`` functions:
    an exact and much cheaper path when the answer is a small part of each sequence.

    Args:
        labels: (B, T) integer labels, ``ignore_index`` on prompt and padding.
        ignore_index: the label value that is not scored.

    Returns:
        ``(rows, cols, targets)``, each (M,) int64: the batch row and position of every
        scored prediction, and the label it predicts.
    """
    target = _shift(labels, ignore_index)
    rows, cols = torch.nonzero(target != ignore_index, as_tuple=True)
    return rows, cols, target[rows, cols].long()


def _per_sequence(values: Tensor, rows: Tensor, n_seq: int) -> Tensor:
    return torch.zeros(n_seq, dtype=values.dtype, device=values.device).index_add(0, rows, values)


def packed_sequence_logprobs(
    logits: Tensor, targets: Tensor, rows: Tensor, n_seq: int
) -> tuple[Tensor, Tensor]:
    """:func:`sequence_logprobs` from packed logits (only the scored positions).

    ``logps[b] = sum_{m: rows[m] = b} log softmax(logits[m])[targets[m]]``, chunked as in
    :func:`token_logprobs`.

    Args:
        logits: (M, V) logits at the positions of :func:`answer_targets`.
        targets: (M,) the labels they predict.
        rows: (M,) the sequence of each position.
        n_seq: the number of sequences B.

    Returns:
        ``(logps, n_tokens)``, each (B,): float32 (float64 for float64 logits) with autograd,
        and int64.
    """
    if logits.dim() != 2 or targets.shape != logits.shape[:1] or rows.shape != targets.shape:
        raise ValueError(
            f"packed logits (M, V) need targets and rows (M,); got {tuple(logits.shape)}, "
            f"{tuple(targets.shape)}, {tuple(rows.shape)}"
        )
    tok = token_logprobs(logits, targets)  # (M,), no shift
    return _per_sequence(tok, rows, n_seq), torch.bincount(rows, minlength=n_seq)


def packed_greedy_matches(
    logits: Tensor, targets: Tensor, rows: Tensor, n_seq: int, *, first: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`greedy_matches` from packed logits, optionally on each answer's first tokens.

    Positions are in :func:`answer_targets`' (row-major) order, so the ``k``-th position of a
    sequence predicts its ``k``-th answer token.

    Args:
        logits: (M, V) logits at the positions of :func:`answer_targets`.
        targets: (M,) the labels they predict.
        rows: (M,) the sequence of each position (non-decreasing).
        n_seq: the number of sequences B.
        first: (B,) if given, only sequence ``b``'s first ``first[b]`` answer tokens count.

    Returns:
        ``(hits, n)``, each (B,) int64: per sequence, how many of the counted targets are the
        argmax, and how many were counted (``hits == n``: greedy decoding reproduces those
        answer tokens).
    """
    counted = torch.ones_like(targets, dtype=torch.bool)
    if first is not None:
        sizes = torch.bincount(rows, minlength=n_seq)
        start = torch.cumsum(sizes, 0) - sizes
        position = torch.arange(rows.shape[0], device=rows.device) - start[rows]
        counted = position < first.to(rows.device)[rows]
    hits = ((logits.argmax(-1) == targets) & counted).long()
    return _per_sequence(hits, rows, n_seq), _per_sequence(counted.long(), rows, n_seq)


def packed_token_kl(policy_logits: Tensor, ref_logits: Tensor, rows: Tensor, n_seq: int) -> Tensor:
    """:func:`token_kl` (``KL(pi_ref || pi_theta)``) summed per sequence, from packed logits.

    Args:
        policy_logits: (M, V) the trained model's logits at the scored positions.
        ref_logits: (M, V) the reference's there (constants).
        rows: (M,) the sequence of each position.
        n_seq: the number of sequences B.

    Returns:
        (B,) summed KL, with autograd through the policy.
    """
    m = policy_logits.shape[0]
    ones = torch.ones(m, 1, dtype=torch.bool, device=policy_logits.device)
    per_pos = token_kl(policy_logits[:, None], ref_logits[:, None], ones)  # (M,)
    return _per_sequence(per_pos, rows, n_seq)
