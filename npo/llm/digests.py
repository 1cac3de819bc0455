"""Content digests of models, tokenizers and data, and the record npo keeps beside saved models.

- :func:`files_digest`: the bytes of a model directory's weights and configuration (what
  ``from_pretrained`` reads), independent of the precision it is later loaded in;
- :func:`tokenizer_digest`: a tokenizer's full definition (vocabulary, merges, normalization,
  pre-tokenization, special tokens, chat template);
- :func:`~npo.llm.train.reference.weights_digest` (the loaded tensors) and
  :meth:`~npo.llm.encoding.Encoded.digest` (token ids) complete what a checkpoint records;
- ``npo_model.json`` (:data:`MODEL_META`), written beside every model npo saves
  (:func:`write_model_meta`): the tokenizer's digest and, for a LoRA adapter, its base model's
  resolved path and :func:`files_digest`; :func:`check_model_meta` compares them on load;
- :func:`adapter_base`: an adapter's base directory, resolved against the adapter directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from npo.results import atomic_write_text

__all__ = [
    "MODEL_META",
    "adapter_base",
    "check_model_meta",
    "files_digest",
    "read_json",
    "tokenizer_digest",
    "write_model_meta",
]

MODEL_META = "npo_model.json"
_FORMAT = "npo-model"
_CHUNK = 1 << 23


def read_json(path: str | os.PathLike, what: str = "") -> Any:
    """The parsed JSON of ``path``, or a one-line ``ValueError`` naming the file.

    Args:
        path: the file.
        what: what the file is, for the message (``"adapter config"``).

    Returns:
        The parsed value.

    Raises:
        ValueError: the file is missing, a directory, not UTF-8 or not valid JSON.
    """
    p = Path(path)
    label = f"{what} {p}" if what else str(p)
    if p.is_dir():
        raise ValueError(f"{label} is a directory, not a JSON file")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{label} not found") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{label} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{label} is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})"
        ) from None


def files_digest(model_dir: str | os.PathLike) -> str:
    """blake2b of the names and bytes of a model directory's ``*.safetensors`` and configs.

    The files hashed: every ``*.safetensors``, ``config.json`` and ``adapter_config.json``
    (those present), in name order; the digest changes when any of them does, whatever
    precision the model is loaded in.

    Args:
        model_dir: a saved model or adapter directory.

    Returns:
        The hex digest.
    """
    root = Path(model_dir)
    names = sorted(
        {p.name for p in root.glob("*.safetensors")}
        | {n for n in ("config.json", "adapter_config.json") if (root / n).is_file()}
    )
    h = hashlib.blake2b(digest_size=16)
    for name in names:
        h.update(f"{name}|{(root / name).stat().st_size}|".encode())
        with open(root / name, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    """blake2b of a tokenizer's definition.

    A fast tokenizer's serialized pipeline (``backend_tokenizer.to_str()``: vocabulary, merges,
    normalizer, pre-tokenizer, post-processor, added tokens), else its sorted vocabulary; then
    the EOS/BOS tokens and the chat template. The pad token is left out: loading sets a missing
    one to EOS.

    Args:
        tokenizer: a Hugging Face tokenizer.

    Returns:
        The hex digest.
    """
    h = hashlib.blake2b(digest_size=16)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        vocab = sorted(tokenizer.get_vocab().items())
        h.update(json.dumps(vocab, ensure_ascii=False).encode())
    extra = {
        "eos": tokenizer.eos_token,
        "bos": getattr(tokenizer, "bos_token", None),
        "chat": getattr(tokenizer, "chat_template", None),
    }
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def adapter_base(adapter_dir: str | os.PathLike) -> Path:
    """The base model directory a LoRA adapter names, resolved against the adapter directory.

    ``base_model_name_or_path`` of ``adapter_config.json``: an absolute path as is, a relative
    one relative to the adapter directory (never to the current directory).

    Args:
        adapter_dir: the adapter directory.

    Returns:
        The base directory (not checked here).

    Raises:
        ValueError: the config is not valid JSON or names no base.
    """
    path = Path(adapter_dir) / "adapter_config.json"
    obj = read_json(path, "adapter config")
    base = obj.get("base_model_name_or_path") if isinstance(obj, dict) else None
    if not isinstance(base, str) or not base:
        raise ValueError(
            f"adapter config {path} names no base model (field 'base_model_name_or_path'); "
            "set it to the base model's directory"
        )
    base_path = Path(os.path.expanduser(base))
    return base_path if base_path.is_absolute() else Path(adapter_dir) / base_path


def write_model_meta(
    model_dir: str | os.PathLike,
    tokenizer: Any,
    *,
    base: str | os.PathLike | None = None,
    base_digest: str | None = None,
) -> None:
    """Write ``npo_model.json`` into a saved model directory (see the module docstring).

    For an adapter (``adapter_config.json`` present) with a ``base``, the adapter config's
    ``base_model_name_or_path`` is rewritten as the base's absolute resolved path, and the
    base's :func:`files_digest` is recorded (``base_digest`` if given, else computed).

    Args:
        model_dir: the directory ``save_pretrained`` wrote.
        tokenizer: the tokenizer saved with it.
        base: the base model directory of an adapter.
        base_digest: its :func:`files_digest`, when already known.
    """
    root = Path(model_dir)
    meta: dict[str, Any] = {
        "format": _FORMAT,
        "version": 1,
        "tokenizer_digest": tokenizer_digest(tokenizer),
    }
    adapter = root / "adapter_config.json"
    if adapter.is_file() and base is not None:
        full = Path(os.path.realpath(base))
        config = read_json(adapter, "adapter config")
        config["base_model_name_or_path"] = str(full)
        atomic_write_text(adapter, json.dumps(config, indent=2, sort_keys=True) + "\n")
        meta["base"] = {"path": str(full), "digest": base_digest or files_digest(full)}
    atomic_write_text(root / MODEL_META, json.dumps(meta, indent=1) + "\n")


def _meta(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / MODEL_META
    if not path.is_file():
        return None
    obj = read_json(path)
    if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
        raise ValueError(f'{path} is not an npo model record (no "format": "{_FORMAT}")')
    return obj


def check_model_meta(
    model_dir: str | os.PathLike, tokenizer: Any | None = None, base: Path | None = None
) -> None:
    """Check a saved model's tokenizer, or an adapter's base, against ``npo_model.json``.

    A directory without the record (not saved by npo) passes.

    Args:
        model_dir: the model or adapter directory.
        tokenizer: the tokenizer loaded for it (checked when given).
        base: the adapter's base directory (checked when given and recorded).

    Raises:
        ValueError: the tokenizer or the base is not the one saved with the weights.
    """
    root = Path(model_dir)
    meta = _meta(root)
    if meta is None:
        return
    if tokenizer is not None and meta.get("tokenizer_digest") not in (None, ""):
        if tokenizer_digest(tokenizer) != meta["tokenizer_digest"]:
            raise ValueError(
                f"the tokenizer in {root} is not the one saved with these weights (its digest "
                f"differs from {root / MODEL_META}); put back the model's own tokenizer files"
            )
    recorded = meta.get("base")
    if base is not None and isinstance(recorded, dict) and recorded.get("digest"):
        if files_digest(base) != recorded["digest"]:
            raise ValueError(
                f"the adapter {root} was trained on the base model {recorded.get('path')}, but "
                f"its adapter_config.json now leads to {base}, whose weights differ (digest in "
                f"{root / MODEL_META}); point base_model_name_or_path at the original base"
            )
