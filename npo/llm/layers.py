"""The transformer blocks of a decoder-only LM: training only the top ones, running them alone.

Decoder-only models of the Llama family in ``transformers`` (Llama, Mistral, Qwen2/3, OLMo,
SmolLM, ...) share one structure: ``model.get_decoder()`` holds ``embed_tokens``, the blocks
``layers``, the final ``norm`` and ``rotary_emb``; ``lm_head`` maps the normed hidden states
to logits. Two uses:

- :func:`freeze_below`: only the top ``n`` blocks and the final norm train; the embeddings,
  the LM head (often tied to the embeddings) and the lower blocks are frozen. Backward then
  stops at the lowest trained block (``--train-top-layers N`` of ``npo finetune``/``unlearn``).
- :func:`lower_hidden` / :func:`top_hidden`: with the lower blocks frozen their output does not
  change during training, so it can be computed once per sequence and the top blocks run alone
  on it. :func:`split_forward` is exactly the model's own forward (same masks, rotary
  embeddings and position ids: position ``t`` of a right-padded row is ``t``, as the model's
  default), checked bitwise against it by the tests.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor

__all__ = ["decoder_blocks", "freeze_below", "lower_hidden", "split_forward", "top_hidden"]


def _base(model: Any) -> Any:
    # A peft wrapper's base model, else the model.
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def decoder_blocks(model: Any) -> tuple[Any, torch.nn.ModuleList]:
    """The decoder (embeddings, blocks, final norm, rotary embedding) and its blocks.

    Args:
        model: a causal LM of the Llama family (or a peft wrapper of one).

    Returns:
        ``(decoder, blocks)``.

    Raises:
        ValueError: the model has no ``get_decoder().layers`` block list.
    """
    base = _base(model)
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    blocks = getattr(decoder, "layers", None)
    if not isinstance(blocks, torch.nn.ModuleList) or not hasattr(decoder, "norm"):
        raise ValueError(
            f"{type(base).__name__} has no decoder with a 'layers' block list and a final "
            "'norm' (Llama-family structure); --train-top-layers needs one"
        )
    return decoder, blocks


def freeze_below(model: Any, n_top: int) -> int:
    """Train only the top ``n_top`` blocks and the final norm; freeze every other weight.

    Args:
        model: a causal LM of the Llama family.
        n_top: how many blocks, counted from the top, keep ``requires_grad`` (1 to the
            number of blocks).

    Returns:
        The number of trainable parameters left.

    Raises:
        ValueError: ``n_top`` is out of range, or the model has no block list.
    """
    decoder, blocks = decoder_blocks(model)
    if not 1 <= n_top <= len(blocks):
        raise ValueError(
            f"train_top_layers must be in 1..{len(blocks)} (the model's blocks), got {n_top}"
        )
    model.requires_grad_(False)
    for block in blocks[len(blocks) - n_top :]:
        block.requires_grad_(True)
    decoder.norm.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _causal_mask(decoder: Any, hidden: Tensor, attention_mask: Tensor, positions: Tensor) -> Any:
    # transformers' own mask builder, whichever keyword names this version uses.
    from transformers.masking_utils import create_causal_mask

    params = inspect.signature(create_causal_mask).parameters
    kwargs: dict[str, Any] = {
        "config": decoder.config,
        "attention_mask": attention_mask,
        "position_ids": positions,
    }
    kwargs["inputs_embeds" if "inputs_embeds" in params else "input_embeds"] = hidden
    kwargs["cache" if "cache" in params else "past_key_values"] = None
    if "cache_position" in params:
        kwargs["cache_position"] = torch.arange(hidden.shape[1], device=hidden.device)
    return create_causal_mask(**kwargs)


def _run(decoder: Any, hidden: Tensor, blocks: Any, attention_mask: Tensor) -> Tensor:
    b, t = hidden.shape[:2]
    positions = torch.arange(t, device=hidden.device)[None].expand(b, t)
    mask = _causal_mask(decoder, hidden, attention_mask, positions)
    rotary = decoder.rotary_emb(hidden, position_ids=positions)  # (cos, sin)
    for block in blocks:
        out = block(hidden, attention_mask=mask, position_embeddings=rotary, position_ids=positions)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def lower_hidden(model: Any, input_ids: Tensor, attention_mask: Tensor, split: int) -> Tensor:
    """The hidden states after the blocks below ``split``, without autograd.

    Args:
        model: a causal LM of the Llama family.
        input_ids: (B, T) right-padded token ids.
        attention_mask: (B, T), 1 on real tokens.
        split: the first block not run (0 < split < number of blocks).

    Returns:
        (B, T, H): the input of block ``split``.
    """
    decoder, blocks = decoder_blocks(model)
    if not 0 < split < len(blocks):
        raise ValueError(f"split must be in 1..{len(blocks) - 1}, got {split}")
    with torch.no_grad():
        hidden = decoder.embed_tokens(input_ids)
        return _run(decoder, hidden, blocks[:split], attention_mask)


def top_hidden(model: Any, hidden: Tensor, attention_mask: Tensor, split: int) -> Tensor:
    """The blocks from ``split`` up and the final norm, on :func:`lower_hidden`'s output.

    Args:
        model: the same model.
        hidden: (B, T, H) hidden states entering block ``split``.
        attention_mask: (B, T), 1 on real tokens.
        split: the first block run.

    Returns:
        (B, T, H) final normed hidden states; ``model.lm_head`` of them are the logits.
    """
    decoder, blocks = decoder_blocks(model)
    return decoder.norm(_run(decoder, hidden, blocks[split:], attention_mask))


def split_forward(model: Any, input_ids: Tensor, attention_mask: Tensor, split: int) -> Tensor:
    """The model's logits through :func:`lower_hidden` then :func:`top_hidden`.

    Returns:
        (B, T, V) logits (autograd through the top blocks only).
    """
    hidden = lower_hidden(model, input_ids, attention_mask, split)
    return _base(model).lm_head(top_hidden(model, hidden, attention_mask, split))
