"""Logits -> log-probs: chunked autograd functions against naive references."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from npo.logprobs import (
    class_kl,
    class_logprobs,
    sequence_logprobs,
    token_kl,
    token_logprobs,
)

shapes = st.tuples(st.integers(1, 4), st.integers(2, 9), st.integers(2, 40))


def _inputs(seed, b, t, v, dtype, mask_p=0.3):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(b, t, v, generator=g, dtype=torch.float64)).to(dtype)
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[torch.rand(b, t, generator=g) < mask_p] = -100
    return logits, labels


def naive_sequence(logits, labels):
    shifted = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], -100)], 1)
    mask = shifted != -100
    lp = torch.log_softmax(logits, -1).gather(-1, shifted.clamp(min=0)[..., None])[..., 0]
    return (lp * mask).sum(-1), mask.sum(-1)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@given(shape=shapes, seed=st.integers(0, 2**16), chunk=st.sampled_from([None, 1, 3]))
def test_sequence_logprobs_matches_naive(dtype, tol, shape, seed, chunk):
    logits, labels = _inputs(seed, *shape, dtype)
    weights = torch.randn(shape[0], dtype=dtype)
    a = logits.clone().requires_grad_()
    lp, n = sequence_logprobs(a, labels, chunk_rows=chunk)
    (lp * weights).sum().backward()
    b = logits.clone().requires_grad_()
    lp2, n2 = naive_sequence(b, labels)
    (lp2 * weights).sum().backward()
    assert torch.equal(n, n2)
    assert torch.allclose(lp.to(dtype), lp2, rtol=tol, atol=tol)
    assert torch.allclose(a.grad, b.grad, rtol=tol, atol=tol)


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_masking_a_token_equals_removing_it(shape, seed):
    b, t, v = shape
    logits, labels = _inputs(seed, b, t, v, torch.float64, mask_p=0.0)
    k = seed % t
    masked = labels.clone()
    masked[:, k] = -100
    keep = [i for i in range(t) if i != k]
    x = logits.clone().requires_grad_()
    full = token_logprobs(x, masked).sum(-1)
    full.sum().backward()
    removed = token_logprobs(logits[:, keep], labels[:, keep]).sum(-1)
    assert torch.allclose(full, removed, rtol=1e-12, atol=1e-12)
    assert torch.count_nonzero(x.grad[:, k]) == 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_low_precision_logits_use_float32_arithmetic(dtype, shape, seed):
    logits, labels = _inputs(seed, *shape, dtype)
    lp, _ = sequence_logprobs(logits, labels)
    assert lp.dtype == torch.float32
    ref, _ = naive_sequence(logits.float(), labels)  # float32 math on the rounded values
    assert torch.allclose(lp, ref, rtol=1e-4, atol=1e-4)
    x = logits.clone().requires_grad_()
    sequence_logprobs(x, labels)[0].sum().backward()
    y = logits.float().requires_grad_()
    naive_sequence(y, labels)[0].sum().backward()
    assert x.grad.dtype == dtype
    assert torch.allclose(x.grad.float(), y.grad.to(dtype).float(), rtol=1e-2, atol=1e-2)


def naive_kl(pol, ref, mask, direction):
    lp, lq = torch.log_softmax(pol, -1), torch.log_softmax(ref, -1)
    if direction == "ref||policy":
        kl = (lq.exp() * (lq - lp)).sum(-1)
    else:
        kl = (lp.exp() * (lp - lq)).sum(-1)
    return (kl * mask).sum(-1)


@pytest.mark.parametrize("direction", ["ref||policy", "policy||ref"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@given(shape=shapes, seed=st.integers(0, 2**16), chunk=st.sampled_from([None, 2]))
def test_token_kl_matches_naive(direction, dtype, tol, shape, seed, chunk):
    pol, labels = _inputs(seed, *shape, dtype)
    ref, _ = _inputs(seed + 1, *shape, dtype)
    mask = labels != -100
    w = torch.randn(shape[0], dtype=dtype)
    a = pol.clone().requires_grad_()
    kl = token_kl(a, ref, mask, direction=direction, chunk_rows=chunk)
    (kl * w).sum().backward()
    b = pol.clone().requires_grad_()
    kl2 = naive_kl(b, ref, mask, direction)
    (kl2 * w).sum().backward()
    assert torch.allclose(kl.to(dtype), kl2, rtol=tol, atol=tol)
    assert torch.allclose(a.grad, b.grad, rtol=tol, atol=tol)
    assert bool((kl >= -tol).all())


@given(shape=shapes, seed=st.integers(0, 2**16))
def test_token_kl_bf16_uses_float32_arithmetic(shape, seed):
    pol, labels = _inputs(seed, *shape, torch.bfloat16)
    ref, _ = _inputs(seed + 1, *shape, torch.bfloat16)
    mask = labels != -100
    kl = token_kl(pol, ref, mask)
    assert torch.allclose(
        kl, naive_kl(pol.float(), ref.float(), mask, "ref||policy"), rtol=1e-4, atol=1e-4
    )


def test_token_kl_is_zero_against_itself():
    pol, labels = _inputs(0, 2, 5, 7, torch.float64)
    x = pol.clone().requires_grad_()
    kl = token_kl(x, pol, labels != -100)
    kl.sum().backward()
    assert torch.allclose(kl, torch.zeros(2, dtype=torch.float64), atol=1e-14)
    assert torch.allclose(x.grad, torch.zeros_like(x.grad), atol=1e-14)


def test_class_logprobs_binary_and_multiclass():
    z = torch.tensor([0.0, 2.0, -3.0], dtype=torch.float64)
    y = torch.tensor([1, 0, 0])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = torch.tensor(
        [math.log(0.5), math.log(1 - sig(2.0)), math.log(sig(3.0))], dtype=torch.float64
    )
    assert torch.allclose(class_logprobs(z, y), expected, rtol=1e-12)
    logits = torch.randn(4, 5, dtype=torch.float64)
    lab = torch.tensor([0, 4, 2, 1])
    assert torch.allclose(
        class_logprobs(logits, lab), torch.log_softmax(logits, -1)[torch.arange(4), lab]
    )


def test_class_kl_binary():
    p = torch.tensor([0.3, -1.0], dtype=torch.float64)
    q = torch.tensor([1.0, -1.0], dtype=torch.float64)
    sp, sq = torch.sigmoid(p), torch.sigmoid(q)
    expected = sq * torch.log(sq / sp) + (1 - sq) * torch.log((1 - sq) / (1 - sp))
    assert torch.allclose(class_kl(p, q), expected, rtol=1e-12)
    assert torch.allclose(class_kl(q, p, direction="policy||ref"), expected, rtol=1e-12)


def test_bad_input_messages():
    logits = torch.randn(2, 3, 5)
    with pytest.raises(ValueError, match="label 7 is outside the vocabulary of size 5"):
        sequence_logprobs(logits, torch.tensor([[0, 7, 1], [1, 2, 3]]))
    with pytest.raises(ValueError, match=r"expects logits \(B, T, V\) and labels \(B, T\)"):
        sequence_logprobs(logits, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="do not match"):
        token_logprobs(logits, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be integer"):
        token_logprobs(logits, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="token_kl shape mismatch"):
        token_kl(logits, logits[:, :2], torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="direction"):
        token_kl(logits, logits, torch.ones(2, 3, dtype=torch.bool), direction="forward")
    with pytest.raises(ValueError, match=r"labels in \{0, 1\}"):
        class_logprobs(torch.zeros(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="fit neither"):
        class_logprobs(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
        token_logprobs(logits, torch.zeros(2, 3, dtype=torch.long), chunk_rows=0)


@pytest.mark.parametrize("direction", ["ref||policy", "policy||ref"])
def test_token_kl_with_masked_vocabulary_entries(direction):
    """Logits of -inf (masked vocabulary entries) on either side give finite KL and gradient."""
    pol = torch.randn(2, 3, 6, dtype=torch.float64)
    ref = torch.randn(2, 3, 6, dtype=torch.float64)
    pol[..., 0] = ref[..., 0] = float("-inf")  # masked on both sides
    mask = torch.ones(2, 3, dtype=torch.bool)
    x = pol.clone().requires_grad_()
    kl = token_kl(x, ref, mask, direction=direction)
    kl.sum().backward()
    expected = naive_kl(pol[..., 1:], ref[..., 1:], mask, direction)
    assert torch.allclose(kl, expected, rtol=1e-12)
    assert torch.isfinite(x.grad[..., 1:]).all() and (x.grad[..., 0] == 0).all()


def test_greedy_matches_counts_argmax_hits_on_the_shifted_labels():
    from npo.logprobs import greedy_matches, next_token_mask

    torch.manual_seed(0)
    logits = torch.randn(3, 6, 7)
    labels = torch.randint(0, 7, (3, 6))
    labels[:, :2] = -100
    labels[2, 4:] = -100
    hits, n = greedy_matches(logits, labels)
    top = logits.argmax(-1)
    for b in range(3):
        want = [int(top[b, t] == labels[b, t + 1]) for t in range(5) if labels[b, t + 1] != -100]
        assert int(hits[b]) == sum(want) and int(n[b]) == len(want)
    assert torch.equal(n, next_token_mask(labels).sum(-1))


def test_all_hits_means_greedy_decoding_reproduces_the_answer():
    from transformers import LlamaConfig, LlamaForCausalLM

    from npo.logprobs import greedy_matches

    config = LlamaConfig(
        vocab_size=40,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(1)
    model = LlamaForCausalLM(config).eval()
    prompt = torch.tensor([[3, 9, 4]])
    with torch.no_grad():
        greedy = model.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=0)
        ids = greedy.clone()
        labels = ids.clone()
        labels[:, :3] = -100
        hits, n = greedy_matches(model(ids).logits, labels)
        assert int(hits[0]) == int(n[0]) == 5
        other = ids.clone()
        other[0, 5] = (other[0, 5] + 1) % 40  # an answer greedy decoding would not produce
        labels[0, 5] = other[0, 5]
        hits, n = greedy_matches(model(other).logits, labels)
        assert int(hits[0]) < int(n[0])
