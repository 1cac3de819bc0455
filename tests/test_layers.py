"""Top blocks only: freezing below a block, the split forward, and packed answer positions.

On tiny Llamas built from a config: the split forward equals the model's own bitwise (and its
gradients through the top blocks), packed log-probs / greedy hits / KL equal the full-logits
functions, and ``--train-top-layers`` trains exactly the top blocks and the final norm.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from npo.llm.layers import decoder_blocks, freeze_below, split_forward
from npo.llm.train import UnlearnConfig
from npo.logprobs import (
    answer_targets,
    greedy_matches,
    next_token_mask,
    packed_greedy_matches,
    packed_sequence_logprobs,
    packed_token_kl,
    sequence_logprobs,
    token_kl,
)


def _llama(layers=4, tie=True, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 64, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # right padding
    mask[2, 4:] = 0
    labels = ids.clone()
    labels[:, :3] = -100
    labels[mask == 0] = -100
    return ids, mask, labels


@pytest.mark.parametrize("split", [1, 2, 3])
def test_split_forward_is_the_models_forward_bitwise(split):
    model = _llama()
    ids, mask, _ = _batch()
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        parts = split_forward(model, ids, mask, split)
    real = mask.bool()
    assert torch.equal(full[real], parts[real])


def test_split_forward_gradients_equal_the_full_models_on_the_top_blocks():
    ids, mask, labels = _batch(1)
    grads = []
    for split in (None, 2):
        model = _llama(seed=3)
        freeze_below(model, 2)
        logits = (
            model(input_ids=ids, attention_mask=mask).logits
            if split is None
            else split_forward(model, ids, mask, split)
        )
        sequence_logprobs(logits, labels)[0].sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-5, atol=1e-7)


def test_freeze_below_trains_the_top_blocks_and_the_final_norm_only():
    model = _llama(layers=4)
    n = freeze_below(model, 1)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(t.startswith(("model.layers.3.", "model.norm.")) for t in trainable)
    assert n == sum(p.numel() for p in model.model.layers[3].parameters()) + 32
    assert not model.lm_head.weight.requires_grad  # tied to the frozen embeddings
    with pytest.raises(ValueError, match=r"train_top_layers must be in 1\.\.4"):
        freeze_below(model, 5)
    with pytest.raises(ValueError, match="no decoder with a 'layers' block list"):
        decoder_blocks(torch.nn.Linear(2, 2))


def test_train_top_layers_option_is_validated(tmp_path):
    base = dict(model="m", data="d", out=str(tmp_path))
    with pytest.raises(ValueError, match="--lora-r and --train-top-layers exclude each other"):
        UnlearnConfig(**base, lora_r=4, train_top_layers=2)
    with pytest.raises(ValueError, match="train_top_layers must be"):
        UnlearnConfig(**base, train_top_layers=-1)


@given(seed=st.integers(0, 2**16), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_packed_functions_equal_the_full_logits_ones(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    b, t, v = 3, 7, 11
    logits = (3 * torch.randn(b, t, v, generator=g, dtype=torch.float64)).to(dtype)
    ref = (3 * torch.randn(b, t, v, generator=g, dtype=torch.float64)).to(dtype)
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[torch.rand(b, t, generator=g) < 0.4] = -100
    rows, cols, targets = answer_targets(labels)
    assert torch.equal(torch.bincount(rows, minlength=b), next_token_mask(labels).sum(-1))
    full = logits.clone().requires_grad_()
    lp, n = sequence_logprobs(full, labels)
    lp.sum().backward()
    packed = logits[rows, cols].clone().requires_grad_()
    plp, pn = packed_sequence_logprobs(packed, targets, rows, b)
    plp.sum().backward()
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert torch.equal(n, pn)
    torch.testing.assert_close(plp, lp, rtol=tol, atol=tol)
    torch.testing.assert_close(packed.grad, full.grad[rows, cols], rtol=tol, atol=tol)
    hits, counted = packed_greedy_matches(logits[rows, cols], targets, rows, b)
    assert torch.equal(hits, greedy_matches(logits, labels)[0]) and torch.equal(counted, n)
    first = torch.tensor([1, 2, 0])
    hits2, counted2 = packed_greedy_matches(logits[rows, cols], targets, rows, b, first=first)
    assert torch.equal(counted2, torch.minimum(n, first))
    for r in range(b):  # the first tokens of each answer only
        mask = next_token_mask(labels)[r]
        top = logits[r].argmax(-1)[mask][: int(first[r])]
        want = (top == labels[r, 1:][mask[:-1]][: int(first[r])]).sum()
        assert int(hits2[r]) == int(want)
    kl = token_kl(logits, ref, next_token_mask(labels))
    pkl = packed_token_kl(logits[rows, cols], ref[rows, cols], rows, b)
    torch.testing.assert_close(pkl, kl, rtol=tol, atol=tol)


def test_packed_logprobs_validate_shapes():
    with pytest.raises(ValueError, match=r"packed logits \(M, V\)"):
        packed_sequence_logprobs(torch.zeros(2, 3, 4), torch.zeros(2), torch.zeros(2), 1)
