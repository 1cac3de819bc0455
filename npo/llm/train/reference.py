"""Reference log-probabilities: computed once, cached on disk; a live reference only for ``+KL``.

NPO, DPO and the log-ratio logs need ``log pi_ref(y|x)`` of the forget (and IDK) sequences.
Since ``pi_ref`` is the frozen starting model, these are computed once before unlearning, with
the model in eval mode (dropout off), in the policy's precision and with the same right padding
and attention masks as training, and stored as safetensors under a key that hashes the model
weights, the token ids (data + prompt template + tokenizer + max_length) and the template.
Objectives that need only these (``npo``, ``npo+rt``, ``simnpo``, ``dpo+rt``, ``ga+rt``) keep
no second model in memory. A ``kl`` term needs the reference's full next-token distribution
on retain data at every step: only then is a frozen reference kept (with LoRA: the same model
with its adapters disabled).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from npo.llm.encoding import Encoded, collate
from npo.llm.forward import eval_mode, forward_logits
from npo.logprobs import sequence_logprobs
from npo.results import atomic_write_bytes

__all__ = [
    "LiveReference",
    "cached_ref_logps",
    "compute_ref_logps",
    "ref_cache_key",
    "select",
    "weights_digest",
]

CACHE_VERSION = "1"


def weights_digest(model: torch.nn.Module) -> str:
    """blake2b of every state-dict tensor's name, dtype, shape and bytes (model on any device).

    Returns:
        The hex digest, part of the reference cache key.
    """
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def ref_cache_key(*, weights: str, encoded: Encoded, template: str, precision: str) -> str:
    """The cache key of one split's reference log-probs.

    Returns:
        A hex digest of the cache version, ``weights`` (:func:`weights_digest`), the token ids
        (:meth:`~npo.llm.encoding.Encoded.digest`), the prompt ``template`` and ``precision``.
    """
    parts = {
        "version": CACHE_VERSION,
        "weights": weights,
        "tokens": encoded.digest(),
        "template": template,
        "precision": precision,
    }
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=16).hexdigest()


def compute_ref_logps(
    model: torch.nn.Module,
    encoded: Encoded,
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    autocast: bool = False,
    rank: int = 0,
    world_size: int = 1,
    gather: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Summed answer-token log-probs of every sequence of ``encoded`` under ``model``.

    The model runs in eval mode (dropout off) without autograd
    (:func:`~npo.llm.forward.eval_mode`). In data-parallel runs each rank scores a strided
    share (padded so every rank runs the same number of forwards, as FSDP requires) and
    ``gather`` collects them.

    Returns:
        (N,) ``log pi_ref(y|x)`` on the CPU, in ``encoded``'s order.
    """
    n = len(encoded)
    mine = list(range(rank, n, world_size))
    share = -(-n // world_size)
    padded = mine + [-1] * (share - len(mine))
    values, index = [], []
    with eval_mode(model):
        for s in range(0, share, batch_size):
            ids = padded[s : s + batch_size]
            batch = collate([encoded.item(max(i, 0)) for i in ids], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = forward_logits(model, batch, autocast=autocast)  # (B, T, V)
            values.append(sequence_logprobs(logits, batch["labels"])[0])
            index.append(torch.as_tensor(ids, device=device))
    vals, idx = torch.cat(values), torch.cat(index)
    if gather is not None and world_size > 1:
        vals, idx = gather(vals), gather(idx)
    keep = idx >= 0
    out = torch.empty(n, dtype=vals.dtype, device=vals.device)
    out[idx[keep]] = vals[keep]
    return out.cpu()


def _check_finite(values: Tensor, enc: Encoded, source: str) -> None:
    bad = (~torch.isfinite(values)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"reference log-probs of {enc.name} ({source}): {len(bad)} of {len(enc)} sequences "
            f"are non-finite (first: item {bad[0]}); the starting model gives them NaN/-inf "
            "(damaged weights, or a probability that underflows in this --precision); they are "
            "not cached and training would diverge at once"
        )


def _read_cached(path: Path, n_tokens: Tensor, log: Callable[[str], None]) -> Tensor | None:
    # A cache entry's log-probs if the file is sound, finite and of these sequences.
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        stored = load_file(path)
    except (SafetensorError, OSError) as exc:
        log(f"warning: reference cache entry {path} is unreadable ({exc}); recomputing it")
        return None
    logps = stored.get("logps")
    if logps is None or not torch.equal(stored.get("n_tokens", torch.empty(0)), n_tokens):
        return None
    if not bool(torch.isfinite(logps).all()):
        log(f"warning: reference cache entry {path} holds non-finite values; recomputing it")
        return None
    return logps


def _write_cached(path: Path, data: bytes, log: Callable[[str], None]) -> None:
    # The cache only saves time: a failed write (full or read-only disk) is a warning.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        log(
            f"warning: cannot write the reference cache {path} ({reason}); continuing without "
            "caching (the log-probs are recomputed next run)"
        )


def cached_ref_logps(
    model: torch.nn.Module,
    splits: dict[str, Encoded],
    *,
    weights: str,
    template: str,
    precision: str,
    cache_dir: str | Path,
    is_main: bool = True,
    barrier: Callable[[], None] = lambda: None,
    log: Callable[[str], None] = print,
    **compute_kwargs: Any,
) -> dict[str, Tensor]:
    """Reference log-probs of each split, read from ``cache_dir`` or computed and written there.

    Only the main process writes; a cache file whose stored token counts disagree with the data
    (or that is unreadable or non-finite) is recomputed. Non-finite log-probs are an error and
    never enter the cache; a cache that cannot be written (read-only, full) is a warning.
    ``compute_kwargs`` go to :func:`compute_ref_logps`.

    Returns:
        ``{source: (N,) tensor}`` on the CPU.

    Raises:
        ValueError: some reference log-prob is NaN/inf.
    """
    from safetensors.torch import save

    cache = Path(cache_dir)
    out: dict[str, Tensor] = {}
    for source, enc in splits.items():
        key = ref_cache_key(weights=weights, encoded=enc, template=template, precision=precision)
        path = cache / f"ref-{key}.safetensors"
        n_tokens = torch.tensor([enc.n_tokens(i) for i in range(len(enc))])
        if path.is_file():
            hit = _read_cached(path, n_tokens, log)
            if hit is not None:
                out[source] = hit
                log(f"reference log-probs of {enc.name} ({source}): cache hit {path}")
                continue
        log(f"reference log-probs of {enc.name} ({source}): computing {len(enc)} sequences")
        out[source] = compute_ref_logps(model, enc, **compute_kwargs)
        _check_finite(out[source], enc, source)
        if is_main:
            meta = {"split": enc.name, "weights": weights, "precision": precision}
            data = save({"logps": out[source].contiguous(), "n_tokens": n_tokens}, metadata=meta)
            _write_cached(path, data, log)
        barrier()
    return out


class LiveReference:
    """A frozen reference model kept in memory, for ``kl`` terms (and ``--reference live``).

    Full fine-tuning: a deep copy of the starting model, eval mode, ``requires_grad=False``,
    prepared by ``prepare`` (device placement / sharding). LoRA: no copy; the policy itself is
    run with its adapters disabled.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        lora: bool,
        prepare: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    ) -> None:
        self.lora = lora
        self.model: torch.nn.Module | None = None
        if not lora:
            ref = copy.deepcopy(model).eval()
            ref.requires_grad_(False)
            self.model = prepare(ref) if prepare is not None else ref

    def logits(
        self,
        policy: torch.nn.Module,
        unwrapped: Any,
        batch: Mapping[str, Tensor],
        autocast: bool,
    ) -> Tensor:
        """Reference logits for ``batch``, without autograd.

        LoRA: the (prepared) ``policy`` in eval mode with the adapters of ``unwrapped``
        disabled; else the frozen copy.

        Returns:
            (B, T, V) logits.
        """
        if self.lora:
            adapters_off: Any = unwrapped.disable_adapter()
            with eval_mode(policy), adapters_off:
                return forward_logits(policy, batch, autocast=autocast)
        assert self.model is not None  # built in __init__ without LoRA
        with eval_mode():
            return forward_logits(self.model, batch, autocast=autocast)


def select(values: Tensor, index: Sequence[int], device: torch.device) -> Tensor:
    """``values[index]`` on ``device``.

    Returns:
        The selected rows, moved to ``device``.
    """
    return values.index_select(0, torch.as_tensor(index, dtype=torch.long)).to(device)
