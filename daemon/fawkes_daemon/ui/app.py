"""The pages and actions of the web page (Starlette routes, Jinja2 templates).

Pages: overview, recent safe copies, one file's before/after, held and failed files,
settings. Actions (POST, CSRF-checked by :mod:`fawkes_daemon.ui.access`): release, retry,
cloak again at a higher mode. Every image is addressed by queue id.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import yaml
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fawkes_daemon.config import Config, public_url
from fawkes_daemon.health import state_dir_full
from fawkes_daemon.schedule import WorkPolicy
from fawkes_daemon.state_db import StateDB
from fawkes_daemon.ui.access import TokenGate, csrf_for
from fawkes_daemon.ui.images import ImageCache, NotServed
from fawkes_daemon.ui.store import Store, daemon_state
from fawkes_engine.cloak.options import next_mode

PAGE_SIZE = 48
ATTENTION_PAGE = 100  # held and failed rows per page (with 44,000 of them, every one is reachable page by page)


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "0") or "0"
    return min(int(raw), 10**9) if raw.isascii() and raw.isdigit() else 0  # ?page=abc is the first page, not a 500


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "—"


def _ago(ts: float | None) -> str:
    if not ts:
        return "—"
    s = max(0, time.time() - ts)
    return f"{s:.0f} s ago" if s < 90 else f"{s / 60:.0f} min ago" if s < 5400 else f"{s / 3600:.1f} h ago"


def higher_mode(row: dict, config: Config) -> str | None:
    """The next mode up from the one this file was (or will be) cloaked at; None at the top.

    Only for a file whose faces a stronger cloak can help: a safe copy with faces, or a failure.
    A held photo has no face, or faces too small for any mode: release is its only action.
    """
    if not (row.get("state") == "failed" or (row.get("state") == "done" and row.get("faces"))):
        return None
    report = row.get("report_data") or {}
    return next_mode(row.get("mode") or report.get("mode") or config.cloak.mode)


def settings_yaml(config: Config) -> str:
    """The configuration as loaded (defaults filled in). Secrets are never in it: push.secret is a keyring name."""
    data = config.model_dump(mode="json")
    push = data.get("push")
    if push and push.get("url"):
        push["url"] = public_url(push["url"])
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


class Pages:
    def __init__(self, config: Config, config_path: Path | None, token: str, prefix: str) -> None:
        self.config, self.config_path = config, config_path
        self.store = Store(config.db_path)
        self.images = ImageCache(config)
        self.csrf = csrf_for(token)
        self.env = Environment(
            loader=PackageLoader("fawkes_daemon.ui", "templates"),
            autoescape=select_autoescape(["html"]),
            finalize=lambda v: shown(v) if isinstance(v, str) else v,  # every name on every page, as the CLI prints it
        )
        self.env.globals["base"] = self.base = prefix  # every link and image of the page lives under the run's prefix
        self.env.filters["when"] = _when
        self.env.filters["ago"] = _ago

    def render(self, name: str, request: Request, status: int = 200, **ctx) -> HTMLResponse:
        html = self.env.get_template(name).render(
            request=request, csrf=self.csrf, page=name.split(".")[0], notice=request.query_params.get("done"), **ctx
        )
        return HTMLResponse(html, status_code=status)

    # -- pages -----------------------------------------------------------------------------------
    async def overview(self, request: Request) -> Response:
        state = daemon_state(self.config.heartbeat_path)
        counts = self.store.counts()
        waiting = state.waiting if state.running else WorkPolicy(self.config.schedule).reason_to_wait()
        return self.render(
            "overview.html",
            request,
            state=state,
            counts=counts,
            throughput=self.store.throughput(),
            weak=self.store.weak_published(),
            weak_policy=self.config.weak_cloak,
            waiting=waiting,
            push=self.store.push_counts() if self.config.push else None,
            push_error=self.store.last_push_error() if self.config.push else None,
            remote=(public_url(self.config.push.url) if self.config.push.url else self.config.push.remote) if self.config.push else None,
            errors=self.store.last_errors(),
            problem=state_dir_full(self.config),
        )

    async def recent(self, request: Request) -> Response:
        page = page_number(request)
        rows = self.store.recent(PAGE_SIZE + 1, page * PAGE_SIZE)
        return self.render("recent.html", request, rows=rows[:PAGE_SIZE], page_no=page, more=len(rows) > PAGE_SIZE)

    async def file(self, request: Request) -> Response:
        row = self.store.file(request.path_params["id"])
        if row is None:
            return self.render("missing.html", request, status=404)
        return self.render("file.html", request, row=row, report=row.get("report_data") or {}, higher=higher_mode(row, self.config))

    async def attention(self, request: Request) -> Response:
        page = page_number(request)
        rows = self.store.attention(ATTENTION_PAGE + 1, page * ATTENTION_PAGE)
        for r in rows:  # held and failed rows: their row's mode decides (a report's mode matters for safe copies only)
            r["higher"] = higher_mode(r, self.config)
        return self.render("attention.html", request, rows=rows[:ATTENTION_PAGE], page_no=page, more=len(rows) > ATTENTION_PAGE)

    async def settings(self, request: Request) -> Response:
        return self.render("settings.html", request, config_path=self.config_path, text=settings_yaml(self.config))

    # -- images ----------------------------------------------------------------------------------
    def _image(self, data_of, media: str) -> Response:
        try:
            data = data_of()
        except NotServed as e:
            return Response(f"not available: {e}", status_code=404, media_type="text/plain")
        return Response(data, media_type=media, headers={"cache-control": "private, max-age=86400"})

    async def thumb(self, request: Request) -> Response:
        row = self.store.file(request.path_params["id"])
        if row is None:
            return Response("no such file", status_code=404, media_type="text/plain")
        return self._image(lambda: self.images.thumbnail(row), "image/jpeg")

    async def face(self, request: Request) -> Response:
        row = self.store.file(request.path_params["id"])
        if row is None:
            return Response("no such file", status_code=404, media_type="text/plain")
        p = request.path_params
        return self._image(lambda: self.images.face(row, p["n"], p["kind"]), "image/png")

    # -- actions ---------------------------------------------------------------------------------
    async def act(self, request: Request) -> Response:
        file_id, action = request.path_params["id"], request.path_params["action"]
        form = await request.form()
        back = str(form.get("back") or f"{self.base}/attention")
        if not back.startswith(self.base + "/"):
            back = f"{self.base}/attention"  # only this page's own paths: never an open redirect
        row = self.store.file(file_id)
        if row is None:
            return Response("no such file", status_code=404, media_type="text/plain")
        q = StateDB(self.config.db_path).queue
        try:
            if action == "release":
                n, what = q.release_id(file_id), "released"
            elif action == "retry":
                n, what = q.retry_id(file_id), "queued again"
            elif action == "recloak":
                mode = higher_mode(row, self.config)
                if mode is None:
                    return Response("already at the highest mode", status_code=409, media_type="text/plain")
                n, what = q.recloak_id(file_id, mode), f"queued at {mode}"
            else:
                return Response("unknown action", status_code=404, media_type="text/plain")
        finally:
            q.close()
        if not n:
            return Response(
                f"{shown(row['relpath'])}: nothing to do (its state is {row['state']})", status_code=409, media_type="text/plain"
            )
        sep = "&" if "?" in back else "?"
        return RedirectResponse(f"{back}{sep}done={quote(shown(row['relpath']) + ': ' + what)}", status_code=303)


def shown(text: str) -> str:
    """A file name as it can be shown: bytes that are not UTF-8 as backslash escapes (``f\\xe9te.jpg``)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def build_app(
    config: Config,
    config_path: Path | None,
    token: str,
    port: int,
    token_path: Path,
    prefix: str,
    allow_remote: bool | None = None,
) -> Starlette:
    """The page's app, served under ``prefix`` (see :mod:`fawkes_daemon.ui.access` for why).

    ``allow_remote``: as `fawkes ui --allow-remote` asked (None: the configuration's ``ui.allow_remote``).
    """
    pages = Pages(config, config_path, token, prefix)
    static = Path(__file__).with_name("static")
    remote = config.ui.allow_remote if allow_remote is None else allow_remote
    hosts = ["127.0.0.1", "localhost", "[::1]", "::1"] if not remote else ["*"]
    routes = [
        Route("/", pages.overview),
        Route("/recent", pages.recent),
        Route("/file/{id:int}", pages.file),
        Route("/attention", pages.attention),
        Route("/settings", pages.settings),
        Route("/thumb/{id:int}", pages.thumb),
        Route("/face/{id:int}/{n:int}/{kind:str}", pages.face),
        Route("/file/{id:int}/{action:str}", pages.act, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
        Middleware(TokenGate, token=token, port=port, token_path=token_path, prefix=prefix),
    ]
    return Starlette(routes=[Mount(prefix, routes=routes)], middleware=middleware)
