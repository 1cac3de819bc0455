"""Gradient descent in discrete time: the exact recursions and their distance to the flows.

Constant tangent kernel (:mod:`theory.flows`), step ``lr``, ``u_0 = 0``:

- GA: ``u_{n+1} = u_n - lr K``, so ``u_n = -lr K n = u(lr n)``: discrete and flow coincide.
- NPO: ``u_{n+1} = u_n - 2 lr K sigmoid(beta u_n)``. **Bound** (for every ``lr > 0``, no step
  condition): ``0 <= u(lr n) - u_n <= lr K (1 - W(u(lr n))) < lr K``, ``W = 2 sigmoid(beta u)``.
  Proof: ``H(u) = u - e^{-beta u}/beta`` decreases by exactly ``2K`` per unit flow time and, as
  ``H' = 1 + e^{-beta u}`` is decreasing in ``u``, by at least ``2 lr K`` per step, so
  ``H(u_n) <= H(u(lr n))``: the iterates run ahead (``u_n <= u(lr n)``). For the gap ``e_n``,
  the Euler map ``u -> u + lr f(u)`` has slope ``1 + lr f' <= 1`` (``f = -2K sigmoid(beta u)`` is
  decreasing) and the flow is convex (``u'' = f' f >= 0``), so
  ``e_{n+1} <= e_n + lr (u'(t_{n+1}) - u'(t_n))``, which telescopes to ``lr (u'(t_n) - u'(0))``.

One logistic sample (:mod:`theory.logistic_flow`), ``k = eta ||x||^2``, one step per unit time:

- GA: ``z_{n+1} = z_n - k sigmoid(-z_n)``. **Bound** (any ``k``):
  ``0 <= z_n - z(n) <= k (e^{z0} - e^{z_n}) < k e^{z0}``: ``H(z) = z + e^z`` drops by exactly
  ``k`` per unit time and per step by between ``k (1 - (e^{z_n} - e^{z_{n+1}}))`` and ``k``,
  and ``H' >= 1``.
- NPO: ``z_{n+1} = z_n - k W(z_n) sigmoid(-z_n)``. **Bound** when ``p0 <= beta/(beta+2)`` (then
  the velocity ``g(z) = -k W sigmoid(-z)`` is increasing in ``z`` on ``z <= z0``: the flow is
  contracting and convex) and ``2 k max(beta, 1) <= 1`` (then the Euler map is increasing, as
  ``|g'| <= 2k max(beta, 1)``): ``0 <= z(n) - z_n <= k (1 - p0)``, by the same telescoping as
  the constant kernel. Outside these conditions (large ``p0``: an early GA-like, expanding
  phase) no bound is claimed and :func:`logistic_npo_gd_gap_bound` raises.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit

from theory._validate import finite, positive, positive_int, scalar_out
from theory.flows import npo_weight_along_flow

__all__ = [
    "ga_log_ratio_gd",
    "logistic_ga_gd",
    "logistic_ga_gd_gap_bound",
    "logistic_npo_gd",
    "logistic_npo_gd_gap_bound",
    "npo_gd_gap_bound",
    "npo_log_ratio_gd",
]


def _scalar(name: str, arr: np.ndarray) -> float:
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    return float(arr)


def ga_log_ratio_gd(n_steps: int, *, K, lr) -> np.ndarray:
    """GA iterates ``u_n = -lr K n`` for ``n = 0..n_steps`` (exactly the flow at ``t = lr n``)."""
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    K = _scalar("K", positive("K", K))
    lr = _scalar("lr", positive("lr", lr))
    return -lr * K * np.arange(n_steps + 1, dtype=np.float64)


def npo_log_ratio_gd(n_steps: int, *, beta, K, lr) -> np.ndarray:
    """NPO gradient-descent iterates ``u_{n+1} = u_n - 2 lr K sigmoid(beta u_n)``, ``u_0 = 0``,
    for ``n = 0..n_steps``. ``beta``, ``K``, ``lr`` may be arrays (broadcast); the result has
    shape ``(n_steps + 1, *broadcast_shape)``."""
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    beta, K, lr = np.broadcast_arrays(positive("beta", beta), positive("K", K), positive("lr", lr))
    u = np.zeros((n_steps + 1, *beta.shape))
    for n in range(n_steps):
        u[n + 1] = u[n] - 2.0 * lr * K * expit(beta * u[n])
    return u


def npo_gd_gap_bound(n, *, beta, K, lr) -> np.ndarray | float:
    """Upper bound on ``u(lr n) - u_n`` (which is ``>= 0``): ``lr K (1 - W(u(lr n)))``."""
    n = finite("n", n)
    if np.any(n < 0):
        raise ValueError("n must be nonnegative")
    K = positive("K", K)
    lr = positive("lr", lr)
    return scalar_out(lr * K * (1.0 - npo_weight_along_flow(lr * n, beta=beta, K=K)))


def logistic_ga_gd(n_steps: int, *, z0, k) -> np.ndarray:
    """GA iterates on one logistic sample, ``z_{n+1} = z_n - k sigmoid(-z_n)``, ``n = 0..n_steps``
    (``z0``, ``k`` broadcast; shape ``(n_steps + 1, *shape)``)."""
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    z0, k = np.broadcast_arrays(finite("z0", z0), positive("k", k))
    z = np.empty((n_steps + 1, *z0.shape))
    z[0] = z0
    for n in range(n_steps):
        z[n + 1] = z[n] - k * expit(-z[n])
    return z


def logistic_ga_gd_gap_bound(z_n, *, z0, k) -> np.ndarray | float:
    """Upper bound on ``z_n - z(n)`` (which is ``>= 0``) given the iterate ``z_n``:
    ``k (e^{z0} - e^{z_n})``."""
    z_n = finite("z_n", z_n)
    z0 = finite("z0", z0)
    k = positive("k", k)
    return scalar_out(k * (np.exp(z0) - np.exp(np.minimum(z_n, z0))))


def logistic_npo_gd(n_steps: int, *, z0, k, beta) -> np.ndarray:
    """NPO iterates on one logistic sample, ``z_{n+1} = z_n - k W(z_n) sigmoid(-z_n)`` with
    ``W = 2 sigmoid(beta (log sigmoid(z_n) - log sigmoid(z0)))``; shape ``(n_steps + 1, *shape)``."""
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    z0, k, beta = np.broadcast_arrays(finite("z0", z0), positive("k", k), positive("beta", beta))
    lp0 = log_expit(z0)
    z = np.empty((n_steps + 1, *z0.shape))
    z[0] = z0
    for n in range(n_steps):
        w = 2.0 * expit(beta * (log_expit(z[n]) - lp0))
        z[n + 1] = z[n] - k * w * expit(-z[n])
    return z


def logistic_npo_gd_gap_bound(*, z0, k, beta) -> float:
    """``k (1 - p0)``: bound on ``|z(n) - z_n|`` for all ``n``, proven when
    ``p0 <= beta/(beta+2)`` and ``2 k max(beta, 1) <= 1`` (module docstring); ``ValueError``
    naming the failed condition otherwise."""
    z0 = _scalar("z0", finite("z0", z0))
    k = _scalar("k", positive("k", k))
    beta = _scalar("beta", positive("beta", beta))
    p0 = float(expit(z0))
    if p0 > beta / (beta + 2.0):
        raise ValueError(
            f"no bound proven for p0 = sigmoid(z0) = {p0:.4g} > beta/(beta+2) = "
            f"{beta / (beta + 2.0):.4g} (the flow starts in an expanding, GA-like phase)"
        )
    if 2.0 * k * max(beta, 1.0) > 1.0:
        raise ValueError(f"no bound proven for k = {k:g}: needs 2 k max(beta, 1) <= 1")
    return k * (1.0 - p0)
