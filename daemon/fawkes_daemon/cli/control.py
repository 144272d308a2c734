"""`fawkes run | status | retry | release | backfill`: the daemon and its controls."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fawkes_daemon.config import ConfigError, default_config_path, load_config, public_url
from fawkes_daemon.heartbeat import STALE_AFTER, read_state
from fawkes_daemon.logs import journald_logging
from fawkes_daemon.readiness import device_problem, opt_in_problem

log = logging.getLogger("fawkes")


def config_path(args: argparse.Namespace) -> Path:
    return Path(args.config) if args.config else default_config_path()


def _config(args: argparse.Namespace):
    path = config_path(args)
    try:
        return load_config(path)
    except ConfigError as e:
        print(f"fawkes: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    from fawkes_daemon.runner import Daemon
    from fawkes_daemon.secrets import SecretError
    from fawkes_daemon.writer_lock import WriterBusy, hold_writer_lock

    cfg = _config(args)
    journald_logging(args.verbose)
    problem = opt_in_problem(cfg.cloak.extractors) or device_problem(cfg.device)
    if problem:  # refused at start, not as a traceback in every batch
        print(f"fawkes: {problem}", file=sys.stderr)
        return 2
    try:
        hold_writer_lock(cfg.state_dir, "fawkes run")
    except WriterBusy as e:
        print(f"fawkes: {e}", file=sys.stderr)
        return 2
    try:
        d = Daemon(cfg, config_path(args).resolve())
    except SecretError as e:
        print(f"fawkes: push: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # to_share, its staging folder or state_dir cannot be created: a setup error, not a crash
        print(f"fawkes: cannot create {e.filename or 'a folder'}: {e.strerror or e}; check to_share and state_dir", file=sys.stderr)
        return 2
    d.install_signal_handlers()
    d.run_forever()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from fawkes_daemon.health import state_dir_full
    from fawkes_daemon.queue_reads import PUSH_STATES
    from fawkes_daemon.schedule import WorkPolicy
    from fawkes_daemon.transaction import check_database
    from fawkes_daemon.ui.store import Store

    cfg = _config(args)
    # a read never writes: the read-only store opens nothing that is not there (no database is created)
    check_database(cfg.db_path)
    q = Store(cfg.db_path)
    counts = q.counts()
    failed = q.in_state("failed", 10)
    held = q.in_state("held", 50)
    data: dict[str, Any] = {
        "counts": counts,
        "throughput_per_hour": round(q.throughput(), 1),
        "last_errors": [{"file": f"{r['source']}/{r['relpath']}", "error": r["error"]} for r in failed],
        "held": [{"file": f"{r['source']}/{r['relpath']}", "reason": r["error"]} for r in held],
        "to_share": str(cfg.to_share),
        "waiting": WorkPolicy(cfg.schedule).reason_to_wait(),
        "weak_cloak": {"policy": cfg.weak_cloak, "published_weak": q.weak_published()},
        "problem": state_dir_full(cfg),
    }
    for key, path, stale_after in (("daemon", cfg.heartbeat_path, STALE_AFTER), ("backfill", cfg.backfill_state_path, None)):
        state, running = read_state(path, stale_after)
        if state is not None and running:
            data[key] = state
    if cfg.push is not None:
        data["push"] = {
            "remote": public_url(cfg.push.url) if cfg.push.url else cfg.push.remote,
            "counts": q.push_counts() or {s: 0 for s in PUSH_STATES},
            "last_error": q.last_push_error(),
        }
    q.close()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    c = Console(soft_wrap=True)
    t = Table(title="queue")
    for s in counts:
        t.add_column(s)
    t.add_row(*[str(v) for v in counts.values()])
    c.print(t)
    c.print(f"throughput: {data['throughput_per_hour']} files/hour (last hour)")
    weak = data["weak_cloak"]
    c.print(f"weak cloaks (a face not carried across): {weak['published_weak']} published; policy weak_cloak: {weak['policy']}")
    if data["problem"]:
        c.print(f"[red]problem[/red]: {data['problem']}", markup=True, highlight=False)
    if data["waiting"]:
        c.print(f"[yellow]waiting[/yellow]: {data['waiting']}")
    if data.get("daemon", {}).get("ui"):
        c.print(f"web page: {data['daemon']['ui']} (`fawkes ui` prints a link with its token)")
    if "backfill" in data:
        b = data["backfill"]
        c.print(f"backfill on Ray ({b['address']}, {b['actors']} actors): {b['finished']} finished, {b['in_flight']} in flight")
    if "push" in data:
        pc = data["push"]["counts"]
        c.print(f"push to {data['push']['remote']}: {pc['pending']} pending, {pc['done']} done")
        if data["push"]["last_error"]:
            c.print(f"[red]push retrying[/red]: {data['push']['last_error']}")
    for e in data["last_errors"]:
        c.print(f"[red]failed[/red] {e['error']}")
    for h in data["held"]:
        c.print(f"[yellow]held[/yellow] {h['file']}: {h['reason']}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from fawkes_daemon.state_db import StateDB

    n = StateDB(_config(args).db_path).queue.retry_failed()
    print(f"{n} failed file(s) queued again")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from fawkes_daemon.state_db import StateDB

    cfg = _config(args)
    q = StateDB(cfg.db_path).queue
    given = Path(args.path).expanduser().absolute()
    # the folder resolved, the name not: `release src/link.png` is about the link's own row, never its target's
    target = Path(os.path.realpath(given.parent)) / given.name
    for s in cfg.sources:
        root = s.path.resolve()
        if target == root or root in target.parents:
            n = q.release(s.label, target.relative_to(root).as_posix())
            print(f"{n} held file(s) released" if n else f"{args.path}: not held")
            return 0 if n else 1
    print(f"{args.path}: not in any source folder", file=sys.stderr)
    return 1


def cmd_backfill(args: argparse.Namespace) -> int:
    """Queue everything already in the source folders (the running daemon, or the next start, cloaks it)."""
    from rich.progress import Progress

    from fawkes_daemon.state_db import StateDB
    from fawkes_daemon.walk import backlog, queue_backlog

    cfg = _config(args)
    q = StateDB(cfg.db_path).queue
    files = backlog(cfg)
    with Progress(console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("queueing", total=len(files))
        added = queue_backlog(q, files, lambda: progress.advance(task))
    print(f"{added} new file(s) queued of {len(files)} found")
    address = args.ray or cfg.compute.ray
    if address is None:
        return 0
    from fawkes_daemon.cli.backfill_ray import run_on_ray

    return run_on_ray(cfg, q, address, args.actors, args.verbose)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--config", metavar="FILE", help=f"config file (default: {default_config_path()})")
        p.set_defaults(func=func)
        return p

    add("run", "run the daemon in the foreground (what the service units start)", cmd_run)
    st = add("status", "queue counts, throughput, last errors, held files", cmd_status)
    st.add_argument("--json", action="store_true")
    add("retry", "queue failed files again", cmd_retry)
    r = add("release", "let a held file (no face found) through to to-share", cmd_release)
    r.add_argument("path")
    b = add("backfill", "queue every photo already in the source folders; with --ray, cloak them on a Ray cluster", cmd_backfill)
    b.add_argument("--ray", metavar="ADDRESS", help="cloak the backlog on this Ray cluster ('auto': this machine's; 'local': a new one)")
    b.add_argument("--actors", type=int, help="Ray actors (default: the cluster's CPUs / compute.cpus_per_actor)")
