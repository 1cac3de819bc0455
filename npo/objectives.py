"""Objectives: weighted lists of named loss terms over the kernels of :mod:`npo.losses`.

An objective is data, not a class hierarchy::

    Objective((Term("npo", 1.0, source="forget", hparams={"beta": 0.1}),
               Term("nll", 1.0, source="retain", reduction="token")))

Each :class:`Term` names a kernel in :data:`npo.losses.LOSSES`, its weight, the data it reads
(``forget``, ``retain``, ``idk``), how a sequence's log-prob is reduced over its tokens, and the
kernel's hyperparameters. The objective is called with a mapping from source name to a
:class:`SeqBatch` of per-sequence tensors, so the same object serves the synthetic classifier
(one "token" per sample) and an LLM (many answer tokens per sequence).

Reductions (``Term.reduction``):

- ``"sum"``: the kernel sees summed answer-token log-probs; the loss is the mean over sequences.
  The pure per-sequence form of the paper's equations.
- ``"mean"``: the kernel sees length-normalised log-probs ``logps / n_tokens``; mean over
  sequences.
- ``"token"``: the kernel sees summed log-probs, the outputs are *summed* over sequences and
  divided by the total number of tokens: the token mean over the batch that Hugging Face's
  cross-entropy gives. Only for kernels linear in their input (``ga``, ``nll``, ``kl``).

The LLM presets default to the official NPO code's choices (``reduction=None`` in
:func:`preset`): summed log-probs for ``npo``/``dpo``, the batch token mean for ``ga`` and the
NLL/KL terms, because the paper's learning rates and retain weights were tuned with them.
For classifiers ``n_tokens`` is 1 and all three reductions coincide.

Leading dimensions are batch-of-runs dimensions: a ``SeqBatch`` with fields of shape
``(R, B)`` gives a loss of shape ``(R,)`` (the synthetic experiments train R runs at once).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from npo.losses import LOSSES, check_beta

__all__ = [
    "PRESETS",
    "SOURCES",
    "Objective",
    "ObjectiveOutput",
    "SeqBatch",
    "Term",
    "objective_from_terms",
    "preset",
]

SOURCES = ("forget", "retain", "idk")
REDUCTIONS = ("sum", "mean", "token")


@dataclass(frozen=True)
class SeqBatch:
    """Per-sequence statistics of one data source; every field has the same shape ``(..., B)``.

    ``logps``: summed answer-token log-probs of the policy (with autograd).
    ``n_tokens``: answer tokens per sequence (``None`` means 1 each, as for classifiers).
    ``ref_logps``: the same for the reference model (no autograd), if a term needs it.
    ``kl``: per-sequence summed token KL to the reference, if a term needs it.
    Fields no term reads may be ``None`` (a source read only through its KL has no ``logps``).
    """

    logps: Tensor | None = None
    n_tokens: Tensor | None = None
    ref_logps: Tensor | None = None
    kl: Tensor | None = None

    def tokens(self) -> Tensor:
        """Token counts as a float tensor of the batch's shape and dtype."""
        like = next(t for t in (self.logps, self.kl, self.ref_logps) if t is not None)
        if self.n_tokens is None:
            return torch.ones_like(like)
        return self.n_tokens.to(like.dtype)


@dataclass(frozen=True)
class Term:
    """One weighted term: ``weight * reduce(LOSSES[loss](inputs from source))``.

    ``chosen`` names the source of the preferred side for preference kernels (``dpo``).
    ``hparams`` holds the kernel's keyword hyperparameters (``beta``, ``gamma``).
    """

    loss: str
    weight: float = 1.0
    source: str = "forget"
    reduction: str = "sum"
    chosen: str | None = None
    hparams: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; valid: {sorted(LOSSES)}")
        for name in (self.source, self.chosen):
            if name is not None and name not in SOURCES:
                raise ValueError(f"unknown source {name!r}; valid: {list(SOURCES)}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {self.reduction!r}; valid: {list(REDUCTIONS)}")
        kernel = LOSSES[self.loss]
        if self.reduction == "token" and not kernel.linear:
            raise ValueError(f"reduction 'token' needs a linear kernel; {self.loss!r} is not")
        if "lengths" in kernel.args and self.reduction != "sum":
            raise ValueError(f"{self.loss!r} normalises by length itself; use reduction 'sum'")
        uses_chosen = any(side == "chosen" for side, _ in kernel.args.values())
        if uses_chosen and self.chosen is None:
            raise ValueError(f"loss {self.loss!r} needs a chosen source (e.g. chosen='idk')")
        if not math.isfinite(float(self.weight)):
            raise ValueError(f"term weight must be finite, got {self.weight!r}")
        unknown = set(self.hparams) - set(kernel.hparams)
        if unknown:
            raise ValueError(f"{self.loss!r} takes hparams {kernel.hparams}, not {sorted(unknown)}")
        required = {
            n
            for n, p in inspect.signature(kernel.fn).parameters.items()
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty
        }
        missing = required - set(self.hparams)
        if missing:
            raise ValueError(f"loss {self.loss!r} needs hparams {sorted(missing)}")
        if "beta" in self.hparams:
            check_beta(self.hparams["beta"])

    @property
    def name(self) -> str:
        """Log key, e.g. ``forget_npo`` or ``retain_nll``."""
        return f"{self.source}_{self.loss}"

    def needs(self) -> dict[str, set[str]]:
        """Fields this term reads, by source name."""
        out: dict[str, set[str]] = {}
        for side, fld in LOSSES[self.loss].args.values():
            out.setdefault(self.source_of(side), set()).add(fld)
        return out

    def source_of(self, side: str) -> str:
        """The data source a kernel argument of ``side`` (``source`` or ``chosen``) reads."""
        src = self.source if side == "source" else self.chosen
        if src is None:  # refused by __post_init__ for kernels with a chosen side
            raise ValueError(f"term {self.name!r} has no {side} source")
        return src


@dataclass(frozen=True)
class ObjectiveOutput:
    """The value of an objective.

    ``loss`` is the weighted sum of the terms, shape ``(...)`` (the leading run dimensions;
    usually ``()``); ``terms`` holds each term's reduced, *unweighted* value by
    :attr:`Term.name`.
    """

    loss: Tensor
    terms: dict[str, Tensor]


def _field(batch: Mapping[str, SeqBatch], src: str, fld: str, term: Term) -> Tensor:
    if src not in batch:
        raise ValueError(f"term {term.name!r} reads source {src!r}, not in batch {sorted(batch)}")
    value = getattr(batch[src], fld) if fld != "n_tokens" else batch[src].tokens()
    if value is None:
        raise ValueError(f"term {term.name!r} needs {fld!r} for source {src!r}; it is None")
    return value


def _check_tokens(sb: SeqBatch, src: str) -> None:
    if sb.n_tokens is not None and bool((sb.n_tokens <= 0).any()):
        bad = torch.nonzero(sb.n_tokens.reshape(-1) <= 0)[:5].flatten().tolist()
        raise ValueError(
            f"source {src!r}: sequences {bad} (flattened index) have no answer tokens; "
            "every sequence an objective reads needs at least one (check truncation/masking)"
        )


@dataclass(frozen=True)
class Objective:
    """A weighted list of :class:`Term`; call it on ``{source: SeqBatch}``."""

    terms: tuple[Term, ...]

    def __post_init__(self) -> None:
        if not self.terms:
            raise ValueError("an objective needs at least one term")
        object.__setattr__(self, "terms", tuple(self.terms))

    def needs(self) -> dict[str, set[str]]:
        """Fields needed per source, e.g. ``{"forget": {"logps", "ref_logps"}}``."""
        out: dict[str, set[str]] = {}
        for term in self.terms:
            for src, flds in term.needs().items():
                out.setdefault(src, set()).update(flds)
        return out

    def __call__(
        self,
        batch: Mapping[str, SeqBatch],
        *,
        counts: Mapping[str, tuple[float, float]] | None = None,
    ) -> ObjectiveOutput:
        """Evaluate the objective on per-source sequence statistics.

        Args:
            batch: ``{source: SeqBatch}`` with the fields :meth:`needs` names.
            counts: per source, the ``(n_sequences, n_tokens)`` that reductions divide by instead
                of the batch's own (data-parallel training passes the global counts).

        Returns:
            The :class:`ObjectiveOutput`.

        Raises:
            ValueError: if a source or field a term reads is missing, or a sequence has no answer
                tokens.
        """
        for src in self.needs():
            if src in batch:
                _check_tokens(batch[src], src)
        total: Tensor | float = 0.0
        values: dict[str, Tensor] = {}
        for term in self.terms:
            kernel = LOSSES[term.loss]
            kwargs = {}
            for arg, (side, fld) in kernel.args.items():
                src = term.source_of(side)
                value = _field(batch, src, fld, term)
                if term.reduction == "mean" and fld in ("logps", "ref_logps", "kl"):
                    value = value / batch[src].tokens()
                kwargs[arg] = value
            per_seq = kernel.fn(**kwargs, **term.hparams)  # (..., B)
            sb = batch[term.source]
            if term.reduction == "token":
                denom = sb.tokens().sum(-1) if counts is None else counts[term.source][1]
            else:
                denom = per_seq.shape[-1] if counts is None else counts[term.source][0]
            reduced = per_seq.sum(-1) / denom
            values[term.name] = reduced
            total = total + term.weight * reduced
        return ObjectiveOutput(loss=total, terms=values)  # type: ignore[arg-type]


# ---------------------------------------------------------------- presets

_TERM_KEYS: dict[str, tuple[str, str, str | None]] = {
    # key: (loss, source, chosen)
    "ga": ("ga", "forget", None),
    "npo": ("npo", "forget", None),
    "simnpo": ("simnpo", "forget", None),
    "dpo": ("dpo", "forget", "idk"),
    "idk_nll": ("nll", "idk", None),
    "retain_nll": ("nll", "retain", None),
    "retain_kl": ("kl", "retain", None),
}

# The official code's token reductions (see module docstring).
_OFFICIAL_REDUCTION = {"ga": "token", "nll": "token", "kl": "token", "npo": "sum", "dpo": "sum"}

PRESETS: dict[str, tuple[tuple[str, float], ...]] = {
    "ga": (("ga", 1.0),),
    "ga+rt": (("ga", 1.0), ("retain_nll", 1.0)),
    "ga+kl": (("ga", 1.0), ("retain_kl", 1.0)),
    "npo": (("npo", 1.0),),
    "npo+rt": (("npo", 1.0), ("retain_nll", 1.0)),
    "npo+kl": (("npo", 1.0), ("retain_kl", 1.0)),
    "simnpo": (("simnpo", 1.0),),
    "simnpo+rt": (("simnpo", 1.0), ("retain_nll", 1.0)),
    "dpo+rt": (("dpo", 1.0), ("retain_nll", 1.0)),
    "idk+rt": (("idk_nll", 1.0), ("retain_nll", 1.0)),
}


def objective_from_terms(
    pairs: Iterable[tuple[str, float]],
    *,
    beta: float = 0.1,
    gamma: float = 0.0,
    reduction: str | None = None,
) -> Objective:
    """Build an objective from ``[(term_key, weight), ...]``.

    Term keys: ``ga``, ``npo``, ``simnpo``, ``dpo`` (forget answer rejected, IDK answer chosen),
    ``idk_nll``, ``retain_nll``, ``retain_kl``.

    Args:
        pairs: ``(term key, weight)`` pairs.
        beta: inverse temperature, given to the kernels that take it.
        gamma: SimNPO's margin, given to the kernels that take it.
        reduction: None for the official code's per-kernel choice (``sum`` for ``npo``/``dpo``,
            ``token`` for ``ga`` and the NLL/KL terms); otherwise ``"sum"``, ``"mean"`` or (linear
            kernels only) ``"token"`` for every term.

    Returns:
        The :class:`Objective`.

    Raises:
        ValueError: for an unknown term key or an invalid term.
    """
    terms = []
    for key, weight in pairs:
        if key not in _TERM_KEYS:
            raise ValueError(f"unknown term {key!r}; valid: {sorted(_TERM_KEYS)}")
        loss, source, chosen = _TERM_KEYS[key]
        kernel = LOSSES[loss]
        hp = {k: v for k, v in (("beta", beta), ("gamma", gamma)) if k in kernel.hparams}
        red = reduction or _OFFICIAL_REDUCTION.get(loss, "sum")
        terms.append(Term(loss, float(weight), source, red, chosen, hp))
    return Objective(tuple(terms))


def preset(
    name: str,
    *,
    beta: float = 0.1,
    gamma: float = 0.0,
    forget_weight: float = 1.0,
    retain_weight: float = 1.0,
    kl_weight: float = 1.0,
    reduction: str | None = None,
) -> Objective:
    """The objective of a method key (``npo+rt``, ...), with its weights overridable.

    Args:
        name: a key of :data:`PRESETS`.
        beta: inverse temperature of ``npo``/``simnpo``/``dpo``.
        gamma: SimNPO's margin.
        forget_weight: scales the forget-side term (``ga``/``npo``/``simnpo``/``dpo``/``idk_nll``).
        retain_weight: weight of the retain NLL (the paper uses 5 at forget50 and 12 at
            forget90).
        kl_weight: weight of the retain KL.
        reduction: as in :func:`objective_from_terms`.

    Returns:
        The :class:`Objective`.

    Raises:
        ValueError: for an unknown method.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown method {name!r}; valid: {sorted(PRESETS)}")
    scale = {"retain_nll": retain_weight, "retain_kl": kl_weight}
    pairs = [(k, w * scale.get(k, forget_weight)) for k, w in PRESETS[name]]
    return objective_from_terms(pairs, beta=beta, gamma=gamma, reduction=reduction)
