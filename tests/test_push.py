"""Push of safe copies: a real WebDAV server on loopback, a real daemon, the remote going down and back."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fawkes_daemon.config import PushConfig
from fawkes_daemon.push import Pusher, RcloneRemote
from fawkes_daemon.state_db import StateDB
from tests.helpers.daemon import DaemonProc, wait_for, write_config
from tests.test_service import fawkes, file_keyring_env

HELPERS = Path(__file__).resolve().parent / "helpers"
SECRET = "Zq8-app-password-7731"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDav:
    def __init__(self, root: Path, port: int, log: Path) -> None:
        self.root, self.port, self.log = root, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HELPERS / "webdav_server.py"), str(self.root), str(self.port), "alice", SECRET, str(self.log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("WebDAV server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def files(self) -> dict[str, bytes]:
        return {p.relative_to(self.root).as_posix(): p.read_bytes() for p in self.root.rglob("*") if p.is_file()}

    def puts(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [r for r in map(json.loads, self.log.read_text().splitlines()) if r["method"] == "PUT"]


def share(tmp: Path) -> dict[str, bytes]:
    root = tmp / "share"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.system
def test_every_safe_copy_reaches_webdav_once_and_nothing_else_even_across_an_outage(dev: Path, tmp_path: Path) -> None:
    env = file_keyring_env(tmp_path)
    assert fawkes("secret", "set", "nextcloud", env=env, stdin=SECRET + "\n").returncode == 0
    remote_root = tmp_path / "remote"
    remote_root.mkdir()
    server = WebDav(remote_root, free_port(), tmp_path / "webdav.jsonl")
    server.start()
    config = write_config(
        tmp_path,
        no_face="hold",
        push={
            "kind": "webdav",
            "url": f"http://127.0.0.1:{server.port}/",
            "user": "alice",
            "secret": "nextcloud",
            "retry_base": 1,
            "retry_max": 2,
        },
    )
    assert SECRET not in config.read_text()
    src = tmp_path / "src"
    (src / "private").mkdir()
    (src / "private" / "notes.txt").write_text("not a photo, never uploaded")
    log = tmp_path / "daemon.log"
    d = DaemonProc(config, log, env=env)
    d.start()
    try:
        shutil.copy(dev / "faces" / "Tom_Hanks" / "1.jpg", src / "a.jpg")
        (src / "trip").mkdir()
        shutil.copy(dev / "faces" / "Keanu_Reeves" / "2.jpg", src / "trip" / "b.jpg")
        shutil.copy(dev / "photos" / "pixel_IMG_20180725_163423_noface.jpg", src / "noface.jpg")  # held: never in to-share
        (src / "broken.jpg").write_text("this is text")  # fails: never in to-share
        wait_for(lambda: server.files().keys() == {"cam/a.jpg", "cam/trip/b.jpg"}, 300, "the first two safe copies on the remote")
        wait_for(lambda: server.files() == share(tmp_path), 60, "remote == to-share")

        server.stop()  # the remote goes down mid-run
        shutil.copy(dev / "faces" / "Tom_Hanks" / "5.jpg", src / "c.jpg")
        shutil.copy(dev / "faces" / "Keanu_Reeves" / "3.jpg", src / "trip" / "d.jpg")
        wait_for(lambda: {"cam/c.jpg", "cam/trip/d.jpg"} <= share(tmp_path).keys(), 300, "cloaking to go on while the remote is down")

        def retrying() -> bool:
            st = fawkes("status", "--json", "--config", str(config), env=env)
            p = json.loads(st.stdout)["push"]
            return p["counts"]["pending"] == 2 and bool(p["last_error"])

        wait_for(retrying, 60, "failed pushes to be recorded for retry")
        server.start()  # the remote comes back
        wait_for(lambda: server.files() == share(tmp_path), 120, "the backlog to reach the remote")
        assert set(share(tmp_path)) == {"cam/a.jpg", "cam/trip/b.jpg", "cam/c.jpg", "cam/trip/d.jpg"}
        puts = [p for p in server.puts() if p["status"] < 300]
        assert sorted(p["path"] for p in puts) == sorted("/" + k for k in share(tmp_path)), puts  # each once, nothing else
        st = fawkes("status", "--config", str(config), env=env)
        st_json = fawkes("status", "--json", "--config", str(config), env=env)
        assert json.loads(st_json.stdout)["push"]["counts"] == {"pending": 0, "done": 4, "superseded": 0, "gone": 0}
    finally:
        d.stop()
        server.stop()
    # the secret is nowhere but the keyring
    state = b"".join(p.read_bytes() for p in (tmp_path / "state").iterdir() if p.is_file())
    for blob in (log.read_bytes(), st.stdout.encode() + st.stderr.encode(), st_json.stdout.encode(), state, config.read_bytes()):
        assert SECRET.encode() not in blob


@pytest.mark.system
def test_missing_push_secret_stops_the_daemon_with_the_fix(tmp_path: Path) -> None:
    env = file_keyring_env(tmp_path)
    config = write_config(tmp_path, push={"kind": "webdav", "url": "http://127.0.0.1:9/", "user": "alice"})
    r = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert r.returncode == 2  # the unit's RestartPreventExitStatus: no restart loop
    assert "secret 'webdav' not found: run `fawkes secret set webdav`" in r.stderr


@pytest.mark.unit
def test_rclone_gets_its_password_from_the_environment_and_only_to_share_files(tmp_path: Path) -> None:
    """rclone's cloud cannot run here: a stand-in `rclone` records its argv and environment and copies locally."""
    fake = tmp_path / "rclone"
    dest_root = tmp_path / "cloud"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {tmp_path}/argv.log\n'
        f'echo "$RCLONE_CONFIG_PASS" >> {tmp_path}/env.log\n'
        '[ "$1" = copyto ] || exit 3\n'
        f'dst="{dest_root}/${{5#photos:}}"\n'
        'mkdir -p "$(dirname "$dst")" && cp "$4" "$dst"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    to_share = tmp_path / "share"
    (to_share / "cam").mkdir(parents=True)
    (to_share / "cam" / "x.jpg").write_bytes(b"safe copy")
    (tmp_path / "outside.jpg").write_bytes(b"original")
    q = StateDB(tmp_path / "q.sqlite3").queue
    cfg = PushConfig(kind="rclone", remote="photos:", secret="rclone", rclone_binary=str(fake))
    pusher = Pusher(cfg, to_share, q, RcloneRemote(cfg, "rc-pass-991"))
    import hashlib

    pusher.record(to_share / "cam" / "x.jpg", hashlib.sha256(b"safe copy").hexdigest())
    pusher.record(tmp_path / "outside.jpg", hashlib.sha256(b"original").hexdigest())  # ignored: not in to-share
    q.pushes.add("../outside.jpg", hashlib.sha256(b"original").hexdigest())  # a forged row: refused
    assert pusher.push_due() == 2
    assert (dest_root / "cam" / "x.jpg").read_bytes() == b"safe copy"
    assert sorted(p.name for p in dest_root.rglob("*") if p.is_file()) == ["x.jpg"]
    assert "rc-pass-991" not in (tmp_path / "argv.log").read_text()
    assert (tmp_path / "env.log").read_text().strip() == "rc-pass-991"
    assert q.pushes.counts() == {"pending": 0, "done": 1, "superseded": 0, "gone": 1}
