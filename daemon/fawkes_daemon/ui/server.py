"""Serving the page with uvicorn: in the foreground (`fawkes ui`) or in a thread of the daemon (``ui: enabled``)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import uvicorn

from fawkes_daemon.config import Config
from fawkes_daemon.state_db import StateDB
from fawkes_daemon.ui.access import new_prefix, new_token, write_token
from fawkes_daemon.ui.app import build_app


def _bind(host: str, port: int) -> socket.socket:
    """Bind before serving: the real port is known (for ``port: 0``) and printed in the link."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # every keep-alive response waits ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server that removes its token file when it shuts down.

    Why here: on SIGTERM uvicorn shuts down and then raises the signal again, which ends the
    process before the caller's ``finally`` runs; a dead token file was left behind.
    """

    def __init__(self, config: uvicorn.Config, token_path: Path) -> None:
        super().__init__(config)
        self.token_path = token_path

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets)
        finally:
            self.token_path.unlink(missing_ok=True)


class UIServer:
    def __init__(self, config: Config, config_path: Path | None, host: str | None = None, port: int | None = None) -> None:
        self.config = config
        self.host = host or config.ui.host
        self.sock = _bind(self.host, config.ui.port if port is None else port)
        self.port = self.sock.getsockname()[1]
        self.token = new_token()
        # one file per page (per port): a second page never overwrites the first one's token
        self.token_path = config.state_dir / f"ui-token-{self.port}"
        write_token(self.token_path, self.token)
        if config.db_path.exists():
            StateDB(config.db_path).queue.close()  # bring an older database's schema up to date before reading it read-only
        self.remote = self.host not in ("127.0.0.1", "localhost", "::1")  # cmd_ui refuses this unless it was asked for
        self.prefix = new_prefix()
        app = build_app(config, config_path, self.token, self.port, self.token_path, self.prefix, allow_remote=self.remote or None)
        self.server = _Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"), self.token_path)
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def url(self) -> str:
        return f"{self.base_url}?token={self.token}"

    def serve_forever(self) -> None:
        self.server.run(sockets=[self.sock])

    def start_thread(self) -> None:
        self.thread = threading.Thread(target=self.serve_forever, name="ui", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.token_path.unlink(missing_ok=True)
