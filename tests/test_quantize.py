"""Weight-only RTN quantization: against an independent float64 numpy computation and a
hand-worked example, grids that map onto themselves, and the update-to-step ratio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from npo.llm.attacks.quantize import (
    grid_error,
    linear_weights,
    quantization_step,
    quantize_model,
    rtn_codes,
    rtn_quantize,
    update_to_step_ratio,
)


def _numpy_rtn(w: np.ndarray, bits: int, group: int | None) -> np.ndarray:
    # independent: a loop over rows and groups, float64
    out = np.empty_like(w, dtype=np.float64)
    levels = 2**bits - 1
    for r in range(w.shape[0]):
        g = w.shape[1] if group is None else group
        for a in range(0, w.shape[1], g):
            x = w[r, a : a + g].astype(np.float64)
            lo, hi = x.min(), x.max()
            if hi == lo:
                out[r, a : a + g] = x
                continue
            s = (hi - lo) / levels
            q = np.clip(np.floor((x - lo) / s + 0.5), 0, levels)  # ties away: none occur here
            out[r, a : a + g] = lo + q * s
    return out


def test_hand_worked_example():
    w = torch.tensor([[0.0, 1.0, 2.0, 3.4], [-1.0, -1.0, -1.0, -1.0]], dtype=torch.float64)
    assert rtn_codes(w, 2, None).tolist() == [[0, 1, 2, 3], [0, 0, 0, 0]]
    # row 0, 2 bits: lo 0, step 3.4 / 3; (w - lo) / step = [0, 0.88, 1.76, 3] -> q = [0, 1, 2, 3]
    s = 3.4 / 3
    want = torch.tensor([[0.0, s, 2 * s, 3.4], [-1.0, -1.0, -1.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(rtn_quantize(w, 2, None), want, rtol=0, atol=1e-15)
    torch.testing.assert_close(quantization_step(w, 2, 4)[0], torch.full((4,), s, dtype=w.dtype))
    assert quantization_step(w, 2, 4)[1].eq(0).all()  # a constant group keeps its value
    # groups of 2: [0, 1] and [2, 3.4] each sit on their own 2-bit grid exactly
    torch.testing.assert_close(rtn_quantize(w, 2, 2)[0], w[0], rtol=0, atol=1e-15)


@pytest.mark.parametrize(("bits", "group"), [(8, 32), (4, 32), (4, None), (4, 24), (3, 7)])
def test_matches_numpy_float64(bits, group):
    g = torch.Generator().manual_seed(bits)
    w = torch.randn(6, 80, generator=g, dtype=torch.float64)
    got = rtn_quantize(w, bits, group).numpy()
    np.testing.assert_allclose(got, _numpy_rtn(w.numpy(), bits, group), rtol=0, atol=1e-12)
    w32 = w.float()
    err = np.abs(rtn_quantize(w32, bits, group).double().numpy() - w.numpy())
    step = quantization_step(w32, bits, group).double().numpy()
    assert (err <= step / 2 + 1e-6).all()  # round to nearest: at most half a step
    assert rtn_quantize(w32, bits, group).dtype == torch.float32


def test_q4_1_grid_maps_onto_itself_and_a_coarser_grid_does_not():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 128, generator=g)
    on_grid = rtn_quantize(w, 4, 32)  # what a Q4_1 (groups of 32) model holds
    assert grid_error(on_grid, 4, 32) < 1e-4
    torch.testing.assert_close(rtn_quantize(on_grid, 4, 32), on_grid, rtol=0, atol=1e-6)
    assert grid_error(on_grid, 4, None) > 0.1  # per channel: another grid
    assert grid_error(on_grid, 4, 128) > 0.1


def test_model_quantization_and_ratio():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=40,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    target = LlamaForCausalLM(cfg)
    names = [n for n, _ in linear_weights(target)]
    assert "lm_head.weight" not in names and len(names) == 7
    embed = target.get_input_embeddings().weight.clone()
    unlearned = LlamaForCausalLM(cfg)
    unlearned.load_state_dict(target.state_dict())
    steps = {n: quantization_step(p, 4, 32) for n, p in linear_weights(target)}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move every weight by a tenth of its 4-bit step times N(0, 1)
        for n, p in linear_weights(unlearned):
            p.add_(0.1 * steps[n] * torch.randn(p.shape, generator=g))
    ratio = update_to_step_ratio(unlearned, target, bits=4, group_size=32)
    assert ratio["median_ratio"] == pytest.approx(0.1 * 0.6745, rel=0.05)  # median |N(0, 1)|
    # every group's minimum and maximum moved (the grid moved); few codes changed
    assert ratio["moved_grids"] == 1.0 and 0 < ratio["changed_codes"] < 0.3
    same = update_to_step_ratio(target, target, bits=4, group_size=32)
    assert same == {
        "median_ratio": 0.0,
        "mean_ratio": 0.0,
        "changed_codes": 0.0,
        "moved_grids": 0.0,
    }
    report = quantize_model(unlearned, 4, 32)
    assert report["n_tensors"] == 7 and report["on_grid_error"] > 0
    assert torch.equal(unlearned.get_input_embeddings().weight, embed)  # embeddings untouched
    assert quantize_model(unlearned, 4, 32)["on_grid_error"] < 1e-4  # now on the grid
    with pytest.raises(ValueError, match="bits"):
        rtn_quantize(torch.zeros(2, 2), 1, None)
