"""Command line: ``npo <command> ...``. The only place that parses arguments.

Commands register themselves in :data:`COMMANDS` as ``(add_arguments, run)`` pairs; a
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
    from npo.demo import LandscapeConfig

    p.add_argument("--out", type=Path, default=Path("results/demo"), help="output directory")
    add_dataclass_args(p, LandscapeConfig)


def _demo(ns: argparse.Namespace) -> int:
    from npo.demo import LandscapeConfig, plot_landscape, run_landscape
    from npo.results import ensure_out_dir, write_figure

    config = dataclass_from_args(LandscapeConfig, ns)
    out = ensure_out_dir(ns.out)
    data = run_landscape(config)
    png = write_figure(plot_landscape(data), out, "landscape", config=config)
    print(f"wrote {png} (GA vs NPO loss and gradient weight against the log-ratio)")
    return 0


COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "demo": ("run the demo job and write its figures", _demo_args, _demo),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npo", description="Negative Preference Optimization unlearning toolkit."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return COMMANDS[ns.command][2](ns)
    except ValueError as exc:
        print(f"npo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
