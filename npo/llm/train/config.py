"""Run configurations of ``npo finetune`` and ``npo unlearn``, validated on construction.

Frozen dataclasses whose fields are the command-line options (:mod:`npo.config`). Defaults
follow the NPO paper's TOFU protocol (AdamW, lr 1e-5, weight decay 0.01, effective batch 32,
linear warm-up over the first epoch then linear decay, beta 0.1; 10 unlearning epochs, 5
fine-tuning epochs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from npo.llm.model import TinyLlamaSpec
from npo.losses import check_beta
from npo.objectives import PRESETS, Objective, objective_from_terms, preset
from npo.validate import check_fields

__all__ = ["FinetuneConfig", "TrainConfig", "UnlearnConfig"]

Precision = Literal["auto", "fp32", "bf16-mixed", "bf16"]  # = npo.llm.model.PRECISIONS


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class TrainConfig:
    """Options shared by fine-tuning and unlearning."""

    data: str = field(default="", metadata=_h("TOFU data directory, or hf:locuslab/TOFU"))
    out: str = field(default="", metadata=_h("output directory (model, logs, checkpoints)"))
    model: str | None = field(default=None, metadata=_h("local model directory (safetensors)"))
    lr: float | None = field(default=None, metadata=_h("peak learning rate (None: 1e-5)"))
    epochs: int = field(default=10, metadata=_h("passes over the forget/training split"))
    max_steps: int | None = field(
        default=None, metadata=_h("stop after this many optimizer steps (None: epochs)")
    )
    batch_size: int = field(
        default=32, metadata=_h("effective (global) batch: sequences per optimizer step")
    )
    micro_batch_size: int | None = field(
        default=None,
        metadata=_h(
            "sequences per forward per process; gradient accumulation = batch-size / "
            "(micro-batch-size x processes) (None: no accumulation)"
        ),
    )
    optimizer: Literal["adamw", "sgd"] = field(default="adamw", metadata=_h("optimizer"))
    weight_decay: float = field(default=0.01, metadata=_h("decoupled (AdamW) / L2 (SGD) decay"))
    momentum: float = field(default=0.0, metadata=_h("SGD momentum"))
    lr_schedule: Literal["linear", "constant"] = field(
        default="linear", metadata=_h("linear warm-up then linear decay to 0, or constant")
    )
    warmup_epochs: float = field(default=1.0, metadata=_h("linear warm-up length in epochs"))
    max_grad_norm: float = field(default=1.0, metadata=_h("gradient clipping norm (0: off)"))
    seed: int = field(default=0, metadata=_h("seed of data order, pairing and initialization"))
    max_length: int = field(default=512, metadata=_h("maximum tokens per sequence"))
    precision: Precision = field(
        default="auto", metadata=_h("auto: bf16 autocast over fp32 weights on CUDA, fp32 on CPU")
    )
    gradient_checkpointing: bool = field(default=False, metadata=_h("recompute activations"))
    lora_r: int = field(default=0, metadata=_h("LoRA rank (0: full fine-tuning)"))
    lora_alpha: float = field(default=16.0, metadata=_h("LoRA alpha"))
    lora_dropout: float = field(default=0.0, metadata=_h("LoRA dropout"))
    lora_targets: str = field(
        default="all-linear", metadata=_h("LoRA target modules: all-linear or q_proj,v_proj,...")
    )
    trust_remote_code: bool = field(
        default=False, metadata=_h("allow model code from the model directory")
    )
    checkpoint_every: int = field(
        default=50, metadata=_h("checkpoint every N optimizer steps (0: only at the end)")
    )
    keep_checkpoints: int = field(default=1, metadata=_h("most recent checkpoints kept (>= 1)"))
    resume: bool = field(
        default=False, metadata=_h("continue from the latest checkpoint in --out (exact)")
    )
    drift_every: int = field(
        default=1, metadata=_h("log ||theta_t - theta_0|| every N steps (0: never)")
    )
    eval_every: int = field(
        default=0, metadata=_h("call the evaluation hooks every N steps (0: start and end)")
    )
    progress: bool = field(default=True, metadata=_h("show a progress bar"))

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("--data is required (a TOFU directory or hf:locuslab/TOFU)")
        if not self.out:
            raise ValueError("--out is required")
        check_fields(
            self,
            positive=("lr",),
            at_least_1=(
                "epochs",
                "batch_size",
                "max_length",
                "max_steps",
                "micro_batch_size",
                "keep_checkpoints",
            ),
            at_least_0=("checkpoint_every", "drift_every", "eval_every", "lora_r"),
            nonnegative=(
                "weight_decay",
                "warmup_epochs",
                "max_grad_norm",
                "momentum",
                "lora_dropout",
            ),
        )
        if self.micro_batch_size is not None and self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of micro_batch_size "
                f"{self.micro_batch_size}"
            )

    @property
    def learning_rate(self) -> float:
        """The peak learning rate (``lr``, or the paper's 1e-5)."""
        return 1e-5 if self.lr is None else self.lr


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """``npo finetune``: train the target model on ``full`` or a retain model on ``retainYY``."""

    split: str = field(default="full", metadata=_h("training split: full or retainYY"))
    init: Literal["tiny-llama"] | None = field(
        default=None, metadata=_h("build a model from a config instead of --model")
    )
    tokenizer: str | None = field(
        default=None, metadata=_h("with --init: reuse this tokenizer directory (else train one)")
    )
    epochs: int = field(default=5, metadata=_h("passes over the training split"))
    lr: float | None = field(
        default=None, metadata=_h("peak learning rate (None: 1e-5 with --model, 3e-3 with --init)")
    )
    tiny_vocab_size: int = field(default=1024, metadata=_h("tiny-llama: BPE vocabulary size"))
    tiny_hidden_size: int = field(default=64, metadata=_h("tiny-llama: hidden size"))
    tiny_intermediate_size: int = field(default=172, metadata=_h("tiny-llama: MLP size"))
    tiny_layers: int = field(default=2, metadata=_h("tiny-llama: transformer layers"))
    tiny_heads: int = field(default=4, metadata=_h("tiny-llama: attention heads"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.model is None) == (self.init is None):
            raise ValueError("give exactly one of --model DIR and --init tiny-llama")
        if not re.fullmatch(r"full|retain\d\d", self.split):
            raise ValueError(
                f"--split must be full or retainYY (e.g. retain90), got {self.split!r}"
            )
        if self.tokenizer is not None and self.init is None:
            raise ValueError("--tokenizer is only used with --init (a --model has its own)")
        if self.init is not None:
            self.tiny_spec()  # validates

    @property
    def learning_rate(self) -> float:
        """The peak learning rate (``lr``, or 3e-3 with ``--init`` and 1e-5 with ``--model``)."""
        if self.lr is not None:
            return self.lr
        return 3e-3 if self.init is not None else 1e-5

    def tiny_spec(self) -> TinyLlamaSpec:
        """The tiny Llama's shape from the ``tiny_*`` options (and ``max_length``).

        Returns:
            The validated :class:`~npo.llm.model.TinyLlamaSpec`.
        """
        return TinyLlamaSpec(
            vocab_size=self.tiny_vocab_size,
            hidden_size=self.tiny_hidden_size,
            intermediate_size=self.tiny_intermediate_size,
            num_layers=self.tiny_layers,
            num_heads=self.tiny_heads,
            max_position=self.max_length,
        )


@dataclass(frozen=True)
class UnlearnConfig(TrainConfig):
    """``npo unlearn``: unlearn a forget split from a fine-tuned model."""

    forget: str = field(default="forget10", metadata=_h("forget split (forgetXX)"))
    retain: str | None = field(
        default=None, metadata=_h("retain split for +RT/+KL terms (None: the complement)")
    )
    method: str = field(default="npo+rt", metadata=_h(f"objective preset: {', '.join(PRESETS)}"))
    terms: tuple[str, ...] = field(
        default=(),
        metadata=_h(
            "custom objective instead of --method, as KEY:WEIGHT (keys: ga, npo, simnpo, dpo, "
            "idk_nll, retain_nll, retain_kl), e.g. --terms npo:1 retain_nll:5"
        ),
    )
    beta: float = field(default=0.1, metadata=_h("inverse temperature of npo/simnpo/dpo"))
    gamma: float = field(default=0.0, metadata=_h("SimNPO margin"))
    forget_weight: float = field(default=1.0, metadata=_h("weight of the forget-side term"))
    retain_weight: float = field(
        default=1.0, metadata=_h("weight of the retain NLL (paper: 5 at forget50, 12 at forget90)")
    )
    kl_weight: float = field(default=1.0, metadata=_h("weight of the retain KL"))
    reduction: Literal["official", "sum", "mean", "token"] = field(
        default="official",
        metadata=_h(
            "token reduction: official (npo/dpo summed, ga/nll/kl token mean) or one for all"
        ),
    )
    pairing: Literal["random", "fixed"] = field(
        default="random",
        metadata=_h("retain partners: fresh seeded draw per epoch, or the official fixed ones"),
    )
    reference: Literal["cache", "live"] = field(
        default="cache",
        metadata=_h("reference log-probs: computed once and cached, or a live model every step"),
    )
    ref_cache: str = field(
        default=".npo-cache/ref_logps", metadata=_h("directory of cached reference log-probs")
    )
    idk_file: str | None = field(
        default=None, metadata=_h("IDK answers, one per line (None: DATA/idontknow.jsonl)")
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model is None:
            raise ValueError("--model is required (the fine-tuned model directory)")
        check_beta(self.beta)
        self.objective()  # validates method/terms/weights

    def objective(self) -> Objective:
        """The objective: the ``--terms`` list if given, else the ``--method`` preset.

        Returns:
            The :class:`~npo.objectives.Objective`, with this config's beta, gamma, weights and
            reduction (``official``: each term's own).
        """
        red = None if self.reduction == "official" else self.reduction
        if self.terms:
            pairs = []
            for spec in self.terms:
                key, sep, weight = spec.partition(":")
                try:
                    pairs.append((key, float(weight) if sep else 1.0))
                except ValueError:
                    raise ValueError(f"--terms entry {spec!r} is not KEY:WEIGHT") from None
            return objective_from_terms(pairs, beta=self.beta, gamma=self.gamma, reduction=red)
        return preset(
            self.method,
            beta=self.beta,
            gamma=self.gamma,
            forget_weight=self.forget_weight,
            retain_weight=self.retain_weight,
            kl_weight=self.kl_weight,
            reduction=red,
        )
