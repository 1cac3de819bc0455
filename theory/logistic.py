"""The paper's Theorem 2 (divergence speed of GA vs NPO in logistic regression), made checkable.

Setting (Zhang et al. 2024, Theorem 2): ``pi_theta(y=1|x) = sigmoid(<x, theta>)``; ``n_f <= d``
forget samples ``x_i`` (labels absorbed into ``x_i``, so every label is 1) with ``||x_i||`` in
``[b_x, B_x]``, ``|<x_i, x_j>| <= C0/n_f`` for ``i != j``, ``||theta_init|| <= B_theta``;
full-batch gradient descent with step ``eta`` on the empirical loss
``(1/n_f) sum_i L_i`` with ``L_i = log p_i`` (GA) or ``(2/beta) softplus(beta log(p_i/p_i^0))``
(NPO), ``p_i = sigmoid(z_i)``, ``z_i = <x_i, theta>``.

**Exact iterates in the proof's coordinates** ``b_i = <x_i, theta_t - theta_init>``:
``theta_t - theta_init`` stays in the span of the ``x_i``, so with the Gram matrix
``G = X X^T`` and ``z_i = z_i^0 + b_i``,
``b_{t+1} = b_t - (eta/n_f) G a_t`` where ``a_i = dL_i/dz_i`` is ``sigmoid(-z_i)`` (GA) or
``W_i sigmoid(-z_i)`` with ``W_i = 2 sigmoid(beta (log p_i - log p_i^0))`` (NPO), and
``||theta_t - theta_init||_{X^T X} = ||X(theta_t - theta_init)|| = ||b_t||_2`` (the drift).

**Bounds with constants derived here** (:func:`theorem2_constants`), ``c = sigmoid(-B_x B_theta)``,
``c0 = C0 (n_f - 1)/n_f``:

- GA: while every ``b_i <= 0``, ``sigmoid(-z_i) in [c, 1]`` and ``(G a)_i`` lies in
  ``[b_x^2 c - c0, B_x^2 + c0]``; if the lower end is positive every ``b_i`` decreases by that
  much times ``eta/n_f`` per step, so ``||b_t|| in n_f^{-1/2} eta t [C1, C2]`` with
  ``C1 = b_x^2 c - c0``, ``C2 = B_x^2 + c0`` (the theorem's GA statement).
- NPO: with ``E_i = e^{-beta b_i}``, ``a_i E_i in [c, 2 c^{-beta}]`` (from
  ``p/p^0 in [e^b, e^b / sigmoid(-z^0)]``). If all ``E_j`` lie in ``[1 + lam t, 1 + Lam t]``
  with ``Lam/lam <= rho`` then ``E_i (G a)_i in [b_x^2 c - 2 c0 c^{-beta} rho, 2 c^{-beta}
  (B_x^2 + c0 rho)]`` and ``E_{t+1} - E_t = E (e^x - 1)`` with ``x = beta (eta/n_f) (G a)_i <=
  x_max = beta eta (B_x^2 + c0)/n_f``, which keeps the induction going when ``rho`` solves
  ``rho (b_x^2 c - 2 c0 c^{-beta} rho) >= e^{x_max} 2 c^{-beta} (B_x^2 + c0 rho)``. Then
  ``||b_t|| in (sqrt(n_f)/beta) [log(1 + C2 eta t/n_f), log(1 + C3 eta t/n_f)]`` with
  ``C1 = 1/beta``, ``C2 = beta (b_x^2 c - 2 c0 c^{-beta} rho)``,
  ``C3 = beta e^{x_max} 2 c^{-beta} (B_x^2 + c0 rho)``. The cross terms are bounded crudely, so a
  ``rho`` exists only for small ``C0`` (:class:`Theorem2Constants` ``npo_feasible``); the
  theorem's form is then also checked with constants fitted on some instances and early times
  and tested on held-out instances and later times (:mod:`theory.theorem2`).

**Typos of the paper's v1 corrected here**: the gradients displayed in Sec. 3 carry a spurious
minus sign (the appendix derivation, used here, gives ``grad L_NPO = +W grad log pi``), and the
proof's ``W_i`` drops the factor 2 (``W = 2 sigmoid(beta R) = 2 pi^beta/(pi^beta + pi_ref^beta)``,
which is 1, not 1/2, at the start). The factor 2 only rescales NPO's constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit

from theory._validate import positive, positive_int

__all__ = [
    "LogisticInstances",
    "Theorem2Constants",
    "ga_band",
    "gd_drift",
    "make_instances",
    "npo_band",
    "theorem2_constants",
]


@dataclass(frozen=True)
class LogisticInstances:
    """A batch of Theorem-2 instances: ``X`` (I, n_f, d), ``theta_init`` (I, d)."""

    X: np.ndarray
    theta_init: np.ndarray

    @property
    def gram(self) -> np.ndarray:
        """``G = X X^T`` (I, n_f, n_f)."""
        return np.einsum("ifd,igd->ifg", self.X, self.X)

    @property
    def z0(self) -> np.ndarray:
        """Initial logits ``<x_i, theta_init>`` (I, n_f)."""
        return np.einsum("ifd,id->if", self.X, self.theta_init)


def make_instances(
    n_instances: int,
    *,
    n_f: int,
    d: int,
    b_x: float,
    B_x: float,
    C0: float,
    B_theta: float,
    seed: int = 0,
) -> LogisticInstances:
    """Random instances satisfying the theorem's assumptions exactly.

    Norms ``||x_i||`` uniform in ``[b_x, B_x]``; off-diagonal inner products uniform in
    ``(-C0/n_f, C0/n_f)``; the Gram matrix is positive definite because ``C0 < b_x^2``
    (Gershgorin), and ``X = [chol(G), 0] Q`` with ``Q`` a random rotation of ``R^d``.
    ``theta_init``: a random direction with norm uniform in ``[B_theta/2, B_theta]``.
    """
    n_instances = positive_int("n_instances", n_instances)
    n_f = positive_int("n_f", n_f)
    d = positive_int("d", d)
    if d < n_f:
        raise ValueError(f"need d >= n_f, got d={d}, n_f={n_f}")
    b_x, B_x = float(positive("b_x", b_x)), float(positive("B_x", B_x))
    if b_x > B_x:
        raise ValueError(f"need b_x <= B_x, got b_x={b_x}, B_x={B_x}")
    C0 = float(np.asarray(C0, dtype=np.float64))
    if not (np.isfinite(C0) and 0.0 <= C0 < b_x**2):
        raise ValueError(f"C0 must lie in [0, b_x^2) = [0, {b_x**2:g}), got {C0!r}")
    B_theta = float(positive("B_theta", B_theta))
    rng = np.random.default_rng(seed)
    norms = rng.uniform(b_x, B_x, size=(n_instances, n_f))
    off = rng.uniform(-1.0, 1.0, size=(n_instances, n_f, n_f)) * (C0 / n_f)
    off = np.triu(off, 1)
    gram = off + off.transpose(0, 2, 1) + np.einsum("if,fg->ifg", norms**2, np.eye(n_f))
    chol = np.linalg.cholesky(gram)
    q, r = np.linalg.qr(rng.standard_normal((n_instances, d, d)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    X = np.einsum("ifg,igd->ifd", chol, q[:, :n_f, :])
    direction = rng.standard_normal((n_instances, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    theta = direction * rng.uniform(0.5 * B_theta, B_theta, size=(n_instances, 1))
    return LogisticInstances(X=X, theta_init=theta)


def gd_drift(
    inst: LogisticInstances,
    *,
    eta: float,
    steps: int,
    checkpoints,
    beta: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact full-batch GD iterates in the ``b`` coordinates, for GA (``beta=None``) or NPO.

    Returns ``(drift, monotone)``: ``drift`` (I, P) is ``||b_t||_2`` at the integer steps
    ``checkpoints`` (P,) in ``[0, steps]``, increasing; ``monotone`` (I,) says whether every
    ``b_i`` decreased at every step (the proofs' standing hypothesis). float64, vectorised over
    instances; one Python step per GD step (about 1e5 steps per second at ``n_f = 16``).
    """
    eta = float(positive("eta", eta))
    steps = positive_int("steps", steps)
    cps = np.asarray(checkpoints)
    if cps.ndim != 1 or cps.size == 0 or np.any(np.diff(cps) <= 0) or cps[0] < 0 or cps[-1] > steps:
        raise ValueError("checkpoints must be increasing integers in [0, steps]")
    b_npo = None if beta is None else float(positive("beta", beta))
    G = inst.gram
    z0 = inst.z0
    lp0 = log_expit(z0)
    b = np.zeros_like(z0)
    drift = np.empty((z0.shape[0], cps.size))
    monotone = np.ones(z0.shape[0], dtype=bool)
    scale = eta / z0.shape[1]
    j = 0
    for t in range(steps + 1):
        while j < cps.size and cps[j] == t:
            drift[:, j] = np.linalg.norm(b, axis=1)
            j += 1
        if t == steps:
            break
        z = z0 + b
        a = expit(-z)
        if b_npo is not None:
            a = a * (2.0 * expit(b_npo * (log_expit(z) - lp0)))
        delta = scale * np.matmul(G, a[:, :, None])[:, :, 0]
        monotone &= np.all(delta > 0, axis=1)
        b = b - delta
    return drift, monotone


@dataclass(frozen=True)
class Theorem2Constants:
    """Constants of the two bound families (module docstring).

    GA: ``||b_t|| in n_f^{-1/2} eta t [ga_lower, ga_upper]`` (``ga_feasible`` when
    ``ga_lower > 0``). NPO: ``||b_t|| in npo_scale sqrt(n_f) [log(1 + npo_lower eta t/n_f),
    log(1 + npo_upper eta t/n_f)]`` with ``npo_scale = 1/beta`` (``npo_feasible`` when a ratio
    ``rho`` exists; otherwise NPO's constants are NaN)."""

    ga_lower: float
    ga_upper: float
    npo_scale: float
    npo_lower: float
    npo_upper: float
    rho: float
    ga_feasible: bool
    npo_feasible: bool


def theorem2_constants(
    *, n_f: int, b_x: float, B_x: float, C0: float, B_theta: float, beta: float, eta: float
) -> Theorem2Constants:
    """The bound constants derived from the assumptions (module docstring); never fitted."""
    n_f = positive_int("n_f", n_f)
    b_x, B_x = float(positive("b_x", b_x)), float(positive("B_x", B_x))
    B_theta, beta = float(positive("B_theta", B_theta)), float(positive("beta", beta))
    eta = float(positive("eta", eta))
    C0 = float(np.asarray(C0, dtype=np.float64))
    if not (np.isfinite(C0) and C0 >= 0):
        raise ValueError(f"C0 must be finite and >= 0, got {C0!r}")
    c = float(expit(-B_x * B_theta))
    c0 = C0 * (n_f - 1) / n_f
    ga_lo, ga_hi = b_x**2 * c - c0, B_x**2 + c0
    k_lo, k_hi = c, 2.0 * c**-beta
    ex = float(np.exp(beta * eta * (B_x**2 + c0) / n_f))
    # smallest rho with  c0 k_hi rho^2 - (b_x^2 k_lo - ex k_hi c0) rho + ex k_hi B_x^2 <= 0
    qa, qb, qc = c0 * k_hi, b_x**2 * k_lo - ex * k_hi * c0, ex * k_hi * B_x**2
    if qa == 0.0:
        rho = qc / qb if qb > 0 else np.nan
    else:
        disc = qb * qb - 4.0 * qa * qc
        rho = (qb - np.sqrt(disc)) / (2.0 * qa) if disc >= 0 and qb > 0 else np.nan
    feasible = bool(np.isfinite(rho))
    lo = beta * (b_x**2 * k_lo - c0 * k_hi * rho) if feasible else np.nan
    hi = beta * ex * k_hi * (B_x**2 + c0 * rho) if feasible else np.nan
    return Theorem2Constants(
        ga_lower=ga_lo,
        ga_upper=ga_hi,
        npo_scale=1.0 / beta,
        npo_lower=float(lo),
        npo_upper=float(hi),
        rho=float(rho),
        ga_feasible=bool(ga_lo > 0),
        npo_feasible=bool(feasible and lo > 0),
    )


def ga_band(
    t, *, n_f: int, eta: float, lower: float, upper: float
) -> tuple[np.ndarray, np.ndarray]:
    """GA's band ``n_f^{-1/2} eta t [lower, upper]`` at steps ``t``."""
    t = np.asarray(t, dtype=np.float64)
    base = eta * t / np.sqrt(n_f)
    return lower * base, upper * base


def npo_band(
    t, *, n_f: int, eta: float, scale: float, lower: float, upper: float
) -> tuple[np.ndarray, np.ndarray]:
    """NPO's band ``scale sqrt(n_f) [log(1 + lower eta t/n_f), log(1 + upper eta t/n_f)]``."""
    t = np.asarray(t, dtype=np.float64)
    base = scale * np.sqrt(n_f)
    return base * np.log1p(lower * eta * t / n_f), base * np.log1p(upper * eta * t / n_f)
