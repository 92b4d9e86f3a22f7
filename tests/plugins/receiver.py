"""A real local web server playing the featured blogs and their Webmention endpoints.

Blog pages announce an endpoint in HTTP ``Link`` headers (several headers allowed), in their
HTML, or nowhere; pages can redirect. Endpoints answer a scripted series of statuses (500
then 202 ...), then the last one forever. Every request is recorded, with its body.

    def test_x(receiver):
        post = receiver.page("/post", links=['</wm>; rel="webmention"'])
        receiver.endpoint("/wm", 500, 202)
        ...
        receiver.posts("/wm")  # the forms POSTed there, as dicts
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest

from plugins.feedserver import serve_in_thread


@dataclass
class Page:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)  # repeats allowed
    statuses: list[int] = field(default_factory=list)  # answered in turn, the last one stays


@dataclass
class Request:
    method: str
    path: str  # with its query string
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)


class Receiver:
    def __init__(self) -> None:
        self.routes: dict[str, Page] = {}
        self.fallback: Page | None = None  # for every other path (``everywhere``)
        self.log: list[Request] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"receiver": self})
        self.httpd, self.base = serve_in_thread(handler)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return self.base + path

    def page(
        self,
        path: str,
        html: str = "<!doctype html><p>A post.</p>",
        *,
        links: tuple[str, ...] = (),
        status: int = 200,
        content_type: str = "text/html; charset=utf-8",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> str:
        """A blog post: each of ``links`` is sent as its own Link header; returns its URL."""
        extra = [("Link", value) for value in links] + list(headers)
        self.routes[path] = Page(status, html.encode(), content_type, extra)
        return self.url(path)

    def everywhere(self, *, links: tuple[str, ...] = ()) -> None:
        """Every path not routed is a post page with these Link headers (a whole blog)."""
        body = b"<!doctype html><p>A post.</p>"
        self.fallback = Page(200, body, "text/html; charset=utf-8", [("Link", v) for v in links])

    def redirect(self, path: str, to: str, status: int = 301) -> str:
        self.routes[path] = Page(status, b"", "text/plain", [("Location", to)])
        return self.url(path)

    def endpoint(self, path: str, *statuses: int) -> str:
        """A Webmention endpoint answering ``statuses`` in turn (202 if none given)."""
        self.routes[path] = Page(
            statuses[0] if statuses else 202,
            b"Thanks, queued for checking.",
            "text/plain; charset=utf-8",
            statuses=list(statuses[1:]),
        )
        return self.url(path)

    def requests(self, path: str | None = None, method: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.log
                if (path is None or urlsplit(r.path).path == path)
                and (method is None or r.method == method)
            ]

    def posts(self, path: str | None = None) -> list[Request]:
        return self.requests(path, "POST")

    def _answer(self, request: Request) -> Page | None:
        with self._lock:
            self.log.append(request)
            page = self.routes.get(urlsplit(request.path).path, self.fallback)
            if page is None:
                return None
            answer = Page(page.status, page.body, page.content_type, page.headers)
            if page.statuses:  # the next call answers the next status
                page.status = page.statuses.pop(0)
            return answer


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        page = self.receiver._answer(Request(self.command, self.path, headers, body))
        if page is None:
            page = Page(404, b"not found", "text/plain")
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        for name, value in page.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(page.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(page.body)

    do_GET = do_POST = do_HEAD = _handle


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.close()
