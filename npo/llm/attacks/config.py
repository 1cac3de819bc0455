"""Options of ``npo attack relearn`` and ``npo attack quantize``, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from npo.validate import check_fields

__all__ = ["AttackConfig", "QuantizeConfig", "RelearnConfig"]


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class AttackConfig:
    """What both attacks read: the unlearned model, the target, the data, the output."""

    model: str = field(default="", metadata=_h("the unlearned model directory (safetensors)"))
    target: str | None = field(
        default=None,
        metadata=_h("the model before unlearning (forget gap, recovery, update/step ratio)"),
    )
    data: str = field(default="", metadata=_h("TOFU data directory, or hf:locuslab/TOFU"))
    forget: str = field(default="forget10", metadata=_h("forget split (forgetXX)"))
    retain_results: str | None = field(
        default=None, metadata=_h("`npo eval` results of the retain model (forget quality)")
    )
    calibration_model: str | None = field(
        default=None, metadata=_h("calibration model of the calibrated membership score")
    )
    out: str = field(default="", metadata=_h("output directory"))
    trust_remote_code: bool = field(default=False, metadata=_h("allow model code from DIRs"))
    progress: bool = field(default=True, metadata=_h("show progress bars"))

    def __post_init__(self) -> None:
        for name in ("model", "data", "out"):
            if not getattr(self, name):
                raise ValueError(f"--{name} is required")


@dataclass(frozen=True)
class QuantizeConfig(AttackConfig):
    """``npo attack quantize``: weight-only RTN quantization, then the evaluation."""

    bits: tuple[int, ...] = field(default=(8, 4), metadata=_h("bit widths"))
    group_size: tuple[int, ...] = field(
        default=(32, 0), metadata=_h("weights per group along the input (0: per output channel)")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for b in self.bits:
            if not isinstance(b, int) or not 2 <= b <= 16:
                raise ValueError(f"--bits must be integers in [2, 16], got {b!r}")
        for g in self.group_size:
            if not isinstance(g, int) or g < 0:
                raise ValueError(f"--group-size must be integers >= 0 (0: per channel), got {g!r}")
        if not self.bits or not self.group_size:
            raise ValueError("--bits and --group-size need at least one value each")


@dataclass(frozen=True)
class RelearnConfig(AttackConfig):
    """``npo attack relearn``: fine-tune on part of the forget set, measure the rest."""

    steps: int = field(default=50, metadata=_h("relearning steps"))
    eval_every: int = field(default=5, metadata=_h("evaluate every N steps"))
    lr: float = field(default=1e-5, metadata=_h("AdamW learning rate (constant)"))
    batch_size: int = field(default=8, metadata=_h("sequences per step"))
    fraction: float = field(
        default=0.5, metadata=_h("share of the forget items relearned (seeded draw)")
    )
    relearn_on: Literal["other-part", "paraphrases"] = field(
        default="other-part",
        metadata=_h(
            "train on the answers of the drawn part and measure the others, or train on the "
            "paraphrased answers of the measured part"
        ),
    )
    seed: int = field(default=0, metadata=_h("seed of the draw and the data order"))
    max_length: int = field(default=512, metadata=_h("maximum tokens per sequence"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self, at_least_1=("steps", "eval_every", "batch_size", "max_length"))
        check_fields(self, positive=("lr", "fraction"))
        if not self.fraction < 1:
            raise ValueError(f"--fraction must be in (0, 1), got {self.fraction}")
