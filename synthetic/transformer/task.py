"""TOFU in miniature: the task's options, its data and its fine-tuned models.

The paper's TOFU claims (GA collapses; NPO-based methods keep a better forget-quality /
utility trade-off; NPO+RT unlearns large forget sets) are made on 7B models. Here they run in
minutes on a CPU, on data whose truth is known by construction
(:mod:`synthetic.transformer.authors`), and through the LLM path itself (:mod:`npo.llm.train`,
:mod:`npo.llm.eval`, the same kernels).

1. Generate the authors and write TOFU's split files (``eval/``), plus the fine-tuning data
   (``train/``: every split with the utility facts added, the model's "pre-training
   knowledge", so model utility is measurable): :func:`prepare_data`.
2. Fine-tune a tiny Llama on ``train/full`` until it has memorized the answers (memorization
   accuracy reported) and a retain model on each ``train/retainYY``; cached on disk by
   config: :func:`train_models`.
3. Unlearn each forget split with each method, and run the divergence study
   (:mod:`synthetic.transformer.runs`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from npo.objectives import PRESETS
from npo.results import atomic_write_text, write_jsonl
from npo.validate import check_fields, one_of, positive
from synthetic.transformer.authors import AuthorsConfig, generate_authors
from synthetic.transformer.tofu_files import write_holdout_splits, write_tofu_splits

__all__ = [
    "ALL_METHODS",
    "MAIN_METHODS",
    "ResolvedTransformerConfig",
    "TransformerConfig",
    "cache_key",
    "default_cache_dir",
    "memorization_accuracy",
    "prepare_data",
    "run_key",
    "train_models",
]

MAIN_METHODS = ("ga", "ga+rt", "npo", "npo+rt", "idk+rt")
ALL_METHODS = (
    "ga",
    "ga+rt",
    "ga+kl",
    "npo",
    "npo+rt",
    "npo+kl",
    "simnpo+rt",
    "dpo+rt",
    "idk+rt",
)
CACHE_VERSION = 2


@dataclass(frozen=True)
class TransformerConfig:
    """The small-transformer experiment's options; ``None`` fields take the quick or full default.

    :meth:`resolved` fills them in.
    """

    quick: bool = field(default=False, metadata={"help": "CPU-sized run (a few minutes)"})
    n_authors: int | None = field(default=None, metadata={"help": "authors (quick 30, full 40)"})
    qa_per_author: int | None = field(
        default=None, metadata={"help": "questions per author (quick 12, full 16)"}
    )
    splits: tuple[int, ...] | None = field(
        default=None, metadata={"help": "forget percentages (quick 10 20 50; full 5 10 20 50 90)"}
    )
    methods: tuple[str, ...] | None = field(
        default=None, metadata={"help": "methods (quick: the main five; full: all nine)"}
    )
    optimizer: str = field(default="adamw", metadata={"help": "adamw or sgd"})
    lr: float | None = field(
        default=None, metadata={"help": "unlearning lr (adamw 5e-4, sgd 5e-3)"}
    )
    beta: float = field(default=0.1, metadata={"help": "NPO/SimNPO/DPO beta (the paper's 0.1)"})
    retain_weight: float = field(default=1.0, metadata={"help": "retain NLL weight"})
    large_retain_weight: float = field(
        default=5.0, metadata={"help": "retain NLL weight at forget >= 50% (the paper's 5)"}
    )
    steps: int | None = field(
        default=None, metadata={"help": "unlearning steps (quick 150, full 300)"}
    )
    eval_every: int = field(default=10, metadata={"help": "evaluate every N unlearning steps"})
    batch_size: int = field(default=16, metadata={"help": "unlearning batch (forget sequences)"})
    finetune_epochs: int = field(default=60, metadata={"help": "fine-tuning epochs"})
    hidden: int | None = field(default=None, metadata={"help": "model width (quick 64, full 128)"})
    layers: int | None = field(default=None, metadata={"help": "layers (quick 2, full 4)"})
    drift_steps: int | None = field(
        default=None, metadata={"help": "steps of the divergence study (quick 300, full 1000)"}
    )
    drift_betas: tuple[float, ...] = field(
        default=(0.1, 1.0), metadata={"help": "NPO betas of the divergence study"}
    )
    seed: int = field(default=0, metadata={"help": "data, initialization and order seed"})
    seeds: int | None = field(
        default=None,
        metadata={"help": "seeds seed, seed+1, ... (quick 1, full 3); the drift study: the first"},
    )
    cache_dir: str = field(
        default_factory=lambda: default_cache_dir(),
        metadata={"help": "where data, models and runs are cached ($NPO_CACHE_DIR/transformer)"},
    )
    progress: bool = field(default=True, metadata={"help": "progress bars on a terminal"})

    def __post_init__(self) -> None:
        sizes = ("n_authors", "qa_per_author", "steps", "hidden", "layers")
        check_fields(
            self, at_least_1=(*sizes, "eval_every", "batch_size", "finetune_epochs", "seeds")
        )
        # fit_divergence needs two decades of steps
        check_fields(self, at_least_100=("drift_steps",))
        one_of("optimizer", self.optimizer, ("adamw", "sgd"))
        for m in self.methods or ():
            if m not in PRESETS:
                raise ValueError(f"unknown method {m!r}; valid: {sorted(PRESETS)}")
        check_fields(self, positive=("lr", "beta", "retain_weight", "large_retain_weight"))
        for b in self.drift_betas:
            positive("drift_betas", b)
        for p in self.splits or ():
            if not 0 < p < 100:
                raise ValueError(f"splits are forget percentages in (0, 100), got {p}")

    def resolved(self) -> ResolvedTransformerConfig:
        """This config with every ``None`` replaced by its quick or full default.

        Returns:
            The same options with every size filled in.
        """
        q = self.quick
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(
            n_authors=self.n_authors or (30 if q else 40),
            qa_per_author=self.qa_per_author or (12 if q else 16),
            splits=tuple(self.splits or ((10, 20, 50) if q else (5, 10, 20, 50, 90))),
            methods=tuple(self.methods or (MAIN_METHODS if q else ALL_METHODS)),
            lr=self.lr or (5e-4 if self.optimizer == "adamw" else 5e-3),
            steps=self.steps or (150 if q else 300),
            hidden=self.hidden or (64 if q else 128),
            layers=self.layers or (2 if q else 4),
            drift_steps=self.drift_steps or (300 if q else 1000),
            seeds=self.seeds or (1 if q else 3),
        )
        return ResolvedTransformerConfig(**values)

    def retain_weight_for(self, percent: int) -> float:
        """The retain NLL weight of a forget split (the paper's larger weight from 50%).

        Args:
            percent: the forget percentage.

        Returns:
            ``large_retain_weight`` from 50%, else ``retain_weight``.
        """
        return self.large_retain_weight if percent >= 50 else self.retain_weight


@dataclass(frozen=True, kw_only=True)
class ResolvedTransformerConfig(TransformerConfig):
    """A :class:`TransformerConfig` with every size filled in (:meth:`~TransformerConfig.resolved`).

    The same fields in the same order (so ``asdict`` and the cache keys are the same); only
    their types say that none is ``None``.
    """

    n_authors: int
    qa_per_author: int
    splits: tuple[int, ...]
    methods: tuple[str, ...]
    lr: float
    steps: int
    hidden: int
    layers: int
    drift_steps: int
    seeds: int

    @property
    def seed_list(self) -> tuple[int, ...]:
        """Seeds ``seed`` to ``seed + seeds - 1``, in order."""
        return tuple(range(self.seed, self.seed + self.seeds))


def default_cache_dir() -> str:
    """The task's default cache directory.

    Returns:
        ``$NPO_CACHE_DIR/transformer`` (``NPO_CACHE_DIR`` defaults to ``.npo-cache``).
    """
    return str(Path(os.environ.get("NPO_CACHE_DIR", ".npo-cache")) / "transformer")


def run_key(config: TransformerConfig) -> str:
    """The cache key of everything that changes one seed's runs of a split and method.

    Args:
        config: the options (resolved here); where the cache lives, progress bars, the number
            of seeds and which splits and methods run do not enter (each run is cached under
            its own split and method).

    Returns:
        A 16-hex-digit key.
    """
    settings = {
        k: v
        for k, v in asdict(config.resolved()).items()
        if k not in ("cache_dir", "progress", "seeds", "splits", "methods")
    }
    return cache_key(settings)


def cache_key(*parts: Any) -> str:
    """A short digest of JSON-able ``parts`` (and the cache version).

    Args:
        *parts: what the cached item depends on.

    Returns:
        A 16-hex-digit key.
    """
    text = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def prepare_data(config: TransformerConfig) -> tuple[Path, Path, dict]:
    """Generate the authors and write their TOFU files and fine-tuning splits under the cache.

    ``eval/`` holds TOFU's files (:func:`~synthetic.transformer.tofu_files.write_tofu_splits`),
    ``train/`` the fine-tuning splits with the utility facts added.

    Args:
        config: the options (resolved here).

    Returns:
        ``(train_dir, eval_dir, report)``; the report says which forget percentages were
        written (``{"written": {percent: n_authors}}``), which skipped and why.
    """
    c = config.resolved()
    authors = AuthorsConfig(n_authors=c.n_authors, qa_per_author=c.qa_per_author, seed=c.seed)
    root = Path(c.cache_dir) / f"data-{cache_key(asdict(authors), c.splits)}"
    eval_dir, train_dir = root / "eval", root / "train"
    report_path = root / "report.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        if not all((eval_dir / f"holdout{int(p):02d}.json").is_file() for p in report["written"]):
            write_holdout_splits(authors, eval_dir, report["written"])  # a cache from before them
        return train_dir, eval_dir, report
    data = generate_authors(authors)
    report = write_tofu_splits(data, eval_dir, c.splits)
    train_dir.mkdir(parents=True, exist_ok=True)
    utility = [{"question": r["question"], "answer": r["answer"]} for r in data.real_authors]
    utility += [{"question": r["question"], "answer": r["answer"]} for r in data.world_facts]
    qa = [{"question": r["question"], "answer": r["answer"]} for r in data.rows]
    write_jsonl(train_dir / "full.json", qa + utility)
    for pct, count in report["written"].items():
        kept = qa[: (c.n_authors - count) * c.qa_per_author]
        write_jsonl(train_dir / f"retain{100 - int(pct):02d}.json", kept + utility)
    shutil.copy(eval_dir / "idontknow.jsonl", train_dir / "idontknow.jsonl")
    report = {**report, "written": {str(k): v for k, v in report["written"].items()}}
    atomic_write_text(report_path, json.dumps(report))
    return train_dir, eval_dir, report


def memorization_accuracy(model: Any, tokenizer: Any, data: str | Path, split: str) -> float:
    """The fraction of answer tokens the model predicts exactly (argmax, teacher forcing).

    Args:
        model: a causal language model.
        tokenizer: its tokenizer.
        data: a TOFU-format data directory.
        split: the split to score.

    Returns:
        The accuracy in ``[0, 1]``.
    """
    from npo.llm.data import read_split
    from npo.llm.encoding import collate, encode_qa
    from npo.llm.forward import eval_mode, forward_logits
    from npo.logprobs import greedy_matches

    enc = encode_qa(tokenizer, read_split(data, split), max_length=256)
    hits = total = 0
    with eval_mode(model):
        for start in range(0, len(enc), 64):
            batch = collate(
                [enc.item(i) for i in range(start, min(start + 64, len(enc)))],
                tokenizer.pad_token_id,
            )
            right, n = greedy_matches(forward_logits(model, batch), batch["labels"])
            hits += int(right.sum())
            total += int(n.sum())
    return hits / total


def _finetune(
    c: ResolvedTransformerConfig, train_dir: Path, split: str, out: Path, tokenizer: str | None
) -> Path:
    from npo.llm.train import FinetuneConfig, finetune

    if (out / "done.json").is_file():
        return out / "model"
    shutil.rmtree(out, ignore_errors=True)
    cfg = FinetuneConfig(
        init="tiny-llama",
        tokenizer=tokenizer,
        data=str(train_dir),
        split=split,
        out=str(out),
        epochs=c.finetune_epochs,
        lr=3e-3,
        batch_size=32,
        lr_schedule="constant",
        warmup_epochs=0,
        weight_decay=0.0,
        checkpoint_every=0,
        drift_every=0,
        seed=c.seed,
        tiny_hidden_size=c.hidden,
        tiny_intermediate_size=3 * c.hidden,
        tiny_layers=c.layers,
        tiny_vocab_size=512,
        max_length=256,
        progress=c.progress,
    )
    result = finetune(cfg)
    atomic_write_text(out / "done.json", json.dumps({"steps": result.steps}))
    return result.model_dir


def train_models(config: TransformerConfig, train_dir: Path, report: dict) -> dict[str, Any]:
    """Fine-tune the target (``full``) and one retain model per written forget split (cached).

    Args:
        config: the options (resolved here).
        train_dir: the fine-tuning splits (from :func:`prepare_data`).
        report: the split report (from :func:`prepare_data`).

    Returns:
        ``{"target": dir, "retain": {percent: dir}, "memorization": accuracy, "params": n}``.
    """
    from npo.llm.model import load_model

    c = config.resolved()
    key = cache_key(train_dir.parent.name, c.finetune_epochs, c.hidden, c.layers, c.seed)
    root = Path(c.cache_dir) / f"models-{key}"
    target = _finetune(c, train_dir, "full", root / "target", None)
    retain = {
        int(p): _finetune(
            c,
            train_dir,
            f"retain{100 - int(p):02d}",
            root / f"retain{100 - int(p):02d}",
            str(target),
        )
        for p in report["written"]
    }
    memo_path = root / "memorization.json"
    if not memo_path.is_file():
        model, tok = load_model(str(target))
        model.eval()
        memo = {
            "authors": memorization_accuracy(model, tok, train_dir.parent / "eval", "full"),
            "params": sum(p.numel() for p in model.parameters()),
        }
        atomic_write_text(memo_path, json.dumps(memo))
    memo = json.loads(memo_path.read_text())
    return {
        "target": target,
        "retain": retain,
        "memorization": memo["authors"],
        "params": memo["params"],
    }
