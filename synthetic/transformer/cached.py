"""Plumbing of the small-transformer task's runs: their configs, cached records and models.

Every unlearning run of the task (:mod:`synthetic.transformer.runs`,
:mod:`synthetic.transformer.drift`) is configured by :func:`unlearn_config`, and its JSON
record is cached on disk by :func:`cached_run` under the config's key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from npo.results import to_jsonable, write_json
from synthetic.transformer.task import ResolvedTransformerConfig

__all__ = ["cached_run", "load_model_eval", "unlearn_config"]


def unlearn_config(
    c: ResolvedTransformerConfig, model: Path, data: Path, out: Path, **kw: Any
) -> Any:
    """The :class:`npo.llm.train.UnlearnConfig` of one of the task's unlearning runs.

    Constant learning rate, no weight decay, no checkpoints, drift logged every step, the
    reference log-probs cached under the task's cache; ``kw`` overrides.

    Returns:
        The config.
    """
    from npo.llm.train import UnlearnConfig

    base: dict[str, Any] = {
        "model": str(model),
        "data": str(data),
        "out": str(out),
        "optimizer": c.optimizer,
        "lr": c.lr,
        "lr_schedule": "constant",
        "warmup_epochs": 0,
        "weight_decay": 0.0,
        "batch_size": c.batch_size,
        "checkpoint_every": 0,
        "drift_every": 1,
        "beta": c.beta,
        "seed": c.seed,
        "max_length": 256,
        "ref_cache": str(Path(c.cache_dir) / "ref_logps"),
        "progress": c.progress,
    }
    base.update(kw)
    return UnlearnConfig(**base)


def cached_run(path: Path, run: Callable[[], dict]) -> dict:
    """The JSON record at ``path`` if a finished run left it, else ``run()``'s, saved there.

    Returns:
        The record.
    """
    if path.is_file():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, to_jsonable(run()))
    return json.loads(path.read_text())


def load_model_eval(model_dir: Path) -> tuple[Any, Any]:
    """A saved model and its tokenizer, in eval mode.

    Returns:
        ``(model, tokenizer)``.
    """
    from npo.llm.model import load_model

    model, tok = load_model(str(model_dir))
    model.eval()
    return model, tok
