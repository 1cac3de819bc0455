"""Batched first-order optimizers on parameters shaped ``(G, S, k)``.

One group per method setting ``G``, one run per seed ``S``. Each group has its own learning
rate; every update is elementwise, so runs never interact. Pure functions of
``(state, grad)``.

- ``gd``: ``theta -= lr * g`` (full-batch gradient descent, or SGD with mini-batches).
- ``momentum``: heavy ball, ``v = mu v + g``, ``theta -= lr * v`` (``mu = 0.9``).
- ``adam``: Kingma & Ba with bias correction (``beta1 = 0.9``, ``beta2 = 0.999``,
  ``eps = 1e-8``), no weight decay.
- ``signgd``: ``theta -= lr * sign(g)`` (Adam's ``beta1 = beta2 = 0``, ``eps -> 0`` limit).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["OPTIMIZERS", "init_state", "update"]

MOMENTUM = 0.9
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def _gd(theta: Tensor, g: Tensor, lr: Tensor, state: dict, step: int) -> Tensor:
    return theta - lr * g


def _momentum(theta: Tensor, g: Tensor, lr: Tensor, state: dict, step: int) -> Tensor:
    state["v"] = MOMENTUM * state.get("v", torch.zeros_like(g)) + g
    return theta - lr * state["v"]


def _adam(theta: Tensor, g: Tensor, lr: Tensor, state: dict, step: int) -> Tensor:
    b1, b2 = ADAM_BETAS
    state["m"] = b1 * state.get("m", torch.zeros_like(g)) + (1 - b1) * g
    state["v"] = b2 * state.get("v", torch.zeros_like(g)) + (1 - b2) * g * g
    m_hat = state["m"] / (1 - b1**step)
    v_hat = state["v"] / (1 - b2**step)
    return theta - lr * m_hat / (v_hat.sqrt() + ADAM_EPS)


def _signgd(theta: Tensor, g: Tensor, lr: Tensor, state: dict, step: int) -> Tensor:
    return theta - lr * torch.sign(g)


OPTIMIZERS: dict[str, Callable[[Tensor, Tensor, Tensor, dict, int], Tensor]] = {
    "gd": _gd,
    "momentum": _momentum,
    "adam": _adam,
    "signgd": _signgd,
}


def init_state(kinds: list[str]) -> dict[str, dict]:
    """Empty optimizer state, one dict per optimizer kind in use.

    Args:
        kinds: the optimizer of each group (keys of ``OPTIMIZERS``).

    Returns:
        ``{kind: {}}`` for each distinct kind.

    Raises:
        ValueError: for an unknown kind.
    """
    for kind in kinds:
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}; valid: {sorted(OPTIMIZERS)}")
    return {kind: {} for kind in kinds}


def update(
    theta: Tensor, grad: Tensor, lrs: Tensor, kinds: list[str], states: dict[str, dict], step: int
) -> Tensor:
    """One update of every group: group ``i`` moves by optimizer ``kinds[i]`` at rate ``lrs[i]``.

    Args:
        theta: parameters (G, S, k).
        grad: their gradient (G, S, k).
        lrs: learning rates (G,).
        kinds: the optimizer of each group.
        states: from :func:`init_state`, updated in place.
        step: the step number, counting from 1 (Adam's bias correction).

    Returns:
        The new parameters (G, S, k).
    """
    if len(set(kinds)) == 1:
        return OPTIMIZERS[kinds[0]](theta, grad, lrs[:, None, None], states[kinds[0]], step)
    out = torch.empty_like(theta)
    for kind, state in states.items():
        ix = torch.tensor([i for i, k in enumerate(kinds) if k == kind])
        out[ix] = OPTIMIZERS[kind](theta[ix], grad[ix], lrs[ix, None, None], state, step)
    return out
