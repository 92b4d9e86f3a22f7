"""The one httpx seam against a real local server: validators, redirects, limits, errors."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from digest import __version__
from digest.config import Settings
from digest.errors import FeedError
from digest.feeds.http import (
    Response,
    cache_seconds,
    fetch,
    new_client,
    retry_after_seconds,
)


def settings(**kw: Any) -> Settings:
    return Settings(base_url="https://digest.example.org", **kw)


def get(url: str, **kw: Any) -> Response:
    s = settings()

    async def run() -> Response:
        async with new_client(s) as client:
            options = {"timeout": 5.0, "max_bytes": s.fetch_max_bytes, **kw}
            return await fetch(client, url, **options)

    return asyncio.run(run())


def fails(call: Callable[[], Awaitable[Response]] | Callable[[], Response]) -> FeedError:
    with pytest.raises(FeedError) as info:
        call()
    return info.value


def test_polite_request_headers(feed_server) -> None:
    url = feed_server.serve_fixture("/feed.xml", "colah.rss.xml")
    get(url)
    hit = feed_server.hits("/feed.xml")[0]
    assert hit.headers["user-agent"] == f"digest/{__version__} (+https://digest.example.org)"
    # The exact values of REFERENCE.md section 1, spelled out (not the constant under test).
    assert hit.headers["accept"] == (
        "application/atom+xml, application/rss+xml, application/feed+json, "
        "application/xml;q=0.9, */*;q=0.8"
    )
    assert hit.headers["accept-encoding"] == "gzip, deflate"
    assert "cookie" not in hit.headers and "referer" not in hit.headers


def test_conditional_get_sends_validators_back_byte_for_byte(feed_server) -> None:
    odd_etag = 'W/"v1;  spaced\tand-odd"'
    odd_date = "Tue, 15 Nov 1994 12:45:26 GMT"
    url = feed_server.serve_fixture(
        "/feed.xml", "colah.rss.xml", etag=odd_etag, last_modified=odd_date
    )
    first = get(url)
    assert first.status == 200 and first.body
    assert (first.etag, first.last_modified) == (odd_etag, odd_date)
    second = get(url, etag=first.etag, last_modified=first.last_modified)
    assert second.status == 304 and second.body is None
    hit = feed_server.hits("/feed.xml")[1]
    assert hit.headers["if-none-match"] == odd_etag
    assert hit.headers["if-modified-since"] == odd_date
    # A stale validator gets the whole body again.
    assert get(url, etag='"other"').status == 200


def test_cookies_are_never_kept(feed_server) -> None:
    url = feed_server.serve_fixture(
        "/feed.xml", "colah.rss.xml", headers={"Set-Cookie": "session=abc; Path=/"}
    )
    s = settings()

    async def twice() -> None:
        async with new_client(s) as client:
            for _ in range(2):
                await fetch(client, url, timeout=5, max_bytes=s.fetch_max_bytes)

    asyncio.run(twice())
    assert all("cookie" not in h.headers for h in feed_server.hits("/feed.xml"))


def test_permanent_redirect_chain_gives_the_new_url(feed_server) -> None:
    final = feed_server.serve_fixture("/new.xml", "colah.rss.xml")
    feed_server.redirect("/old.xml", "/mid.xml", 301)
    feed_server.redirect("/mid.xml", "/new.xml", 308)
    response = get(feed_server.url("/old.xml"))
    assert response.status == 200
    assert [s for s, _ in response.hops] == [301, 308]
    assert response.moved_permanently == final


def test_a_302_in_the_chain_keeps_the_old_url(feed_server) -> None:
    feed_server.serve_fixture("/new.xml", "colah.rss.xml")
    feed_server.redirect("/old.xml", "/mid.xml", 301)
    feed_server.redirect("/mid.xml", "/new.xml", 302)
    response = get(feed_server.url("/old.xml"))
    assert response.status == 200 and response.url == feed_server.url("/new.xml")
    assert response.moved_permanently is None


def test_redirect_loop_is_an_error(feed_server) -> None:
    feed_server.redirect("/a", "/b", 302)
    feed_server.redirect("/b", "/a", 302)
    assert fails(lambda: get(feed_server.url("/a"))).reason == "redirect loop"


def test_410_gone(feed_server) -> None:
    error = fails(lambda: get(feed_server.fail("/feed.xml", 410)))
    assert error.http_status == 410
    assert error.reason == "HTTP 410 Gone: the feed was removed"


def test_429_with_retry_after_seconds(feed_server) -> None:
    url = feed_server.fail("/feed.xml", 429, headers={"Retry-After": "3600"})
    error = fails(lambda: get(url))
    assert (error.http_status, error.retry_after) == (429, 3600)
    assert error.reason == "HTTP 429 Too Many Requests, asked to wait 60 min"


def test_403_from_cloudflare_is_named(feed_server) -> None:
    url = feed_server.fail("/feed.xml", 403, headers={"Server": "cloudflare"})
    assert fails(lambda: get(url)).reason == "HTTP 403 from Cloudflare"


def test_stall_mid_body_trips_the_total_time_limit(feed_server) -> None:
    url = feed_server.serve_fixture("/feed.xml", "colah.rss.xml", stall_after=500)
    start = time.monotonic()
    error = fails(lambda: get(url, timeout=0.5))
    assert error.reason == "timed out after 0.5 s"
    assert time.monotonic() - start < 3


def test_drip_feed_trips_the_total_time_limit(feed_server) -> None:
    # A byte every 50 ms never trips an inactivity timeout; only a total limit stops it.
    url = feed_server.serve_fixture("/feed.xml", "colah.rss.xml", drip=0.05)
    start = time.monotonic()
    assert fails(lambda: get(url, timeout=0.6)).reason == "timed out after 0.6 s"
    assert time.monotonic() - start < 3


def test_oversized_body_with_content_length(feed_server) -> None:
    url = feed_server.serve("/big.xml", b"<rss>" + b" " * 5000 + b"</rss>")
    assert fails(lambda: get(url, max_bytes=4096)).reason == "body larger than 4 KiB"


def test_oversized_body_without_content_length(feed_server) -> None:
    url = feed_server.serve("/big.xml", b"<rss>" + b" " * 5000 + b"</rss>", content_length=False)
    assert fails(lambda: get(url, max_bytes=4096)).reason == "body larger than 4 KiB"


def test_gzip_is_decoded(feed_server) -> None:
    url = feed_server.serve_fixture("/feed.xml", "xxiivv.rss.xml", gzip=True)
    response = get(url)
    assert response.headers["content-encoding"] == "gzip"
    assert response.body is not None and response.body.startswith(b"<?xml")


def test_gzip_bomb_is_capped_after_decompression(feed_server) -> None:
    bomb = gzip.compress(b"\0" * (40 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    url = feed_server.serve("/bomb.xml", bomb, encoding="gzip")
    error = fails(lambda: get(url, max_bytes=15 * 1024 * 1024))
    assert error.reason == "body larger than 15 MiB"


def test_corrupt_gzip(feed_server) -> None:
    url = feed_server.serve("/bad.xml", b"\x1f\x8b\x08\x00garbage-garbage", encoding="gzip")
    assert "could not decompress" in fails(lambda: get(url)).reason


def test_connection_refused_is_explained() -> None:
    error = fails(lambda: get("http://127.0.0.1:9/feed.xml"))
    assert error.reason == "connection refused by 127.0.0.1"


def test_cache_seconds() -> None:
    assert cache_seconds({"Cache-Control": "public, max-age=7200"}) == 7200
    assert cache_seconds({"cache-control": "no-cache"}) == 0
    assert cache_seconds({}) is None
    assert (
        cache_seconds(
            {"Date": "Mon, 30 Nov 2026 08:00:00 GMT", "Expires": "Mon, 30 Nov 2026 10:00:00 GMT"}
        )
        == 7200
    )
    assert cache_seconds({"Expires": "0"}) == 0


def test_retry_after_seconds_or_date() -> None:
    assert retry_after_seconds({"Retry-After": "120"}) == 120
    date = {"Date": "Mon, 30 Nov 2026 08:00:00 GMT", "Retry-After": "Mon, 30 Nov 2026 09:00:00 GMT"}
    assert retry_after_seconds(date) == 3600
    assert retry_after_seconds({"Retry-After": "soon"}) is None
