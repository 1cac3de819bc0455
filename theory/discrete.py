"""Gradient descent in discrete time: the exact recursions and their distance to the flows.

For the constant tangent kernel (:mod:`theory.flows`) GA's iterates coincide with its flow
and NPO's run ahead of theirs by less than ``lr K``, for every step size. For one logistic
sample (:mod:`theory.logistic_flow`) GA's iterates lag their flow by less than ``k e^{z0}``,
and NPO's run ahead by at most ``k (1 - p0)`` under two stated conditions. The proofs are on
the page :doc:`/theory/discrete`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
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
    # a 0-d array as a float, or ValueError naming the argument
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    return float(arr)


def ga_log_ratio_gd(n_steps: int, *, K: ArrayLike, lr: ArrayLike) -> np.ndarray:
    """GA's gradient-descent iterates ``u_n = -lr K n``: exactly its flow at ``t = lr n``.

    Args:
        n_steps: number of steps ``>= 0``.
        K: squared gradient norm ``> 0`` (a scalar).
        lr: step size ``> 0`` (a scalar).

    Returns:
        ``u_n`` for ``n = 0..n_steps``, shape ``(n_steps + 1,)``.
    """
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    K = _scalar("K", positive("K", K))
    lr = _scalar("lr", positive("lr", lr))
    return -lr * K * np.arange(n_steps + 1, dtype=np.float64)


def npo_log_ratio_gd(n_steps: int, *, beta: ArrayLike, K: ArrayLike, lr: ArrayLike) -> np.ndarray:
    """NPO's gradient-descent iterates ``u_{n+1} = u_n - 2 lr K sigmoid(beta u_n)``, ``u_0 = 0``.

    Args:
        n_steps: number of steps ``>= 0``.
        beta: NPO's inverse temperature ``> 0``.
        K: squared gradient norm ``> 0``.
        lr: step size ``> 0``. ``beta``, ``K``, ``lr`` broadcast.

    Returns:
        ``u_n`` for ``n = 0..n_steps``, shape ``(n_steps + 1, *broadcast_shape)``.
    """
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    beta, K, lr = np.broadcast_arrays(positive("beta", beta), positive("K", K), positive("lr", lr))
    u = np.zeros((n_steps + 1, *beta.shape))
    for n in range(n_steps):
        u[n + 1] = u[n] - 2.0 * lr * K * expit(beta * u[n])
    return u


def npo_gd_gap_bound(
    n: ArrayLike, *, beta: ArrayLike, K: ArrayLike, lr: ArrayLike
) -> np.ndarray | float:
    """The bound ``lr K (1 - W(u(lr n)))`` on NPO's gap ``u(lr n) - u_n >= 0`` to its flow.

    Args:
        n: step ``>= 0`` (array-like).
        beta: NPO's inverse temperature ``> 0``.
        K: squared gradient norm ``> 0``.
        lr: step size ``> 0``. All four broadcast.

    Returns:
        The bound, a float for scalar inputs, else an array.

    Raises:
        ValueError: if ``n`` is negative.
    """
    n = finite("n", n)
    if np.any(n < 0):
        raise ValueError("n must be nonnegative")
    K = positive("K", K)
    lr = positive("lr", lr)
    return scalar_out(lr * K * (1.0 - npo_weight_along_flow(lr * n, beta=beta, K=K)))


def logistic_ga_gd(n_steps: int, *, z0: ArrayLike, k: ArrayLike) -> np.ndarray:
    """GA's gradient-descent iterates on one logistic sample, ``z_{n+1} = z_n - k sigmoid(-z_n)``.

    Args:
        n_steps: number of steps ``>= 0``.
        z0: initial logit (finite).
        k: ``eta ||x||^2 > 0``. ``z0`` and ``k`` broadcast.

    Returns:
        ``z_n`` for ``n = 0..n_steps``, shape ``(n_steps + 1, *broadcast_shape)``.
    """
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    z0, k = np.broadcast_arrays(finite("z0", z0), positive("k", k))
    z = np.empty((n_steps + 1, *z0.shape))
    z[0] = z0
    for n in range(n_steps):
        z[n + 1] = z[n] - k * expit(-z[n])
    return z


def logistic_ga_gd_gap_bound(z_n: ArrayLike, *, z0: ArrayLike, k: ArrayLike) -> np.ndarray | float:
    """The bound ``k (e^{z0} - e^{z_n})`` on GA's lag ``z_n - z(n) >= 0`` behind its flow.

    Args:
        z_n: the iterate at step ``n``.
        z0: initial logit.
        k: ``eta ||x||^2 > 0``. All three broadcast.

    Returns:
        The bound, a float for scalar inputs, else an array.
    """
    z_n = finite("z_n", z_n)
    z0 = finite("z0", z0)
    k = positive("k", k)
    return scalar_out(k * (np.exp(z0) - np.exp(np.minimum(z_n, z0))))


def logistic_npo_gd(n_steps: int, *, z0: ArrayLike, k: ArrayLike, beta: ArrayLike) -> np.ndarray:
    """NPO's gradient-descent iterates on one logistic sample.

    ``z_{n+1} = z_n - k W(z_n) sigmoid(-z_n)`` with
    ``W = 2 sigmoid(beta (log sigmoid(z_n) - log sigmoid(z0)))``.

    Args:
        n_steps: number of steps ``>= 0``.
        z0: initial logit (finite).
        k: ``eta ||x||^2 > 0``.
        beta: NPO's inverse temperature ``> 0``. ``z0``, ``k``, ``beta`` broadcast.

    Returns:
        ``z_n`` for ``n = 0..n_steps``, shape ``(n_steps + 1, *broadcast_shape)``.
    """
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    z0, k, beta = np.broadcast_arrays(finite("z0", z0), positive("k", k), positive("beta", beta))
    lp0 = log_expit(z0)
    z = np.empty((n_steps + 1, *z0.shape))
    z[0] = z0
    for n in range(n_steps):
        w = 2.0 * expit(beta * (log_expit(z[n]) - lp0))
        z[n + 1] = z[n] - k * w * expit(-z[n])
    return z


def logistic_npo_gd_gap_bound(*, z0: ArrayLike, k: ArrayLike, beta: ArrayLike) -> float:
    """The bound ``k (1 - p0)`` on ``|z(n) - z_n|`` for all ``n``, for NPO on one sample.

    Proven when ``p0 = sigmoid(z0) <= beta/(beta+2)`` and ``2 k max(beta, 1) <= 1``
    (:doc:`/theory/discrete`).

    Args:
        z0: initial logit (a scalar).
        k: ``eta ||x||^2 > 0`` (a scalar).
        beta: NPO's inverse temperature ``> 0`` (a scalar).

    Returns:
        ``k (1 - p0)``.

    Raises:
        ValueError: naming the failed condition when the bound is not proven.
    """
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
