"""Horizon flags: is a run in the regime its verdict describes?

A verdict read off a finite run ("linear", "logarithmic", a log-slope of ``1/beta``) describes
the run's asymptotic regime only once the run is in it. :class:`Horizon` carries the flag and
its evidence; :func:`horizon_verdict` replaces a verdict the run cannot support by
``"not asymptotic at this horizon (...)"``.

- GA (forget weight 1) and sign descent (the weight cancels) are linear from the first step
  (:func:`linear_horizon`).
- NPO under gradient descent, SGD or momentum: :func:`npo_gd_horizon`, on ``beta |u(T)|`` and
  the late log rate (the criteria of :mod:`theory.regimes`).
- NPO under Adam: its state says which regime a run is in (:func:`adam_regime`). Sign-like
  and capped runs diverge linearly whatever NPO's weight, and only once ``eps`` dominates does
  the logarithmic flow return, asymptotically from about :data:`ADAM_EPS_HORIZON` times the
  step at which it took over (:func:`adam_horizon`).

The derivations are on the page :doc:`/theory/horizons`.
"""

from __future__ import annotations

from dataclasses import dataclass

from theory._validate import nonnegative
from theory.regimes import HORIZON_BETA_U, RATE_CHANGE_MAX

__all__ = [
    "ADAM_EPS_HORIZON",
    "ADAM_Q_EPS",
    "ADAM_Q_SIGN",
    "ADAM_RHO_SIGN",
    "Horizon",
    "adam_horizon",
    "adam_memory_horizon",
    "adam_regime",
    "horizon_verdict",
    "linear_horizon",
    "npo_gd_horizon",
]

#: ``q`` (Adam's state) above this is the normalized (sign-like or capped) regime ...
ADAM_Q_SIGN = 0.9
#: ... ``q`` below this the ``eps`` regime (``adam_eps_crossover`` is ``q = 1/2``) ...
ADAM_Q_EPS = 0.5
#: ... and ``rho`` above this, with ``q > ADAM_Q_SIGN``, is sign-like rather than capped.
ADAM_RHO_SIGN = 0.5
#: once ``eps`` dominates, NPO's log rate is within 10% of ``1/beta`` from ``11 n0`` on, and
#: ``n0`` was measured at 1.2 to 3.2 times the step at which ``q`` fell below 1/2: ``11 x 3.2``.
ADAM_EPS_HORIZON = 36.0


def adam_regime(q: float, rho: float) -> str:
    """Adam's regime from its state.

    ``q`` is the update-weighted share of the normalized part of Adam's step,
    ``sum_j |m^_j| q_j / sum_j |m^_j|`` with ``q_j = sqrt(v^_j) / (sqrt(v^_j) + eps)``;
    ``rho = mean_j |m^_j| / sqrt(v^_j)``. Regimes: ``"sign"`` (``q > 0.9``, ``rho > 0.5``: the
    step is about sign descent's, ``-u`` falls by ``lr ||grad u||_1`` per step, GA-like);
    ``"capped"`` (``q > 0.9``, ``rho <= 0.5``: the gradient decays as fast as ``v^`` forgets,
    ``-u`` falls by ``(1 - beta2)/(2 beta)`` per step, linear and lr-independent); ``"eps"``
    (``q < 1/2``, past :func:`theory.optimizers.adam_eps_crossover`: gradient descent with step
    ``lr/eps``, NPO's logarithmic flow); ``"crossover"`` in between.

    Args:
        q: the normalized share, in ``[0, 1]``.
        rho: the mean ratio ``|m^|/sqrt(v^)``, ``>= 0``.

    Returns:
        ``"sign"``, ``"capped"``, ``"crossover"`` or ``"eps"``.

    Raises:
        ValueError: for ``q`` outside ``[0, 1]`` or a negative ``rho``.
    """
    q, rho = float(nonnegative("q", q)), float(nonnegative("rho", rho))
    if q > 1.0:
        raise ValueError(f"q must lie in [0, 1], got {q}")
    if q < ADAM_Q_EPS:
        return "eps"
    if q > ADAM_Q_SIGN:
        return "sign" if rho > ADAM_RHO_SIGN else "capped"
    return "crossover"


@dataclass(frozen=True)
class Horizon:
    """Whether a run is in the regime its verdict describes, and the evidence.

    ``asymptotic``: the verdict stands; ``regime``: the theory's regime (``"W = 1"``,
    ``"gd flow"``, ``"adam capped"``, ...); ``evidence``: the numbers behind it
    (``"beta|u| = 5.6 >= 3.3"``); ``beta_abs_u``: ``beta |u(T)|`` where it applies;
    ``criterion``: False where the theory has no criterion for the run (the verdict then
    stands as read, flagged so); ``reason``: why it is not asymptotic, in a few words.
    """

    asymptotic: bool
    regime: str
    evidence: str
    beta_abs_u: float | None = None
    criterion: bool = True
    reason: str = ""

    def label(self) -> str:
        """The flag as printed: ``asymptotic (...)`` or ``not asymptotic at this horizon (...)``.

        A run the theory has no criterion for (``criterion`` False) reads
        ``no horizon criterion (...)``.

        Returns:
            The line.
        """
        if not self.criterion:
            state = "no horizon criterion"
        else:
            state = "asymptotic" if self.asymptotic else "not asymptotic at this horizon"
        return f"{state} ({self.regime}: {self.evidence})"

    def short(self) -> str:
        """The flag in a few words, for figure legends.

        Returns:
            ``"asymptotic"``, ``"no criterion"``, or ``"not asymptotic (<reason>)"``, e.g.
            ``"not asymptotic (beta|u| = 1.23)"`` or ``"not asymptotic (adam capped)"``.
        """
        if not self.criterion:
            return "no criterion"
        if self.asymptotic:
            return "asymptotic"
        return f"not asymptotic ({self.reason or self.regime})"


def horizon_verdict(verdict: str, horizon: Horizon) -> str:
    """The verdict to print: ``verdict`` if the run is asymptotic, else the horizon's flag.

    Args:
        verdict: the verdict read off the run (e.g. from ``fit_divergence``).
        horizon: the run's horizon flag.

    Returns:
        ``verdict``, or ``"not asymptotic at this horizon (...)"``.
    """
    return verdict if horizon.asymptotic else horizon.label()


def linear_horizon(regime: str, why: str, verdict: str | None = None) -> Horizon:
    """The flag of a run whose theory is linear from its first step (GA: ``W = 1``; sign descent).

    The run is asymptotic unless its own ``verdict`` is not ``"linear"``: a run that does not
    yet read linear is still in its start (a logit that has not turned, a take-off).

    Args:
        regime: the regime's name (``"W = 1"``, ``"sign descent"``).
        why: the reason, printed as the evidence.
        verdict: the verdict read off the run, or None not to check it.

    Returns:
        The flag.
    """
    if verdict is not None and verdict != "linear":
        return Horizon(
            False, regime, f"{why}, but the run reads {verdict}", reason=f"reads {verdict}"
        )
    return Horizon(True, regime, why)


def npo_gd_horizon(
    beta_abs_u: float, rate_change: float | None = None, verdict: str | None = None
) -> Horizon:
    """NPO's flag under gradient descent, SGD or momentum, at the end of a run.

    Asymptotic when ``beta |u(T)| >= HORIZON_BETA_U`` (3.3: the end-of-run estimators read
    the flow's asymptote from there) and, if given, the measured ratio of the last two
    half-decade log-slopes (:func:`theory.regimes.log_rate_change`) is at most
    ``RATE_CHANGE_MAX``: a log rate still rising (a cascade of samples switching, a transient)
    is not the asymptote whatever ``beta |u|``. A falling log rate (the many-sample approach
    from above, or a curve that levels off) keeps a verdict of at most logarithmic growth
    true. A ``verdict`` of ``"linear"`` or ``"undecided"`` is not the asymptote of NPO's flow
    under gradient descent: the run is still in its GA-like start (a weight that started
    below 1, as SimNPO's does, delays it).

    Args:
        beta_abs_u: ``beta |u(T)|`` of the samples that carry the gradient (for many samples:
            ``beta`` times the negated mean forget log-ratio).
        rate_change: the measured half-decade ratio, or None not to check it.
        verdict: the verdict read off the run, or None not to check it.

    Returns:
        The flag.
    """
    v = float(nonnegative("beta_abs_u", beta_abs_u))
    if v < HORIZON_BETA_U:
        return Horizon(
            False,
            "gd flow",
            f"beta|u| = {v:.2f} < {HORIZON_BETA_U}",
            v,
            reason=f"beta|u| = {v:.2f}",
        )
    if rate_change is not None and rate_change > RATE_CHANGE_MAX:
        return Horizon(
            False,
            "gd flow",
            f"beta|u| = {v:.2f}, but the log rate still rises x{rate_change:.2f} over the "
            f"last half decade (asymptotic: at most x{RATE_CHANGE_MAX})",
            v,
            reason=f"log rate rising x{rate_change:.2f}",
        )
    if verdict in ("linear", "undecided"):
        return Horizon(
            False,
            "gd flow",
            f"beta|u| = {v:.2f}, but the run reads {verdict}: NPO's flow is logarithmic only "
            "past its GA-like start",
            v,
            reason=f"reads {verdict}",
        )
    return Horizon(True, "gd flow", f"beta|u| = {v:.2f} >= {HORIZON_BETA_U}", v)


def adam_horizon(
    q: float,
    rho: float,
    *,
    steps: float,
    eps_since: float | None,
    beta_abs_u: float,
    rate_change: float | None = None,
    verdict: str | None = None,
) -> Horizon:
    """NPO's flag under Adam, from its state at the end of a run.

    Sign-like, capped and crossover runs are not in NPO's asymptotic regime: their divergence
    is linear until ``eps`` takes over, and logarithmic after (:func:`adam_regime`). An
    ``eps``-regime run is asymptotic once ``steps >= ADAM_EPS_HORIZON * eps_since`` and the
    gradient-descent criteria of :func:`npo_gd_horizon` hold.

    Args:
        q: Adam's normalized share at the end (:func:`adam_regime`).
        rho: Adam's mean ``|m^|/sqrt(v^)`` at the end.
        steps: the run's length.
        eps_since: the first step at which ``q < 1/2``, or None.
        beta_abs_u: ``beta |u(T)|``, as for :func:`npo_gd_horizon`.
        rate_change: the measured half-decade ratio, or None.
        verdict: the verdict read off the run, or None.

    Returns:
        The flag.
    """
    regime = adam_regime(q, rho)
    state = f"q = {q:.2f}, rho = {rho:.2g}"
    if regime != "eps" or eps_since is None:
        return Horizon(
            False,
            f"adam {regime}",
            f"{state}; linear until eps takes over at q < {ADAM_Q_EPS}",
            float(beta_abs_u),
            reason=f"adam {regime}",
        )
    need = ADAM_EPS_HORIZON * eps_since
    if steps < need:
        return Horizon(
            False,
            "adam eps",
            f"{state}; eps took over at step {eps_since:.3g}, asymptotic from {need:.3g}",
            float(beta_abs_u),
            reason=f"adam eps since step {eps_since:.3g}",
        )
    gd = npo_gd_horizon(beta_abs_u, rate_change, verdict)
    return Horizon(
        gd.asymptotic, "adam eps", f"{state}; {gd.evidence}", gd.beta_abs_u, reason=gd.reason
    )


def adam_memory_horizon(steps: float, beta2: float = 0.999) -> Horizon:
    """The flag of an Adam run whose optimizer state was not recorded, from its length alone.

    Adam's second moment ``v`` averages squared gradients over about ``1 / (1 - beta2)`` steps
    (1000 for torch's default 0.999). Before that, ``v`` still holds the first, large gradients
    of unlearning, so NPO's shrinking gradient ``W g`` gives ever smaller steps ``m / sqrt(v)``
    (a stall), while the capped linear regime of :func:`~theory.optimizers.adam_npo_linear_rate`
    needs ``v`` to have followed the gradient down. A run shorter than the memory is therefore
    not asymptotic; a longer one has no criterion without the state (use :func:`adam_horizon`
    where ``q`` and ``rho`` are known).

    Args:
        steps: the run's length.
        beta2: Adam's second-moment decay, in ``[0, 1)``.

    Returns:
        The flag (``criterion`` False past the memory).

    Raises:
        ValueError: for ``beta2`` outside ``[0, 1)`` or non-positive ``steps``.
    """
    if not 0.0 <= beta2 < 1.0:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2!r}")
    if not steps > 0:
        raise ValueError(f"steps must be positive, got {steps!r}")
    memory = 1.0 / (1.0 - beta2)
    evidence = f"T = {steps:g} steps vs 1/(1 - beta2) = {memory:g}"
    if steps < memory:
        return Horizon(
            False,
            "adam memory",
            f"{evidence}: the second moment still holds the first gradients",
            reason="T < 1/(1 - beta2)",
        )
    return Horizon(True, "adam, state not recorded", evidence, criterion=False)
