"""Service definitions: a systemd user unit (Linux) and a launchd agent (macOS).

Both run exactly ``<this interpreter> -m fawkes_daemon.cli run --config <absolute path>``, so the
service uses the environment `fawkes service install` was run from, wherever it lives.
Both ask for low priority (nice, idle I/O) because cloaking is background work on the
user's own laptop, restart on failure but not on a configuration error (exit code 2,
which restarting cannot fix), and use no sandboxing that would hide a GPU
(``PrivateDevices``). The files in the repository's ``systemd/`` folder are these
renderings for example paths; a test keeps them identical.
"""

from __future__ import annotations

import os
import plistlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

UNIT_NAME = "fawkes-sync.service"
LAUNCHD_LABEL = "org.fawkes-sync.daemon"
PLATFORMS = ("systemd", "launchd")


def default_platform() -> str:
    return "launchd" if sys.platform == "darwin" else "systemd"


def exec_args(config: Path, python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "fawkes_daemon.cli", "run", "--config", str(config)]


def _systemd_quote(arg: str) -> str:
    """One ExecStart word: '%' doubled (specifiers), quoted when it holds spaces or quotes."""
    arg = arg.replace("%", "%%")
    if arg and not any(c in arg for c in " \t\"'\\;$"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$") + '"'


def render_systemd_unit(args: list[str]) -> str:
    exec_start = " ".join(_systemd_quote(a) for a in args)
    return f"""# Written by `fawkes service install`; `fawkes service uninstall` removes it.
[Unit]
Description=Fawkes Sync: cloak new photos and mirror safe copies to the to-share folder

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
Restart=on-failure
RestartSec=30
# exit code 2 means a configuration or secret problem: restarting cannot fix it
RestartPreventExitStatus=2
# READY comes after the first rescan; stopping finishes the batch in hand
TimeoutStartSec=600
TimeoutStopSec=300
Nice=15
IOSchedulingClass=idle
CPUSchedulingPolicy=batch
Environment=PYTHONUNBUFFERED=1
# No PrivateDevices= or DevicePolicy=: they would hide the GPU.

[Install]
WantedBy=default.target
"""


def render_launchd_plist(args: list[str], log_dir: Path) -> bytes:
    return plistlib.dumps(
        {
            "Label": LAUNCHD_LABEL,
            "ProgramArguments": args,
            "RunAtLoad": True,
            "KeepAlive": {"SuccessfulExit": False},  # restart after a crash, not after a clean stop
            "ThrottleInterval": 30,
            "ProcessType": "Background",
            "LowPriorityIO": True,
            "LowPriorityBackgroundIO": True,
            "Nice": 15,
            "ExitTimeOut": 300,
            "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
            "StandardOutPath": str(log_dir / "daemon.log"),
            "StandardErrorPath": str(log_dir / "daemon.log"),
        },
        sort_keys=False,
    )


@dataclass
class Plan:
    """What install/uninstall/status would do: files to write or remove, commands to run."""

    platform: str
    unit_path: Path
    content: bytes = b""
    commands: list[list[str]] = field(default_factory=list)
    log_hint: str = ""


def unit_path(platform: str, home: Path) -> Path:
    if platform == "systemd":
        base = Path(os.environ["XDG_CONFIG_HOME"]) if os.environ.get("XDG_CONFIG_HOME") else home / ".config"
        return base / "systemd" / "user" / UNIT_NAME
    return home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def _gui() -> str:
    return f"gui/{os.getuid()}"


def plan(action: str, platform: str, config: Path, home: Path | None = None, python: str | None = None) -> Plan:
    home = home or Path.home()
    path = unit_path(platform, home)
    args = exec_args(config.resolve(), python)
    if platform == "systemd":
        p = Plan(platform, path, log_hint=f"journalctl --user -u {UNIT_NAME} -f")
        if action == "install":
            p.content = render_systemd_unit(args).encode()
            p.commands = [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", UNIT_NAME]]
        elif action == "uninstall":
            p.commands = [["systemctl", "--user", "disable", "--now", UNIT_NAME], ["systemctl", "--user", "daemon-reload"]]
        else:
            p.commands = [["systemctl", "--user", "status", "--no-pager", UNIT_NAME]]
        return p
    log_dir = home / "Library" / "Logs" / "fawkes-sync"
    p = Plan(platform, path, log_hint=f"tail -f {log_dir / 'daemon.log'}")
    if action == "install":
        p.content = render_launchd_plist(args, log_dir)
        p.commands = [["launchctl", "bootstrap", _gui(), str(path)], ["launchctl", "enable", f"{_gui()}/{LAUNCHD_LABEL}"]]
    elif action == "uninstall":
        p.commands = [["launchctl", "bootout", f"{_gui()}/{LAUNCHD_LABEL}"]]
    else:
        p.commands = [["launchctl", "print", f"{_gui()}/{LAUNCHD_LABEL}"]]
    return p
