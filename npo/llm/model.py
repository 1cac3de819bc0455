"""Causal LMs for the LLM path: loading, the tiny Llama, LoRA, precision, and saving.

Models load from a local directory; the tiny Llama is built from a config for CPU runs and
tests.

Weights are read only from safetensors (``use_safetensors=True``); ``trust_remote_code`` only
when the caller passes it. Nothing is downloaded: a model is a local directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from npo.llm.saving import honor_umask, replace_dir, save_model_dir, saving

__all__ = [
    "TinyLlamaSpec",
    "add_lora",
    "build_tiny_llama",
    "check_finite_weights",
    "check_model_dir",
    "check_vocab",
    "honor_umask",
    "load_model",
    "load_tokenizer",
    "replace_dir",
    "resolve_precision",
    "save_model_dir",
    "saving",
    "train_tokenizer",
]

PRECISIONS = ("auto", "fp32", "bf16-mixed", "bf16")


def resolve_precision(precision: str, device_type: str) -> tuple[torch.dtype, bool]:
    """``(weight dtype, bf16 autocast?)`` for a precision name.

    ``auto``: bf16 autocast over fp32 weights on CUDA (fp32 master weights keep lr-1e-5
    updates that bf16 weights would round away), fp32 elsewhere. ``bf16``: bf16 weights, no
    autocast (half the memory; small updates are lost to rounding).

    Returns:
        ``(dtype, autocast)``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        precision = "bf16-mixed" if device_type == "cuda" else "fp32"
    if precision == "bf16":
        return torch.bfloat16, False
    return torch.float32, precision == "bf16-mixed"


@dataclass(frozen=True)
class TinyLlamaSpec:
    """A small Llama built from a config (no download). The default has about 0.2M parameters."""

    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 172
    num_layers: int = 2
    num_heads: int = 4
    max_position: int = 512

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"tiny-llama {name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"tiny-llama hidden_size {self.hidden_size} is not divisible by "
                f"num_heads {self.num_heads}"
            )
        if self.vocab_size < 300:
            raise ValueError(
                f"tiny-llama vocab_size must be >= 300 (bytes + specials), got {self.vocab_size}"
            )


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on ``texts`` (``<pad>``, ``<s>`` BOS, ``</s>`` EOS).

    Byte-level: every string is encodable (no unknown token). ``add_special_tokens=True``
    prepends ``<s>``. Deterministic for the same texts.

    Returns:
        A ``transformers.PreTrainedTokenizerFast``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def build_tiny_llama(
    texts: Iterable[str], spec: TinyLlamaSpec, *, seed: int, tokenizer: Any = None
) -> tuple[Any, Any]:
    """A randomly initialized Llama (seeded) and a BPE tokenizer trained on ``texts``.

    A given ``tokenizer`` is used instead of training one; its size then sets the vocabulary.

    Returns:
        ``(model, tokenizer)``.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if tokenizer is None:
        tokenizer = train_tokenizer(texts, spec.vocab_size)
    if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError("the tiny-llama tokenizer needs EOS and pad tokens")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.max_position,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        attention_dropout=0.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model, tokenizer


def check_vocab(model: Any, tokenizer: Any) -> None:
    """``ValueError`` if the tokenizer can produce ids the model has no embedding for."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(
            f"vocabulary mismatch: the tokenizer has {len(tokenizer)} tokens but the model "
            f"embeds only {rows}; tokenizer and model come from different checkpoints"
        )


def _check_safetensors(path: Path) -> None:
    # The header of a safetensors file: its tensor table must parse and cover the file.
    from safetensors import SafetensorError, safe_open

    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): not safetensors weights")
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except SafetensorError as exc:
        raise ValueError(
            f"{path} is not a valid safetensors file ({exc}); it is truncated or damaged"
        ) from None


def check_model_dir(path: Path) -> None:
    """``ValueError`` unless ``path`` is a saved model (config + safetensors weights).

    Checked without loading: the directory, a parseable ``config.json`` (or
    ``adapter_config.json``), and every ``*.safetensors`` header (a truncated, empty or garbled
    file is named). A run directory (``OUT`` rather than ``OUT/model``) is pointed at its model.
    """
    from npo.llm.digests import read_json

    path = Path(path)
    if not path.is_dir():
        if path.exists():
            raise ValueError(f"model directory {str(path)!r} is a file, not a directory")
        raise ValueError(f"model directory {str(path)!r} does not exist")
    config, adapter = path / "config.json", path / "adapter_config.json"
    inner = path / "model"
    run_dir = (inner / "config.json").is_file() or (inner / "adapter_config.json").is_file()
    if run_dir and not any(path.glob("*.safetensors")):
        raise ValueError(
            f"{path} is a run directory, not a model; its model is {inner} (pass that)"
        )
    if not config.is_file() and not adapter.is_file():
        raise ValueError(f"{path} has no config.json: not a saved Hugging Face model")
    for cfg in (config, adapter):
        if cfg.is_file() and not isinstance(read_json(cfg, "model config"), dict):
            raise ValueError(f"model config {cfg} is not a JSON object")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        have = sorted(p.name for p in path.iterdir())
        raise ValueError(
            f"{path} has no *.safetensors weights (found {have}); only safetensors are loaded "
            "(pickled .bin checkpoints are refused; convert them with save_pretrained)"
        )
    for w in weights:
        _check_safetensors(w)


def check_finite_weights(model: Any, where: str | os.PathLike) -> None:
    """``ValueError`` naming the first tensor with NaN/inf values (a corrupt or diverged model)."""
    bad = []
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad.append((name, int((~torch.isfinite(t)).sum())))
    if bad:
        more = f" and {len(bad) - 1} more tensors" if len(bad) > 1 else ""
        raise ValueError(
            f"the model in {where} has non-finite weights: {bad[0][1]} NaN/inf values in "
            f"{bad[0][0]}{more}; it cannot be trained or evaluated (a diverged or damaged save)"
        )


def _tokenizer_dir(path: Path) -> Path:
    # Where a model's tokenizer lives: its own directory, or an adapter's base.
    from npo.llm.digests import adapter_base

    if (path / "adapter_config.json").is_file() and not (path / "tokenizer_config.json").is_file():
        return adapter_base(path)
    return path


def load_tokenizer(path: str | os.PathLike, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a saved model (or adapter) directory, checked before any weights load.

    EOS required; a missing pad token is set to EOS (padding never decides the attention mask
    here). Its digest is checked against the ``npo_model.json`` npo saved beside the weights.

    Returns:
        The tokenizer.

    Raises:
        ValueError: it cannot be loaded, has no EOS, or is not the one saved with the weights.
    """
    from transformers import AutoTokenizer

    from npo.llm.digests import check_model_meta

    tok_dir = _tokenizer_dir(Path(path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_dir, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"cannot load the tokenizer from {tok_dir}: {cause}") from None
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer in {tok_dir} has no EOS token")
    check_model_meta(tok_dir, tokenizer=tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _from_pretrained(path: Path, kwargs: dict[str, Any]) -> Any:
    # AutoModelForCausalLM.from_pretrained with its failures as one line naming `path`:
    # unreadable weights, and weights that do not fit the config (shapes, missing tensors).
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report: our one line says it instead
    try:
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            path, ignore_mismatched_sizes=True, output_loading_info=True, **kwargs
        )
        model, info = loaded
    except (OSError, SafetensorError) as exc:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"cannot load the model in {path}: {cause}") from None
    finally:
        hf_logging.set_verbosity(level)
    mismatched = list(info.get("mismatched_keys") or ())
    if mismatched:
        key, ckpt, want = mismatched[0]
        raise ValueError(
            f"the weights in {path} do not fit its config.json: {key} has shape "
            f"{list(ckpt)} in the safetensors file, the config implies {list(want)} "
            f"({len(mismatched)} tensors differ)"
        )
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ValueError(
            f"the weights in {path} lack {len(missing)} tensors its config.json needs (first: "
            f"{missing[0]}); they would be random: the config and the weights do not match"
        )
    return model


def load_model(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    trust_remote_code: bool = False,
    tokenizer: Any = None,
) -> tuple[Any, Any]:
    """Load a model and its tokenizer from a local directory (safetensors only).

    A full model, or a LoRA adapter directory (its ``adapter_config.json`` names the base,
    resolved against the adapter directory; the adapter is merged into it, after checking the
    base against the digest npo recorded). The tokenizer loads first (:func:`load_tokenizer`).
    Weights that do not fit the config, or hold NaN/inf values, are refused. ``tokenizer``:
    one :func:`load_tokenizer` already returned for ``path`` (not loaded again).

    Returns:
        ``(model, tokenizer)``.
    """
    from npo.llm.digests import adapter_base, check_model_meta

    path = Path(path)
    check_model_dir(path)
    if tokenizer is None:
        tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    kwargs = {"dtype": dtype, "use_safetensors": True, "trust_remote_code": trust_remote_code}
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base_dir = adapter_base(path)
        try:
            check_model_dir(base_dir)
        except ValueError as exc:
            raise ValueError(f"the base model of the adapter {path}: {exc}") from None
        check_model_meta(path, base=base_dir)
        model = _from_pretrained(base_dir, kwargs)
        try:
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            cause = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ValueError(f"cannot apply the adapter {path} to {base_dir}: {cause}") from None
    else:
        model = _from_pretrained(path, kwargs)
    check_finite_weights(model, path)
    check_vocab(model, tokenizer)
    return model, tokenizer


def add_lora(model: Any, *, r: int, alpha: float, dropout: float, targets: str) -> Any:
    """Wrap ``model`` with LoRA adapters (``peft``); only the adapters train.

    ``targets``: ``all-linear`` or comma-separated module names (``q_proj,v_proj``).

    Returns:
        The ``peft`` model.
    """
    from peft import LoraConfig, get_peft_model

    if r < 1:
        raise ValueError(f"lora rank must be >= 1, got {r}")
    modules: Any = "all-linear"
    if targets != "all-linear":
        modules = [t.strip() for t in targets.split(",") if t.strip()]
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft annotates int; scaling is alpha / r
        lora_dropout=dropout,
        target_modules=modules,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ValueError(f"cannot add LoRA adapters ({targets}): {exc}") from None
