"""The batched unlearning runner: every method setting and every seed as one tensor program.

Parameters are shaped ``(G, S, k)``: one group per :class:`MethodSpec` (method, learning rate,
beta, optimizer), one run per data seed. Each step computes the forget/IDK/retain log-probs of
all runs with :func:`npo.logprobs.class_logprobs` (and the retain KL with
:func:`npo.logprobs.class_kl`), evaluates each group's :class:`npo.objectives.Objective` (the
same presets and kernels the LLM path uses) on its slice, sums the per-run losses and takes one
gradient. What each group computes follows from ``objective.needs()``, never from method names.

``forget_up_frac`` is the fraction of forget training samples whose likelihood rose
(``log pi > log pi_ref + 1e-9``, above round-off). Adam groups also record Adam's regime
statistics ``adam_q``, ``adam_rho`` and ``adam_step_max`` (:func:`synthetic.optim.adam_stats`;
``ADAM_METRICS``), NaN for the other groups.

A run whose loss or gradient turns non-finite is frozen at its last good parameters (the last
whose loss and gradient were finite), its step recorded in ``failed_step``; its metrics from
the bad parameters on are NaN and the other runs continue. A run whose parameters or metrics
become non-finite at an evaluation (an overflow the loss did not show, e.g. SimNPO's
saturating loss at an enormous learning rate) fails there the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from npo.logprobs import class_kl, class_logprobs
from npo.losses import npo_weight
from npo.objectives import PRESETS, Objective, SeqBatch, Term, preset
from npo.validate import check_fields
from synthetic.data import Split, Task
from synthetic.models import References, logits, split_logprobs
from synthetic.optim import ADAM_EPS, OPTIMIZERS, adam_stats, init_state, update

__all__ = [
    "ADAM_METRICS",
    "METRICS",
    "Curves",
    "MethodSpec",
    "RunConfig",
    "merge_curves",
    "record_steps",
    "run_unlearning",
]

METRICS = (
    "forget_distance",
    "retain_distance",
    "forget_kl",
    "param_drift",
    "npo_weight",
    "forget_logp",
    "forget_up_frac",
)
# The metrics that are finite for every sound run (npo_weight is NaN by design without NPO).
_FINITE = ("forget_distance", "retain_distance", "forget_kl", "param_drift", "forget_logp")
ADAM_METRICS = ("adam_q", "adam_rho", "adam_step_max")  # recorded when a group runs Adam
UP_TOL = 1e-9  # a forget log-prob counts as risen above the reference's past this (round-off)


@dataclass(frozen=True)
class MethodSpec:
    """One method setting: a preset key with its hyperparameters.

    ``label`` names its curves (default: the method key); ``eps`` is Adam's (unused by the
    other optimizers).
    """

    method: str
    lr: float
    beta: float = 1.0
    gamma: float = 0.0
    retain_weight: float = 1.0
    optimizer: str = "gd"
    label: str | None = None
    eps: float = ADAM_EPS

    def __post_init__(self) -> None:
        if self.method not in PRESETS:
            raise ValueError(f"unknown method {self.method!r}; valid: {sorted(PRESETS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {sorted(OPTIMIZERS)}")
        check_fields(self, positive=("lr",), nonnegative=("eps",))
        self.objective()  # validates beta, gamma, weights

    @property
    def key(self) -> str:
        """The name of this setting's curves, ``label`` or else the method key."""
        return self.label or self.method

    def objective(self) -> Objective:
        """The setting's objective, from the preset of ``method``.

        Returns:
            ``npo.objectives.preset(method, beta=..., gamma=..., retain_weight=...)``.
        """
        return preset(
            self.method, beta=self.beta, gamma=self.gamma, retain_weight=self.retain_weight
        )


@dataclass(frozen=True)
class RunConfig:
    """Schedule of one unlearning run (constant learning rate, no weight decay)."""

    steps: int = field(default=2000, metadata={"help": "unlearning steps"})
    eval_every: int = field(default=25, metadata={"help": "evaluate every N steps"})
    log_points: int = field(default=40, metadata={"help": "extra log-spaced evaluation steps"})
    batch_size: int | None = field(
        default=None, metadata={"help": "forget mini-batch per step (None: full batch)"}
    )
    sample_seed: int = field(default=0, metadata={"help": "mini-batch sampling seed"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar on a terminal"})

    def __post_init__(self) -> None:
        check_fields(self, at_least_1=("steps", "eval_every", "batch_size"))
        check_fields(self, at_least_0=("log_points",))


@dataclass(frozen=True)
class Curves:
    """Raw curves: ``metrics[name]`` is (G, S, T) over ``steps`` (T,), NaN where undefined."""

    specs: tuple[MethodSpec, ...]
    seeds: tuple[int, ...]
    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    failed_step: np.ndarray  # (G, S), -1 where the run never failed

    def metric(self, key: str, name: str) -> np.ndarray:
        """The curves of one metric of one method setting.

        Args:
            key: the setting's key (:attr:`MethodSpec.key`).
            name: the metric (one of ``METRICS``).

        Returns:
            One curve per seed, (S, T).
        """
        return self.metrics[name][[s.key for s in self.specs].index(key)]


def record_steps(steps: int, eval_every: int, log_points: int) -> np.ndarray:
    """The steps at which a run is evaluated.

    Args:
        steps: the run's length.
        eval_every: evaluate every this many steps.
        log_points: how many log-spaced steps in ``[1, steps]`` to add.

    Returns:
        The sorted steps, namely 0, every ``eval_every`` steps, the log-spaced ones and ``steps``.
    """
    grid = set(range(0, steps + 1, eval_every)) | {0, steps}
    if log_points:
        grid |= set(np.unique(np.round(np.geomspace(1, steps, log_points))).astype(int))
    return np.array(sorted(grid), dtype=np.int64)


def _take(split: Split, idx: Tensor | None) -> Split:
    if idx is None:
        return split
    return Split(split.features[:, idx], split.labels[:, idx])


class _Program:
    """Per-step data of the batched program (constants computed once)."""

    def __init__(self, task: Task, refs: References, specs: tuple[MethodSpec, ...]) -> None:
        self.task, self.refs = task, refs
        self.objectives = [s.objective() for s in specs]
        self.needs = [o.needs() for o in self.objectives]
        self.retain_groups = [g for g, n in enumerate(self.needs) if "retain" in n]
        self.any_idk = any("idk" in n for n in self.needs)
        th = refs.theta_ref
        self.ref_forget = split_logprobs(task.forget, th)  # (S, n_f)
        self.ref_idk = split_logprobs(task.forget, th, task.idk_labels)
        self.ref_retain_logits = logits(task.retain, th)  # (S, n_r)
        self.retr_fe = logits(task.forget_eval, refs.theta_retr)
        self.retr_re = logits(task.retain_eval, refs.theta_retr)
        self.ref_fe = logits(task.forget_eval, th)
        self.betas = [
            next((t.hparams["beta"] for t in o.terms if t.loss == "npo"), None)
            for o in self.objectives
        ]
        # Each distinct term (same kernel, source, reduction, hyperparameters) is evaluated once
        # for all the groups whose objective has it, as a one-term Objective; the groups' losses
        # are the weighted sums of their terms, exactly as each Objective would compute them.
        units: dict[tuple, tuple[Term, list[int], list[float]]] = {}
        for g, objective in enumerate(self.objectives):
            for term in objective.terms:
                hp = tuple(sorted(term.hparams.items()))
                key = (term.loss, term.source, term.chosen, term.reduction, hp)
                unit = units.setdefault(key, (replace(term, weight=1.0), [], []))
                unit[1].append(g)
                unit[2].append(term.weight)
        self.units = [
            (Objective((term,)), groups, torch.tensor(weights, dtype=th.dtype))
            for term, groups, weights in units.values()
        ]

    def _groups(self, src: str, name: str) -> list[int]:
        return [g for g, n in enumerate(self.needs) if name in n.get(src, ())]

    def losses(self, theta: Tensor, idx_f: Tensor | None, idx_r: Tensor | None) -> Tensor:
        # Per-run losses (G, S) with autograd to theta (G, S, k). Each (source, field) is
        # computed once, batched over exactly the groups whose objective reads it.
        sel = (lambda x: x) if idx_f is None else (lambda x: x[:, idx_f])
        forget, retain = _take(self.task.forget, idx_f), _take(self.task.retain, idx_r)
        ref_r = self.ref_retain_logits if idx_r is None else self.ref_retain_logits[:, idx_r]
        labels = {"forget": forget.labels, "idk": sel(self.task.idk_labels)}
        fields: dict[tuple[str, str], tuple[list[int], Tensor]] = {}
        z_f = logits(forget, theta)  # (G, S, n_f); every preset reads the forget set
        for src in ("forget", "idk"):
            groups = self._groups(src, "logps")
            if groups:
                z = z_f[groups]
                fields[src, "logps"] = groups, class_logprobs(z, labels[src].expand_as(z))
        groups = sorted(set(self._groups("retain", "logps")) | set(self._groups("retain", "kl")))
        if groups:
            z_r = logits(retain, theta[groups])  # (G_r, S, n_r)
            for name in ("logps", "kl"):
                need = self._groups("retain", name)
                if need:
                    z = z_r[[groups.index(g) for g in need]]
                    value = (
                        class_logprobs(z, retain.labels.expand_as(z))
                        if name == "logps"
                        else class_kl(z, ref_r.expand_as(z))
                    )
                    fields["retain", name] = need, value
        shared = {
            ("forget", "ref_logps"): sel(self.ref_forget),
            ("idk", "ref_logps"): sel(self.ref_idk),
        }
        total = torch.zeros(theta.shape[:2], dtype=theta.dtype)
        for objective, groups, weights in self.units:
            batch = {}
            for src, names in objective.needs().items():
                values = {}
                for n in names - {"n_tokens"}:  # n_tokens stays None: one "token" per sample
                    if (src, n) in shared:
                        values[n] = shared[src, n].expand(len(groups), -1, -1)
                    else:
                        have, tensor = fields[src, n]
                        rows = [have.index(g) for g in groups]
                        values[n] = tensor if rows == list(range(len(have))) else tensor[rows]
                batch[src] = SeqBatch(**values)
            contribution = weights[:, None] * objective(batch).loss  # (len(groups), S)
            total = total.index_add(0, torch.tensor(groups), contribution)
        return total

    @torch.no_grad()
    def evaluate(self, theta: Tensor) -> dict[str, Tensor]:
        # all metrics, each (G, S)
        z_fe = logits(self.task.forget_eval, theta)
        z_re = logits(self.task.retain_eval, theta)
        lp_f = split_logprobs(self.task.forget, theta)  # (G, S, n_f)
        weight = torch.full(theta.shape[:2], float("nan"), dtype=theta.dtype)
        for g, beta in enumerate(self.betas):
            if beta is not None:
                weight[g] = npo_weight(lp_f[g], self.ref_forget, beta=beta).mean(-1)
        return {
            "forget_distance": class_kl(z_fe, self.retr_fe.expand_as(z_fe)).mean(-1),
            "retain_distance": class_kl(z_re, self.retr_re.expand_as(z_re)).mean(-1),
            "forget_kl": class_kl(z_fe, self.ref_fe.expand_as(z_fe)).mean(-1),
            "param_drift": (theta - self.refs.theta_ref).norm(dim=-1),
            "npo_weight": weight,
            "forget_logp": lp_f.mean(-1),
            "forget_up_frac": (lp_f > self.ref_forget + UP_TOL).to(theta.dtype).mean(-1),
        }


def run_unlearning(
    task: Task,
    refs: References,
    specs: tuple[MethodSpec, ...] | list[MethodSpec],
    config: RunConfig = RunConfig(),
) -> Curves:
    """Unlearn from ``pi_ref`` with every spec and every seed at once.

    Args:
        task: the data.
        refs: ``pi_ref`` (the start) and ``pi_retr`` (the distances' target).
        specs: the method settings, with distinct keys.
        config: the schedule.

    Returns:
        The recorded curves of every metric, (G, S, T), and each run's failure step.

    Raises:
        ValueError: for no specs or repeated keys.
    """
    specs = tuple(specs)
    if not specs:
        raise ValueError("need at least one method spec")
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"method labels must be unique, got {keys}")
    prog = _Program(task, refs, specs)
    g_count, s_count = len(specs), refs.theta_ref.shape[0]
    theta = refs.theta_ref.expand(g_count, *refs.theta_ref.shape).clone()
    lrs = torch.tensor([s.lr for s in specs], dtype=theta.dtype)
    eps = torch.tensor([s.eps for s in specs], dtype=theta.dtype)
    kinds = [s.optimizer for s in specs]
    states = init_state(kinds)
    adam = [g for g, k in enumerate(kinds) if k == "adam"]
    rec = record_steps(config.steps, config.eval_every, config.log_points)
    names = METRICS + (ADAM_METRICS if adam else ())
    metrics = {m: np.full((g_count, s_count, rec.size), np.nan) for m in names}
    alive = torch.ones(g_count, s_count, dtype=torch.bool)
    failed = np.full((g_count, s_count), -1, dtype=np.int64)
    gen = torch.Generator().manual_seed(config.sample_seed)
    n_f, n_r = task.forget.labels.shape[1], task.retain.labels.shape[1]

    def record(col: int, step: int) -> None:
        nonlocal alive
        values = prog.evaluate(theta)
        sound = torch.isfinite(theta).all(-1)
        for name in _FINITE:
            sound &= torch.isfinite(values[name])
        newly = alive & ~sound
        if bool(newly.any()):
            failed[newly.numpy()] = step
            alive = alive & sound
        for name, value in values.items():
            metrics[name][:, :, col] = torch.where(alive, value, float("nan")).numpy()
        if adam:
            stats = adam_stats(states["adam"], eps[adam])
            for name, value in zip(ADAM_METRICS, stats):
                metrics[name][adam, :, col] = torch.where(alive[adam], value, float("nan")).numpy()

    record(0, 0)
    col = 1
    prev = theta  # the parameters one update before `theta`
    bar = tqdm(range(1, config.steps + 1), desc="unlearning", disable=not config.progress or None)
    for step in bar:
        idx_f = idx_r = None
        if config.batch_size is not None:
            b_f = min(config.batch_size, n_f)
            idx_f = torch.randperm(n_f, generator=gen)[:b_f]
            idx_r = torch.randperm(n_r, generator=gen)[: max(1, b_f * n_r // n_f)]
        th = theta.detach().requires_grad_()
        losses = prog.losses(th, idx_f, idx_r)  # (G, S)
        total = torch.where(alive, losses, torch.zeros_like(losses)).sum()
        (grad,) = torch.autograd.grad(total, th)
        ok = torch.isfinite(losses.detach()) & torch.isfinite(grad).all(-1)
        newly = alive & ~ok
        if bool(newly.any()):
            # theta (after step - 1 updates) gives a non-finite loss or gradient: freeze the run
            # at `prev`, the last parameters whose loss and gradient were finite, and blank
            # the metrics recorded for theta itself.
            failed[newly.numpy()] = step
            alive &= ok
            theta = torch.where(newly[..., None], prev, theta)
            if rec[col - 1] == step - 1 and step > 1:
                for values in metrics.values():
                    values[:, :, col - 1][newly.numpy()] = np.nan
        grad = torch.where(alive[..., None], grad, torch.zeros_like(grad))
        new = update(theta, grad, lrs, kinds, states, step, eps)
        prev, theta = theta, torch.where(alive[..., None], new, theta)
        if col < rec.size and step == rec[col]:
            record(col, step)
            col += 1
    return Curves(specs, tuple(task.config.seeds), rec, metrics, failed)


def merge_curves(parts: list[Curves]) -> Curves:
    """The curves of several runs of the same seeds and record steps, as one.

    Args:
        parts: runs recorded at the same steps (e.g. a full-batch and a mini-batch program).

    Returns:
        Their specs and metrics concatenated in order (a metric one run lacks is NaN there).

    Raises:
        ValueError: if the runs were recorded at different steps.
    """
    steps = parts[0].steps
    if any(not np.array_equal(p.steps, steps) for p in parts):
        raise ValueError("cannot merge curves recorded at different steps")
    return Curves(
        sum((p.specs for p in parts), ()),
        parts[0].seeds,
        steps,
        {
            m: np.concatenate(
                [p.metrics.get(m, np.full_like(p.metrics["param_drift"], np.nan)) for p in parts]
            )
            for m in dict.fromkeys(k for p in parts for k in p.metrics)
        },
        np.concatenate([p.failed_step for p in parts]),
    )
