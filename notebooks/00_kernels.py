# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The NPO kernels in one page
#
# NPO (Zhang et al. 2024, Eq. 3) replaces gradient ascent's loss `log pi` on a forget example by
# `(2/beta) softplus(beta R)` with `R = log pi_theta - log pi_ref`. Its gradient is GA's times an
# adaptive weight `W = 2 sigmoid(beta R)`: 1 at the start, vanishing once the example is
# unlearned. This notebook evaluates the project's kernels (`npo.losses`) directly.
#
# About 3 seconds on 2 CPU cores (2 s of CPU); `NPO_FAST=1` (the test suite) uses a coarser
# grid.

# %%
import os

import numpy as np
import torch

from npo.landscape import LandscapeConfig, plot_landscape, run_landscape
from npo.losses import npo_loss, npo_weight

FAST = os.environ.get("NPO_FAST", "0") == "1"
data = run_landscape(LandscapeConfig(points=201 if FAST else 2001))
fig = plot_landscape(data)

# %% [markdown]
# The gradient weight taken by autograd through `npo_loss` is the closed form `npo_weight`,
# and equals 1 at `R = 0` for every beta: the first NPO step is a GA step.

# %%
r = torch.as_tensor(data.log_ratio)
for i, beta in enumerate(data.config.betas):
    closed = npo_weight(r, torch.zeros_like(r), beta=beta).numpy()
    assert np.allclose(data.npo_weight[i], closed, rtol=1e-12)
zero = torch.zeros(1, dtype=torch.float64)
assert all(npo_weight(zero, zero, beta=b).item() == 1.0 for b in data.config.betas)

# %% [markdown]
# Proposition 1: as beta -> 0, `L - 2 ln2 / beta -> R` (GA); as beta -> inf, `L -> 2 max(R, 0)`.

# %%
R = torch.linspace(-5, 5, 11, dtype=torch.float64)
gaps = [
    (npo_loss(R, torch.zeros_like(R), beta=b) - 2 * np.log(2) / b - R).abs().max().item()
    for b in (1e-1, 1e-2, 1e-3)
]
print("max |L - 2ln2/beta - R| for beta = 0.1, 0.01, 0.001:", gaps)
assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-2
hinge = (npo_loss(R, torch.zeros_like(R), beta=1e3) - 2 * R.clamp(min=0)).abs().max().item()
assert hinge <= 2 * np.log(2) / 1e3

# %% [markdown]
# ## What we saw
#
# - Autograd through `npo_loss` gives exactly the closed-form weight `W = 2 sigmoid(beta R)`,
#   and `W = 1` at the reference: NPO's first step is a GA step, whatever beta.
# - As the example is unlearned (`R -> -inf`) the weight vanishes, so NPO's push slows down;
#   GA's weight stays 1.
# - Proposition 1: small beta gives GA back, large beta a hinge `2 max(R, 0)`.
