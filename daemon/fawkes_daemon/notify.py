"""systemd's notify protocol (sd_notify): READY, STATUS and STOPPING over $NOTIFY_SOCKET.

With ``Type=notify`` systemd considers the service started only when it says READY=1
(after the queue is open and the watchers run), and ``systemctl --user status`` shows
the last STATUS line (queue counts). Outside systemd there is no socket and every call
is a no-op, so the same code runs under launchd or in a terminal.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("fawkes.notify")


def notify(*lines: str) -> bool:
    """Send ``KEY=value`` lines in one datagram. Returns whether a service manager was told."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):  # abstract namespace
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall("\n".join(lines).encode())
        return True
    except OSError as e:  # the manager went away: nothing to tell, and no reason to stop
        log.debug("sd_notify failed: %s", e)
        return False
