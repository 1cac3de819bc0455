"""Verdicts that carry their evidence: fits per seed and the theory's horizon flag.

Every experiment that reports a divergence verdict reads it through :func:`seed_verdict`:
:func:`theory.divergence.fit_divergence` on the median curve (the verdict), on every seed's
curve (the spread of the growth exponent, the verdict per seed), and the run's horizon flag
from :mod:`theory.horizon` (:func:`run_horizon`). A run too short for its verdict reports
``"not asymptotic at this horizon (...)"`` instead.

The flag follows the method's family, read off its objective's forget term (:func:`family`):

- ``"ga"`` (the forget term's weight is 1: ``ga``, ``ga+rt``, ``ga+kl``): linear from the start
  in the theory, flagged only while the run does not read linear yet;
- ``"npo"`` (a weight that vanishes as the forget answer is unlearned: ``npo``, ``npo+rt``,
  ``npo+kl``, ``simnpo``, ``simnpo+rt`` and ``dpo+rt``): under gradient descent, SGD and
  momentum :func:`theory.horizon.npo_gd_horizon` on ``beta |u(T)|``; under Adam
  :func:`theory.horizon.adam_horizon` on Adam's state; under sign descent the weight cancels
  (linear, as GA);
- ``"other"`` (``idk+rt``: no forget-likelihood term, it trains towards fixed labels): no
  divergence theory, flagged ``no horizon criterion``.

``beta |u|`` is read from the mean forget log-likelihood: ``beta`` times the negated mean
forget log-ratio for NPO and DPO (for DPO a lower bound on its margin: the chosen side's rise is
left out), ``-(beta log pi + gamma)`` for SimNPO (one token per sample).
"""

from __future__ import annotations

import warnings

import numpy as np

from synthetic.runner import Curves, MethodSpec
from synthetic.stats import median_curve
from theory import fit_divergence
from theory.divergence import fit_divergence_seeds
from theory.horizon import (
    ADAM_Q_EPS,
    Horizon,
    adam_horizon,
    horizon_verdict,
    linear_horizon,
    npo_gd_horizon,
)
from theory.regimes import log_rate_change

__all__ = [
    "FAMILIES",
    "FAMILY_LABELS",
    "beta_abs_u",
    "family",
    "run_horizon",
    "seed_verdict",
    "verdict",
]

#: forget kernel -> family
FAMILIES = {"ga": "ga", "npo": "npo", "simnpo": "npo", "dpo": "npo"}
#: family -> what it is, as figure legends print it
FAMILY_LABELS = {
    "ga": "GA family (forget weight 1)",
    "npo": "NPO family (vanishing forget weight)",
    "other": "IDK+RT (no forget-likelihood term)",
}


def family(spec: MethodSpec) -> str:
    """The family of a method setting, from its objective's forget term.

    Args:
        spec: the method setting.

    Returns:
        ``"ga"``, ``"npo"`` or ``"other"``.
    """
    kinds = {FAMILIES[t.loss] for t in spec.objective().terms if t.loss in FAMILIES}
    return kinds.pop() if len(kinds) == 1 else "other"


def _last_finite(curves: np.ndarray) -> np.ndarray:
    # each row's last finite value (NaN for an all-NaN row)
    out = np.full(curves.shape[0], np.nan)
    for i, row in enumerate(curves):
        ok = np.flatnonzero(np.isfinite(row))
        if ok.size:
            out[i] = row[ok[-1]]
    return out


def beta_abs_u(curves: Curves, spec: MethodSpec) -> np.ndarray:
    """``beta |u(T)|`` per seed at the end of the run (NaN for the GA family and IDK+RT).

    Args:
        curves: the recorded curves.
        spec: a setting in ``curves``.

    Returns:
        One value per seed, (S,).
    """
    logp = curves.metric(spec.key, "forget_logp")
    end = _last_finite(logp)
    terms = {t.loss: t for t in spec.objective().terms}
    if "simnpo" in terms:
        hp = terms["simnpo"].hparams
        return np.maximum(-(hp["beta"] * end + hp.get("gamma", 0.0)), 0.0)
    for name in ("npo", "dpo"):
        if name in terms:
            return np.maximum(-terms[name].hparams["beta"] * (end - logp[:, 0]), 0.0)
    return np.full(logp.shape[0], np.nan)


def run_horizon(
    curves: Curves, spec: MethodSpec, curve: np.ndarray, fit_verdict: str | None = None
) -> Horizon:
    """The horizon flag of one setting's run.

    Args:
        curves: the recorded curves.
        spec: a setting in ``curves``.
        curve: the median curve the verdict is read from, (T,) (its late log rate is checked).
        fit_verdict: the verdict read off ``curve``, or None (``"linear"`` is checked against
            the theory's asymptote).

    Returns:
        The flag (see the module's docstring for the rules per family and optimizer).
    """
    fam = family(spec)
    if fam == "ga":
        return linear_horizon("W = 1", "the forget weight never vanishes", fit_verdict)
    if fam == "other":
        return Horizon(True, "IDK+RT", "no forget-likelihood term", criterion=False)
    if spec.optimizer == "signgd":
        why = "sign(W g) = sign(g): the weight cancels"
        return linear_horizon("sign descent", why, fit_verdict)
    steps = curves.steps.astype(np.float64)
    ok = (steps > 0) & np.isfinite(curve)
    try:
        change: float | None = log_rate_change(steps[ok], curve[ok])
    except ValueError:
        change = None
    if change is not None and not np.isfinite(change):
        change = None
    v = float(np.nanmedian(beta_abs_u(curves, spec)))
    if spec.optimizer != "adam":
        return npo_gd_horizon(v, change, fit_verdict)
    q = median_curve(curves.metric(spec.key, "adam_q"))
    rho = median_curve(curves.metric(spec.key, "adam_rho"))
    below = np.flatnonzero(q < ADAM_Q_EPS)
    return adam_horizon(
        float(q[np.isfinite(q)][-1]),
        float(rho[np.isfinite(rho)][-1]),
        steps=float(steps[-1]),
        eps_since=float(steps[below[0]]) if below.size else None,
        beta_abs_u=v,
        rate_change=change,
        verdict=fit_verdict,
    )


def verdict(steps: np.ndarray, curve: np.ndarray) -> dict:
    """The growth verdict of one curve (:func:`theory.divergence.fit_divergence`).

    Args:
        steps: the recorded steps, (T,); step 0 and non-finite points are left out.
        curve: the curve, (T,).

    Returns:
        ``{"verdict", "rate_exponent", "growth_exponent", "linear_r2", "log_r2", "log_tau",
        "summary"}``, or ``{"verdict": "undecided", "reason"}`` when the curve cannot be
        fitted.
    """
    ok = (steps > 0) & np.isfinite(curve)
    try:
        # Overflow in the fits of a run that exploded is expected; the verdict reports it.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = fit_divergence(steps[ok], curve[ok])
    except ValueError as exc:
        return {"verdict": "undecided", "reason": str(exc)}
    return {
        "verdict": fit.verdict,
        "rate_exponent": fit.rate_exponent,
        "growth_exponent": fit.growth_exponent,
        "linear_r2": fit.linear_fit.r2,
        "log_r2": fit.log_fit.r2,
        "log_tau": fit.log_fit.tau,
        "summary": fit.summary(),
    }


def seed_verdict(curves: Curves, spec: MethodSpec, seeds: np.ndarray) -> dict:
    """The verdict of a median curve with its spread over seeds and its horizon flag.

    Args:
        curves: the recorded curves.
        spec: the setting the curves belong to.
        seeds: one curve per seed, (S, T) (a metric, or a curve derived from them).

    Returns:
        :func:`verdict`'s fields for the median curve, with ``verdict`` replaced by the flag
        where the run is not asymptotic (the fit's own verdict kept as ``fit_verdict``), plus
        ``growth_exponent_seeds`` (``"median [min, max]"``), ``seed_verdicts``
        (``"3/3 logarithmic"``), ``horizon`` (the flag's line), ``horizon_short`` (in a few
        words, for legends) and ``beta_abs_u``.
    """
    steps = curves.steps
    median = median_curve(seeds)
    out = verdict(steps, median)
    horizon = run_horizon(curves, spec, median, out["verdict"])
    ok = steps > 0
    spread = fit_divergence_seeds(steps[ok], np.asarray(seeds, dtype=np.float64)[:, ok])
    med, lo, hi = spread.growth_exponent
    n = len(spread.fits)
    out["fit_verdict"] = out["verdict"]
    out["verdict"] = horizon_verdict(out["verdict"], horizon)
    out["growth_exponent_seeds"] = f"{med:.2f} [{lo:.2f}, {hi:.2f}]"
    out["seed_verdicts"] = ", ".join(f"{c}/{n} {v}" for v, c in sorted(spread.counts().items()))
    out["horizon"] = horizon.label()
    out["horizon_short"] = horizon.short()
    out["beta_abs_u"] = horizon.beta_abs_u
    return out
