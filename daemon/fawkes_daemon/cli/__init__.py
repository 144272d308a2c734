"""The ``fawkes`` command line: one subcommand per job, each a thin shell over engine/daemon."""

from __future__ import annotations

import argparse
import logging
import sys

from rich.console import Console
from rich.table import Table

console = Console(stderr=False)


def cmd_models(args: argparse.Namespace) -> int:
    from fawkes_engine.cloak.options import OPT_IN_EXTRACTORS
    from fawkes_engine.models import get_extractor, list_extractors
    from fawkes_engine.models.npm_weights import HUMAN_MODELS

    if args.action == "install":
        if args.package != "human-models":
            print("fawkes models install: the one installable package is human-models", file=sys.stderr)
            return 2
        try:
            where = HUMAN_MODELS.install()
        except Exception as e:
            print(f"fawkes models install: {e}", file=sys.stderr)
            return 1
        print(f"{HUMAN_MODELS.spec} installed and verified in {where}: extractors {', '.join(OPT_IN_EXTRACTORS)} (research use)")
        return 0
    table = Table(title="Face feature extractors")
    for col in ("name", "input", "dim", "metric", "licence", "provenance", "cache"):
        table.add_column(col, overflow="fold")
    for name in list_extractors():
        ext = get_extractor(name)
        s = ext.spec
        if name in OPT_IN_EXTRACTORS and not HUMAN_MODELS.installed():
            cached = "not installed (fawkes models install human-models)"
        else:
            if args.build:
                ext.onnx_path()
            cached = "built" if ext.is_cached() else "not built"
        table.add_row(
            s.name,
            f"{s.input_size}×{s.input_size} {s.channel_order}",
            str(s.embedding_dim),
            s.metric,
            s.license,
            s.source,
            cached,
        )
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fawkes", description="Cloak your photos against unauthorized face recognition.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="list face feature extractors and their provenance; `models install human-models`")
    m.add_argument("action", nargs="?", choices=["list", "install"], default="list")
    m.add_argument("package", nargs="?", help="with install: human-models (opt-in, research-use weights, via npm)")
    m.add_argument("--build", action="store_true", help="build missing cached ONNX files now")
    m.set_defaults(func=cmd_models)

    from fawkes_daemon.cli import cloak, control, evaluate, service, sybil, ui

    for module in (cloak, evaluate, control, ui, service, sybil):  # the order `fawkes --help` lists them in
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    # file names that are not valid UTF-8 are printed with backslash escapes instead of crashing the command
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from fawkes_daemon.transaction import StateError

    try:
        return int(args.func(args) or 0)
    except StateError as e:  # one line, and exit 2: the service unit does not restart on it (RestartPreventExitStatus=2)
        print(f"fawkes: {e}", file=sys.stderr)
        return 2
