"""Options of a TOFU evaluation: :class:`EvalConfig` and the TOFU repository's legacy sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from npo.validate import check_fields

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "LEGACY_GEN_BATCH",
    "LEGACY_ITEMS",
    "LEGACY_MAX_LENGTH",
    "EvalConfig",
]

LEGACY_ITEMS = 300  # TOFU's ds_size
LEGACY_MAX_LENGTH = 200  # TOFU's generation.max_length (scoring truncation and generation cap)
LEGACY_GEN_BATCH = 30  # TOFU's eval batch_size
DEFAULT_MAX_LENGTH = 512


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class EvalConfig:
    """Options of a TOFU evaluation (``npo eval`` flags; ``--eval-*`` flags of ``npo unlearn``).

    ``legacy``: TOFU's ``utils.get_model_utility`` (used by its training-time evaluation):
    truth ratios with the arithmetic mean over perturbed answers in the reported truth-ratio
    aggregates (model utility included; forget quality keeps the geometric mean, as there),
    the first 300 items of each set, sequences cut at 200 tokens, generations capped at 200
    tokens in total (left-padded prompt included) in dataset-order batches of 30.
    """

    batch_size: int = field(default=32, metadata=_h("sequences per scoring forward pass"))
    gen_batch_size: int | None = field(
        default=None,
        metadata=_h("prompts per generation batch (None: the scoring batch size; legacy: 30)"),
    )
    max_new_tokens: int = field(default=200, metadata=_h("greedy generation length limit"))
    generate: bool = field(
        default=True,
        metadata=_h("generate answers (ROUGE-L, gibberish rate); off: utility from 6 numbers"),
    )
    legacy: bool = field(
        default=False,
        metadata=_h("the TOFU repository's choices: arithmetic-mean truth ratios, 300 items"),
    )
    max_items: int | None = field(
        default=None, metadata=_h("first N items of each set (None: all; legacy: 300)")
    )
    max_length: int | None = field(
        default=None, metadata=_h("tokens per scored sequence (None: 512; legacy: 200)")
    )
    gibberish_copies: int = field(
        default=3, metadata=_h("degenerate generation: a token block repeated this many times")
    )
    gibberish_tokens: int = field(default=6, metadata=_h("... spanning at least this many tokens"))
    precision: Literal["auto", "fp32", "bf16-mixed", "bf16"] = field(
        default="auto", metadata=_h("auto: bf16 autocast on CUDA, fp32 elsewhere")
    )
    progress: bool = field(default=True, metadata=_h("show progress bars"))

    def __post_init__(self) -> None:
        check_fields(  # None (gen_batch_size, max_items, max_length): the default
            self,
            at_least_1=(
                "batch_size",
                "max_new_tokens",
                "gibberish_tokens",
                "gen_batch_size",
                "max_items",
            ),
            at_least_2=("max_length", "gibberish_copies"),
        )

    @property
    def items_limit(self) -> int | None:
        """The items per set (``max_items``, else 300 with ``legacy``, else all, None)."""
        return LEGACY_ITEMS if self.legacy and self.max_items is None else self.max_items

    @property
    def length_limit(self) -> int:
        """The tokens per scored sequence (``max_length``, else 200 with ``legacy``, else 512)."""
        if self.max_length is not None:
            return self.max_length
        return LEGACY_MAX_LENGTH if self.legacy else DEFAULT_MAX_LENGTH

    @property
    def generation_batch(self) -> int:
        """The prompts per generation batch (``gen_batch_size``, else 30 or ``batch_size``)."""
        if self.gen_batch_size is not None:
            return self.gen_batch_size
        return LEGACY_GEN_BATCH if self.legacy else self.batch_size

    @property
    def truth_mean(self) -> str:
        """Mean over perturbed answers in the reported truth-ratio aggregates."""
        return "arithmetic" if self.legacy else "geometric"
