"""The paper's Theorem 2 (divergence speed of GA vs NPO in logistic regression), made checkable.

Binary logistic regression on ``n_f <= d`` forget samples with near-orthogonal inputs, full-batch
gradient descent with step ``eta``: GA's drift ``||X(theta_t - theta_init)||`` grows linearly
in ``t``, NPO's logarithmically. :func:`make_instances` draws instances that satisfy the
assumptions exactly, :func:`gd_drift` runs exact gradient descent in the proof's coordinates
``b_i = <x_i, theta_t - theta_init>``, and :func:`theorem2_constants` derives the constants of
both bound families from the assumptions. The setting, the derivation of the constants and two
corrected typos of the paper are on the page :doc:`/theory/theorem2`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
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
    """A batch of Theorem-2 instances: inputs ``X`` (I, n_f, d), ``theta_init`` (I, d)."""

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

    Args:
        n_instances: number of instances ``I``.
        n_f: forget samples per instance.
        d: input dimension, ``>= n_f``.
        b_x: smallest input norm ``> 0``.
        B_x: largest input norm, ``>= b_x``.
        C0: off-diagonal bound, ``|<x_i, x_j>| <= C0/n_f``, in ``[0, b_x^2)``.
        B_theta: bound on ``||theta_init||``.
        seed: generator seed.

    Returns:
        The instances, ``X`` (I, n_f, d) and ``theta_init`` (I, d).

    Raises:
        ValueError: for an argument outside its range.
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
    checkpoints: ArrayLike,
    beta: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact full-batch gradient descent in the proof's coordinates, for GA or NPO.

    ``b_{t+1} = b_t - (eta/n_f) G a_t`` with ``G = X X^T`` and ``a_i = dL_i/dz_i``; the drift
    is ``||X(theta_t - theta_init)|| = ||b_t||_2``. float64, vectorized over instances; one
    Python step per GD step (about 1e5 steps per second at ``n_f = 16``).

    Args:
        inst: the instances.
        eta: step size ``> 0``.
        steps: number of GD steps.
        checkpoints: increasing integer steps in ``[0, steps]`` at which to record, (P,).
        beta: NPO's inverse temperature, or None for GA.

    Returns:
        ``(drift, monotone)``, where ``drift`` (I, P) is ``||b_t||_2`` at the checkpoints;
        ``monotone`` (I,) says whether every ``b_i`` decreased at every step (the proofs'
        standing hypothesis).

    Raises:
        ValueError: for a non-positive ``eta``, ``steps`` or ``beta``, or bad checkpoints.
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
    """The constants of the two bound families (:doc:`/theory/theorem2`).

    GA: ``||b_t|| in n_f^{-1/2} eta t [ga_lower, ga_upper]`` (``ga_feasible`` when
    ``ga_lower > 0``). NPO: ``||b_t|| in npo_scale sqrt(n_f) [log(1 + npo_lower eta t/n_f),
    log(1 + npo_upper eta t/n_f)]`` with ``npo_scale = 1/beta`` (``npo_feasible`` when a ratio
    ``rho`` exists; otherwise NPO's constants are NaN).
    """

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
    """The bound constants derived from the assumptions (never fitted).

    With ``c = sigmoid(-B_x B_theta)`` and ``c0 = C0 (n_f - 1)/n_f``: GA's ``[C1, C2] =
    [b_x^2 c - c0, B_x^2 + c0]``; NPO's ``C2``, ``C3`` from the smallest ratio ``rho`` that
    keeps the induction going (:doc:`/theory/theorem2`).

    Args:
        n_f: forget samples.
        b_x: smallest input norm.
        B_x: largest input norm.
        C0: off-diagonal bound (``|<x_i, x_j>| <= C0/n_f``), ``>= 0``.
        B_theta: bound on ``||theta_init||``.
        beta: NPO's inverse temperature.
        eta: GD step size.

    Returns:
        Both families' constants and whether each is feasible.

    Raises:
        ValueError: for an argument outside its range.
    """
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
    t: ArrayLike, *, n_f: int, eta: float, lower: float, upper: float
) -> tuple[np.ndarray, np.ndarray]:
    """GA's band ``n_f^{-1/2} eta t [lower, upper]`` at steps ``t``.

    Args:
        t: GD steps, (P,).
        n_f: forget samples.
        eta: GD step size.
        lower: the band's lower constant ``C1``.
        upper: its upper constant ``C2``.

    Returns:
        ``(lo, hi)``, each (P,).
    """
    t = np.asarray(t, dtype=np.float64)
    base = eta * t / np.sqrt(n_f)
    return lower * base, upper * base


def npo_band(
    t: ArrayLike, *, n_f: int, eta: float, scale: float, lower: float, upper: float
) -> tuple[np.ndarray, np.ndarray]:
    """NPO's band ``scale sqrt(n_f) [log(1 + lower eta t/n_f), log(1 + upper eta t/n_f)]``.

    Args:
        t: GD steps, (P,).
        n_f: forget samples.
        eta: GD step size.
        scale: the prefactor ``C1`` (``1/beta`` in the proof).
        lower: the lower constant ``C2``.
        upper: the upper constant ``C3``.

    Returns:
        ``(lo, hi)``, each (P,).
    """
    t = np.asarray(t, dtype=np.float64)
    base = scale * np.sqrt(n_f)
    return base * np.log1p(lower * eta * t / n_f), base * np.log1p(upper * eta * t / n_f)
