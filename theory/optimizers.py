"""Beyond the paper: GA and NPO under normalised optimisers (sign descent, Adam).

LLM unlearning runs AdamW, not gradient descent. In the constant-tangent-kernel picture of
:mod:`theory.flows` (one forget example, ``u = log(pi_theta/pi_ref)`` linear in ``theta`` with
constant gradient ``g = grad_theta u``, ``K = ||g||_2^2``, ``u(0) = 0``) the loss gradient is
``grad_theta L = W(u) g`` with ``W = 1`` (GA) or ``W = 2 sigmoid(beta u)`` (NPO). Assumptions:
the kernel is constant (``u`` linear in ``theta``: exact for a linear model, a local picture
otherwise), one example (no batch mixing, no retain term), no weight decay.

**Sign descent** (Adam with ``beta1 = beta2 = 0``, ``eps -> 0``):
``theta -= lr sign(W g) = lr sign(g)`` because ``W > 0``. So ``u_n = -lr ||g||_1 n`` for GA
*and* for NPO at every ``beta``: the weight cancels and NPO diverges linearly, exactly like GA
(:func:`signgd_log_ratio`).

**Adam** (``m``, ``v`` exponential averages with bias correction): with gradients ``W_n g``
every coordinate's state is ``m_j = g_j M_n``, ``v_j = g_j^2 V_n`` where ``M``, ``V`` are the
averages of ``W`` and ``W^2``, so ``u_{n+1} - u_n = -lr M^_n sum_j g_j^2 / (|g_j| sqrt(V^_n) + eps)``
exactly: a scalar recursion (:func:`adam_log_ratio`, held against ``torch.optim.Adam`` in the
tests). Consequences:

- GA: ``M^ = sqrt(V^) = 1``: ``u_n = -lr n sum_j g_j^2/(|g_j| + eps)`` (:func:`adam_ga_rate`).
- NPO, ``|g_j| W >> eps``: sign-descent-like, **linear** divergence. In the tail
  (``W ~ 2 e^{beta u}``) a constant rate ``c`` makes ``W`` decay by ``e^{-delta}`` per step,
  ``delta = beta c``, and the averages lag:
  ``M^/sqrt(V^) = rho(delta) = (1-beta1)/(1-beta1 e^delta) * sqrt((1-beta2 e^{2 delta})/(1-beta2))``.
  Self-consistency ``c = lr ||g||_1 rho(beta c)`` (:func:`adam_npo_linear_rate`) gives
  ``c ~ lr ||g||_1`` when ``beta lr ||g||_1 << 1 - beta2`` and ``c -> (1 - beta2)/(2 beta)``
  otherwise: NPO's weight can only cap the rate through ``beta2``'s memory; it stays linear.
- NPO, ``|g_j| W << eps`` (reached once ``u`` is below
  :func:`adam_eps_crossover`, about ``(1/beta) log(eps / (2|g|))``): ``sqrt(V^)`` drops out of the
  denominator and Adam is gradient descent with step ``lr/eps`` on an averaged weight: the
  logarithmic NPO flow returns, ``-du/dlog n -> 1/beta``.

So NPO's adaptive weight slows divergence under Adam only through ``eps`` (and ``beta2``'s
cap); under sign descent not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_expit

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


def _unit_interval(name: str, value) -> float:
    x = float(finite(name, value))
    if not 0.0 <= x < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return x


def _grad(grad) -> np.ndarray:
    g = np.abs(finite("grad", grad)).ravel()
    g = g[g > 0]
    if g.size == 0:
        raise ValueError("grad must have at least one nonzero entry")
    return g


def signgd_log_ratio(t, *, lr, l1) -> np.ndarray | float:
    """Sign descent ``theta -= lr sign(grad L)`` on any loss with ``dL/du > 0`` (GA, NPO at any
    ``beta``): ``u(t) = -lr * l1 * t`` after ``t`` steps (exact; also the sign flow), with
    ``l1 = ||grad_theta u||_1``. NPO's weight does not enter."""
    t = nonnegative("t", t)
    lr = positive("lr", lr)
    l1 = positive("l1", l1)
    return scalar_out(-lr * l1 * t)


@dataclass(frozen=True)
class AdamTrace:
    """Adam in the constant-kernel picture. ``steps`` (N+1,), ``log_ratio`` ``u_n`` (N+1,),
    ``weight`` ``W(u_n)`` (N+1,), ``step_ratio`` ``(u_n - u_{n+1}) / (lr ||g||_1)`` (N,), the
    step relative to sign descent's."""

    steps: np.ndarray
    log_ratio: np.ndarray
    weight: np.ndarray
    step_ratio: np.ndarray


def adam_log_ratio(
    n_steps: int,
    *,
    grad,
    lr,
    beta=None,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> AdamTrace:
    """Exact Adam iterates (PyTorch's update, bias-corrected) of the log-ratio ``u`` in the
    constant-kernel picture, ``u_0 = 0``, for GA (``beta=None``) or NPO (``beta > 0``).

    ``grad``: the constant ``grad_theta u`` (any shape; only ``|g_j|`` matter). The averages
    are kept in log space, so ``eps = 0`` (pure sign-descent limit) and ``W`` far below the
    float range are exact. ``n_steps`` Python steps, each ``O(d)``.
    """
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    g = _grad(grad)
    lr = float(positive("lr", lr))
    b = None if beta is None else float(positive("beta", beta))
    beta1, beta2 = _unit_interval("beta1", beta1), _unit_interval("beta2", beta2)
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


def adam_ga_rate(*, grad, lr, eps: float = 1e-8) -> float:
    """GA under Adam: ``u_n = -rate * n`` exactly, ``rate = lr sum_j g_j^2 / (|g_j| + eps)``
    (``-> lr ||g||_1``, sign descent, as ``eps -> 0``)."""
    g = _grad(grad)
    lr = float(positive("lr", lr))
    eps = float(nonnegative("eps", eps))
    return float(lr * np.sum(g * g / (g + eps)))


def adam_ratio_lag(delta, *, beta1: float = 0.9, beta2: float = 0.999) -> np.ndarray | float:
    """``rho(delta) = M^/sqrt(V^)`` in Adam's long-time steady state when the gradient scale
    decays geometrically by ``e^{-delta}`` per step (bias corrections -> 1):
    ``(1-beta1)/(1-beta1 e^delta) * sqrt((1-beta2 e^{2 delta})/(1-beta2))`` for
    ``0 <= delta < -log(beta2)/2``, and 0 beyond (the averages are then dominated by the past).
    Needs ``beta1^2 < beta2``."""
    delta = nonnegative("delta", delta)
    beta1, beta2 = _unit_interval("beta1", beta1), _unit_interval("beta2", beta2)
    if beta1**2 >= beta2:
        raise ValueError(f"need beta1^2 < beta2, got beta1={beta1}, beta2={beta2}")
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = 1.0 - beta2 * np.exp(2.0 * delta)
        rho = (1.0 - beta1) / (1.0 - beta1 * np.exp(delta)) * np.sqrt(inside / (1.0 - beta2))
    return scalar_out(np.where(inside > 0, rho, 0.0))


def adam_npo_linear_rate(*, lr, l1, beta, beta1: float = 0.9, beta2: float = 0.999) -> float:
    """Steady linear rate ``c`` (decrease of ``u`` per step) of NPO under Adam while
    ``|g_j| W >> eps``: the root of ``c = lr l1 rho(beta c)`` (:func:`adam_ratio_lag`), with
    ``l1 = ||grad_theta u||_1``. ``c <= lr l1`` (sign descent) and ``c < (1 - beta2)/(2 beta)``
    to first order; both limits are reached in their regimes."""
    lr = float(positive("lr", lr))
    l1 = float(positive("l1", l1))
    b = float(positive("beta", beta))
    beta1, beta2 = _unit_interval("beta1", beta1), _unit_interval("beta2", beta2)
    if beta2 == 0.0:
        return lr * l1  # no memory: sign descent
    c_max = -np.log(beta2) / (2.0 * b)

    def f(c: float) -> float:
        return c - lr * l1 * adam_ratio_lag(b * c, beta1=beta1, beta2=beta2)

    return float(brentq(f, 0.0, c_max, xtol=1e-300, rtol=1e-14))


def adam_eps_crossover(*, grad, beta, eps: float = 1e-8) -> float:
    """The log-ratio ``u_x`` below which ``eps`` dominates Adam's denominator for NPO: with the
    adiabatic averages ``M^ = W``, ``sqrt(V^) = W``, the step
    ``lr sum_j |g_j| W / (W + eps/|g_j|)`` is half the sign-descent step ``lr ||g||_1`` at
    ``W = W_x``; ``u_x = logit(W_x / 2) / beta``. For equal ``|g_j| = a``,
    ``u_x = (1/beta) log(eps / (2a - eps))``."""
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
