"""Cross-site request protection, security headers and the client's address.

Forms carry a signed, timestamped token bound to their purpose, and a POST whose Origin (or
Sec-Fetch-Site) says it came from another site is refused. No cookie is involved, so the pages
set none. The one-click unsubscribe endpoint is exempt: RFC 8058 has mail providers POST to it
bare, without cookies, Origin or token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_TOKEN_MAX_AGE = 24 * 3600  # a form left open for a day is reloaded, not trusted


class FormTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, stamp: str) -> str:
        mac = hmac.new(self._secret, f"{purpose}\n{stamp}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()

    def issue(self, purpose: str, now: float) -> str:
        stamp = str(int(now))
        return f"{stamp}.{self._mac(purpose, stamp)}"

    def valid(self, token: str | None, purpose: str, now: float) -> bool:
        if not token or token.count(".") != 1:
            return False
        stamp, mac = token.split(".")
        if not stamp.isdigit() or not 0 <= now - int(stamp) <= FORM_TOKEN_MAX_AGE:
            return False
        return hmac.compare_digest(mac, self._mac(purpose, stamp))


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


class SecurityHeaders:
    """Pure ASGI middleware (cheap on the hot one-click path): defaults a response may override."""

    def __init__(self, app: ASGIApp, *, base_origin: str) -> None:
        self.app = app
        self.headers = [
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
