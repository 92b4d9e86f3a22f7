"""Cross-site request protection, security headers, token shapes and the client's address.

Forms carry a signed, timestamped token bound to their purpose, and a POST whose Origin (or
Sec-Fetch-Site) says it came from another site is refused. No cookie is involved, so the pages
set none. The one-click unsubscribe endpoint is exempt: RFC 8058 has mail providers POST to it
bare, without cookies, Origin or token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("digest.web")

FORM_TOKEN_MAX_AGE = 24 * 3600  # a form left open for a day is reloaded, not trusted
# "<unix seconds>.<24 urlsafe base64 characters>": anything else is refused before any HMAC is
# computed (hmac.compare_digest raises on non-ASCII text, which once made every form a 500).
_FORM_TOKEN = re.compile(r"[0-9]{1,12}\.[A-Za-z0-9_-]{24}")
# Subscriber and confirmation tokens are secrets.token_urlsafe(32): 43 characters. The range
# leaves room for other lengths without letting odd bytes reach the database.
_PATH_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,100}")
# Paths whose second segment is a personal token: never written to a log.
_TOKEN_PATH = re.compile(r"^/(confirm|unsubscribe|preferences)/[^/]*")


class FormTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, stamp: str) -> bytes:
        mac = hmac.new(self._secret, f"{purpose}\n{stamp}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18])

    def issue(self, purpose: str, now: float) -> str:
        stamp = str(int(now))
        return f"{stamp}.{self._mac(purpose, stamp).decode()}"

    def valid(self, token: str | None, purpose: str, now: float) -> bool:
        if not token or not token.isascii() or not _FORM_TOKEN.fullmatch(token):
            return False
        stamp, mac = token.split(".")
        if not 0 <= now - int(stamp) <= FORM_TOKEN_MAX_AGE:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(purpose, stamp))


def well_formed_token(token: str) -> bool:
    """Could this be a token digest issued? False sends a 404 before any lookup."""
    return token.isascii() and _PATH_TOKEN.fullmatch(token) is not None


def redact(path: str) -> str:
    """The path with any personal token replaced, fit for a log line."""
    return _TOKEN_PATH.sub(lambda m: f"/{m[1]}/<token>", path)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def cross_site(request: Request, origin: str) -> bool:
    """True when the browser says the POST came from another site."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    sent = request.headers.get("origin")
    return sent is not None and sent.lower() != origin


def client_ip(request: Request) -> str:
    # Behind a reverse proxy, uvicorn rewrites client from X-Forwarded-For when the proxy is in
    # --forwarded-allow-ips (default 127.0.0.1); we never parse the header ourselves.
    return request.client.host if request.client else "unknown"


def security_headers(base_origin: str) -> list[tuple[bytes, bytes]]:
    return [
        (
            b"content-security-policy",
            (
                "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                f"form-action {base_origin}; base-uri 'none'; frame-ancestors 'none'"
            ).encode(),
        ),
        # Token URLs (unsubscribe, preferences) must not leak to the blogs a page links to:
        # other sites get the origin only. Not `no-referrer`: with it Chromium sends
        # `Origin: null` on our own form POSTs, which the cross-site check must refuse.
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
    ]


class SecurityHeaders:
    """Pure ASGI middleware (cheap on the hot one-click path): defaults a response may override.

    It wraps the whole application, Starlette's error and body-limit middleware included, so
    404, 405, 413 and 500 answers carry the headers too. An exception that escapes after the
    error page was sent was logged already (with the token cut out of the path): it stops here
    rather than reach uvicorn, which would log it a second time.
    """

    def __init__(self, app: ASGIApp, *, base_origin: str) -> None:
        self.app = app
        self.headers = security_headers(base_origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:
                return
            # The error page itself failed: a bare 500, still with the headers.
            log.error("error serving %s", redact(scope.get("path", "")), exc_info=exc)
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": b"Something went wrong."})
