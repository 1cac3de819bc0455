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
from scipy.special import expit, log_expit

from npo.validate import unit_interval
from theory._validate import finite, nonnegative, positive, positive_int, scalar_out

__all__ = [
    "AdamTrace",
    "adam_eps_crossover",
    "adam_ga_rate",
    "adam_log_ratio",
    "adam_log_ratio_sweep",
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
    range are exact. ``n_steps`` Python steps, each ``O(d)``; one configuration of
    :func:`adam_log_ratio_sweep`.

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
    record = np.arange(n_steps + 1)
    b = np.nan if beta is None else float(positive("beta", beta))
    u = adam_log_ratio_sweep(
        n_steps, grad=grad, lr=[lr], beta=[b], eps=[eps], record=record, beta1=beta1, beta2=beta2
    )[0]
    l1 = float(_grad(grad).sum())
    weight = np.ones_like(u) if beta is None else 2.0 * expit(b * u)
    return AdamTrace(
        steps=record.astype(np.float64),
        log_ratio=u,
        weight=weight,
        step_ratio=-np.diff(u) / (float(lr) * l1),
    )


def adam_log_ratio_sweep(
    n_steps: int,
    *,
    grad: ArrayLike,
    lr: ArrayLike,
    beta: ArrayLike,
    eps: ArrayLike,
    record: ArrayLike,
    beta1: float = 0.9,
    beta2: float = 0.999,
) -> np.ndarray:
    """:func:`adam_log_ratio` for many configurations at once, recorded at chosen steps.

    Configuration ``c`` has learning rate ``lr[c]``, NPO's ``beta[c]`` (NaN for GA) and
    ``eps[c]``; all share ``grad``, ``beta1``, ``beta2``. Each step costs ``O(C d)`` numpy
    work (about 30 us for ``C d`` of a few hundred), so 1e5 steps of a dozen configurations
    take seconds.

    Args:
        n_steps: number of steps ``>= 0``.
        grad: the constant ``grad_theta u`` (any shape; only ``|g_j|`` matter).
        lr: learning rates ``> 0``, shape ``(C,)``.
        beta: NPO's inverse temperatures ``> 0``, or NaN for GA, shape ``(C,)``.
        eps: Adam's ``eps >= 0``, shape ``(C,)``.
        record: the steps to record, increasing integers in ``[0, n_steps]``, shape ``(P,)``.
        beta1: Adam's first-moment decay, in ``[0, 1)``.
        beta2: Adam's second-moment decay, in ``[0, 1)``.

    Returns:
        ``u`` at the recorded steps, shape ``(C, P)``.

    Raises:
        ValueError: for mismatched lengths, an argument outside its range, or recorded steps
            that do not increase or lie outside ``[0, n_steps]``.
    """
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    g = _grad(grad)
    lr = np.atleast_1d(positive("lr", lr)).astype(np.float64)
    eps = np.atleast_1d(nonnegative("eps", eps)).astype(np.float64)
    b = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    ga = np.isnan(b)
    if not np.all(ga | (np.isfinite(b) & (b > 0))):
        raise ValueError("beta must be finite and positive (or NaN for GA)")
    if not lr.shape == eps.shape == b.shape or lr.ndim != 1:
        raise ValueError(f"lr, beta, eps must be 1-D of one length, got {lr.shape}, {b.shape}")
    rec = np.asarray(record)
    if rec.ndim != 1 or rec.size == 0 or np.any(np.diff(rec) <= 0):
        raise ValueError("record must be a non-empty increasing 1-D array of steps")
    if rec[0] < 0 or rec[-1] > n_steps or np.any(rec != np.round(rec)):
        raise ValueError(f"record must hold integer steps in [0, {n_steps}]")
    beta1, beta2 = unit_interval("beta1", beta1), unit_interval("beta2", beta2)
    bb = np.where(ga, 1.0, b)
    with np.errstate(divide="ignore"):
        log_eps_g = np.log(eps)[:, None] - np.log(g)[None, :]  # (C, d); -inf at eps = 0
    lb1 = np.log(beta1) if beta1 > 0 else -np.inf
    lb2 = np.log(beta2) if beta2 > 0 else -np.inf
    l1m1, l1m2 = np.log1p(-beta1), np.log1p(-beta2)
    out = np.empty((lr.size, rec.size))
    u = np.zeros(lr.size)
    log_m = np.full(lr.size, -np.inf)
    log_v = np.full(lr.size, -np.inf)
    k = np.arange(1, n_steps + 1)
    with np.errstate(divide="ignore"):
        corr1 = np.log1p(-(beta1**k))  # bias corrections, log
        corr2 = 0.5 * np.log1p(-(beta2**k))
    any_ga, log2 = bool(ga.any()), np.log(2.0)
    j = 0
    if rec[0] == 0:
        out[:, 0] = u
        j = 1
    for n in range(n_steps):
        lw = log_expit(bb * u)
        lw += log2
        if any_ga:
            lw[ga] = 0.0
        log_m = np.logaddexp(lb1 + log_m, l1m1 + lw)
        log_v = np.logaddexp(lb2 + log_v, l1m2 + 2.0 * lw)
        # step_c = sum_j g_j mhat_c / (sqrt(vhat_c) + eps_c / g_j), in logs
        denom = np.logaddexp((0.5 * log_v - corr2[n])[:, None], log_eps_g)
        denom -= (log_m - corr1[n])[:, None]
        np.negative(denom, out=denom)
        np.exp(denom, out=denom)
        u = u - lr * (denom @ g)
        if j < rec.size and n + 1 == rec[j]:
            out[:, j] = u
            j += 1
    return out


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
