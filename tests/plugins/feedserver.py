"""A real local HTTP server for feed tests (REFERENCE.md section 7).

It serves copies of tests/fixtures/feeds/, honours If-None-Match / If-Modified-Since (comparing
the validators byte-for-byte, so a client that alters them gets no 304), and misbehaves on
demand per path: fail with any status (410, 429 + Retry-After, 503 ...), redirect, stall or
drip-feed mid-body, send gzip or raw pre-encoded bodies (bombs), omit Content-Length.
Tests can add fresh entries to a served copy, as a live blog would.

    def test_x(feed_server):
        url = feed_server.serve_fixture("/feed.xml", "sander.atom.xml")
        feed_server.add_entry("/feed.xml", title="New", link="https://...", published=now)
        feed_server.hits("/feed.xml")  # the requests it got, with their headers
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None  # sent as-is; None: no ETag header
    last_modified: str | None = None
    gzip: bool = False  # compress when the client accepts gzip
    encoding: str | None = None  # body is already encoded so: sent as-is with this header
    content_length: bool = True  # False: no Content-Length, close the connection at the end
    stall_after: int | None = None  # send this many bytes, then hang
    drip: float | None = None  # seconds between single bytes
    location: str | None = None  # for redirects
    delay: float = 0.0  # seconds to think before answering


@dataclass
class Hit:
    path: str
    headers: dict[str, str]  # lower-case names, values as received


def serve_in_thread(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """A threaded HTTP server on a free localhost port, serving in a daemon thread until its
    ``shutdown()``; returns it and its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[Hit] = []
        self.active = 0  # requests being answered now
        self.peak = 0  # the most at once
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.httpd, self.base = serve_in_thread(type("Handler", (_Handler,), {"feeds": self}))

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return self.base + path

    # --- what to serve -----------------------------------------------------------------------

    def serve(self, path: str, body: bytes | str, *, validators: bool = True, **kw: object) -> str:
        """Serve ``body`` at ``path``; ``validators``: a strong ETag and Last-Modified."""
        data = body.encode() if isinstance(body, str) else body
        route = Route(body=data, **kw)  # type: ignore[arg-type]
        if validators:
            route.etag = route.etag or _etag(data)
            route.last_modified = route.last_modified or _http_date(datetime.now(UTC))
        with self._lock:
            self.routes[path] = route
        return self.url(path)

    def serve_fixture(self, path: str, name: str, **kw: object) -> str:
        content_type = "application/atom+xml" if "atom" in name else "application/rss+xml"
        kw.setdefault("content_type", content_type + "; charset=utf-8")
        return self.serve(path, (FEEDS / name).read_bytes(), **kw)

    def fail(self, path: str, status: int, *, headers: dict[str, str] | None = None) -> str:
        return self.serve(
            path,
            f"<html><body>error {status}</body></html>",
            status=status,
            headers=headers or {},
            content_type="text/html",
            validators=False,
        )

    def redirect(self, path: str, to: str, status: int = 301) -> str:
        target = to if to.startswith("http") else self.url(to)
        return self.serve(path, b"", status=status, location=target, validators=False)

    def add_entry(
        self,
        path: str,
        *,
        title: str,
        link: str,
        guid: str | None = None,
        published: datetime | None = None,
        summary: str = "",
    ) -> None:
        """Put a fresh item on top of the served RSS or Atom copy; validators change."""
        route = self.routes[path]
        text = route.body.decode("utf-8")
        if "<feed" in text[:2000]:
            date = f"<updated>{published.isoformat()}</updated>" if published else ""
            item = (
                f"<entry><title>{escape(title)}</title><link href='{escape(link)}'/>"
                f"<id>{escape(guid or link)}</id>{date}"
                f"<summary type='html'>{escape(summary)}</summary></entry>\n"
            )
            marker = "<entry"
        else:
            date = f"<pubDate>{_http_date(published)}</pubDate>" if published else ""
            guid_tag = f"<guid isPermaLink='false'>{escape(guid)}</guid>" if guid else ""
            item = (
                f"<item><title>{escape(title)}</title><link>{escape(link)}</link>{guid_tag}"
                f"{date}<description>{escape(summary)}</description></item>\n"
            )
            marker = "<item"
        at = text.find(marker)
        if at < 0:
            at = text.rfind("</channel>") if "</channel>" in text else text.rfind("</feed>")
        text = text[:at] + item + text[at:]
        with self._lock:
            route.body = text.encode()
            if route.etag is not None:
                route.etag = _etag(route.body)
            if route.last_modified is not None:
                route.last_modified = _http_date(datetime.now(UTC))

    def hits(self, path: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.log if h.path == path]


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest()[:16] + '"'


def _http_date(moment: datetime | None) -> str:
    assert moment is not None
    return format_datetime(moment.astimezone(UTC), usegmt=True)


class _Handler(BaseHTTPRequestHandler):
    feeds: FeedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet tests

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.feeds._lock:
            self.feeds.log.append(Hit(path, headers))
            route = self.feeds.routes.get(path)
        if route is None:
            self._send(404, b"not found", {"Content-Type": "text/plain"})
            return
        if route.delay:
            with self.feeds._lock:
                self.feeds.active += 1
                self.feeds.peak = max(self.feeds.peak, self.feeds.active)
            self.feeds.stop.wait(route.delay)
            with self.feeds._lock:
                self.feeds.active -= 1
        extra = dict(route.headers)
        if route.location:
            extra["Location"] = route.location
        if route.etag is not None:
            extra["ETag"] = route.etag
        if route.last_modified is not None:
            extra["Last-Modified"] = route.last_modified
        if route.status == 200 and self._not_modified(route, headers):
            self._send(304, b"", {k: v for k, v in extra.items() if k != "Content-Type"})
            return
        body = route.body
        extra["Content-Type"] = route.content_type
        if route.encoding:
            extra["Content-Encoding"] = route.encoding
        elif route.gzip and "gzip" in headers.get("accept-encoding", ""):
            body = gzip.compress(body)
            extra["Content-Encoding"] = "gzip"
        self._send(route.status, body, extra, route=route)

    def _not_modified(self, route: Route, headers: dict[str, str]) -> bool:
        # RFC 9110 13.2.2: If-None-Match wins over If-Modified-Since. Exact comparison on
        # purpose: a client must send back what it got, byte for byte.
        if "if-none-match" in headers:
            return route.etag is not None and headers["if-none-match"] == route.etag
        if "if-modified-since" in headers:
            return route.last_modified is not None and (
                headers["if-modified-since"] == route.last_modified
            )
        return False

    def _send(
        self, status: int, body: bytes, headers: dict[str, str], route: Route | None = None
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        with_length = route is None or route.content_length
        if with_length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if status == 304:
            return
        try:
            if route is not None and route.stall_after is not None:
                self.wfile.write(body[: route.stall_after])
                self.wfile.flush()
                self.feeds.stop.wait(30)
                return
            if route is not None and route.drip is not None:
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    if self.feeds.stop.wait(route.drip):
                        return
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def write_blogs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """write_blogs({"sander": url, "delayed": None}, homepages={...}) -> path of a blogs.yaml
    whose feeds are the local server's (None: only a homepage, the feed is discovered)."""

    def write(
        feeds: dict[str, str | None],
        *,
        homepages: dict[str, str] | None = None,
        lookback_days: int = 7,
        category: dict[str, str] | None = None,
    ) -> Path:
        lines = [
            "newsletter:",
            "  title: Test digest",
            "  curator: Tester",
            "  from: Test <digest@example.org>",
            "  reply_to: curator@example.org",
            f"  lookback_days: {lookback_days}",
            "categories:",
        ]
        cats: dict[str, list[str]] = {}
        for blog in feeds:
            cats.setdefault((category or {}).get(blog, "main"), []).append(blog)
        for cat, blogs in cats.items():
            lines += [f"  - id: {cat}", "    blogs:"]
            for blog in blogs:
                homepage = (homepages or {}).get(blog, f"https://{blog}.example.org/")
                lines += [
                    f"      - name: {blog}",
                    f"        id: {blog}",
                    f"        homepage: {homepage}",
                ]
                if feeds[blog]:
                    lines.append(f"        feed: {feeds[blog]}")
        path = tmp_path / "blogs.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
