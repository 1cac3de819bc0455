"""The paper's synthetic binary-classification task (Sec. 4, App. B.1), batched over seeds.

Inputs ``x`` in R^d (d = 16). Forget distribution: ``x ~ N(mu_f, I)``,
``P(y=1|x) = sigmoid((x - mu_f)^T theta_f + 1)``; retain distribution: ``x ~ N(mu_r, I)``,
``P(y=1|x) = sigmoid((x - mu_r)^T theta_r - 1)``, with ``theta_f = -theta_r = 1_d/sqrt(d)``
and ``mu_f = -mu_r = alpha 1_d``. Training sets of ``n_f = 200`` forget and ``n_r = 1000``
retain points, fresh evaluation draws of 1000 per distribution, and an "I don't know" label per
forget point drawn Bernoulli(1/2) (the IDK+RT answer and the chosen side of DPO+RT).

The model is a random-features logistic model ``pi(y=1|x) = sigmoid(theta^T relu(W x))`` with
``W`` in R^{128 x d} fixed, entries N(0, 1/d): only the features ``relu(W x)`` are kept. Every
seed draws its own ``W`` and data; all arrays carry a leading seed axis ``S``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from npo.validate import check_fields

__all__ = ["Split", "Task", "TaskConfig", "make_task"]


@dataclass(frozen=True)
class TaskConfig:
    """Sizes and seeds of the synthetic task (defaults: the paper's)."""

    alpha: float = field(default=1.0, metadata={"help": "mean shift: mu_f = -mu_r = alpha 1_d"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "data seeds"})
    d: int = field(default=16, metadata={"help": "input dimension"})
    n_features: int = field(default=128, metadata={"help": "random features"})
    n_forget: int = field(default=200, metadata={"help": "forget training points"})
    n_retain: int = field(default=1000, metadata={"help": "retain training points"})
    n_eval: int = field(default=1000, metadata={"help": "evaluation points per distribution"})

    def __post_init__(self) -> None:
        check_fields(self, finite=("alpha",))
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        check_fields(self, at_least_1=("d", "n_features", "n_forget", "n_retain", "n_eval"))


@dataclass(frozen=True)
class Split:
    """Features ``(S, n, k)`` (float64) and integer labels ``(S, n)`` of one data set."""

    features: Tensor
    labels: Tensor


@dataclass(frozen=True)
class Task:
    """All data of the task. ``idk_labels`` are the IDK answers for the forget training points."""

    config: TaskConfig
    forget: Split
    retain: Split
    forget_eval: Split
    retain_eval: Split
    idk_labels: Tensor
    inputs: dict[str, np.ndarray]  # raw x per split, (S, n, d), for tests and plots


def _draw(
    rng: np.random.Generator, n: int, mean: np.ndarray, theta: np.ndarray, bias: float
) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, mean.size)) + mean
    logit = (x - mean) @ theta + bias
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return x, y


def make_task(config: TaskConfig = TaskConfig()) -> Task:
    """Draw the data and the random features for every seed (deterministic per seed).

    Args:
        config: sizes, ``alpha`` and seeds.

    Returns:
        The task, with features ``relu(W x)`` (S, n, k) and labels (S, n) of the four data sets,
        the IDK labels and the raw inputs.
    """
    d, k = config.d, config.n_features
    theta_f = np.ones(d) / np.sqrt(d)
    mu_f = config.alpha * np.ones(d)
    parts: dict[str, list] = {n: [] for n in ("forget", "retain", "forget_eval", "retain_eval")}
    raw: dict[str, list] = {n: [] for n in parts}
    idk = []
    for seed in config.seeds:
        rng = np.random.default_rng(seed)
        w = rng.standard_normal((k, d)) / np.sqrt(d)  # (k, d), entries N(0, 1/d)
        draws = {
            "forget": _draw(rng, config.n_forget, mu_f, theta_f, 1.0),
            "retain": _draw(rng, config.n_retain, -mu_f, -theta_f, -1.0),
            "forget_eval": _draw(rng, config.n_eval, mu_f, theta_f, 1.0),
            "retain_eval": _draw(rng, config.n_eval, -mu_f, -theta_f, -1.0),
        }
        idk.append(rng.integers(0, 2, config.n_forget))
        for name, (x, y) in draws.items():
            parts[name].append((np.maximum(x @ w.T, 0.0), y))  # relu(W x): (n, k)
            raw[name].append(x)

    def split(name: str) -> Split:
        feats = torch.as_tensor(np.stack([f for f, _ in parts[name]]), dtype=torch.float64)
        labels = torch.as_tensor(np.stack([y for _, y in parts[name]]))
        return Split(feats, labels)

    return Task(
        config=config,
        forget=split("forget"),
        retain=split("retain"),
        forget_eval=split("forget_eval"),
        retain_eval=split("retain_eval"),
        idk_labels=torch.as_tensor(np.stack(idk)),
        inputs={name: np.stack(xs) for name, xs in raw.items()},
    )
