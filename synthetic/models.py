"""Random-features logistic model and the reference/retrained models, batched over runs.

``logit(x) = theta^T relu(W x)``: with the features precomputed (:mod:`synthetic.data`) the
model is linear in ``theta``. Parameters carry leading run axes ``(..., S, k)`` aligned with the
seed axis ``S`` of the data, so many runs train as one tensor program.

``pi_ref`` (trained on forget + retain) and ``pi_retr`` (retain only, the unlearning ideal) are
trained with the paper's own recipe: full-batch gradient descent from ``theta = 0``, lr 0.05,
20000 steps, float64. The data are nearly separable, so this deliberately stops short of the
optimum (a Newton solver drives ``||theta||`` into the thousands and changes the start point);
the final gradient norm is reported and checked to be below 1e-2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from npo.logprobs import class_logprobs
from npo.losses import LOSSES
from npo.validate import integer, positive
from synthetic.data import Split, Task

__all__ = ["References", "logits", "select_seed", "split_logprobs", "train_references"]


def logits(split: Split, theta: Tensor) -> Tensor:
    """Class-1 logits ``theta^T relu(W x)`` of every point of ``split``.

    Args:
        split: features (S, n, k).
        theta: parameters (..., S, k).

    Returns:
        The logits, (..., S, n).
    """
    return torch.einsum("snk,...sk->...sn", split.features, theta)


def split_logprobs(split: Split, theta: Tensor, labels: Tensor | None = None) -> Tensor:
    """``log pi_theta(y|x)`` for every point of ``split`` (:func:`npo.logprobs.class_logprobs`).

    Args:
        split: features (S, n, k) and labels (S, n).
        theta: parameters (..., S, k).
        labels: labels (S, n) to score instead of the split's own.

    Returns:
        The log-probs, (..., S, n).
    """
    z = logits(split, theta)
    y = split.labels if labels is None else labels
    return class_logprobs(z, y.expand_as(z))


@dataclass(frozen=True)
class References:
    """``theta_ref``/``theta_retr`` (S, k) and their final full-gradient norms (S,)."""

    theta_ref: Tensor
    theta_retr: Tensor
    grad_norm_ref: Tensor
    grad_norm_retr: Tensor
    steps: int
    lr: float


def train_references(
    task: Task, *, steps: int = 20000, lr: float = 0.05, progress: bool = False
) -> References:
    """Train ``pi_ref`` on forget + retain and ``pi_retr`` on retain, from ``theta = 0``.

    Full-batch gradient descent on the mean NLL (:func:`npo.losses.nll_loss`), as one batched
    program of ``2 x S`` runs.

    Args:
        task: the data.
        steps: GD steps ``>= 1``.
        lr: learning rate ``> 0``.
        progress: show a progress bar on a terminal.

    Returns:
        Both models' parameters (S, k) and their final full-gradient norms (S,).
    """
    integer("steps", steps, minimum=1)
    positive("lr", lr)
    both = Split(
        torch.cat([task.forget.features, task.retain.features], dim=1),
        torch.cat([task.forget.labels, task.retain.labels], dim=1),
    )
    n_f, n_r = task.forget.labels.shape[1], task.retain.labels.shape[1]
    weights = torch.zeros(2, 1, n_f + n_r, dtype=torch.float64)
    weights[0] = 1.0 / (n_f + n_r)  # pi_ref: all points
    weights[1, :, n_f:] = 1.0 / n_r  # pi_retr: retain points only
    s, k = both.features.shape[0], both.features.shape[2]
    theta = torch.zeros(2, s, k, dtype=torch.float64)
    nll = LOSSES["nll"].fn

    def grad(th: Tensor) -> Tensor:
        th = th.detach().requires_grad_()
        loss = (nll(split_logprobs(both, th)) * weights).sum()
        return torch.autograd.grad(loss, th)[0]

    bar = tqdm(range(steps), desc="pi_ref/pi_retr", disable=not progress or None, leave=False)
    for _ in bar:
        theta = theta - lr * grad(theta)
    norms = grad(theta).norm(dim=-1)  # (2, S)
    return References(theta[0], theta[1], norms[0], norms[1], steps, lr)


def select_seed(task: Task, refs: References, index: int) -> tuple[Task, References]:
    """The task and references of one seed, as if made for that seed alone.

    For running one configuration by itself (tests of the batched runner, its benchmark).

    Args:
        task: the data of all seeds.
        refs: their references.
        index: the seed's position in ``task.config.seeds``.

    Returns:
        ``(task, refs)`` restricted to that seed (leading axis of size 1).
    """
    import dataclasses

    sl = slice(index, index + 1)

    def pick(split: Split) -> Split:
        return Split(split.features[sl], split.labels[sl])

    one = dataclasses.replace(
        task,
        forget=pick(task.forget),
        retain=pick(task.retain),
        forget_eval=pick(task.forget_eval),
        retain_eval=pick(task.retain_eval),
        idk_labels=task.idk_labels[sl],
        config=dataclasses.replace(task.config, seeds=(task.config.seeds[index],)),
        inputs={k: v[sl] for k, v in task.inputs.items()},
    )
    ref = References(
        refs.theta_ref[sl],
        refs.theta_retr[sl],
        refs.grad_norm_ref[sl],
        refs.grad_norm_retr[sl],
        refs.steps,
        refs.lr,
    )
    return one, ref
