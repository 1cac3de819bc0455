"""The Theorem-2 study: GA and NPO drift on generated instances against both bound families.

:func:`run_theorem2` generates instances (:func:`theory.logistic.make_instances`), runs exact
full-batch GD for GA and NPO to ``config.steps`` (>= 1e5 by default), and holds the drift
``||X(theta_t - theta_init)||`` against

- the bands with constants **derived** from the assumptions
  (:func:`theory.logistic.theorem2_constants`), on every instance and every step;
- bands with constants **fitted** on the first ``fit_instances`` instances at steps
  ``<= fit_steps`` (GA: the range of ``||b_t|| sqrt(n_f)/(eta t)``; NPO: with ``C1 = 1/beta``
  from the proof, the range of ``n_f expm1(beta ||b_t||/sqrt(n_f))/(eta t)``, both widened by
  the factor ``margin``) and checked only on the held-out instances (all steps) and on the
  fitting instances at later steps. A band is never checked on the points it was fitted to.

It also records, per instance, the R^2 of a linear fit of GA's drift against ``t`` and the
verdicts of :func:`theory.divergence.fit_divergence` on both drifts. The theorem and its
constants: :doc:`/theory/theorem2`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npo.validate import check_fields
from theory.divergence import fit_divergence
from theory.logistic import (
    Theorem2Constants,
    ga_band,
    gd_drift,
    make_instances,
    npo_band,
    theorem2_constants,
)

__all__ = ["Theorem2Config", "Theorem2Data", "run_theorem2"]


@dataclass(frozen=True)
class Theorem2Config:
    """Options of :func:`run_theorem2`: the instances, the GD run and the fitted bands."""

    n_instances: int = field(default=8, metadata={"help": "instances (fitting + held-out)"})
    fit_instances: int = field(default=4, metadata={"help": "instances the fitted bands use"})
    n_f: int = field(default=16, metadata={"help": "forget samples per instance"})
    d: int = field(default=32, metadata={"help": "input dimension (>= n_f)"})
    b_x: float = field(default=0.9, metadata={"help": "smallest ||x_i||"})
    B_x: float = field(default=1.1, metadata={"help": "largest ||x_i||"})
    C0: float = field(default=1e-4, metadata={"help": "|<x_i, x_j>| <= C0/n_f"})
    B_theta: float = field(default=0.5, metadata={"help": "||theta_init|| <= B_theta"})
    beta: float = field(default=1.0, metadata={"help": "NPO inverse temperature"})
    eta: float = field(default=1.0, metadata={"help": "GD step size (the NPO bound needs <= 1)"})
    steps: int = field(default=100_000, metadata={"help": "GD steps"})
    fit_steps: int = field(default=1_000, metadata={"help": "fitted bands use steps <= this"})
    points: int = field(default=61, metadata={"help": "log-spaced checkpoints"})
    margin: float = field(default=1.2, metadata={"help": "widening factor of fitted constants"})
    seed: int = field(default=0, metadata={"help": "instance generator seed"})

    def __post_init__(self) -> None:
        names = ("n_instances", "n_f", "d", "steps", "fit_steps", "points", "fit_instances")
        check_fields(self, at_least_1=names)
        if self.fit_instances >= self.n_instances:
            raise ValueError(
                f"fit_instances ({self.fit_instances}) must be < n_instances "
                f"({self.n_instances}): at least one instance must be held out"
            )
        if self.d < self.n_f:
            raise ValueError(f"need d >= n_f, got d={self.d}, n_f={self.n_f}")
        check_fields(self, positive=("b_x", "B_x", "B_theta", "beta", "eta"))
        if self.b_x > self.B_x:
            raise ValueError(f"need b_x <= B_x, got {self.b_x} > {self.B_x}")
        if not (np.isfinite(self.C0) and 0 <= self.C0 < self.b_x**2):
            raise ValueError(f"C0 must lie in [0, b_x^2), got {self.C0}")
        if self.margin < 1 or not np.isfinite(self.margin):
            raise ValueError(f"margin must be >= 1, got {self.margin}")
        if not 1 <= self.fit_steps < self.steps / 10:
            raise ValueError(
                f"fit_steps ({self.fit_steps}) must be < steps/10 ({self.steps / 10:g}) so "
                "the fitted bands are checked on later times"
            )
        if self.steps < 1000:
            raise ValueError(
                f"steps must be >= 1000 (fit_divergence needs decades), got {self.steps}"
            )


@dataclass(frozen=True)
class Theorem2Data:
    """The result of :func:`run_theorem2`.

    Shapes: ``steps`` (P,); ``*_drift``, ``*_implied`` and ``check_mask`` (I, P); ``*_band_*``
    (2, P) = (lower, upper); per-instance flags (I,).

    ``ga_implied = drift sqrt(n_f)/(eta t)`` and
    ``npo_implied = n_f expm1(beta drift/sqrt(n_f))/(eta t)`` are the constants each point
    implies; ``ga_fit``/``npo_fit`` the fitted (lower, upper).
    ``*_inside_proof``: inside the derived band at every step (NPO: False when infeasible);
    ``*_inside_fit``: inside the fitted band at every checked point (``check_mask``).
    """

    config: Theorem2Config
    steps: np.ndarray
    ga_drift: np.ndarray
    npo_drift: np.ndarray
    held_out: np.ndarray
    check_mask: np.ndarray
    proof: Theorem2Constants
    ga_fit: tuple[float, float]
    npo_fit: tuple[float, float]
    ga_implied: np.ndarray
    npo_implied: np.ndarray
    ga_band_proof: np.ndarray
    npo_band_proof: np.ndarray
    ga_band_fit: np.ndarray
    npo_band_fit: np.ndarray
    ga_inside_proof: np.ndarray
    npo_inside_proof: np.ndarray
    ga_inside_fit: np.ndarray
    npo_inside_fit: np.ndarray
    ga_r2: np.ndarray
    ga_verdicts: tuple[str, ...]
    npo_verdicts: tuple[str, ...]
    monotone: np.ndarray

    def summary(self) -> str:
        """The study in six lines: the constants, the band checks and the verdicts.

        Returns:
            The lines, joined by newlines.
        """
        p, c = self.proof, self.config
        chk = self.check_mask
        lines = [
            f"Theorem 2 on {c.n_instances} instances (n_f={c.n_f}, d={c.d}, C0={c.C0:g}, "
            f"beta={c.beta:g}, eta={c.eta:g}) to {int(self.steps[-1])} steps",
            f"GA derived [C1, C2] = [{p.ga_lower:.4g}, {p.ga_upper:.4g}]: inside on "
            f"{int(self.ga_inside_proof.sum())}/{c.n_instances} instances; implied range "
            f"[{self.ga_implied.min():.4g}, {self.ga_implied.max():.4g}]",
            f"NPO derived (C1=1/beta) [C2, C3] = [{p.npo_lower:.4g}, {p.npo_upper:.4g}] "
            f"(rho={p.rho:.4g}, feasible={p.npo_feasible}): inside on "
            f"{int(self.npo_inside_proof.sum())}/{c.n_instances}; implied range "
            f"[{self.npo_implied.min():.4g}, {self.npo_implied.max():.4g}]",
            f"GA fitted [{self.ga_fit[0]:.4g}, {self.ga_fit[1]:.4g}] on {c.fit_instances} "
            f"instances, t <= {c.fit_steps}: checked points inside on "
            f"{int(self.ga_inside_fit.sum())}/{c.n_instances}; checked implied range "
            f"[{self.ga_implied[chk].min():.4g}, {self.ga_implied[chk].max():.4g}]",
            f"NPO fitted [{self.npo_fit[0]:.4g}, {self.npo_fit[1]:.4g}]: inside on "
            f"{int(self.npo_inside_fit.sum())}/{c.n_instances}; checked implied range "
            f"[{self.npo_implied[chk].min():.4g}, {self.npo_implied[chk].max():.4g}]",
            f"GA linear-fit R^2 min {self.ga_r2.min():.6f}; verdicts GA "
            f"{sorted(set(self.ga_verdicts))}, NPO {sorted(set(self.npo_verdicts))}; "
            f"all b_i decreasing: GA {bool(self.monotone[0].all())}, "
            f"NPO {bool(self.monotone[1].all())}",
        ]
        return "\n".join(lines)


def _inside(d: np.ndarray, band: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    rel = 1e-12 * np.maximum(np.abs(d), 1.0)  # float rounding of the drift itself
    ok = (d >= band[0] - rel) & (d <= band[1] + rel)
    if mask is not None:
        ok = ok | ~mask
    return np.all(ok, axis=1)


def _bands(
    c: Theorem2Config, t: np.ndarray, ga: tuple, npo: tuple, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    # GA's and NPO's bands (2, P) at steps t for the constants (lower, upper)
    ga_b = np.stack(ga_band(t, n_f=c.n_f, eta=c.eta, lower=ga[0], upper=ga[1]))
    npo_b = np.stack(npo_band(t, n_f=c.n_f, eta=c.eta, scale=scale, lower=npo[0], upper=npo[1]))
    return ga_b, npo_b


def run_theorem2(config: Theorem2Config = Theorem2Config()) -> Theorem2Data:
    """Run the Theorem-2 study: exact GD on generated instances against both bound families.

    Args:
        config: the instances, the GD run and the fitted bands.

    Returns:
        The drifts, the bands, the checks and the verdicts (:class:`Theorem2Data`).
    """
    c = config
    inst = make_instances(
        c.n_instances,
        n_f=c.n_f,
        d=c.d,
        b_x=c.b_x,
        B_x=c.B_x,
        C0=c.C0,
        B_theta=c.B_theta,
        seed=c.seed,
    )
    steps = np.unique(np.round(np.geomspace(1, c.steps, c.points)).astype(np.int64))
    ga, ga_mono = gd_drift(inst, eta=c.eta, steps=c.steps, checkpoints=steps)
    npo, npo_mono = gd_drift(inst, eta=c.eta, steps=c.steps, checkpoints=steps, beta=c.beta)
    t = steps.astype(np.float64)
    rn = np.sqrt(c.n_f)
    ga_implied = ga * rn / (c.eta * t)
    npo_implied = c.n_f * np.expm1(c.beta * npo / rn) / (c.eta * t)

    held_out = np.arange(c.n_instances) >= c.fit_instances
    fit_mask = ~held_out[:, None] & (t <= c.fit_steps)[None, :]
    check_mask = held_out[:, None] | (t > c.fit_steps)[None, :]
    ga_fit = (ga_implied[fit_mask].min() / c.margin, ga_implied[fit_mask].max() * c.margin)
    npo_fit = (npo_implied[fit_mask].min() / c.margin, npo_implied[fit_mask].max() * c.margin)

    proof = theorem2_constants(
        n_f=c.n_f, b_x=c.b_x, B_x=c.B_x, C0=c.C0, B_theta=c.B_theta, beta=c.beta, eta=c.eta
    )
    ga_band_proof, npo_band_proof = _bands(
        c, t, (proof.ga_lower, proof.ga_upper), (proof.npo_lower, proof.npo_upper), proof.npo_scale
    )
    ga_band_fit, npo_band_fit = _bands(c, t, ga_fit, npo_fit, 1.0 / c.beta)
    ga_fits = [fit_divergence(t, row) for row in ga]
    npo_fits = [fit_divergence(t, row) for row in npo]
    return Theorem2Data(
        config=c,
        steps=t,
        ga_drift=ga,
        npo_drift=npo,
        held_out=held_out,
        check_mask=check_mask,
        proof=proof,
        ga_fit=(float(ga_fit[0]), float(ga_fit[1])),
        npo_fit=(float(npo_fit[0]), float(npo_fit[1])),
        ga_implied=ga_implied,
        npo_implied=npo_implied,
        ga_band_proof=ga_band_proof,
        npo_band_proof=npo_band_proof,
        ga_band_fit=ga_band_fit,
        npo_band_fit=npo_band_fit,
        ga_inside_proof=_inside(ga, ga_band_proof) & proof.ga_feasible,
        npo_inside_proof=_inside(npo, npo_band_proof) & proof.npo_feasible,
        ga_inside_fit=_inside(ga, ga_band_fit, check_mask),
        npo_inside_fit=_inside(npo, npo_band_fit, check_mask),
        ga_r2=np.array([f.linear_fit.r2 for f in ga_fits]),
        ga_verdicts=tuple(f.verdict for f in ga_fits),
        npo_verdicts=tuple(f.verdict for f in npo_fits),
        monotone=np.stack([ga_mono, npo_mono]),
    )
