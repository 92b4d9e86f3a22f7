"""The guard for third-party URLs (digest/net.py): refused after DNS resolution, pinned to the
address checked, against the real local HTTP server (and a real TLS one for the SNI path)."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from digest.config import Settings
from digest.models import Post
from digest.net import FetchError, TargetRefused, get, new_client, refusal, resolve
from digest.store.db import Connection
from plugins.feedserver import FeedServer

NOW = datetime(2026, 7, 6, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ],
)
def test_refusal_names_the_kind_of_address(address: str, words: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and reason.startswith(words)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::6810:85e5", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_names_are_resolved_before_the_check() -> None:
    # "localhost" is a name, not an address: it is refused for what it resolves to.
    with pytest.raises(TargetRefused, match="localhost is a loopback address"):
        asyncio.run(resolve("http://localhost:9/x.png", allow_private=False))
    with pytest.raises(TargetRefused, match="not an http"):
        asyncio.run(resolve("file:///etc/passwd", allow_private=False))
    address = asyncio.run(resolve("http://localhost:9/x.png", allow_private=True))
    assert address.is_loopback


def _fetch(settings: Settings, url: str, max_bytes: int = 1 << 20) -> bytes:
    async def go() -> bytes:
        async with new_client(settings, accept="image/*") as client:
            return (await get(client, url, settings=settings, max_bytes=max_bytes)).body

    return asyncio.run(go())


def test_local_server_refused_without_the_setting(feed_server: FeedServer) -> None:
    url = feed_server.serve("/a.png", b"PNGDATA", content_type="image/png")
    with pytest.raises(TargetRefused, match="DIGEST_ALLOW_PRIVATE_TARGETS"):
        _fetch(Settings(), url)
    assert feed_server.hits("/a.png") == []  # refused before connecting
    assert _fetch(Settings(allow_private_targets=True), url) == b"PNGDATA"


def test_every_redirect_hop_is_checked(feed_server: FeedServer) -> None:
    # A public-looking first hop is not enough: the guard runs again on the Location.
    feed_server.serve("/b.png", b"B", content_type="image/png")
    hop = feed_server.redirect("/hop", feed_server.url("/b.png").replace("127.0.0.1", "localhost"))
    assert _fetch(Settings(allow_private_targets=True), hop) == b"B"
    with pytest.raises(TargetRefused):
        _fetch(Settings(), hop)


def test_pinned_request_keeps_the_name_in_host(feed_server: FeedServer) -> None:
    url = feed_server.serve("/c.png", b"C", content_type="image/png")
    named = url.replace("127.0.0.1", "localhost")
    assert _fetch(Settings(allow_private_targets=True), named) == b"C"
    (hit,) = feed_server.hits("/c.png")
    assert hit.headers["host"] == named.split("/")[2]  # the name, not the IP it connected to
    assert hit.headers["user-agent"].startswith("digest/")
    assert "cookie" not in hit.headers and "referer" not in hit.headers


def test_limits_size_status_and_time(feed_server: FeedServer) -> None:
    allow = Settings(allow_private_targets=True, fetch_timeout=0.5)
    big = feed_server.serve("/big", b"x" * 5000, content_type="image/png")
    with pytest.raises(FetchError, match="larger than 4096 bytes"):
        _fetch(allow, big, max_bytes=4096)
    unsized = feed_server.serve(
        "/unsized", b"x" * 5000, content_type="image/png", content_length=False
    )
    with pytest.raises(FetchError, match="larger than 4096 bytes"):
        _fetch(allow, unsized, max_bytes=4096)
    with pytest.raises(FetchError, match="HTTP 410"):
        _fetch(allow, feed_server.fail("/gone", 410))
    slow = feed_server.serve("/slow", b"x" * 100, content_type="image/png", drip=0.2)
    with pytest.raises(FetchError, match="timed out after 0.5 s"):
        _fetch(allow, slow)


@pytest.fixture
def tls_server() -> Iterator[tuple[str, ssl.SSLContext]]:
    """A real HTTPS server on 127.0.0.1 whose certificate names only "localhost"."""
    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"TLS")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = server_context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.daemon = True
    thread.start()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    try:
        yield f"https://localhost:{httpd.server_address[1]}/t.png", client_context
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_https_pinned_to_the_ip_verifies_the_certificate_by_name(
    tls_server: tuple[str, ssl.SSLContext],
) -> None:
    url, context = tls_server
    settings = Settings(allow_private_targets=True)

    async def go(target: str) -> bytes:
        async with new_client(settings, accept="image/*", verify=context) as client:
            return (await get(client, target, settings=settings, max_bytes=100)).body

    # Connected to 127.0.0.1, the handshake still names "localhost" (SNI) and is checked so.
    assert asyncio.run(go(url)) == b"TLS"
    # The same server asked for by its IP: the certificate does not name it, so it fails.
    with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
        asyncio.run(go(url.replace("localhost", "127.0.0.1")))


# --- every path digest takes to a third-party URL: refused without the setting, allowed with it

# (server, settings, database, a name) -> serve a fresh resource there, fetch it as digest does,
# and return why it failed, or None
Fetch = Callable[[FeedServer, Settings, Connection, str], str | None]


def _image(server: FeedServer, settings: Settings, conn: Connection, name: str) -> str | None:
    """A post's thumbnail (digest/images.py)."""
    from PIL import Image

    from digest.images import cache_thumbnails

    out = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 120, 40)).save(out, "JPEG")
    url = server.serve(f"/{name}.jpg", out.getvalue(), content_type="image/jpeg")
    post = Post("b-1", "b", "A post", "https://b.example/1", None, None, NOW, "", image=url)
    skipped = cache_thumbnails(settings, conn, [post], now=NOW)
    return skipped[0].reason if skipped else None


def _page(server: FeedServer, settings: Settings, conn: Connection, name: str) -> str | None:
    """A post's own page (excerpt: page, digest/feeds/page.py)."""
    from digest.feeds.page import fetch_ledes

    html = "<html><body><article><p>The lede of a post, on its own page.</p></article></body>"
    url = server.serve(f"/{name}.html", html, content_type="text/html")
    result = fetch_ledes(settings, [url])[url]
    return result.reason if isinstance(result, TargetRefused) else result[1]


def _featured(server: FeedServer, settings: Settings, conn: Connection, name: str) -> str | None:
    """A featured post's page, read for its Webmention endpoint (digest/webmention.py)."""
    from digest import webmention

    url = server.serve(
        f"/{name}.html",
        "<html><body><p>A post.</p></body></html>",
        content_type="text/html",
        headers={"Link": '</wm>; rel="webmention"'},
    )

    async def go() -> str | None:
        async with new_client(settings, accept="text/html") as client:
            return await webmention.discover(client, url, settings=settings)

    try:
        endpoint = asyncio.run(go())
    except FetchError as exc:
        return exc.reason
    return None if endpoint == server.url("/wm") else f"found {endpoint}"


@pytest.mark.parametrize(
    "fetch", [_image, _page, _featured], ids=["image", "post-page", "webmention-discovery"]
)
def test_each_third_party_path_is_guarded(
    feed_server: FeedServer, conn: Connection, fetch: Fetch
) -> None:
    reason = fetch(feed_server, Settings(), conn, "refused")
    assert reason is not None and "loopback address 127.0.0.1" in reason
    assert "DIGEST_ALLOW_PRIVATE_TARGETS=1" in reason
    assert feed_server.log == []  # refused before connecting
    assert fetch(feed_server, Settings(allow_private_targets=True), conn, "allowed") is None
    assert len(feed_server.log) == 1


def test_a_webmention_endpoint_is_guarded(feed_server: FeedServer) -> None:
    """The endpoint a page named, sent source and target (digest/webmention.py): the local
    server has no POST handler, so a 501 proves the request reached it."""
    from digest import webmention

    endpoint = feed_server.url("/wm")

    async def go(settings: Settings) -> int:
        async with new_client(settings, accept="*/*") as client:
            status, _ = await webmention.post(
                client,
                endpoint,
                source="https://digest.example.org/archive/1",
                target="https://b.example/1",
                settings=settings,
            )
            return status

    with pytest.raises(TargetRefused, match="loopback address 127.0.0.1"):
        asyncio.run(go(Settings()))
    assert asyncio.run(go(Settings(allow_private_targets=True))) == 501
