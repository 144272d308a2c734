"""`fawkes ui`: the local web page, in the foreground."""

from __future__ import annotations

import argparse
import sys

from fawkes_daemon.cli.control import _config, config_path
from fawkes_daemon.config import LOOPBACK, default_config_path


def cmd_ui(args: argparse.Namespace) -> int:
    from fawkes_daemon.transaction import check_database
    from fawkes_daemon.ui.server import UIServer

    cfg = _config(args)
    check_database(cfg.db_path)
    host = args.host or cfg.ui.host
    if host not in LOOPBACK and not (args.allow_remote or cfg.ui.allow_remote):
        print(f"fawkes: ui: {host} is not loopback; add --allow-remote to serve the page to a network", file=sys.stderr)
        return 2
    try:
        server = UIServer(cfg, config_path(args).resolve(), host=host, port=args.port)
    except OSError as e:
        print(
            f"fawkes: ui: cannot listen on {host}:{args.port if args.port is not None else cfg.ui.port}: {e.strerror or e}", file=sys.stderr
        )
        return 2
    print(f"Fawkes Sync web page: {server.url}", flush=True)
    if server.remote:
        print(
            f"warning: serving on {host}: the page, its token and your uncloaked photos travel over plain http to anyone "
            "on that network who can reach it; put it behind an https proxy or keep it on loopback",
            file=sys.stderr,
            flush=True,
        )
    print(f"(the token is also in {server.token_path}; Ctrl-C stops the page, not the daemon)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.token_path.unlink(missing_ok=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ui", help="the local web page: status, before/after views, held and failed files")
    p.add_argument("--config", metavar="FILE", help=f"config file (default: {default_config_path()})")
    p.add_argument("--host", help="address to listen on (default: ui.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: ui.port, 8765; 0: any free port)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    p.set_defaults(func=cmd_ui)
