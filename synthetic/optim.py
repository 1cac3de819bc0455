"""Batched first-order optimizers on parameters shaped ``(G, S, k)``.

One group per method setting ``G``, one run per seed ``S``. Each group has its own learning
rate (and Adam's ``eps``); every update is elementwise, so runs never interact. Pure functions
of ``(state, grad)``. :func:`adam_stats` reads Adam's state: the regime statistics ``q`` and
``rho`` of :func:`theory.horizon.adam_regime`.

- ``gd``: ``theta -= lr * g`` (full-batch gradient descent, or SGD with mini-batches).
- ``momentum``: heavy ball, ``v = mu v + g``, ``theta -= lr * v`` (``mu = 0.9``).
- ``adam``: Kingma & Ba with bias correction (``beta1 = 0.9``, ``beta2 = 0.999``,
  ``eps`` per group, default ``1e-8``), no weight decay.
- ``signgd``: ``theta -= lr * sign(g)`` (Adam's ``beta1 = beta2 = 0``, ``eps -> 0`` limit).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["ADAM_EPS", "OPTIMIZERS", "adam_stats", "init_state", "update"]

MOMENTUM = 0.9
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def _gd(theta: Tensor, g: Tensor, lr: Tensor, eps: Tensor, state: dict, step: int) -> Tensor:
    return theta - lr * g


def _momentum(theta: Tensor, g: Tensor, lr: Tensor, eps: Tensor, state: dict, step: int) -> Tensor:
    state["v"] = MOMENTUM * state.get("v", torch.zeros_like(g)) + g
    return theta - lr * state["v"]


def _adam(theta: Tensor, g: Tensor, lr: Tensor, eps: Tensor, state: dict, step: int) -> Tensor:
    b1, b2 = ADAM_BETAS
    state["m"] = b1 * state.get("m", torch.zeros_like(g)) + (1 - b1) * g
    state["v"] = b2 * state.get("v", torch.zeros_like(g)) + (1 - b2) * g * g
    state["step"] = step
    m_hat = state["m"] / (1 - b1**step)
    v_hat = state["v"] / (1 - b2**step)
    return theta - lr * m_hat / (v_hat.sqrt() + eps)


def _signgd(theta: Tensor, g: Tensor, lr: Tensor, eps: Tensor, state: dict, step: int) -> Tensor:
    return theta - lr * torch.sign(g)


OPTIMIZERS: dict[str, Callable[[Tensor, Tensor, Tensor, Tensor, dict, int], Tensor]] = {
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
    theta: Tensor,
    grad: Tensor,
    lrs: Tensor,
    kinds: list[str],
    states: dict[str, dict],
    step: int,
    eps: Tensor | None = None,
) -> Tensor:
    """One update of every group: group ``i`` moves by optimizer ``kinds[i]`` at rate ``lrs[i]``.

    Args:
        theta: parameters (G, S, k).
        grad: their gradient (G, S, k).
        lrs: learning rates (G,).
        kinds: the optimizer of each group.
        states: from :func:`init_state`, updated in place.
        step: the step number, counting from 1 (Adam's bias correction).
        eps: Adam's ``eps`` per group (G,); None for ``ADAM_EPS`` everywhere.

    Returns:
        The new parameters (G, S, k).
    """
    if eps is None:
        eps = torch.full_like(lrs, ADAM_EPS)
    if len(set(kinds)) == 1:
        kind = kinds[0]
        return OPTIMIZERS[kind](
            theta, grad, lrs[:, None, None], eps[:, None, None], states[kind], step
        )
    out = torch.empty_like(theta)
    for kind, state in states.items():
        ix = torch.tensor([i for i, k in enumerate(kinds) if k == kind])
        out[ix] = OPTIMIZERS[kind](
            theta[ix], grad[ix], lrs[ix, None, None], eps[ix, None, None], state, step
        )
    return out


def adam_stats(
    state: dict, eps: Tensor, betas: tuple[float, float] = ADAM_BETAS
) -> tuple[Tensor, Tensor, Tensor]:
    """Adam's regime statistics ``q``, ``rho`` and its largest step per run, from its state.

    With the bias-corrected averages ``m^``, ``v^`` of each coordinate ``j``:
    ``q = sum_j |m^_j| q_j / sum_j |m^_j|``, ``q_j = sqrt(v^_j) / (sqrt(v^_j) + eps)`` (the
    update-weighted share of the step that is normalized: 1 sign-like, 0 ``eps``-dominated)
    and ``rho = mean_j |m^_j| / sqrt(v^_j)`` (the step per coordinate over ``lr`` while
    ``eps`` is negligible); :func:`theory.horizon.adam_regime` names the regime. ``step_max =
    max_j |m^_j| / (sqrt(v^_j) + eps)`` is the largest coordinate's step over ``lr``: at most
    about 1 while the gradient changes slowly, far above 1 when it jumps after the second
    moment has decayed.

    Args:
        state: the ``adam`` state of :func:`update`: ``m``, ``v`` of shape (G_adam, S, k)
            and ``step``, the number of updates so far.
        eps: ``eps`` of those groups, (G_adam,).
        betas: Adam's ``(beta1, beta2)``.

    Returns:
        ``(q, rho, step_max)``, each (G_adam, S); NaN before the first step.
    """
    if "m" not in state:
        nan = torch.full((eps.shape[0], 1), float("nan"), dtype=eps.dtype)
        return nan, nan, nan
    b1, b2 = betas
    step = state["step"]
    m_hat = (state["m"] / (1 - b1**step)).abs()
    root_v = (state["v"] / (1 - b2**step)).sqrt()
    q_j = root_v / (root_v + eps[:, None, None])
    q = (m_hat * q_j).sum(-1) / m_hat.sum(-1).clamp_min(torch.finfo(m_hat.dtype).tiny)
    rho = (m_hat / root_v.clamp_min(torch.finfo(root_v.dtype).tiny)).mean(-1)
    step_max = (m_hat / (root_v + eps[:, None, None])).amax(-1)
    return q, rho, step_max
