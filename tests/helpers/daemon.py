"""Running the daemon as a real subprocess, for the daemon, service and push tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

FAST = {"mode": "low", "steps": 2}


def minimal_config(tmp: Path) -> Path:
    """A configuration of one source and nothing else: every other key at its default."""
    (tmp / "src").mkdir(exist_ok=True)
    cfg = tmp / "config.yaml"
    cfg.write_text(yaml.safe_dump({"sources": [{"path": "src", "name": "cam"}], "to_share": "share", "state_dir": "state"}))
    return cfg


def fawkes_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``fawkes ARGS`` as a user runs it: a new process, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def write_config(tmp: Path, **extra) -> Path:
    cfg = {
        "sources": [{"path": str(tmp / "src"), "name": "cam"}],
        "to_share": str(tmp / "share"),
        "cloak": FAST,
        "quiet_period": 1,
        "batch_size": 8,
        "rescan_interval": 30,
        "state_dir": str(tmp / "state"),
        **extra,
    }
    (tmp / "src").mkdir(exist_ok=True)
    path = tmp / "config.yaml"

    path.write_text(yaml.safe_dump(cfg))
    return path


class DaemonProc:
    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.log = config, log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fawkes_daemon.cli", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),
            env=self.env,
        )

    def kill(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        assert self.proc
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)


def counts(config: Path) -> dict[str, int]:
    """The queue's rows per state, read in-process from the daemon's own database (WAL: readers never block it)."""
    from fawkes_daemon.config import load_config
    from fawkes_daemon.state_db import StateDB

    q = StateDB(load_config(config).db_path).queue
    try:
        return q.counts()
    finally:
        q.close()


def status(config: Path, env: dict[str, str] | None = None) -> dict:
    """`fawkes status --json` as a user runs it (for checking what the command shows)."""
    out = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "status", "--json", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return json.loads(out.stdout)


def wait_for(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_progress(value, target: int, stall: float, what: str) -> None:
    """Wait until ``value()`` reaches ``target``, for as long as it keeps rising: fail only after ``stall`` seconds
    without progress. Why: a fixed deadline fails on a loaded machine (where users run this) although the work goes on;
    a stall is what a hang looks like at any speed."""
    last, since = value(), time.monotonic()
    while last < target:
        time.sleep(0.5)
        now = value()
        if now > last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > stall:
            raise AssertionError(f"timed out waiting for {what}: {last} of {target} after {stall:.0f} s without progress")


def share_files(tmp: Path) -> list[Path]:
    return sorted(p for p in (tmp / "share").rglob("*") if p.is_file())
