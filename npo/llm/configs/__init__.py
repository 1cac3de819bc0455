"""Ready ``accelerate launch`` configurations, and the path of each.

``fsdp.yaml`` (PyTorch FSDP2) and ``zero3.yaml`` (DeepSpeed ZeRO-3);
``python -m npo.llm.configs NAME`` prints the path of one.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIGS", "config_path"]

CONFIGS = ("fsdp", "zero3")


def config_path(name: str) -> Path:
    """Absolute path of the shipped accelerate config ``name`` (``fsdp`` or ``zero3``).

    Returns:
        The path of ``NAME.yaml`` in this package.
    """
    if name not in CONFIGS:
        raise ValueError(f"unknown accelerate config {name!r}; valid: {list(CONFIGS)}")
    return Path(__file__).resolve().parent / f"{name}.yaml"
