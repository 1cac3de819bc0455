"""The paper's synthetic experiments (Sec. 4, App. B/D), as data.

Each ``run_<name>(config)`` returns an :class:`~npo.experiment.ExperimentResult` (curves
summarized over seeds, a table, notes); :mod:`synthetic.plots` draws it and
:func:`npo.results.write_result` writes it. Nothing here parses arguments, prints or writes
files; :mod:`synthetic.beyond` holds the experiments beyond the paper.

Settings follow the paper's Table 1 (``TABLE1``). SimNPO is not in the paper's synthetic
study; we run it with NPO's learning rate and beta (``gamma = 0``): with one "token" per sample
its loss is NPO's with ``log pi_ref`` replaced by the constant ``-gamma/beta``.
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from typing import Any

import numpy as np

from npo.experiment import ExperimentResult, ReproduceConfig
from synthetic.data import Task, TaskConfig, make_task
from synthetic.models import References, train_references
from synthetic.runner import METRICS, Curves, MethodSpec, RunConfig, run_unlearning
from synthetic.stats import crossing, median_curve, summarize
from synthetic.verdicts import family, seed_verdict, verdict

__all__ = [
    "EXPLODING_NATS",
    "FAMILY_NOTE",
    "FIG3_BETAS",
    "FIG4_METHODS",
    "TABLE1",
    "base_config",
    "exploding_runs",
    "from_curves",
    "metric_verdict",
    "references",
    "run_cached",
    "run_fig3",
    "run_fig4_alpha0",
    "run_fig4_alpha1",
    "run_fig9",
    "summaries",
    "table1_specs",
    "verdict",
]

FAMILY_NOTE = (
    "Families, by the forget term's weight: GA family ga, ga+rt, ga+kl (weight 1: linear in "
    "the theory); NPO family npo, npo+rt, npo+kl, simnpo, simnpo+rt and dpo+rt (DPO's weight "
    "2 sigmoid(beta (R_rejected - R_chosen)) vanishes like NPO's; SimNPO's is NPO's on log pi); "
    "idk+rt in neither (no forget-likelihood term: it trains towards the IDK labels)."
)

FIG4_METHODS = (
    "ga",
    "ga+rt",
    "ga+kl",
    "idk+rt",
    "npo",
    "npo+rt",
    "npo+kl",
    "dpo+rt",
    "simnpo",
    "simnpo+rt",
)
_GA_FAMILY = {"ga", "ga+rt", "ga+kl", "idk+rt"}
_DPO = {"dpo+rt"}
# alpha -> family -> (lr, beta)
TABLE1 = {
    1.0: {"ga": (5e-4, 1.0), "npo": (5e-3, 1.0), "dpo": (5e-3, 0.1)},
    0.0: {"ga": (1e-4, 1.0), "npo": (5e-2, 10.0), "dpo": (5e-2, 5.0)},
}
CROSSING_LEVEL = 0.02
REF_GRAD_TOL = 1e-2  # pi_ref/pi_retr must reach this full-gradient norm
# A finite run is flagged as exploding once a divergence metric (forget/retain distance,
# forget KL, in nats) exceeds this: about 40x the largest value any Table 1 setting reaches
# in the paper's 2000 steps (GA's forget KL, about 24), i.e. logits of order 1e3, far outside
# the regime the figures describe (a learning rate far too large, typically).
EXPLODING_NATS = 1e3
_EXPLODING_METRICS = ("forget_distance", "retain_distance", "forget_kl")


def table1_specs(
    alpha: float,
    methods: tuple[str, ...] = FIG4_METHODS,
    lr: float | None = None,
    beta: float | None = None,
) -> tuple[MethodSpec, ...]:
    """Table 1's (lr, beta) for each method at ``alpha``.

    Args:
        alpha: the mean shift, 1 or 0 (the two columns of Table 1).
        methods: preset keys.
        lr: overrides every method's learning rate.
        beta: overrides every method's beta.

    Returns:
        One :class:`~synthetic.runner.MethodSpec` per method.

    Raises:
        ValueError: for an ``alpha`` Table 1 has no settings for.
    """
    if alpha not in TABLE1:
        raise ValueError(f"Table 1 has settings for alpha in {sorted(TABLE1)}, not {alpha}")
    row = TABLE1[alpha]
    specs = []
    for m in methods:
        family = "ga" if m in _GA_FAMILY else "dpo" if m in _DPO else "npo"
        lr_m, beta_m = row[family]
        specs.append(MethodSpec(m, lr or lr_m, beta=beta or beta_m))
    return tuple(specs)


@functools.lru_cache(maxsize=4)
def _task_and_refs(
    task_config: TaskConfig, ref_steps: int, progress: bool
) -> tuple[Task, References]:
    task = make_task(task_config)
    return task, train_references(task, steps=ref_steps, progress=progress)


def references(config: ReproduceConfig, alpha: float) -> tuple[Task, References]:
    """The task and its ``pi_ref``/``pi_retr``, cached per process.

    Args:
        config: seeds, reference steps and progress bars.
        alpha: the mean shift.

    Returns:
        ``(task, refs)``.
    """
    task_config = TaskConfig(alpha=alpha, seeds=config.seed_list)
    return _task_and_refs(task_config, config.ref_steps, config.progress)


@functools.lru_cache(maxsize=8)
def run_cached(config: ReproduceConfig, alpha: float, specs: tuple, run: RunConfig) -> Curves:
    """:func:`~synthetic.runner.run_unlearning` on the task of ``alpha``, cached per process.

    fig4 and fig9 share their runs through this cache.

    Args:
        config: seeds, reference steps and progress bars.
        alpha: the mean shift.
        specs: the method settings.
        run: the schedule.

    Returns:
        The recorded curves.
    """
    task, refs = references(config, alpha)
    return run_unlearning(task, refs, specs, run)


def from_curves(
    name: str, config: dict, curves: Curves, rows: list[dict], notes: list[str], **kw: Any
) -> ExperimentResult:
    """The experiment result of ``curves``, with the runs that stopped on a non-finite value.

    Args:
        name: the experiment's name.
        config: its configuration (written to the JSON).
        curves: the recorded curves, summarized over seeds here.
        rows: the table.
        notes: the notes; a line listing the failed runs is added when there are any.
        **kw: further fields of :class:`~npo.experiment.ExperimentResult` (``extras``,
            ``headline``).

    Returns:
        The result, with ``failed_runs`` as ``{method: [{"seed", "step"}]}``.
    """
    failed = {
        s.key: [
            {"seed": curves.seeds[i], "step": int(step)}
            for i, step in enumerate(curves.failed_step[g])
            if step >= 0
        ]
        for g, s in enumerate(curves.specs)
    }
    failed = {k: v for k, v in failed.items() if v}
    exploding = exploding_runs(curves)
    if exploding:
        listed = "; ".join(
            f"{k}: " + ", ".join(f"seed {f['seed']} from step {f['step']}" for f in v)
            for k, v in exploding.items()
        )
        notes = [
            *notes,
            f"Runs whose forget/retain distance or forget KL exceeded {EXPLODING_NATS:g} nats "
            f"(finite, but far outside the regime of the figure; learning rate too large?): "
            f"{listed}.",
        ]
    if failed:
        listed = "; ".join(
            f"{k}: " + ", ".join(f"seed {f['seed']} at step {f['step']}" for f in v)
            for k, v in failed.items()
        )
        notes = [
            *notes,
            "Runs stopped on a non-finite loss, gradient, parameter or metric (excluded from "
            f"the statistics from then on): {listed}.",
        ]
    return ExperimentResult(
        name,
        config,
        curves.steps,
        summaries(curves),
        rows,
        notes,
        failed_runs=failed,
        exploding_runs=exploding,
        **kw,
    )


def exploding_runs(curves: Curves) -> dict:
    """The finite runs whose divergence metrics exceed :data:`EXPLODING_NATS`.

    Args:
        curves: the recorded curves.

    Returns:
        ``{method: [{"seed", "step"}]}``, the first recorded step past the bound, for the
        methods with such runs.
    """
    out = {}
    for g, spec in enumerate(curves.specs):
        runs = []
        for i, seed in enumerate(curves.seeds):
            values = np.stack([curves.metrics[m][g, i] for m in _EXPLODING_METRICS])
            over = np.flatnonzero(np.nan_to_num(np.abs(values), nan=0.0).max(0) > EXPLODING_NATS)
            if over.size:
                runs.append({"seed": seed, "step": int(curves.steps[over[0]])})
        if runs:
            out[spec.key] = runs
    return out


def summaries(curves: Curves) -> dict:
    """Every metric of every method setting, summarized over seeds.

    Args:
        curves: the recorded curves.

    Returns:
        ``{method: {metric: summary}}`` (:func:`~synthetic.stats.summarize`): every metric of
        ``METRICS``, and Adam's ``adam_q``/``adam_rho`` for the runs that have them.
    """
    out: dict = {}
    for s in curves.specs:
        out[s.key] = {m: summarize(curves.metric(s.key, m)) for m in METRICS}
        for m in set(curves.metrics) - set(METRICS):  # Adam's statistics, for Adam runs
            values = curves.metric(s.key, m)
            if np.isfinite(values).any():
                out[s.key][m] = summarize(values)
    return out


def _late_linear_r2(steps: np.ndarray, curve: np.ndarray) -> float:
    half = steps >= steps[-1] / 2
    x, y = steps[half], curve[half]
    pred = np.polyval(np.polyfit(x, y, 1), x)
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def base_config(config: ReproduceConfig, **extra: Any) -> dict:
    """The configuration an experiment writes to its JSON.

    Args:
        config: the shared options.
        **extra: the experiment's own settings.

    Returns:
        ``{"reproduce": asdict(config), **extra}``.
    """
    return {"reproduce": asdict(config), **extra}


def _run_table1(config: ReproduceConfig, alpha: float) -> tuple[Curves, RunConfig]:
    run = RunConfig(config.n_steps(2000, 2000), config.eval_every or 25, progress=config.progress)
    specs = table1_specs(alpha, config.methods or FIG4_METHODS, config.lr, config.beta)
    return run_cached(config, alpha, specs, run), run


def _nanmean(x: np.ndarray) -> float:
    # The mean of the finite values; NaN (no RuntimeWarning) when every run failed.
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


def _fig4_row(curves: Curves, s: MethodSpec) -> dict:
    fd, rd = curves.metric(s.key, "forget_distance"), curves.metric(s.key, "retain_distance")
    mf, mr = median_curve(fd), median_curve(rd)
    i = int(np.nanargmin(mf))
    cross = crossing(curves.steps, fd, rd, CROSSING_LEVEL)
    v = metric_verdict(curves, s, "forget_kl")
    return {
        "method": s.key,
        "family": family(s),
        "lr": s.lr,
        "beta": s.beta,
        "start_forget": mf[0],
        "start_retain": mr[0],
        "final_forget_median": mf[-1],
        "final_forget_mean": _nanmean(fd[:, -1]),
        "final_retain_median": mr[-1],
        "final_retain_mean": _nanmean(rd[:, -1]),
        "min_forget": mf[i],
        "min_forget_step": int(curves.steps[i]),
        "retain_at_0.02": None if cross is None else cross.other,
        "step_at_0.02": None if cross is None else cross.step,
        "forget_kl_rate": v["verdict"],
        "failed_runs": int((curves.failed_step[curves.specs.index(s)] >= 0).sum()),
    }


def _fig4(config: ReproduceConfig, alpha: float) -> ExperimentResult:
    curves, run = _run_table1(config, alpha)
    _task, refs = references(config, alpha)
    rows = [_fig4_row(curves, s) for s in curves.specs]
    start = (rows[0]["start_forget"], rows[0]["start_retain"])
    worst = max(float(refs.grad_norm_ref.max()), float(refs.grad_norm_retr.max()))
    converged = worst < REF_GRAD_TOL
    notes = [
        f"Start point (median over {len(config.seed_list)} seeds): forget distance {start[0]:.3f}, "
        f"retain distance {start[1]:.4f} (the paper reads about 1.70 and 0.02 at alpha = 1).",
        f"pi_ref / pi_retr final gradient norms: max {float(refs.grad_norm_ref.max()):.2e} / "
        f"{float(refs.grad_norm_retr.max()):.2e} after {refs.steps} GD steps (lr {refs.lr})"
        + ("." if converged else f": WARNING, above {REF_GRAD_TOL} (raise --ref-steps)."),
        f"'retain_at_0.02': median retain distance where the median forget distance first "
        f"reaches {CROSSING_LEVEL} (log-interpolated); empty if it never does.",
        "'forget_kl_rate': the forget KL's growth verdict with its horizon flag, as in fig9.",
        FAMILY_NOTE,
    ]
    name = f"fig4-alpha{alpha:g}"
    cfg = base_config(config, alpha=alpha, run=asdict(run), specs=[asdict(s) for s in curves.specs])
    reached = [r for r in rows if r["retain_at_0.02"] is not None]
    best = min(reached, key=lambda r: r["retain_at_0.02"]) if reached else None
    warn = "" if converged else f"WARNING pi_ref/pi_retr gradient norm {worst:.1e}; "
    headline = (
        warn
        + f"start ({start[0]:.2f}, {start[1]:.3f}); "
        + (
            f"lowest retain distance at forget distance {CROSSING_LEVEL}: {best['method']} "
            f"({best['retain_at_0.02']:.4f})"
            if best
            else f"no method reached forget distance {CROSSING_LEVEL}"
        )
    )
    return from_curves(name, cfg, curves, rows, notes, headline=headline)


def run_fig4_alpha1(config: ReproduceConfig) -> ExperimentResult:
    """Fig. 4 at ``alpha = 1``: distances to the retrained model, every method of Table 1.

    Args:
        config: the shared options (seeds, steps, methods, lr, beta, ...).

    Returns:
        Curves, one table row per method (start point, final and minimum distances, retain
        distance at forget distance 0.02, forget-KL verdict) and notes.
    """
    return _fig4(config, 1.0)


def run_fig4_alpha0(config: ReproduceConfig) -> ExperimentResult:
    """Fig. 4 at ``alpha = 0``, as :func:`run_fig4_alpha1`.

    Args:
        config: the shared options.

    Returns:
        Curves, the table and notes.
    """
    return _fig4(config, 0.0)


def metric_verdict(curves: Curves, s: MethodSpec, metric: str) -> dict:
    """The verdict on one setting's median ``metric`` curve, with seeds and horizon.

    Args:
        curves: the recorded curves.
        s: the setting.
        metric: the metric whose growth is classified.

    Returns:
        :func:`synthetic.verdicts.seed_verdict` of the curves with the run's horizon flag.
    """
    return seed_verdict(curves, s, curves.metric(s.key, metric))


def _fig9_row(curves: Curves, s: MethodSpec) -> dict:
    kl = median_curve(curves.metric(s.key, "forget_kl"))
    v = metric_verdict(curves, s, "forget_kl")
    return {
        "method": s.key,
        "family": family(s),
        "final_forget_kl": kl[-1],
        "verdict": v["verdict"],
        "horizon": v.get("horizon"),
        "horizon_short": v.get("horizon_short"),
        "fit_verdict": v.get("fit_verdict"),
        "seed_verdicts": v.get("seed_verdicts"),
        "rate_exponent": v.get("rate_exponent"),
        "growth_exponent": v.get("growth_exponent"),
        "growth_exponent_seeds": v.get("growth_exponent_seeds"),
        "beta_abs_u": v.get("beta_abs_u"),
        "late_linear_r2": _late_linear_r2(curves.steps, kl),
        "linear_r2": v.get("linear_r2"),
        "log_r2": v.get("log_r2"),
        "log_tau": v.get("log_tau"),
    }


def run_fig9(config: ReproduceConfig) -> ExperimentResult:
    """Fig. 9: the forget KL ``E KL(pi_ref || pi_theta)`` on forget evaluation data, and its rate.

    Args:
        config: the shared options.

    Returns:
        Curves (shared with fig4-alpha1's runs), one row per method with its verdict, notes.
    """
    curves, run = _run_table1(config, 1.0)
    rows = [_fig9_row(curves, s) for s in curves.specs]
    notes = [
        "Verdicts by theory.divergence.fit_divergence on the median forget-KL curve (log-spaced "
        "record steps from 1 to the end), replaced by 'not asymptotic at this horizon' where "
        "the theory's horizon criterion (synthetic.verdicts, theory.horizon) says the run has "
        "not reached its regime; 'fit_verdict' is the fit's own verdict, 'seed_verdicts' and "
        "'growth_exponent_seeds' (median [min, max]) the fits per seed, 'beta_abs_u' "
        "beta |u(T)| of the NPO family; 'late_linear_r2' is a linear fit's R^2 over the last "
        "half of the run.",
        FAMILY_NOTE,
    ]
    cfg = base_config(config, alpha=1.0, run=asdict(run))
    headline = "forget-KL growth: " + ", ".join(f"{r['method']} {r['verdict']}" for r in rows)
    return from_curves("fig9", cfg, curves, rows, notes, headline=headline)


FIG3_BETAS = (0.01, 0.1, 0.2, 0.5, 1.0)


def run_fig3(config: ReproduceConfig) -> ExperimentResult:
    """Fig. 3 (App. D): NPO without retain term over beta, against GA, at one learning rate.

    Args:
        config: the shared options.

    Returns:
        Curves, one row per beta with the largest gaps to GA's median curves, notes.
    """
    specs = (
        MethodSpec("ga", 0.0005),
        *tuple(MethodSpec("npo", 0.0005, beta=b, label=f"npo[beta={b:g}]") for b in FIG3_BETAS),
    )
    run = RunConfig(config.n_steps(10000, 3000), config.eval_every or 25, progress=config.progress)
    curves = run_cached(config, 1.0, specs, run)
    ga_f = median_curve(curves.metric("ga", "forget_distance"))
    ga_r = median_curve(curves.metric("ga", "retain_distance"))
    rows = []
    for s in specs[1:]:
        f = median_curve(curves.metric(s.key, "forget_distance"))
        r = median_curve(curves.metric(s.key, "retain_distance"))
        row = {
            "method": s.key,
            "beta": s.beta,
            "max_forget_gap_to_ga": float(np.nanmax(np.abs(f - ga_f))),
            "max_retain_gap_to_ga": float(np.nanmax(np.abs(r - ga_r))),
            "final_forget": f[-1],
            "final_retain": r[-1],
        }
        rows.append(row)
    notes = ["Gaps: max over recorded steps of |median NPO curve - median GA curve|."]
    cfg = base_config(config, alpha=1.0, run=asdict(run), betas=FIG3_BETAS, lr=5e-4)
    headline = "max forget-distance gap to GA by beta: " + ", ".join(
        f"{r['beta']:g}: {r['max_forget_gap_to_ga']:.3g}" for r in rows
    )
    return from_curves("fig3", cfg, curves, rows, notes, headline=headline)
