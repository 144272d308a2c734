"""The web page's access rules, against a real `fawkes ui` process over HTTP (no models needed).

A page on loopback is reachable by every local process and, through the browser, by every
web site: the token, the CSRF token, the Host and Origin checks and id-only image addresses
are what keep the photos and the actions to their owner.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import sys
from pathlib import Path

import httpx
import pytest

from fawkes_daemon.config import load_config
from fawkes_daemon.state_db import StateDB
from tests.helpers.daemon import write_config
from tests.helpers.ui import UIProc, landscape

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-app-password-that-must-never-show"


@pytest.fixture
def served(tmp_path: Path):
    """A queue with one held file (a photo outside any source sits next to it) and the page serving it."""
    config = write_config(tmp_path, no_face="hold")
    cfg = load_config(config)
    landscape(tmp_path / "src" / "hills.jpg")
    (tmp_path / "private.jpg").write_bytes((tmp_path / "src" / "hills.jpg").read_bytes())
    q = StateDB(cfg.db_path).queue
    st = os.stat(tmp_path / "src" / "hills.jpg")
    q.add("cam", "hills.jpg", st.st_size, st.st_mtime_ns)
    (job,) = q.claim(1)
    q.finish(job.id, "held", error="no face found; held (no_face: hold) until `fawkes release`")
    q.close()
    ui = UIProc(config)
    try:
        yield ui, cfg, job.id, tmp_path
    finally:
        ui.stop()


def client(ui: UIProc, token: bool = True) -> httpx.Client:
    """A client of the page; with the token, its base is the page's prefix, where the session cookie goes."""
    c = httpx.Client(base_url=ui.base, follow_redirects=False, timeout=10)
    if token:
        r = c.get(f"/?token={ui.token}")
        cookie = r.headers["set-cookie"].lower()
        assert r.status_code == 303 and "httponly" in cookie and "samesite=strict" in cookie
        c.base_url = httpx.URL(ui.base.rstrip("/") + r.headers["location"])
    return c


def prefix_of(c: httpx.Client) -> str:
    return c.base_url.path.rstrip("/")


def csrf_of(c: httpx.Client) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', c.get("/attention").text)
    assert m, "the held page has no action form"
    return m.group(1)


def test_the_token_file_is_private_and_a_missing_or_wrong_token_is_refused(served) -> None:
    ui, cfg, file_id, _ = served
    path = cfg.state_dir / f"ui-token-{ui.base.rstrip('/').rsplit(':', 1)[1]}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text().strip() == ui.token
    anon = client(ui, token=False)
    for url in ("/", "/attention", f"/file/{file_id}", f"/thumb/{file_id}", "/settings"):
        r = anon.get(url)
        assert r.status_code == 401, url
        assert "hills" not in r.text and ui.token not in r.text
    assert anon.get("/?token=" + "x" * 43).status_code == 403
    r = anon.post(f"/file/{file_id}/release", data={"csrf": "0" * 64})
    assert r.status_code == 401
    assert StateDB(cfg.db_path).queue.counts()["held"] == 1


def test_an_action_needs_the_csrf_token_and_the_same_origin(served) -> None:
    ui, cfg, file_id, _ = served
    c = client(ui)
    assert c.post(f"/file/{file_id}/release", data={}).status_code == 403  # no CSRF token
    assert c.post(f"/file/{file_id}/release", data={"csrf": "0" * 64}).status_code == 403  # a wrong one
    token = csrf_of(c)
    evil = c.post(f"/file/{file_id}/release", data={"csrf": token}, headers={"origin": "http://evil.example"})
    assert evil.status_code == 403 and "cross-origin" in evil.text
    assert StateDB(cfg.db_path).queue.counts()["held"] == 1, "a refused POST changed the queue"
    back = prefix_of(c) + "/attention"
    ok = c.post(f"/file/{file_id}/release", data={"csrf": token, "back": back}, headers={"origin": ui.base.rstrip("/")})
    assert ok.status_code == 303 and ok.headers["location"].startswith(back + "?done=")
    assert StateDB(cfg.db_path).queue.counts() == {"pending": 1, "working": 0, "done": 0, "failed": 0, "held": 0}


def test_images_are_served_by_id_only_never_by_path(served) -> None:
    ui, cfg, file_id, tmp = served
    c = client(ui)
    ok = c.get(f"/thumb/{file_id}")
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"
    assert not (tmp / "src" / ".thumbs").exists() and not any(cfg.to_share.rglob("*")), "the cache went into a photo folder"
    thumbs = list((cfg.state_dir / "ui-cache").glob("thumb-*.jpg"))
    assert thumbs and all(t.stat().st_mode & 0o777 == 0o600 for t in thumbs), "R6: cached crops of private photos are the owner's alone"
    forged = [
        "/thumb/..%2F..%2Fprivate.jpg",
        f"/thumb/{file_id}/../../private.jpg",
        "/static/..%2F..%2F..%2Fconfig.yaml",
        "/static/../../../../etc/passwd",
        f"/face/{file_id}/0/..%2F..%2Fprivate",
        f"/face/{file_id}/0/original?path={tmp / 'private.jpg'}",
        "/thumb/999999",
    ]
    for url in forged:
        r = c.get(url)
        assert r.status_code in (400, 401, 404), (url, r.status_code)  # a path that climbs out of the prefix meets the gate
        assert b"root:" not in r.content and b"sources:" not in r.content, url


def test_a_row_pointing_outside_its_folder_is_not_served(served) -> None:
    """A queue row is data: one whose path leads out of its source (a tampered database) shows nothing."""
    ui, cfg, file_id, tmp = served
    q = StateDB(cfg.db_path).queue
    q.add("cam", "../private.jpg", 1, 1)
    row_id = q.db.execute("SELECT id FROM files WHERE relpath='../private.jpg'").fetchone()[0]
    q.db.execute("UPDATE files SET state='held' WHERE id=?", (row_id,))
    q.close()
    r = client(ui).get(f"/thumb/{row_id}")
    assert r.status_code == 404 and "outside" in r.text


def test_hosts_other_than_loopback_are_refused(served, tmp_path: Path) -> None:
    ui, *_ = served
    c = client(ui)
    assert c.get("/", headers={"host": "attacker.example"}).status_code == 400  # DNS rebinding
    r = c.get("/")
    assert r.headers["content-security-policy"].startswith("default-src 'none'") and r.headers["x-frame-options"] == "DENY"


def test_no_secret_appears_in_any_page(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        push={"kind": "webdav", "url": "https://cloud.example.org/dav/?access_key=abc123", "user": "alice", "secret": "nextcloud"},
    )
    env_secret = {"FAWKES_SECRET_NEXTCLOUD": SECRET}
    os.environ.update(env_secret)
    try:
        ui = UIProc(config)
    finally:
        os.environ.pop("FAWKES_SECRET_NEXTCLOUD")
    try:
        c = client(ui)
        pages = [c.get(p).text for p in ("/", "/recent", "/attention", "/settings")]
    finally:
        ui.stop()
    assert "nextcloud" in pages[3] and str(config) in pages[3]
    for text in pages:
        assert SECRET not in text and "abc123" not in text and ui.token not in text


def test_a_non_loopback_address_needs_to_be_asked_for(tmp_path: Path) -> None:
    import subprocess

    config = write_config(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "ui", "--config", str(config), "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "not loopback" in r.stderr and r.stderr.count("\n") == 1
    bad = write_config(tmp_path, ui={"host": "0.0.0.0"})
    with pytest.raises(Exception, match="not loopback"):
        load_config(bad)


def test_a_file_name_that_is_not_utf8_is_shown_escaped_on_every_page(tmp_path: Path) -> None:
    """R1: one such name made every page answer 500; it is shown with escapes, as the CLI does, and its actions work."""
    config = write_config(tmp_path, no_face="hold")
    cfg = load_config(config)
    raw = os.fsencode(tmp_path / "src") + b"/f\xe9te.jpg"  # Latin-1 "fête": not UTF-8
    landscape(Path(os.fsdecode(raw)))
    name = os.fsdecode(raw).rsplit("/", 1)[1]
    q = StateDB(cfg.db_path).queue
    st = os.stat(raw)
    q.add("cam", name, st.st_size, st.st_mtime_ns)
    (job,) = q.claim(1)
    q.finish(job.id, "held", error=f"{name}: no face found; held (no_face: hold) until `fawkes release`")
    q.close()
    ui = UIProc(config)
    try:
        c = client(ui)
        for page in ("/", "/recent", "/attention", f"/file/{job.id}", f"/thumb/{job.id}", "/settings"):
            r = c.get(page)
            assert r.status_code == 200, (page, r.status_code, r.text[:300])
        assert "f\\xe9te.jpg" in c.get("/attention").text
        back = prefix_of(c) + "/attention"
        r = c.post(f"/file/{job.id}/release", data={"csrf": csrf_of(c), "back": back}, headers={"origin": ui.base.rstrip("/")})
        assert r.status_code == 303, r.text[:300]
        assert c.get(ui.base.rstrip("/") + r.headers["location"]).status_code == 200
    finally:
        ui.stop()


def test_r14_odd_requests_get_answers_not_tracebacks(served) -> None:
    """R14: a non-ASCII token or cookie, a non-ASCII CSRF field, ?page=abc and 64-bit overflowing ids answered 500."""
    ui, cfg, file_id, _ = served
    anon = httpx.Client(base_url=ui.base, follow_redirects=False, timeout=10)
    assert anon.get("/?token=t%C3%B6ken").status_code == 403
    c = client(ui)
    (name,) = list(c.cookies.keys())
    odd = httpx.Client(base_url=c.base_url, follow_redirects=False, timeout=10)
    assert odd.get("/", headers={"cookie": f"{name}=c\u00f6okie".encode()}).status_code == 401  # raw UTF-8 bytes
    good = f"{name}={c.cookies[name]}; junk=\u00e9".encode()
    assert odd.get("/", headers={"cookie": good}).status_code == 200
    r = c.post(f"/file/{file_id}/release", data={"csrf": "\u00e9" * 64}, headers={"origin": ui.base.rstrip("/")})
    assert r.status_code == 403
    assert c.get("/recent?page=abc").status_code == 200
    for big in (2**63, 2**64 + 5):
        assert c.get(f"/file/{big}").status_code == 404
        assert c.get(f"/thumb/{big}").status_code == 404
        assert c.post(f"/file/{big}/release", data={"csrf": csrf_of(c)}, headers={"origin": ui.base.rstrip("/")}).status_code in (404, 409)
    assert ui.proc.poll() is None


def test_r5_the_cookie_is_a_session_scoped_to_a_prefix_no_other_listener_learns(served) -> None:
    """R5: the cookie was the token itself, scoped to ``/``, so every service on 127.0.0.1 received it."""
    ui, cfg, file_id, _ = served
    c = client(ui)
    prefix = prefix_of(c)
    (name,) = list(c.cookies.keys())
    session = c.cookies[name]
    assert session != ui.token and ui.token not in session
    (jar_cookie,) = list(c.cookies.jar)
    assert jar_cookie.path == prefix + "/" and len(prefix) > 16, "the cookie must go to the page's random prefix only"
    assert c.get("/").status_code == 200 and c.get(f"/thumb/{file_id}").status_code == 200
    bare = httpx.Client(base_url=ui.base, follow_redirects=False, timeout=10)
    for path in ("/", "/attention", f"/thumb/{file_id}", "/static/ui.css"):  # the old addresses, with the session replayed
        r = bare.get(path, headers={"cookie": f"{name}={session}"})
        assert r.status_code == 401 and prefix not in r.text, path
    for path in (prefix + "/", prefix + "/attention"):  # the prefix alone, or a token as the cookie, opens nothing
        assert bare.get(path).status_code == 401
        assert bare.get(path, headers={"cookie": f"{name}={ui.token}"}).status_code == 401
    second = client(ui)  # the link opens a second, independent session
    assert second.cookies[name] != session and second.get("/").status_code == 200


def test_r15_two_pages_keep_their_own_tokens_and_a_stopped_page_leaves_none(served) -> None:
    """R15: a second `fawkes ui` overwrote the first one's token file; `kill -TERM` left a dead one."""
    ui, cfg, _, _ = served
    second = UIProc(cfg.state_dir.parent / "config.yaml")
    try:
        files = {p.name: p.read_text().strip() for p in cfg.state_dir.glob("ui-token-*")}
        assert sorted(files.values()) == sorted([ui.token, second.token])
        assert client(ui).get("/").status_code == 200 and client(second).get("/").status_code == 200
    finally:
        second.proc.send_signal(signal.SIGTERM)
        second.proc.wait(timeout=30)
    assert [p.read_text().strip() for p in cfg.state_dir.glob("ui-token-*")] == [ui.token]


def test_r17_the_push_url_query_string_is_shown_nowhere(tmp_path: Path) -> None:
    """R17: hidden on Settings, the access key in the push URL's query string was shown on the Overview, by status and in logs."""
    import json as _json
    import subprocess

    from fawkes_daemon.config import PushConfig, public_url
    from fawkes_daemon.push import WebDavRemote

    assert public_url("https://alice:pw@cloud.example.org/dav/?k=1") == "https://alice@cloud.example.org/dav/?…"
    url = "https://cloud.example.org/dav/?access_key=abc123"
    config = write_config(tmp_path, push={"kind": "webdav", "url": url, "user": "alice", "secret": "nextcloud"})
    StateDB(load_config(config).db_path).queue.close()  # the pushes table exists: the Overview shows the push
    out = subprocess.run(
        [sys.executable, "-m", "fawkes_daemon.cli", "status", "--json", "--config", str(config)], capture_output=True, text=True
    )
    assert out.returncode == 0 and "abc123" not in out.stdout and "pw@" not in out.stdout
    assert _json.loads(out.stdout)["push"]["remote"] == "https://cloud.example.org/dav/?…"
    remote = WebDavRemote(PushConfig(kind="webdav", url=url, user="alice", secret="nextcloud"), "pw")
    assert "abc123" not in remote.describe()
    from fawkes_daemon.secrets import redact

    assert "abc123" not in redact(f"push failed: GET {url}")
    os.environ["FAWKES_SECRET_NEXTCLOUD"] = SECRET
    try:
        ui = UIProc(config)
    finally:
        os.environ.pop("FAWKES_SECRET_NEXTCLOUD")
    try:
        overview = client(ui).get("/").text
    finally:
        ui.stop()
    assert "cloud.example.org" in overview and "abc123" not in overview


def test_r18_every_held_or_failed_row_is_reachable_page_by_page(tmp_path: Path) -> None:
    """R18: the page listed the newest 200 held or failed rows, with no way to the others."""
    config = write_config(tmp_path, no_face="hold")
    cfg = load_config(config)
    q = StateDB(cfg.db_path).queue
    for i in range(450):
        q.add("cam", f"p{i:04d}.jpg", 1, i + 1)
    for job in q.claim(450):
        q.finish(job.id, "held" if job.id % 2 else "failed", error="test row")
    q.close()
    ui = UIProc(config)
    try:
        c = client(ui)
        seen: set[str] = set()
        for page in range(20):
            text = c.get(f"/attention?page={page}").text
            seen |= set(re.findall(r"p\d{4}\.jpg", text))
            if "older</a>" not in text:
                break
    finally:
        ui.stop()
    assert len(seen) == 450


def test_r16_allow_remote_from_the_command_line_serves_and_warns(tmp_path: Path) -> None:
    """R16: `fawkes ui --host 0.0.0.0 --allow-remote` answered every request 400 (the host check read only the config)."""
    import subprocess

    config = write_config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fawkes_daemon.cli", "ui", "--config", str(config), "--port", "0", "--host", "0.0.0.0", "--allow-remote"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        url = proc.stdout.readline().strip().split(": ", 1)[1]
        warning = proc.stderr.readline()
        assert "plain http" in warning
        port = int(url.split(":")[2].split("/")[0])
        token = url.split("?token=")[1]
        addr = "127.0.0.2"  # reached through 0.0.0.0, and a Host that is not one of the loopback names the page allows by default
        c = httpx.Client(base_url=f"http://{addr}:{port}", follow_redirects=True, timeout=10)
        r = c.get(f"/?token={token}")
        assert r.status_code == 200 and "Overview" in r.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_r21_images_are_read_through_the_descriptor_that_was_checked(tmp_path: Path) -> None:
    """R21: a folder swapped for a link while the page served let it serve (and cache) a file from outside.

    The page now opens each folder without following links, from the source root, and reads the
    descriptor it checked; a link on the path is refused whenever it appears.
    """
    config = write_config(tmp_path, no_face="hold")
    cfg = load_config(config)
    (tmp_path / "src" / "dir").mkdir()
    landscape(tmp_path / "src" / "dir" / "x.jpg")
    q = StateDB(cfg.db_path).queue
    st = os.stat(tmp_path / "src" / "dir" / "x.jpg")
    q.add("cam", "dir/x.jpg", st.st_size, st.st_mtime_ns)
    (job,) = q.claim(1)
    q.finish(job.id, "held", error="held for the test")
    q.close()
    outside = tmp_path / "outside"
    outside.mkdir()
    landscape(outside / "x.jpg", seed=3)
    os.rename(tmp_path / "src" / "dir", tmp_path / "src" / ".old")
    os.symlink(outside, tmp_path / "src" / "dir")
    ui = UIProc(config)
    try:
        assert client(ui).get(f"/thumb/{job.id}").status_code == 404
    finally:
        ui.stop()
    assert not list((cfg.state_dir / "ui-cache").glob("thumb-*"))


def test_a_heartbeat_without_its_time_is_not_running_not_an_error(tmp_path: Path) -> None:
    """The page and `fawkes status` share one liveness rule; a heartbeat missing ``updated`` is stale (it raised a KeyError, a 500)."""
    import json

    from fawkes_daemon.heartbeat import read_state
    from fawkes_daemon.ui.store import daemon_state

    beat = tmp_path / "daemon.json"
    beat.write_text(json.dumps({"pid": os.getpid(), "started": 1.0}))
    state = daemon_state(beat)
    assert state.running is False and state.pid == os.getpid() and state.seen is None
    assert read_state(beat)[1] is False and read_state(beat, None)[1] is True  # no staleness limit: the live pid decides
    beat.write_text("{not json")
    assert daemon_state(beat).running is False and read_state(beat) == (None, False)


def test_d16_a_huge_post_is_refused_with_413_and_the_page_goes_on(served) -> None:
    ui, cfg, file_id, _ = served
    c = client(ui)
    token = csrf_of(c)
    big = c.post(f"/file/{file_id}/release", data={"csrf": token, "junk": "x" * (5 << 20)}, headers={"origin": ui.base.rstrip("/")})
    assert big.status_code == 413

    def chunks():  # no Content-Length: the cap holds on what is read
        for _ in range(100):
            yield b"x" * 65536

    streamed = c.post(f"/file/{file_id}/release", content=chunks(), headers={"origin": ui.base.rstrip("/")})
    assert streamed.status_code == 413
    assert StateDB(cfg.db_path).queue.counts()["held"] == 1
    assert c.get("/attention").status_code == 200
