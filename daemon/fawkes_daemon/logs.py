"""Log lines for the service manager: one line per event, journald's priority prefix, no time stamps (journald adds them)."""

from __future__ import annotations

import logging
import sys


def journald_logging(verbose: bool) -> None:
    """One line per event on stderr; journald adds time and unit, so we add only the priority prefix."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    h = logging.StreamHandler(sys.stderr)

    class _Fmt(logging.Formatter):
        PRIO = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

        def format(self, record: logging.LogRecord) -> str:
            return f"<{self.PRIO.get(record.levelno, 6)}>{record.name}: {record.getMessage()}"

    h.setFormatter(_Fmt())
    root.addHandler(h)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("watchdog").setLevel(logging.WARNING)
