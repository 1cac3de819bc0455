"""Ready-made theory curves for the figures (``run_*`` returns data; :mod:`theory.plots` draws).

- :func:`run_log_ratio`: ``u(t)`` of GA and NPO at several ``beta`` with NPO's asymptote, on a
  linear and a logarithmic time grid.
- :func:`run_divergence_time`: time to reach ``u = -D`` for GA and NPO (``log t``, exact).
- :func:`run_optimizer_dynamics`: one forget example under gradient descent, sign descent and
  Adam (with and without ``eps``), GA vs NPO, with the predicted rates of
  :mod:`theory.optimizers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npo.validate import check_fields, positive
from theory.flows import (
    ga_log_ratio,
    ga_time_to_divergence,
    npo_log_ratio,
    npo_log_ratio_asymptote,
    npo_log_time_to_divergence,
)
from theory.optimizers import (
    adam_eps_crossover,
    adam_ga_rate,
    adam_log_ratio,
    adam_npo_linear_rate,
    signgd_log_ratio,
)

__all__ = [
    "DivergenceTimeConfig",
    "DivergenceTimeData",
    "LogRatioConfig",
    "LogRatioData",
    "OptimizerDynamicsConfig",
    "OptimizerDynamicsData",
    "run_divergence_time",
    "run_log_ratio",
    "run_optimizer_dynamics",
]

_BETAS = (0.1, 0.5, 1.0, 2.0, 5.0)


def _check_betas(betas: tuple[float, ...]) -> None:
    if not betas:
        raise ValueError("betas must not be empty")
    for b in betas:
        positive("beta", b)


@dataclass(frozen=True)
class LogRatioConfig:
    """Sizes of :func:`run_log_ratio`: the betas, ``K`` and the two time grids."""

    betas: tuple[float, ...] = field(default=_BETAS, metadata={"help": "NPO inverse temperatures"})
    K: float = field(default=1.0, metadata={"help": "squared gradient norm ||grad log pi||^2"})
    t_linear: float = field(default=10.0, metadata={"help": "end of the linear-time panel"})
    t_min: float = field(default=1e-3, metadata={"help": "start of the log-time panel"})
    t_max: float = field(default=1e8, metadata={"help": "end of the log-time panel"})
    points: int = field(default=400, metadata={"help": "points per panel"})

    def __post_init__(self) -> None:
        _check_betas(self.betas)
        check_fields(self, positive=("K", "t_linear", "t_min", "t_max"), at_least_2=("points",))
        if not self.t_min < self.t_max:
            raise ValueError(f"need t_min < t_max, got {self.t_min} and {self.t_max}")


@dataclass(frozen=True)
class LogRatioData:
    """``t_lin``, ``t_log`` (P,); ``ga_*`` (P,); ``npo_*``, ``asym_*`` (len(betas), P)."""

    config: LogRatioConfig
    t_lin: np.ndarray
    t_log: np.ndarray
    ga_lin: np.ndarray
    ga_log: np.ndarray
    npo_lin: np.ndarray
    npo_log: np.ndarray
    asym_lin: np.ndarray
    asym_log: np.ndarray


def run_log_ratio(config: LogRatioConfig = LogRatioConfig()) -> LogRatioData:
    """GA's and NPO's log-ratio ``u(t)`` with NPO's asymptote, on a linear and a log time grid.

    Args:
        config: the betas, ``K`` and the grids.

    Returns:
        The curves (:class:`LogRatioData`).
    """
    c = config
    t_lin = np.linspace(0.0, c.t_linear, c.points)
    t_log = np.geomspace(c.t_min, c.t_max, c.points)
    b = np.asarray(c.betas, dtype=np.float64)[:, None]
    return LogRatioData(
        config=c,
        t_lin=t_lin,
        t_log=t_log,
        ga_lin=np.asarray(ga_log_ratio(t_lin, K=c.K)),
        ga_log=np.asarray(ga_log_ratio(t_log, K=c.K)),
        npo_lin=np.asarray(npo_log_ratio(t_lin, beta=b, K=c.K)),
        npo_log=np.asarray(npo_log_ratio(t_log, beta=b, K=c.K)),
        asym_lin=np.asarray(npo_log_ratio_asymptote(t_lin, beta=b, K=c.K)),
        asym_log=np.asarray(npo_log_ratio_asymptote(t_log, beta=b, K=c.K)),
    )


@dataclass(frozen=True)
class DivergenceTimeConfig:
    """Sizes of :func:`run_divergence_time`: the betas, ``K`` and the range of ``D``."""

    betas: tuple[float, ...] = field(default=_BETAS, metadata={"help": "NPO inverse temperatures"})
    K: float = field(default=1.0, metadata={"help": "squared gradient norm"})
    D_max: float = field(default=50.0, metadata={"help": "largest divergence D (u = -D)"})
    points: int = field(default=300, metadata={"help": "points"})

    def __post_init__(self) -> None:
        _check_betas(self.betas)
        check_fields(self, positive=("K", "D_max"), at_least_2=("points",))


@dataclass(frozen=True)
class DivergenceTimeData:
    """The times to divergence from :func:`run_divergence_time`.

    ``D`` (P,); ``log10_ga`` (P,); ``log10_npo`` (len(betas), P): ``log10`` of the flow time
    to reach ``u = -D`` (exact, finite even where ``t`` overflows float64).
    """

    config: DivergenceTimeConfig
    D: np.ndarray
    log10_ga: np.ndarray
    log10_npo: np.ndarray


def run_divergence_time(
    config: DivergenceTimeConfig = DivergenceTimeConfig(),
) -> DivergenceTimeData:
    """The ``log10`` flow time for GA and NPO to reach ``u = -D``, on a grid of ``D``.

    Args:
        config: the betas, ``K`` and the range of ``D``.

    Returns:
        The times (:class:`DivergenceTimeData`).
    """
    c = config
    D = np.linspace(c.D_max / c.points, c.D_max, c.points)
    b = np.asarray(c.betas, dtype=np.float64)[:, None]
    return DivergenceTimeData(
        config=c,
        D=D,
        log10_ga=np.log10(ga_time_to_divergence(D, K=c.K)),
        log10_npo=npo_log_time_to_divergence(D, beta=b, K=c.K) / np.log(10.0),
    )


@dataclass(frozen=True)
class OptimizerDynamicsConfig:
    """Options of :func:`run_optimizer_dynamics`: the gradient, the optimizers, the steps.

    The defaults show every panel's effect from 2e4 steps on (``npo theory --fast``): the
    gradient-descent panel depends only on ``beta K lr n``, and at 2e4 steps NPO's ``-u`` ends
    7x below GA's; with ``eps = 1e-4`` Adam crosses over to the logarithmic flow near step 1e3.
    """

    d: int = field(default=64, metadata={"help": "parameters (entries of grad_theta u)"})
    grad_scale: float = field(default=3e-2, metadata={"help": "|g_j| ~ grad_scale |N(0,1)|"})
    lr: float = field(default=3e-2, metadata={"help": "learning rate (all optimizers)"})
    beta: float = field(default=1.0, metadata={"help": "NPO inverse temperature"})
    beta1: float = field(default=0.9, metadata={"help": "Adam beta1"})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2"})
    eps: float = field(default=1e-4, metadata={"help": "Adam eps (the eps>0 run)"})
    steps: int = field(default=200_000, metadata={"help": "optimizer steps"})
    points: int = field(default=200, metadata={"help": "log-spaced checkpoints"})
    seed: int = field(default=0, metadata={"help": "seed of the gradient"})

    def __post_init__(self) -> None:
        check_fields(self, positive=("beta", "grad_scale", "lr", "eps"))
        check_fields(self, unit_interval=("beta1", "beta2"))
        if not self.beta1**2 < self.beta2:
            raise ValueError(f"need beta1^2 < beta2, got beta1={self.beta1}, beta2={self.beta2}")
        check_fields(self, at_least_1=("d",), at_least_100=("steps",), at_least_2=("points",))


@dataclass(frozen=True)
class OptimizerDynamicsData:
    """The runs of :func:`run_optimizer_dynamics` and the predictions.

    Log-ratio ``u`` at the checkpoints ``steps`` (P,) for each run (P,); ``adam_npo_rate``
    (the ``eps -> 0`` linear rate), ``adam_ga_rate``, ``crossover`` (the ``u`` below which
    ``eps`` dominates), and ``K``, ``l1`` of the drawn gradient.
    """

    config: OptimizerDynamicsConfig
    steps: np.ndarray
    gd_ga: np.ndarray
    gd_npo: np.ndarray
    sign: np.ndarray
    adam_ga: np.ndarray
    adam_npo_eps0: np.ndarray
    adam_npo: np.ndarray
    adam_npo_rate: float
    adam_ga_rate: float
    crossover: float
    K: float
    l1: float


def run_optimizer_dynamics(
    config: OptimizerDynamicsConfig = OptimizerDynamicsConfig(),
) -> OptimizerDynamicsData:
    """One forget example in the constant-kernel picture under GD, sign descent and Adam.

    GD: the closed forms at ``t = lr n``; sign descent: exact, GA = NPO; Adam: the exact
    scalar recursion for GA, NPO with ``eps = 0`` and NPO with ``config.eps``. Cost: two Adam
    recursions of ``steps`` steps.

    Args:
        config: the gradient, the optimizers' settings and the steps.

    Returns:
        The runs and the predicted rates (:class:`OptimizerDynamicsData`).
    """
    c = config
    g = np.abs(np.random.default_rng(c.seed).standard_normal(c.d)) * c.grad_scale
    K, l1 = float(np.sum(g * g)), float(np.sum(g))
    n = np.unique(np.round(np.geomspace(1, c.steps, c.points)).astype(np.int64))

    def adam(eps: float) -> np.ndarray:
        trace = adam_log_ratio(
            c.steps, grad=g, lr=c.lr, beta=c.beta, beta1=c.beta1, beta2=c.beta2, eps=eps
        )
        return trace.log_ratio[n]

    npo0 = adam(0.0)
    npo = adam(c.eps)
    ga_rate = adam_ga_rate(grad=g, lr=c.lr, eps=c.eps)
    t = n.astype(np.float64)
    return OptimizerDynamicsData(
        config=c,
        steps=t,
        gd_ga=np.asarray(ga_log_ratio(c.lr * t, K=K)),
        gd_npo=np.asarray(npo_log_ratio(c.lr * t, beta=c.beta, K=K)),
        sign=np.asarray(signgd_log_ratio(t, lr=c.lr, l1=l1)),
        adam_ga=-ga_rate * t,
        adam_npo_eps0=npo0,
        adam_npo=npo,
        adam_npo_rate=adam_npo_linear_rate(
            lr=c.lr, l1=l1, beta=c.beta, beta1=c.beta1, beta2=c.beta2
        ),
        adam_ga_rate=ga_rate,
        crossover=adam_eps_crossover(grad=g, beta=c.beta, eps=c.eps),
        K=K,
        l1=l1,
    )
