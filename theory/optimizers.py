"""Beyond the paper: GA and NPO under normalized optimizers (sign descent, Adam).

LLM unlearning runs AdamW, not gradient descent. In the constant-tangent-kernel picture of
:mod:`theory.flows` (one forget example, constant gradient ``g = grad_theta u``) sign descent
cancels NPO's weight, so NPO diverges linearly like GA (:func:`signgd_log_ratio`); Adam's
state reduces to a scalar recursion (:func:`adam_log_ratio`) whose NPO rate stays linear,
capped through ``beta2``'s memory (:func:`adam_npo_linear_rate`), until the weighted gradient
falls below ``eps`` (:func:`adam_eps_crossover`) and the logarithmic flow returns. The
assumptions and the derivations are on the page :doc:`/theory/optimizers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq
from scipy.special import log_expit

from npo.validate import unit_interval
from theory._validate import finite, nonnegative, positive, positive_int, scalar_out

__all__ = [
    "AdamTrace",
    "adam_eps_crossover",
    "adam_ga_rate",
    "adam_log_ratio",
    "adam_npo_linear_rate",
    "adam_ratio_lag",
    "signgd_log_ratio",
]


def _grad(grad: ArrayLike) -> np.ndarray:
    # |g_j| of the nonzero entries, flattened
    g = np.abs(finite("grad", grad)).ravel()
    g = g[g > 0]
    if g.size == 0:
        raise ValueError("grad must have at least one nonzero entry")
    return g


def signgd_log_ratio(t: ArrayLike, *, lr: ArrayLike, l1: ArrayLike) -> np.ndarray | float:
    """Sign descent's log-ratio ``u(t) = -lr * l1 * t``, for GA and for NPO at any ``beta``.

    Sign descent ``theta -= lr sign(grad L)`` on any loss with ``dL/du > 0`` moves ``u`` by
    exactly ``-lr ||grad_theta u||_1`` per step (also the sign flow): NPO's weight does not
    enter.

    Args:
        t: steps ``>= 0``.
        lr: step size ``> 0``.
        l1: ``||grad_theta u||_1 > 0``. All three broadcast.

    Returns:
        ``u(t)``, a float for scalar inputs, else an array.
    """
    t = nonnegative("t", t)
    lr = positive("lr", lr)
    l1 = positive("l1", l1)
    return scalar_out(-lr * l1 * t)


@dataclass(frozen=True)
class AdamTrace:
    """Adam in the constant-kernel picture, from :func:`adam_log_ratio`.

    ``steps`` (N+1,), ``log_ratio`` ``u_n`` (N+1,), ``weight`` ``W(u_n)`` (N+1,), and
    ``step_ratio`` ``(u_n - u_{n+1}) / (lr ||g||_1)`` (N,): the step relative to sign
    descent's.
    """

    steps: np.ndarray
    log_ratio: np.ndarray
    weight: np.ndarray
    step_ratio: np.ndarray


def adam_log_ratio(
    n_steps: int,
    *,
    grad: ArrayLike,
    lr: float,
    beta: float | None = None,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> AdamTrace:
    """Exact Adam iterates of the log-ratio ``u`` in the constant-kernel picture, ``u_0 = 0``.

    PyTorch's bias-corrected update. With gradients ``W_n g`` each coordinate's state is
    ``m_j = g_j M_n``, ``v_j = g_j^2 V_n``, so
    ``u_{n+1} - u_n = -lr M^_n sum_j g_j^2 / (|g_j| sqrt(V^_n) + eps)``. The averages are
    kept in log space, so ``eps = 0`` (the sign-descent limit) and ``W`` far below the float
    range are exact. ``n_steps`` Python steps, each ``O(d)``.

    Args:
        n_steps: number of steps ``>= 0``.
        grad: the constant ``grad_theta u`` (any shape; only ``|g_j|`` matter).
        lr: learning rate ``> 0``.
        beta: NPO's inverse temperature, or None for GA.
        beta1: Adam's first-moment decay, in ``[0, 1)``.
        beta2: Adam's second-moment decay, in ``[0, 1)``.
        eps: Adam's ``eps >= 0``.

    Returns:
        The trace of steps, log-ratios, weights and step ratios.
    """
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    g = _grad(grad)
    lr = float(positive("lr", lr))
    b = None if beta is None else float(positive("beta", beta))
    beta1, beta2 = unit_interval("beta1", beta1), unit_interval("beta2", beta2)
    eps = float(nonnegative("eps", eps))
    log_eps_g = (np.log(eps) if eps > 0 else -np.inf) - np.log(g)
    l1 = float(g.sum())
    lb1 = np.log(beta1) if beta1 > 0 else -np.inf
    lb2 = np.log(beta2) if beta2 > 0 else -np.inf
    u = np.zeros(n_steps + 1)
    log_w = np.zeros(n_steps + 1)
    log_m = log_v = -np.inf
    for n in range(n_steps):
        lw = 0.0 if b is None else np.log(2.0) + log_expit(b * u[n])
        log_w[n] = lw
        log_m = np.logaddexp(lb1 + log_m, np.log1p(-beta1) + lw)
        log_v = np.logaddexp(lb2 + log_v, np.log1p(-beta2) + 2.0 * lw)
        log_mhat = log_m - np.log1p(-(beta1 ** (n + 1)))
        half_log_vhat = 0.5 * (log_v - np.log1p(-(beta2 ** (n + 1))))
        step = np.sum(g * np.exp(log_mhat - np.logaddexp(half_log_vhat, log_eps_g)))
        u[n + 1] = u[n] - lr * step
    log_w[n_steps] = 0.0 if b is None else np.log(2.0) + log_expit(b * u[n_steps])
    return AdamTrace(
        steps=np.arange(n_steps + 1, dtype=np.float64),
        log_ratio=u,
        weight=np.exp(log_w),
        step_ratio=-np.diff(u) / (lr * l1),
    )


def adam_ga_rate(*, grad: ArrayLike, lr: float, eps: float = 1e-8) -> float:
    """GA's exact rate under Adam: ``u_n = -rate * n``, ``rate = lr sum_j g_j^2 / (|g_j| + eps)``.

    The rate tends to sign descent's ``lr ||g||_1`` as ``eps -> 0``.

    Args:
        grad: the constant ``grad_theta u`` (any shape).
        lr: learning rate ``> 0``.
        eps: Adam's ``eps >= 0``.

    Returns:
        The rate (decrease of ``u`` per step).
    """
    g = _grad(grad)
    lr = float(positive("lr", lr))
    eps = float(nonnegative("eps", eps))
    return float(lr * np.sum(g * g / (g + eps)))


def adam_ratio_lag(
    delta: ArrayLike, *, beta1: float = 0.9, beta2: float = 0.999
) -> np.ndarray | float:
    """Adam's steady-state ratio ``rho(delta) = M^/sqrt(V^)`` under a geometric decay.

    When the gradient scale decays by ``e^{-delta}`` per step (bias corrections -> 1),
    ``rho = (1-beta1)/(1-beta1 e^delta) * sqrt((1-beta2 e^{2 delta})/(1-beta2))`` for
    ``0 <= delta < -log(beta2)/2``, and 0 beyond (the averages are then dominated by the
    past).

    Args:
        delta: decay per step ``>= 0`` (array-like).
        beta1: Adam's first-moment decay, in ``[0, 1)``.
        beta2: Adam's second-moment decay, in ``[0, 1)``, with ``beta1^2 < beta2``.

    Returns:
        ``rho(delta)``, a float for a scalar, else an array.

    Raises:
        ValueError: for ``beta1^2 >= beta2`` or an argument outside its range.
    """
    delta = nonnegative("delta", delta)
    beta1, beta2 = unit_interval("beta1", beta1), unit_interval("beta2", beta2)
    if beta1**2 >= beta2:
        raise ValueError(f"need beta1^2 < beta2, got beta1={beta1}, beta2={beta2}")
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = 1.0 - beta2 * np.exp(2.0 * delta)
        rho = (1.0 - beta1) / (1.0 - beta1 * np.exp(delta)) * np.sqrt(inside / (1.0 - beta2))
    return scalar_out(np.where(inside > 0, rho, 0.0))


def adam_npo_linear_rate(
    *, lr: float, l1: float, beta: float, beta1: float = 0.9, beta2: float = 0.999
) -> float:
    """NPO's steady linear rate ``c`` under Adam while ``|g_j| W >> eps``.

    ``c`` (the decrease of ``u`` per step) is the root of ``c = lr l1 rho(beta c)``
    (:func:`adam_ratio_lag`). ``c <= lr l1`` (sign descent) and ``c < (1 - beta2)/(2 beta)``
    to first order; both limits are reached in their regimes.

    Args:
        lr: learning rate ``> 0``.
        l1: ``||grad_theta u||_1 > 0``.
        beta: NPO's inverse temperature ``> 0``.
        beta1: Adam's first-moment decay, in ``[0, 1)``.
        beta2: Adam's second-moment decay, in ``[0, 1)``.

    Returns:
        The rate ``c``.
    """
    lr = float(positive("lr", lr))
    l1 = float(positive("l1", l1))
    b = float(positive("beta", beta))
    beta1, beta2 = unit_interval("beta1", beta1), unit_interval("beta2", beta2)
    if beta2 == 0.0:
        return lr * l1  # no memory: sign descent
    c_max = -np.log(beta2) / (2.0 * b)

    def f(c: float) -> float:
        return c - lr * l1 * float(adam_ratio_lag(b * c, beta1=beta1, beta2=beta2))

    return float(brentq(f, 0.0, c_max, xtol=1e-300, rtol=1e-14))


def adam_eps_crossover(*, grad: ArrayLike, beta: float, eps: float = 1e-8) -> float:
    """The log-ratio ``u_x`` below which ``eps`` dominates Adam's denominator for NPO.

    With the adiabatic averages ``M^ = W``, ``sqrt(V^) = W``, the step
    ``lr sum_j |g_j| W / (W + eps/|g_j|)`` is half the sign-descent step ``lr ||g||_1`` at
    ``W = W_x``; ``u_x = logit(W_x / 2) / beta``. For equal ``|g_j| = a``,
    ``u_x = (1/beta) log(eps / (2a - eps))``.

    Args:
        grad: the constant ``grad_theta u`` (any shape).
        beta: NPO's inverse temperature ``> 0``.
        eps: Adam's ``eps > 0``.

    Returns:
        ``u_x``.

    Raises:
        ValueError: if ``eps`` dominates from the start.
    """
    g = _grad(grad)
    b = float(positive("beta", beta))
    eps = float(positive("eps", eps))

    def excess(log_w: float) -> float:
        w = np.exp(log_w)
        return float(np.sum(g * w / (w + eps / g)) - 0.5 * g.sum())

    hi = np.log(2.0) - 1e-15
    if excess(hi) <= 0:
        raise ValueError("eps dominates from the start: sum |g_j|/(1 + eps/(2|g_j|)) <= ||g||_1/2")
    lo = np.log(eps / g.max()) - 1.0
    log_w = brentq(excess, lo, hi, xtol=1e-14, rtol=1e-14)
    # u = logit(W/2)/beta with W/2 = e^{log_w}/2
    half = log_w - np.log(2.0)
    return float((half - np.log(-np.expm1(half))) / b)
