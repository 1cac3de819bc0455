"""The loss kernels of NPO unlearning: pure functions on per-sequence log-probabilities.

Every kernel takes per-sequence log-likelihoods ``log pi(y|x)`` of any shape ``S`` (usually
``(B,)``; the synthetic experiments pass ``(runs, B)``), returns the *unreduced* loss of the
same shape ``S``, and knows nothing about models, tokenizers or data. The synthetic logistic
model, the small transformer and the Hugging Face LLM path all call these same function
objects, through :data:`LOSSES` and :mod:`npo.objectives`.

Sign convention: every kernel is a quantity to **minimise**. Notation (Zhang et al. 2024,
arXiv 2404.05868): ``R = log pi_theta(y|x) - log pi_ref(y|x)`` is the log-ratio
(``log_ratio`` in the code), ``sigma`` the logistic function, ``beta > 0`` the inverse
temperature.

Reductions over tokens (sum or length-normalised) and over the batch happen in
:mod:`npo.objectives`, never here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from npo.validate import positive

__all__ = [
    "LOSSES",
    "LossKernel",
    "check_beta",
    "dpo_loss",
    "ga_loss",
    "kl_loss",
    "nll_loss",
    "npo_loss",
    "npo_weight",
    "simnpo_loss",
    "simnpo_max_weight",
]


def check_beta(beta: float, name: str = "beta") -> float:
    """``beta`` as a float if it is a finite positive number.

    Args:
        beta: the inverse temperature to check.
        name: the argument's name, used in the message.

    Returns:
        ``float(beta)``.

    Raises:
        ValueError: if ``beta`` is not a finite positive number.
    """
    return positive(name, beta)


def _softplus(x: Tensor) -> Tensor:
    """``log(1 + e^x)`` to full precision everywhere, as ``logaddexp(x, 0)``.

    ``F.softplus`` returns ``x`` itself above its threshold (20), which puts an error of
    ``e^-20`` in the loss and rounds the gradient to exactly 1 there; ``logaddexp`` is exact
    and its gradient is ``sigmoid(x)``.

    Returns:
        ``softplus(x)``, the shape of ``x``.
    """
    return torch.logaddexp(x, torch.zeros_like(x))


def _check_same_shape(**tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{n}={s}" for n, s in shapes.items())
        raise ValueError(f"shape mismatch: {listed}; the kernels take one value per sequence")


def ga_loss(policy_logps: Tensor) -> Tensor:
    """Gradient ascent (paper Eq. 1): ``L_GA = log pi_theta(y|x)``, per sequence.

    Minimizing it lowers the forget log-likelihood; it is unbounded below, which is why GA
    collapses. Its gradient with respect to ``policy_logps`` is 1 everywhere (``W = 1``).

    Args:
        policy_logps: ``log pi_theta(y|x)`` per sequence, shape ``S`` (usually ``(B,)``).

    Returns:
        The unreduced loss, shape ``S``.
    """
    return policy_logps


def nll_loss(logps: Tensor) -> Tensor:
    """Negative log-likelihood ``-log pi_theta(y|x)``: the retain term of ``+RT``, the IDK term.

    Args:
        logps: ``log pi_theta(y|x)`` per sequence, shape ``S``.

    Returns:
        The unreduced loss ``-logps``, shape ``S``.
    """
    return -logps


def kl_loss(kl: Tensor) -> Tensor:
    """The retain KL term of ``+KL`` objectives: the precomputed per-sequence KL, as a loss.

    ``kl`` is ``KL(pi_ref || pi_theta)`` summed over the sequence's tokens, as returned by
    :func:`npo.logprobs.token_kl` (or :func:`npo.logprobs.class_kl` for classifiers).

    Args:
        kl: the per-sequence KL, shape ``S``.

    Returns:
        The unreduced loss (``kl`` itself), shape ``S``.
    """
    return kl


def npo_loss(policy_logps: Tensor, ref_logps: Tensor, *, beta: float) -> Tensor:
    """Negative Preference Optimization (paper Eq. 3), per sequence.

    ``L = (2/beta) log(1 + (pi_theta/pi_ref)^beta) = (2/beta) softplus(beta R)`` with
    ``R = policy_logps - ref_logps``. ``L >= 0``; at ``R = 0`` it is ``2 ln 2 / beta``.
    ``dL/dR = npo_weight = 2 sigmoid(beta R)`` in (0, 2). As ``beta -> 0``,
    ``L - 2 ln 2/beta -> R`` (GA, Proposition 1); as ``beta -> inf``, ``L -> 2 max(R, 0)``.
    The softplus is computed as ``logaddexp(x, 0)``, exact at every ``x``.

    Args:
        policy_logps: ``log pi_theta(y|x)`` per sequence, shape ``S``.
        ref_logps: ``log pi_ref(y|x)`` per sequence, shape ``S`` (no gradient needed).
        beta: inverse temperature, a finite number > 0.

    Returns:
        The unreduced loss, shape ``S``.

    Raises:
        ValueError: if ``beta`` is not a finite positive number or the shapes differ.
    """
    beta = check_beta(beta)
    _check_same_shape(policy_logps=policy_logps, ref_logps=ref_logps)
    return (2.0 / beta) * _softplus(beta * (policy_logps - ref_logps))


def npo_weight(policy_logps: Tensor, ref_logps: Tensor, *, beta: float) -> Tensor:
    """NPO's adaptive gradient weight ``W = dL_NPO/d(log pi) = 2 sigmoid(beta R)``.

    ``grad L_NPO = W grad log pi_theta``: ``W = 1`` at ``pi = pi_ref`` (the first NPO step is a
    GA step) and ``W ~ 2 (pi/pi_ref)^beta -> 0`` as the forget likelihood falls, which is what
    slows NPO's divergence (Sec. 3; the sign as in the appendix derivation). Not a loss; it keeps
    autograd, so call it under ``torch.no_grad()`` when logging.

    Args:
        policy_logps: ``log pi_theta(y|x)`` per sequence, shape ``S``.
        ref_logps: ``log pi_ref(y|x)`` per sequence, shape ``S``.
        beta: inverse temperature, a finite number > 0.

    Returns:
        ``W``, shape ``S``, values in [0, 2].

    Raises:
        ValueError: if ``beta`` is not a finite positive number or the shapes differ.
    """
    beta = check_beta(beta)
    _check_same_shape(policy_logps=policy_logps, ref_logps=ref_logps)
    return 2.0 * torch.sigmoid(beta * (policy_logps - ref_logps))


def simnpo_loss(
    policy_logps: Tensor, lengths: Tensor, *, beta: float, gamma: float = 0.0
) -> Tensor:
    """SimNPO (Fan et al. 2024, arXiv 2410.07163): reference-free, length-normalized NPO.

    ``L = -(2/beta) logsigmoid(-(beta/|y|) log pi_theta(y|x) - gamma)``, ``|y|`` the number of
    answer tokens (``lengths``, > 0). Its gradient with respect to ``log pi`` is
    ``(2/|y|) sigmoid((beta/|y|) log pi + gamma)``.

    Args:
        policy_logps: ``log pi_theta(y|x)`` per sequence (summed over tokens), shape ``S``.
        lengths: answer tokens per sequence, shape ``S``, all > 0.
        beta: inverse temperature, a finite number > 0.
        gamma: the reward margin, finite.

    Returns:
        The unreduced loss, shape ``S``.

    Raises:
        ValueError: for a bad ``beta`` or ``gamma``, differing shapes or a zero length.
    """
    beta = check_beta(beta)
    _check_same_shape(policy_logps=policy_logps, lengths=lengths)
    if not math.isfinite(float(gamma)):
        raise ValueError(f"gamma must be finite, got {gamma!r}")
    if bool((lengths <= 0).any()):
        raise ValueError("simnpo_loss needs lengths > 0 (a sequence without answer tokens)")
    lengths = lengths.to(policy_logps.dtype)
    return (2.0 / beta) * _softplus((beta / lengths) * policy_logps + gamma)  # -logsigmoid(-x)


def simnpo_max_weight(gamma: float) -> float:
    """The largest gradient weight :func:`simnpo_loss` can put on ``log pi``: ``2 sigmoid(gamma)``.

    The weight is ``(2/|y|) sigmoid((beta/|y|) log pi + gamma)``; with ``log pi <= 0`` and
    ``|y| >= 1`` it never exceeds ``2 sigmoid(gamma)``, whatever the model does. A margin that
    makes this bound negligible makes every SimNPO step a no-op.

    Args:
        gamma: the reward margin.

    Returns:
        ``2 sigmoid(gamma)`` in float64 (0 for ``gamma`` below about -745).
    """
    return 2.0 * float(torch.sigmoid(torch.tensor(float(gamma), dtype=torch.float64)))


def dpo_loss(
    chosen_logps: Tensor,
    chosen_ref_logps: Tensor,
    rejected_logps: Tensor,
    rejected_ref_logps: Tensor,
    *,
    beta: float,
) -> Tensor:
    """DPO as the NPO paper uses it (Eq. 2, scaled by 2 as in its code).

    The forget answer is the rejected side, an "I don't know" answer the chosen side:
    ``L = -(2/beta) logsigmoid(beta (R_chosen - R_rejected))`` with
    ``R = log pi_theta - log pi_ref`` for each side. Dropping the chosen term and keeping the
    ``2/beta`` gives :func:`npo_loss`.

    Args:
        chosen_logps: ``log pi_theta`` of the chosen answers, shape ``S``.
        chosen_ref_logps: ``log pi_ref`` of the chosen answers, shape ``S``.
        rejected_logps: ``log pi_theta`` of the rejected (forget) answers, shape ``S``.
        rejected_ref_logps: ``log pi_ref`` of the rejected answers, shape ``S``.
        beta: inverse temperature, a finite number > 0.

    Returns:
        The unreduced loss, shape ``S``.

    Raises:
        ValueError: if ``beta`` is not a finite positive number or the shapes differ.
    """
    beta = check_beta(beta)
    _check_same_shape(
        chosen_logps=chosen_logps,
        chosen_ref_logps=chosen_ref_logps,
        rejected_logps=rejected_logps,
        rejected_ref_logps=rejected_ref_logps,
    )
    margin = (chosen_logps - chosen_ref_logps) - (rejected_logps - rejected_ref_logps)
    return (2.0 / beta) * _softplus(-beta * margin)  # -logsigmoid(x) = softplus(-x)


@dataclass(frozen=True)
class LossKernel:
    """A registered kernel: the function and what it reads.

    ``args`` maps each tensor argument of ``fn`` to ``(side, field)``: ``side`` is ``"source"``
    (the data the term reads) or ``"chosen"`` (the paired data of a preference kernel); ``field``
    is a field of :class:`npo.objectives.SeqBatch`. ``hparams`` are the keyword hyperparameters
    ``fn`` accepts. ``linear`` kernels (output linear in the input) may be averaged over tokens
    across a batch.
    """

    fn: Callable[..., Tensor]
    args: dict[str, tuple[str, str]]
    hparams: tuple[str, ...] = ()
    linear: bool = False


LOSSES: dict[str, LossKernel] = {
    "ga": LossKernel(ga_loss, {"policy_logps": ("source", "logps")}, linear=True),
    "nll": LossKernel(nll_loss, {"logps": ("source", "logps")}, linear=True),
    "kl": LossKernel(kl_loss, {"kl": ("source", "kl")}, linear=True),
    "npo": LossKernel(
        npo_loss,
        {"policy_logps": ("source", "logps"), "ref_logps": ("source", "ref_logps")},
        hparams=("beta",),
    ),
    "simnpo": LossKernel(
        simnpo_loss,
        {"policy_logps": ("source", "logps"), "lengths": ("source", "n_tokens")},
        hparams=("beta", "gamma"),
    ),
    "dpo": LossKernel(
        dpo_loss,
        {
            "chosen_logps": ("chosen", "logps"),
            "chosen_ref_logps": ("chosen", "ref_logps"),
            "rejected_logps": ("source", "logps"),
            "rejected_ref_logps": ("source", "ref_logps"),
        },
        hparams=("beta",),
    ),
}
