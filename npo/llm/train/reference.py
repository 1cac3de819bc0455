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

import contextlib
import copy
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from npo.llm.data import Encoded, collate
from npo.logprobs import sequence_logprobs
from npo.results import atomic_write_bytes

__all__ = [
    "LiveReference",
    "cached_ref_logps",
    "compute_ref_logps",
    "ref_cache_key",
    "weights_digest",
]

CACHE_VERSION = "1"


def weights_digest(model: torch.nn.Module) -> str:
    """blake2b of every state-dict tensor's name, dtype, shape and bytes (model on any device)."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def ref_cache_key(*, weights: str, encoded: Encoded, template: str, precision: str) -> str:
    """The cache key of one split's reference log-probs."""
    parts = {
        "version": CACHE_VERSION,
        "weights": weights,
        "tokens": encoded.digest(),
        "template": template,
        "precision": precision,
    }
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=16).hexdigest()


@torch.no_grad()
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
    """Summed answer-token log-probs of every sequence of ``encoded`` under ``model`` (eval mode),
    shape (N,). In data-parallel runs each rank scores a strided share (padded so every rank
    runs the same number of forwards, as FSDP requires) and ``gather`` collects them."""
    was_training = model.training
    model.eval()
    n = len(encoded)
    mine = list(range(rank, n, world_size))
    share = -(-n // world_size)
    padded = mine + [-1] * (share - len(mine))
    values, index = [], []
    try:
        for s in range(0, share, batch_size):
            ids = padded[s : s + batch_size]
            batch = collate([encoded.item(max(i, 0)) for i in ids], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    use_cache=False,
                ).logits  # (B, T, V)
            values.append(sequence_logprobs(logits, batch["labels"])[0])
            index.append(torch.as_tensor(ids, device=device))
    finally:
        model.train(was_training)
    vals, idx = torch.cat(values), torch.cat(index)
    if gather is not None and world_size > 1:
        vals, idx = gather(vals), gather(idx)
    keep = idx >= 0
    out = torch.empty(n, dtype=vals.dtype, device=vals.device)
    out[idx[keep]] = vals[keep]
    return out.cpu()


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

    Returns ``{source: (N,) tensor}`` on the CPU. Only the main process writes; a cache file
    whose stored token counts disagree with the data is recomputed.
    """
    from safetensors.torch import load_file, save

    cache = Path(cache_dir)
    out: dict[str, Tensor] = {}
    for source, enc in splits.items():
        key = ref_cache_key(weights=weights, encoded=enc, template=template, precision=precision)
        path = cache / f"ref-{key}.safetensors"
        n_tokens = torch.tensor([enc.n_tokens(i) for i in range(len(enc))])
        if path.is_file():
            stored = load_file(path)
            if torch.equal(stored.get("n_tokens", torch.empty(0)), n_tokens):
                out[source] = stored["logps"]
                log(f"reference log-probs of {enc.name} ({source}): cache hit {path}")
                continue
        log(f"reference log-probs of {enc.name} ({source}): computing {len(enc)} sequences")
        out[source] = compute_ref_logps(model, enc, **compute_kwargs)
        if is_main:
            cache.mkdir(parents=True, exist_ok=True)
            meta = {"split": enc.name, "weights": weights, "precision": precision}
            data = save({"logps": out[source].contiguous(), "n_tokens": n_tokens}, metadata=meta)
            atomic_write_bytes(path, data)
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

    @torch.no_grad()
    def logits(
        self, policy: torch.nn.Module, unwrapped: Any, batch: dict[str, Tensor], autocast: bool
    ) -> Tensor:
        """Reference logits (B, T, V) for ``batch`` (no autograd)."""
        if self.lora:
            was_training = policy.training
            policy.eval()
            ctx: Any = unwrapped.disable_adapter()
        else:
            ctx = contextlib.nullcontext()
        try:
            with ctx:
                net = policy if self.lora else self.model
                device = batch["input_ids"].device
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    return net(
                        input_ids=batch["input_ids"],
                        attention_mask=batch["attention_mask"],
                        use_cache=False,
                    ).logits
        finally:
            if self.lora:
                policy.train(was_training)


def select(values: Tensor, index: Sequence[int], device: torch.device) -> Tensor:
    """``values[index]`` on ``device``."""
    return values.index_select(0, torch.as_tensor(index, dtype=torch.long)).to(device)
