"""The web page as a user meets it: `fawkes ui` as a real subprocess, and the system's headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = os.environ.get("FAWKES_CHROMIUM", "/usr/bin/chromium")
# Chromium as root in a sandboxed CI box, with no background traffic to hosts this machine cannot reach
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def landscape(path: Path, seed: int = 0) -> Path:
    """A photo with no face (sky, hills, noise): made here, so no shared photo enters a committed screenshot."""
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    y = np.linspace(0, 1, h)[:, None, None]
    sky = np.array([110, 160, 230]) * (1 - y) + np.array([200, 220, 240]) * y
    img = np.broadcast_to(sky, (h, w, 3)).copy()
    ridge = (0.55 + 0.08 * np.sin(np.linspace(0, 7, w)) + 0.03 * np.sin(np.linspace(0, 31, w))) * h
    rows = np.arange(h)[:, None]
    img[rows > ridge[None, :]] = np.array([70, 120, 60])
    img += rng.normal(0, 6, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


class UIProc:
    """`fawkes ui --port 0`; the link it prints gives the port and the token."""

    def __init__(self, config: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fawkes_daemon.cli", "ui", "--config", str(config), "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if "?token=" not in line:
            self.proc.kill()
            raise AssertionError(f"fawkes ui printed no link: {line!r} {self.proc.stdout.read()}")
        self.url = line.split(": ", 1)[1]
        self.base, self.token = self.url.split("?token=")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
