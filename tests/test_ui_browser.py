"""The web page in a real browser: the system's headless Chromium, driven by Playwright.

A real daemon cloaks a dev photo and holds a photo with no face; the test opens the page
the daemon serves, looks at the before/after view, toggles the amplified difference,
releases the held photo from the page and sees it reach to-share. Screenshots of every page
go to ``$FAWKES_UI_SHOTS`` (``results/ui/`` when regenerating them), else the test's folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers.daemon import DaemonProc, counts, write_config
from tests.helpers.ui import CHROMIUM, CHROMIUM_ARGS, landscape, wait_for

FACE = "photos/lady.jpg"


SHOWN = "[...document.images].filter(i => i.getBoundingClientRect().top < innerHeight).every(i => i.complete && i.naturalWidth > 0)"


def shot(page, path: Path) -> None:
    """A screenshot once every image in view has loaded (a broken thumbnail fails the test)."""
    loaded(page, SHOWN)
    page.screenshot(path=path, full_page=True)


def loaded(page, condition: str) -> None:
    """Poll a condition from outside the page (the page's CSP forbids the in-page eval wait_for_function uses)."""
    wait_for(lambda: page.evaluate(condition), 30, condition, interval=0.1)


@pytest.mark.system
@pytest.mark.browser
def test_before_after_and_release_from_the_page(tmp_path: Path, dev: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} not found: the browser tier needs Debian's Chromium: sudo apt-get install -y chromium (README, Install)"
    )
    shots = Path(os.environ.get("FAWKES_UI_SHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    config = write_config(tmp_path, no_face="hold", ui={"enabled": True, "port": 0})
    src, share = tmp_path / "src", tmp_path / "share" / "cam"
    shutil.copyfile(dev / FACE, src / "lady.jpg")
    landscape(src / "hills.jpg")
    d = DaemonProc(config, tmp_path / "daemon.log")
    d.start()
    try:
        wait_for(lambda: (c := counts(config))["done"] >= 1 and c["held"] >= 1, 600, "the cloak and the hold")
        beat = json.loads((tmp_path / "state" / "daemon.json").read_text())
        base = beat["ui"]
        token = (tmp_path / "state" / f"ui-token-{base.rstrip('/').rsplit(':', 1)[1]}").read_text().strip()
        assert token not in json.dumps(beat)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}?token={token}")
            assert "token" not in page.url, "the token stayed in the address bar"
            expect(page.locator("#daemon-state")).to_contain_text("Running")
            expect(page.locator("#waiting")).to_contain_text("1 held file")
            shot(page, shots / "overview.png")

            page.click("text=Safe copies")
            tile = page.locator("a.tile", has_text="lady.jpg")
            expect(tile).to_be_visible()
            shot(page, shots / "recent.local.png")
            tile.click()
            after = page.locator("img.after").first
            expect(after).to_be_visible()
            loaded(page, "[...document.images].every(i => i.complete && i.naturalWidth > 0)")
            before_w = page.evaluate("document.querySelector('#face-0 img.px').naturalWidth")
            assert before_w == page.evaluate("document.querySelector('#face-0 img.after').naturalWidth") > 30
            expect(page.locator("#face-0 .figures")).to_contain_text("DSSIM")
            expect(page.locator("#face-0 .figures")).to_contain_text("feature shift")
            shot(page, shots / "before-after.local.png")
            page.check("#amplify")
            # the page's own path (under the run's prefix), /file/N → /face/N/0/diff
            expect(after).to_have_attribute("src", urlsplit(page.url).path.replace("/file/", "/face/") + "/0/diff")
            loaded(
                page, "document.querySelector('#face-0 img.after').complete && document.querySelector('#face-0 img.after').naturalWidth > 0"
            )
            shot(page, shots / "difference.local.png")

            page.click("text=Held & failed")
            row = page.locator("tr", has_text="hills.jpg")
            expect(row).to_contain_text("no face found")
            shot(page, shots / "held.png")
            row.locator("button.release").click()
            expect(page.locator(".notice")).to_contain_text("hills.jpg: released")
            wait_for(lambda: (share / "hills.jpg").exists(), 120, "the released photo in to-share")
            page.reload()
            expect(page.locator("tr", has_text="hills.jpg")).to_have_count(0)

            page.click("text=Settings")
            expect(page.locator("#config-path")).to_contain_text(str(config))
            shot(page, shots / "settings.png")
            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            phone.goto(f"{base}?token={token}")
            expect(phone.locator("#daemon-state")).to_contain_text("Running")
            shot(phone, shots / "overview-phone.png")
            browser.close()
        assert (share / "lady.jpg").read_bytes() != (src / "lady.jpg").read_bytes()
    finally:
        d.stop()


@pytest.mark.integration
@pytest.mark.browser
def test_cloak_again_at_a_higher_mode_reaches_the_worker(tmp_path: Path, dev: Path) -> None:
    """The page's third action: the row is queued with the next mode up, and the worker cloaks it at that mode."""
    from fawkes_daemon.config import load_config
    from fawkes_daemon.pipeline.driver import Pipeline
    from fawkes_daemon.state_db import StateDB
    from fawkes_daemon.ui.app import higher_mode
    from fawkes_daemon.ui.store import Store

    cfg = load_config(write_config(tmp_path))
    shutil.copyfile(dev / FACE, tmp_path / "src" / "lady.jpg")
    q = StateDB(cfg.db_path).queue
    st = os.stat(tmp_path / "src" / "lady.jpg")
    q.add("cam", "lady.jpg", st.st_size, st.st_mtime_ns)
    pipeline = Pipeline(cfg, q)
    pipeline.run_batch()
    store = Store(cfg.db_path)
    row = store.file(1)
    assert row is not None and row["state"] == "done" and row["report_data"]["mode"] == "low"
    first = (cfg.to_share / "cam" / "lady.jpg").read_bytes()
    assert higher_mode(row, cfg) == "mid"
    assert q.recloak_id(1, "mid") == 1
    pipeline.run_batch()  # not a copy of the earlier safe copy of the same bytes: a new cloak
    row = store.file(1)
    assert row is not None and row["state"] == "done" and row["report_data"]["mode"] == "mid" and row["mode"] == "mid"
    assert (cfg.to_share / "cam" / "lady.jpg").read_bytes() != first
    assert pipeline.local is not None and pipeline.local.batches.modes_loaded == {"low", "mid"}
    assert higher_mode(row, cfg) == "high"
    store.close()
    q.close()


@pytest.mark.system
@pytest.mark.browser
def test_r5_another_loopback_listener_never_receives_the_session(tmp_path: Path) -> None:
    """R5: the cookie was the token, scoped to ``/``; a page on another port of 127.0.0.1 received it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from playwright.sync_api import sync_playwright

    from tests.helpers.ui import UIProc

    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} not found: the browser tier needs Debian's Chromium: sudo apt-get install -y chromium (README, Install)"
    )
    seen: list[str] = []

    class Listener(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            seen.append(f"{self.path} cookie={self.headers.get('cookie', '')}")
            body = b'<!doctype html><a id="self" href="/again">again</a>'  # a page that navigates to itself
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    ui = UIProc(write_config(tmp_path, no_face="hold"))
    try:
        port = other.server_address[1]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            page.goto(ui.url)
            assert "token" not in page.url and page.url.startswith(ui.base) and len(page.url) > len(ui.base) + 16
            assert "Overview" in page.content()
            (cookie,) = page.context.cookies()
            assert cookie["value"] != ui.token and cookie["path"] != "/"
            for url in (f"http://localhost:{port}/", f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{port}/attention"):
                page.goto(url)
                page.click("#self")
                page.wait_for_url("**/again")
            page.goto(ui.base)  # the bare address, as a bookmark of the old page would be: refused, not served
            assert "Token needed" in page.content()
            browser.close()
    finally:
        ui.stop()
        other.shutdown()
    assert len([s for s in seen if not s.startswith("/favicon")]) == 6, seen
    leaked = [s for s in seen if cookie["name"] in s or ui.token in s or cookie["value"] in s]
    assert not leaked, f"another listener on loopback received the page's session: {leaked}"
