"""Command line: ``npo <command> ...``. The only place that parses arguments.

Commands register themselves in ``COMMANDS`` as ``(add_arguments, run)`` pairs; a
``ValueError`` raised by validation anywhere below becomes a one-line ``npo: error: ...``
message with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from npo.config import add_dataclass_args, dataclass_from_args

__all__ = ["main"]


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("results"), help="output directory")
    p.add_argument(
        "--full", action="store_true", help="paper-size experiments instead of the quick subset"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _demo(ns: argparse.Namespace) -> int:
    """The main job on embedded defaults (``npo demo``).

    The loss landscape, the theory figures, then every experiment (the quick size unless
    ``--full``), with a summary table.

    Returns:
        The exit status.
    """
    from npo.landscape import LandscapeConfig, plot_landscape, run_landscape
    from npo.results import ensure_out_dir, write_figure

    out = ensure_out_dir(ns.out)
    config = LandscapeConfig()
    png = write_figure(plot_landscape(run_landscape(config)), out, "landscape", config=config)
    print(f"landscape: wrote {png}")
    _theory(argparse.Namespace(out=out, fast=not ns.full))
    argv = argparse.Namespace(names=["all"], out=out, quick=not ns.full, progress=ns.progress)
    return _reproduce(argv)


def _experiments():
    """The ``npo reproduce`` registry, assembled from the entries each package exports.

    Returns:
        ``{name: Experiment}``: the logistic study's entries, then the small transformer's.
    """
    import synthetic
    import synthetic.transformer
    from npo.experiment import registry

    return registry(synthetic.EXPERIMENTS, synthetic.transformer.EXPERIMENTS)


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    from npo.experiment import ReproduceConfig

    entries = _experiments().values()
    names = ", ".join(e.name + (" (slow, not in all)" if e.slow else "") for e in entries)
    p.add_argument("names", nargs="+", metavar="NAME", help=f"experiments: all, {names}")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    add_dataclass_args(p, ReproduceConfig)


def _reproduce(ns: argparse.Namespace) -> int:
    from npo.experiment import ReproduceConfig, select
    from npo.results import ensure_out_dir, write_result

    config = dataclass_from_args(ReproduceConfig, ns)  # absent flags keep their defaults
    entries = select(_experiments(), ns.names, config)  # validates before any work
    out = ensure_out_dir(ns.out)
    rows = []
    for entry in entries:
        result = entry.run(config)
        paths = write_result(result, out, entry.plot)
        print(f"{entry.name}: wrote {', '.join(str(p) for p in paths)}", flush=True)
        rows.append((entry.name, result.headline))
    width = max(len(n) for n, _ in rows)
    print("\nSummary")
    for name, headline in rows:
        print(f"  {name:<{width}}  {headline}")
    return 0


def _theory_args(p: argparse.ArgumentParser) -> None:
    from theory.figures import TheoryFiguresConfig

    p.add_argument("--out", type=Path, required=True, help="output directory")
    add_dataclass_args(p, TheoryFiguresConfig)


def _theory(ns: argparse.Namespace) -> int:
    from npo.results import ensure_out_dir
    from theory.figures import TheoryFiguresConfig, write_theory_figures

    config = dataclass_from_args(TheoryFiguresConfig, ns)
    out = ensure_out_dir(ns.out)
    for path in write_theory_figures(out, config):
        print(f"wrote {path}")
    return 0


def _require(p: argparse.ArgumentParser, *dests: str) -> None:
    for action in p._actions:
        if action.dest in dests:
            action.required, action.default = True, None
            action.help = (action.help or "").rsplit(" (default", 1)[0] + " (required)"


def _finetune_args(p: argparse.ArgumentParser) -> None:
    from npo.llm.train import FinetuneConfig

    p.epilog = (
        "Writes OUT/model (save_pretrained safetensors + tokenizer), OUT/log.jsonl (one JSON "
        "record per step), OUT/checkpoints/step-N (atomic, exact --resume), OUT/config.json, "
        "OUT/result.json; with --init also OUT/init (the initial model)."
    )
    add_dataclass_args(p, FinetuneConfig, skip=("eval_every",))
    _require(p, "data", "out")


def _finetune(ns: argparse.Namespace) -> int:
    from npo.llm.train import FinetuneConfig, finetune

    _quiet_hf()
    return _report(finetune(dataclass_from_args(FinetuneConfig, ns)))


def _unlearn_args(p: argparse.ArgumentParser) -> None:
    from npo.llm.train import UnlearnConfig

    p.epilog = (
        "Writes OUT/model, OUT/log.jsonl (per step: loss, each term, forget_loss, retain_loss, "
        "forget_logp, log_ratio, npo_weight, param_drift, lr, grad_norm), OUT/checkpoints/step-N, "
        "OUT/config.json, OUT/result.json; reference log-probs are cached in --ref-cache."
    )
    add_dataclass_args(p, UnlearnConfig)
    _require(p, "data", "out", "model")
    _unlearn_eval_args(p)


def _unlearn(ns: argparse.Namespace) -> int:
    from npo.llm.train import UnlearnConfig, unlearn

    _quiet_hf()
    config = dataclass_from_args(UnlearnConfig, ns)
    hooks = _unlearn_eval_hooks(ns, config)
    result = unlearn(config, hooks=hooks)
    if hooks and result.logs:
        _write_eval_curves(result, config)
    return _report(result)


# ---------------------------------------------------------------- TOFU evaluation


def _unlearn_eval_args(p: argparse.ArgumentParser) -> None:
    from npo.llm.eval import EvalConfig

    p.epilog = (p.epilog or "") + (
        " With --retain-results (and --eval-every N) the TOFU evaluation runs at step 0, every "
        "N steps and at the end: its metrics (forget_quality, model_utility, ...) join those "
        "steps' log records, OUT/eval/step-N.json holds each full result, and "
        "OUT/eval_curves.json/.png the curves."
    )
    g = p.add_argument_group("evaluation during unlearning (npo eval's options, --eval- prefix)")
    g.add_argument(
        "--retain-results",
        type=Path,
        default=None,
        help="`npo eval` results of the retain model (turns the evaluation on)",
    )
    g.add_argument(
        "--eval-reference",
        type=Path,
        default=None,
        help="model for forget_kl/retain_kl, e.g. the --model before unlearning (default: none)",
    )
    add_dataclass_args(g, EvalConfig, skip=("progress", "precision"), prefix="eval-")


def _unlearn_eval_hooks(ns: argparse.Namespace, config) -> list:
    from npo.llm.eval import EvalConfig, make_eval_hook

    if ns.retain_results is None:
        if config.eval_every or ns.eval_reference is not None:
            raise ValueError(
                "--eval-every/--eval-reference evaluate during unlearning and need "
                "--retain-results FILE (the retain model's `npo eval` results)"
            )
        return []
    eval_config = dataclass_from_args(EvalConfig, ns, prefix="eval-")
    hook = make_eval_hook(
        config.data,
        config.forget,
        config=eval_config,
        retain_results=ns.retain_results,
        reference=ns.eval_reference,
    )
    return [hook]


def _write_eval_curves(result, config) -> None:
    from npo.llm.eval import eval_curves, plot_eval_curves
    from npo.results import write_figure, write_json

    curves = eval_curves(result.logs)
    write_json(result.out_dir / "eval_curves.json", curves)
    name = config.method if not config.terms else "terms"
    write_figure(plot_eval_curves({name: curves}), result.out_dir, "eval_curves", config=config)


def _eval_args(p: argparse.ArgumentParser) -> None:
    from npo.llm.eval import EvalConfig

    p.epilog = (
        "Writes FILE: one JSON object with every metric at the top level (forget_quality, "
        "model_utility, forget_truth_ratio, {forget,retain,real_authors,world_facts}_{prob,"
        "rouge,truth_ratio,gibberish_rate}, forget_kl, retain_kl, gibberish_rate, forget_logp), "
        "notes, config, info and the per-item values under items; a retain model's file is the "
        "--retain-results of other runs."
    )
    p.add_argument("--model", type=Path, required=True, help="model directory (safetensors)")
    p.add_argument("--data", required=True, help="TOFU data directory, or hf:locuslab/TOFU")
    p.add_argument("--forget", default="forget10", help="forget split (default: forget10)")
    p.add_argument(
        "--retain-results",
        type=Path,
        default=None,
        help="`npo eval` results of the retain model (default: none, forget_quality null)",
    )
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="model for forget_kl/retain_kl, e.g. the model before unlearning",
    )
    p.add_argument("--out", type=Path, required=True, help="results JSON file to write")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from DIR")
    add_dataclass_args(p, EvalConfig)


def _eval(ns: argparse.Namespace) -> int:
    from npo.llm.eval import EvalConfig, evaluate_dir, summary_lines
    from npo.results import ensure_out_dir, write_json

    _quiet_hf()
    config = dataclass_from_args(EvalConfig, ns)
    if ns.out.is_dir():
        raise ValueError(f"--out {ns.out} is a directory; give the results file to write")
    ensure_out_dir(ns.out.parent)
    result = evaluate_dir(
        ns.model,
        ns.data,
        ns.forget,
        config=config,
        retain_results=ns.retain_results,
        reference_dir=ns.reference,
        trust_remote_code=ns.trust_remote_code,
    )
    write_json(ns.out, result.to_json())
    print("\n".join(summary_lines(result)))
    print(f"wrote {ns.out}")
    return 0


def _quiet_hf() -> None:
    """Our progress bar is the run's; hide transformers' per-file load/save bars."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _report(result) -> int:
    if result.logs:  # the main process of a distributed run
        last = result.logs[-1]
        shown = ", ".join(
            f"{k} {last[k]:.4g}" for k in ("loss", "forget_logp") if last.get(k) is not None
        )
        log = result.out_dir / "log.jsonl"
        print(f"wrote {result.model_dir} after {result.steps} steps ({shown}); logs in {log}")
    return 0


COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "demo": ("run the demo job and write its figures", _demo_args, _demo),
    "reproduce": (
        "synthetic experiments: the paper's Sec. 4 study, beyond it, TOFU in miniature",
        _reproduce_args,
        _reproduce,
    ),
    "theory": ("closed-form dynamics and Theorem 2 figures", _theory_args, _theory),
    "finetune": (
        "fine-tune a causal LM on a TOFU split (full or retainYY)",
        _finetune_args,
        _finetune,
    ),
    "unlearn": ("unlearn a TOFU forget split from a fine-tuned causal LM", _unlearn_args, _unlearn),
    "eval": ("TOFU evaluation: forget quality, model utility, all metrics", _eval_args, _eval),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``npo`` argument parser with one subcommand per entry of ``COMMANDS``.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog="npo", description="Negative Preference Optimization unlearning toolkit."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``npo`` command line.

    A ``ValueError`` raised by validation anywhere below becomes one ``npo: error: ...`` line on
    stderr and exit status 2.

    Args:
        argv: the arguments (None: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return COMMANDS[ns.command][2](ns)
    except ValueError as exc:
        print(f"npo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
