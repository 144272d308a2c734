"""Who may see the page and act on it: the run's token, the CSRF token, same-origin POSTs.

Why a token on loopback: any local process, and any web page the user visits (through DNS
rebinding or a forged form), can reach 127.0.0.1. The token is random per run, printed by
``fawkes ui`` and written 0600 to the state directory, so only the user who can read that file
opens the page. It travels once in the URL and is exchanged at once for a session.

Why the session is not the token, and why the page lives under a random path: browsers send a
cookie to every port of a host, so any other service listening on 127.0.0.1 would receive a
cookie scoped to ``/``. The page is therefore served under a random per-run prefix
(``/<prefix>/``) and its session cookie is scoped to that path: a browser sends it only to
URLs that begin with the prefix, which another listener never learns. And the cookie holds a
random session id, not the token, so even a leaked cookie neither outlives the run nor opens
a second session. Host headers are checked (Starlette's TrustedHostMiddleware) against
rebinding, and a POST must carry the CSRF token and, when the browser names one, the page's
own Origin.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # "no-referrer" would make the browser send "Origin: null" on our own forms
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_prefix() -> str:
    """The page's random path prefix for one run (``/`` followed by 22 URL-safe characters)."""
    return "/" + secrets.token_urlsafe(16)


MAX_SESSIONS = 64  # one per opened link; the oldest goes first, so a long run cannot grow without bound


def write_token(path: Path, token: str) -> None:
    """Write the token readable by its owner only (created 0600, never widened by the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)


def csrf_for(token: str) -> str:
    """The CSRF token: derived from the access token, so it changes with every run and reveals nothing of it."""
    return hmac.new(token.encode(), b"fawkes-ui-csrf", hashlib.sha256).hexdigest()


def cookie_name(port: int) -> str:
    # cookies are shared between the ports of one host: one name per port keeps two pages apart
    return f"fawkes_ui_{port}"


DENIED = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Fawkes Sync: token needed</title>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto"><h1>Token needed</h1>
<p>Open the link that <code>fawkes ui</code> printed, or the one in the daemon's log. The token is also in
<code>{path}</code>, readable by you only.</p></body></html>"""


def same_secret(given: str, secret: str) -> bool:
    """A constant-time comparison that any input can reach: compare_digest refuses non-ASCII ``str`` with a TypeError (a 500)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode("utf-8"))


def _digest(session: str) -> bytes:
    # sessions are kept and looked up by digest: a set lookup then reveals nothing of the id's bytes
    return hashlib.sha256(session.encode("utf-8", "surrogateescape")).digest()


class TokenGate:
    """ASGI middleware: ``?token=`` opens a session, the session cookie and the prefix admit every request, CSRF guards every POST."""

    def __init__(self, app: ASGIApp, token: str, port: int, token_path: Path, prefix: str) -> None:
        self.app, self.token, self.port, self.token_path, self.prefix = app, token, port, token_path, prefix
        self.csrf = csrf_for(token)
        self.cookie = cookie_name(port)
        self.sessions: dict[bytes, None] = {}  # insertion-ordered: the oldest session is dropped first

    def _inside(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def _has_session(self, request: Request) -> bool:
        given = request.cookies.get(self.cookie, "")
        return bool(given) and self._inside(request.url.path) and _digest(given) in self.sessions

    def _open_session(self, request: Request) -> Response:
        session = secrets.token_urlsafe(32)
        self.sessions[_digest(session)] = None
        while len(self.sessions) > MAX_SESSIONS:
            del self.sessions[next(iter(self.sessions))]
        # the token leaves the address bar (and history) at once; the session cookie carries on from here
        rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        path = request.url.path if self._inside(request.url.path) else self.prefix + "/"
        response = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
        response.set_cookie(self.cookie, session, httponly=True, samesite="strict", path=self.prefix + "/")
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response: Response | None = None
        query_token = request.query_params.get("token")
        if query_token is not None:
            if same_secret(query_token, self.token):
                response = self._open_session(request)
            else:
                response = HTMLResponse(DENIED.format(path=self.token_path), status_code=403)
        elif not self._has_session(request):
            response = HTMLResponse(DENIED.format(path=self.token_path), status_code=401)
        receive_next = receive
        if response is None and request.method == "POST":
            body = await _bounded_body(request)
            if body is None:
                response = HTMLResponse(f"request body over {MAX_BODY // 1024} KiB refused", status_code=413)
            else:
                response = await self._check_post(Request(scope, _replay(body)))
                receive_next = _replay(body)
        if response is not None:
            for k, v in SECURITY_HEADERS.items():
                response.headers[k] = v
            await response(scope, receive, send)
            return
        await self.app(scope, receive_next, _with_headers(send))

    async def _check_post(self, request: Request) -> Response | None:
        """None when the POST may go on; a 403 for another origin or a missing CSRF token."""
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin is not None and origin != own:
            return HTMLResponse(f"cross-origin request refused (origin {origin!r})", status_code=403)
        form = await request.form()
        given = form.get("csrf")
        if not isinstance(given, str) or not same_secret(given, self.csrf):
            return HTMLResponse("missing or wrong CSRF token; reload the page and try again", status_code=403)
        return None


# the page's forms carry a CSRF token and an action: a few hundred bytes; a larger body is refused unread
MAX_BODY = 64 * 1024


async def _bounded_body(request: Request) -> bytes | None:
    """The POST body, or None when it is (or declares itself) over :data:`MAX_BODY`: read no further than that."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """The request body once more, for the app behind the check (which read it already)."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive  # type: ignore[return-value]


def _with_headers(send: Send) -> Send:
    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            for k, v in SECURITY_HEADERS.items():
                if k.encode() not in present:
                    headers.append((k.encode(), v.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
