"""Causal LMs for the LLM path: loading, the tiny Llama, LoRA, precision, and saving.

Models load from a local directory; the tiny Llama is built from a config for CPU runs and
tests.

Weights are read only from safetensors (``use_safetensors=True``); ``trust_remote_code`` only
when the caller passes it. Nothing is downloaded: a model is a local directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TinyLlamaSpec",
    "add_lora",
    "build_tiny_llama",
    "check_model_dir",
    "check_vocab",
    "load_model",
    "resolve_precision",
    "save_model_dir",
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


def check_model_dir(path: Path) -> None:
    """``ValueError`` unless ``path`` is a saved model (config + safetensors weights)."""
    if not path.is_dir():
        raise ValueError(f"model directory {str(path)!r} does not exist")
    if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
        raise ValueError(f"{path} has no config.json: not a saved Hugging Face model")
    if not any(path.glob("*.safetensors")):
        have = sorted(p.name for p in path.iterdir())
        raise ValueError(
            f"{path} has no *.safetensors weights (found {have}); only safetensors are loaded "
            "(pickled .bin checkpoints are refused; convert them with save_pretrained)"
        )


def load_model(
    path: str | os.PathLike, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False
) -> tuple[Any, Any]:
    """Load a model and its tokenizer from a local directory (safetensors only).

    A full model, or a LoRA adapter directory (its ``adapter_config.json`` names the base; the
    adapter is merged into it). The tokenizer must have an EOS token; a missing pad token is set
    to EOS (padding never decides the attention mask here).

    Returns:
        ``(model, tokenizer)``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    check_model_dir(path)
    kwargs = {"dtype": dtype, "use_safetensors": True, "trust_remote_code": trust_remote_code}
    adapter = path / "adapter_config.json"
    if adapter.is_file():
        from peft import PeftModel

        base_dir = Path(json.loads(adapter.read_text())["base_model_name_or_path"])
        check_model_dir(base_dir)
        model = AutoModelForCausalLM.from_pretrained(base_dir, **kwargs)
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
        tok_dir = path if (path / "tokenizer_config.json").is_file() else base_dir
    else:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        tok_dir = path
    try:
        tokenizer = AutoTokenizer.from_pretrained(tok_dir, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load the tokenizer from {tok_dir}: {exc}") from None
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer in {tok_dir} has no EOS token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
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


def save_model_dir(
    model: Any, tokenizer: Any, path: Path, *, state_dict: dict | None = None
) -> Path:
    """``save_pretrained`` (safetensors) of model and tokenizer into ``path``, atomically.

    Written into a temporary sibling directory, then renamed into place.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        model.save_pretrained(tmp, state_dict=state_dict)  # safetensors (the default)
        tokenizer.save_pretrained(tmp)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def replace_dir(tmp: Path, path: Path) -> None:
    """Move directory ``tmp`` to ``path``, replacing an existing one (old one removed after)."""
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
