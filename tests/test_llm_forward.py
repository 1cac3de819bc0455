"""The one forward pass, the one train/eval-mode context, and the next-token label mask."""

from __future__ import annotations

import pytest
import torch

from npo.llm.forward import bf16_autocast, eval_mode, forward_logits
from npo.logprobs import next_token_mask, sequence_logprobs, token_kl


def test_next_token_mask_marks_positions_whose_next_label_is_scored():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, 8, 9, 4]])
    expected = torch.tensor([[False, True, True, False, False], [True, True, True, True, False]])
    assert torch.equal(next_token_mask(labels), expected)
    assert next_token_mask(labels).dtype == torch.bool
    assert torch.equal(
        next_token_mask(labels, ignore_index=4)[1], torch.tensor([True] * 3 + [False] * 2)
    )


def test_next_token_mask_counts_what_sequence_logprobs_scores():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 11, (3, 7), generator=g)
    labels[0, :3] = labels[1, :5] = labels[2, 5:] = -100
    mask = next_token_mask(labels)
    _, n_tokens = sequence_logprobs(logits, labels)
    assert torch.equal(mask.sum(-1), n_tokens)
    # the KL at those positions: one per scored answer token, zero against itself
    assert torch.equal(token_kl(logits, logits, mask), torch.zeros(3, dtype=torch.float64))


class _Toy(torch.nn.Module):
    """A stand-in causal LM: records what it was called with, returns logits."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Embedding(13, 5)
        self.drop = torch.nn.Dropout(0.5)
        self.calls = []

    def forward(self, *, input_ids, attention_mask, use_cache):
        self.calls.append((use_cache, torch.is_autocast_enabled("cpu"), self.training))
        out = self.drop(self.proj(input_ids)) * attention_mask[..., None]
        return type("Out", (), {"logits": out})()


def test_forward_logits_passes_the_mask_without_cache_and_autocasts_on_request():
    model = _Toy()
    batch = {"input_ids": torch.tensor([[1, 2, 3]]), "attention_mask": torch.tensor([[1, 1, 0]])}
    batch["labels"] = torch.tensor([[-100, 2, 3]])  # not read
    model.eval()
    logits = forward_logits(model, batch)
    assert logits.shape == (1, 3, 5) and logits[0, 2].abs().sum() == 0
    forward_logits(model, batch, autocast=True)
    assert model.calls == [(False, False, False), (False, True, False)]
    with bf16_autocast("cpu", False):
        assert not torch.is_autocast_enabled("cpu")


def test_eval_mode_turns_dropout_and_grad_off_and_restores_each_mode():
    a, b = _Toy(), _Toy()
    a.train()
    b.eval()
    with eval_mode(a, None, b):
        assert not a.training and not b.training and not torch.is_grad_enabled()
    assert a.training and not b.training and torch.is_grad_enabled()
    with pytest.raises(RuntimeError), eval_mode(a):
        raise RuntimeError
    assert a.training and torch.is_grad_enabled()
