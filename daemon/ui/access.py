"""Who may see the page and act on it: the run's token, the CSRF token, same-origin POSTs.

Why a token on loopback: any local process, and any web page the user visits (through DNS
rebinding or a forged form), can reach 127.0.0.1. The token is random per run, printed by
``fawkes ui`` and written 0600 to the state directory, so only the user who can read that file
opens the page. It travels once in the URL and then lives in an HttpOnly, SameSite=Strict
cookie. Host headers are checked (Starlette's TrustedHostMiddleware) against rebinding, and a
POST must carry the CSRF token and, when the browser names one, the page's own Origin.
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


class TokenGate:
    """ASGI middleware: the token (cookie or ``?token=``) for every request, the CSRF check for every POST."""

    def __init__(self, app: ASGIApp, token: str, port: int, token_path: Path) -> None:
        self.app, self.token, self.port, self.token_path = app, token, port, token_path
        self.csrf = csrf_for(token)
        self.cookie = cookie_name(port)

    def _has_token(self, request: Request) -> bool:
        given = request.cookies.get(self.cookie, "")
        return bool(given) and same_secret(given, self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response: Response | None = None
        query_token = request.query_params.get("token")
        if query_token is not None:
            if same_secret(query_token, self.token):
                # the token leaves the address bar (and history) at once; the cookie carries it from here
                rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
                response.set_cookie(self.cookie, self.token, httponly=True, samesite="strict", path="/")
            else:
                response = HTMLResponse(DENIED.format(path=self.token_path), status_code=403)
        elif not self._has_token(request):
            response = HTMLResponse(DENIED.format(path=self.token_path), status_code=401)
        receive_next = receive
        if response is None and request.method == "POST":
            body = await request.body()
            response = await self._check_post(request)
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
