"""Push safe copies from to-share to a remote (WebDAV or an rclone remote).

Why a separate thread with its own queue table: an upload can hang for minutes when the
remote is slow or down, and cloaking must never wait for it. Each safe copy gets a push
row keyed by (to-share path, content hash), so a file is uploaded once per content; a
replaced file supersedes its older pending push; a push that fails is retried with capped
exponential backoff and never given up. Before every upload the file is checked to be a
regular file inside to-share whose content still matches the row: nothing else can leave
the machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import threading
import time
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import urlsplit

from fawkes_daemon.config import PushConfig, public_url
from fawkes_daemon.queue import Queue
from fawkes_daemon.secrets import get_secret, redact, register

log = logging.getLogger("fawkes.push")


class PushError(Exception):
    pass


class Remote(Protocol):
    def upload(self, local: Path, relpath: str) -> None: ...

    def describe(self) -> str: ...


class WebDavRemote:
    """Nextcloud/ownCloud or any WebDAV server; parent collections are created as needed."""

    def __init__(self, config: PushConfig, password: str) -> None:
        from webdav4.client import Client

        parts = urlsplit(config.url or "")
        self.url = parts._replace(path=parts.path.rstrip("/") + "/").geturl()  # a collection; the query string kept as it is
        if parts.query:
            register(parts.query)  # an access key in the query string never reaches a log line or a stored error
        self.client = Client(self.url, auth=(config.user or "", password), timeout=config.timeout, retry=False)
        self._made: set[str] = set()

    def describe(self) -> str:
        return f"webdav {public_url(self.url)}"

    def _mkdirs(self, parent: PurePosixPath) -> None:
        from webdav4.client import ResourceAlreadyExists

        parts = [p for p in parent.parts if p not in ("", "/")]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d in self._made:
                continue
            try:
                if not self.client.exists(d):
                    self.client.mkdir(d)
            except ResourceAlreadyExists:
                pass
            self._made.add(d)

    def upload(self, local: Path, relpath: str) -> None:
        try:
            self._mkdirs(PurePosixPath(relpath).parent)
            self.client.upload_file(local, relpath, overwrite=True)
        except Exception as e:
            self._made.clear()  # the server may have lost state (restarted, wiped)
            raise PushError(f"{type(e).__name__}: {e}") from None


class RcloneRemote:
    """Any rclone remote from the user's own rclone config; its config password comes from the keyring."""

    def __init__(self, config: PushConfig, password: str | None) -> None:
        self.config = config
        self.password = password

    def describe(self) -> str:
        return f"rclone {self.config.remote}"

    def upload(self, local: Path, relpath: str) -> None:
        env = dict(os.environ)
        if self.password:
            env["RCLONE_CONFIG_PASS"] = self.password  # environment, never argv (visible in ps)
        remote = self.config.remote or ""
        dest = remote + relpath if remote.endswith((":", "/")) else f"{remote}/{relpath}"
        try:
            r = subprocess.run(
                [self.config.rclone_binary, "copyto", "--retries", "1", str(local), dest],
                env=env,
                capture_output=True,
                text=True,
                timeout=self.config.timeout,
            )
        except FileNotFoundError:
            raise PushError(f"rclone not found ({self.config.rclone_binary}); install rclone or set push.rclone_binary") from None
        except subprocess.TimeoutExpired:
            raise PushError(f"rclone timed out after {self.config.timeout:.0f} s") from None
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
            raise PushError(f"rclone exit {r.returncode}: {redact(last)}")


def make_remote(config: PushConfig) -> Remote:
    if config.kind == "webdav":
        return WebDavRemote(config, get_secret(config.secret or "webdav"))
    return RcloneRemote(config, get_secret(config.secret) if config.secret else None)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Pusher:
    """The push thread. ``wake()`` after recording a push; ``stop()`` at shutdown."""

    def __init__(self, config: PushConfig, to_share: Path, queue: Queue, remote: Remote, may_run=lambda: True) -> None:
        self.config = config
        self.to_share = to_share.resolve()
        self.queue = queue
        self.remote = remote
        self.may_run = may_run
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, output: Path, sha256: str) -> None:
        """Called by the worker right after a safe copy was renamed into to-share."""
        rel = self._relpath(output)
        if rel is not None and self.queue.pushes.add(rel, sha256):
            self._wake.set()

    def _relpath(self, path: Path) -> str | None:
        try:
            return Path(path).resolve().relative_to(self.to_share).as_posix()
        except ValueError:
            return None

    def catch_up(self) -> int:
        """Record pushes for safe copies made before push was configured (or while it was off)."""
        known = self.queue.pushes.paths()
        n = 0
        for out in self.queue.done_outputs():
            rel = self._relpath(Path(out))
            p = Path(out)
            if rel is None or rel in known or not p.is_file():
                continue
            n += self.queue.pushes.add(rel, sha256_file(p))
        return n

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fawkes-push", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        n = self.catch_up()
        if n:
            log.info("queued %d earlier safe copies for %s", n, self.remote.describe())
        while not self._stop.is_set():
            did = self.push_due() if self.may_run() else 0
            if did:
                continue
            nxt = self.queue.pushes.next_due()
            wait = 30.0 if nxt is None else min(30.0, max(0.2, nxt - time.time()))
            self._wake.wait(timeout=wait)
            self._wake.clear()

    def push_due(self, limit: int = 16) -> int:
        """Upload what is due now. Returns how many rows were settled or retried."""
        rows = self.queue.pushes.due(limit)
        for row in rows:
            if self._stop.is_set():
                break
            self._push_one(row)
        return len(rows)

    def _push_one(self, row: dict) -> None:
        rel: str = row["relpath"]
        path = self.to_share / rel
        # only regular files inside to-share, with the content this row recorded
        if ".." in PurePosixPath(rel).parts or path.is_symlink() or self._relpath(path) != rel:
            self.queue.pushes.finish(row["id"], "gone", "not a file inside to-share")
            return
        if not path.is_file():
            self.queue.pushes.finish(row["id"], "gone", "removed from to-share before it was pushed")
            return
        if sha256_file(path) != row["sha256"]:
            self.queue.pushes.finish(row["id"], "superseded", "replaced by a newer safe copy")
            return
        try:
            self.remote.upload(path, rel)
        except PushError as e:
            msg = redact(str(e))
            delay = self.queue.pushes.retry_later(row["id"], msg, self.config.retry_base, self.config.retry_max)
            log.warning("push %s to %s failed: %s; retry in %.0f s", rel, self.remote.describe(), msg, delay)
            return
        self.queue.pushes.finish(row["id"], "done")
        log.info("pushed %s to %s", rel, self.remote.describe())
