"""`fawkes service install|uninstall|status` and `fawkes secret set|delete|check`."""

from __future__ import annotations

import argparse
import getpass
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from fawkes_daemon.config import ConfigError, default_config_path, load_config


def _run(commands: list[list[str]], now: bool) -> int:
    rc = 0
    for cmd in commands:
        print("  " + shlex.join(cmd))
        if not now:
            continue
        if shutil.which(cmd[0]) is None:
            print(f"fawkes: {cmd[0]} not found; run the commands above yourself", file=sys.stderr)
            return 1
        r = subprocess.run(cmd)
        rc = rc or r.returncode
        if r.returncode != 0:
            print(f"fawkes: `{shlex.join(cmd)}` exited with {r.returncode}", file=sys.stderr)
    return rc


def cmd_service(args: argparse.Namespace) -> int:
    from fawkes_daemon import health
    from fawkes_daemon.service import plan

    config = Path(args.config).expanduser() if args.config else default_config_path()
    cfg = None
    if args.action != "uninstall":
        try:
            cfg = load_config(config)
        except ConfigError as e:
            print(f"fawkes: {e}", file=sys.stderr)
            if not config.exists():
                print("fawkes: copy config.example.yaml there and edit `sources` and `to_share` first", file=sys.stderr)
            return 2
    p = plan(args.action, args.platform, config)
    if args.action == "install":
        p.unit_path.parent.mkdir(parents=True, exist_ok=True)
        p.unit_path.write_bytes(p.content)
        print(f"wrote {p.unit_path}")
    elif args.action == "status":
        print(f"service file: {p.unit_path} ({'installed' if p.unit_path.exists() else 'not installed'})")
    rc = 0
    if p.commands:
        print("commands:" if args.now or args.action == "status" else "run these to apply (or pass --now):")
        rc = _run(p.commands, args.now or args.action == "status")
    if args.action == "uninstall":
        if p.unit_path.exists():
            p.unit_path.unlink()
            print(f"removed {p.unit_path}")
        else:
            print(f"{p.unit_path}: not installed")
    if cfg is not None:
        problems = health.problems(cfg)
        for pr in problems:
            print(f"warning: {pr}", file=sys.stderr)
        if not problems:
            print("health: sources readable, to-share writable" + (", push secret present" if cfg.push else ""))
    print(f"logs: {p.log_hint}")
    return rc


def cmd_secret(args: argparse.Namespace) -> int:
    from fawkes_daemon.config import SECRET_NAME
    from fawkes_daemon.secrets import SecretError, delete_secret, lookup, set_secret

    if not SECRET_NAME.match(args.name):
        print(f"fawkes: {args.name!r}: a secret name is letters, digits, '.', '_', '-'", file=sys.stderr)
        return 2
    try:
        if args.action == "set":
            if sys.stdin.isatty():
                value = getpass.getpass(f"secret {args.name}: ")
                if getpass.getpass("again: ") != value:
                    print("fawkes: the two entries differ; nothing stored", file=sys.stderr)
                    return 1
            else:  # piped in (scripts): still never on the command line
                value = sys.stdin.readline().rstrip("\r\n")
            where = set_secret(args.name, value)
            print(f"secret {args.name!r} stored in the {where}")
        elif args.action == "delete":
            print(f"secret {args.name!r} " + ("deleted" if delete_secret(args.name) else "was not in the keyring"))
        else:
            found = lookup(args.name)
            print(f"secret {args.name!r}: " + (f"found in the {found[1]}" if found else "not found"))
            return 0 if found else 1
    except SecretError as e:
        print(f"fawkes: {e}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from fawkes_daemon.service import PLATFORMS, default_platform

    s = sub.add_parser("service", help="install, remove or check the background service (systemd user unit / launchd agent)")
    s.add_argument("action", choices=["install", "uninstall", "status"])
    s.add_argument("--config", metavar="FILE", help=f"config file the service runs with (default: {default_config_path()})")
    s.add_argument("--now", action="store_true", help="also run the systemctl/launchctl commands (enable and start, or stop and disable)")
    s.add_argument("--platform", choices=PLATFORMS, default=default_platform(), help="service manager (default: this system's)")
    s.set_defaults(func=cmd_service)

    k = sub.add_parser("secret", help="store, delete or check a secret (push password) in the OS keyring")
    k.add_argument("action", choices=["set", "delete", "check"])
    k.add_argument("name", help="the name the config refers to, e.g. push.secret")
    k.set_defaults(func=cmd_secret)
