"""Parsing in a process pool: the same answers as in-process, failures per feed.

Real worker processes (spawned), real fixtures, a real local server for gather.
"""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import feedparser.api
import feedparser.html
import feedparser.mixin
import pytest

from digest.config import Settings, load_blogs
from digest.errors import FeedError
from digest.feeds.expat import BufferedExpatParser
from digest.feeds.gather import GatherReport, gather
from digest.feeds.parse import ParsedFeed, cp1252_table, parse_feed
from digest.feeds.pool import FeedParser, ParseFailure, parse_job
from digest.store import connect
from digest.store.posts import catalogue

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
FEEDS = Path(__file__).parent / "fixtures" / "feeds"
HEADERS = {"content-type": "application/rss+xml; charset=utf-8"}
BROKEN = b"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title></chanel></rss>"
CRASH = b"<crash-the-worker/>"


def crashing_job(body: bytes, url: str, headers: Mapping[str, str]) -> ParsedFeed | ParseFailure:
    """parse_job, except that one body kills the worker process outright."""
    if body == CRASH:
        os._exit(1)
    return parse_job(body, url, headers)


def parse_all(parser: FeedParser, bodies: dict[str, bytes]) -> dict[str, ParsedFeed | str]:
    async def one(name: str, body: bytes) -> ParsedFeed | str:
        try:
            return await parser.parse(body, url=f"https://b.example/{name}", headers=HEADERS)
        except FeedError as exc:
            return exc.reason

    async def run() -> list[ParsedFeed | str]:
        async with parser:
            return await asyncio.gather(*(one(n, b) for n, b in bodies.items()))

    return dict(zip(bodies, asyncio.run(run()), strict=True))


def fixture_bodies() -> dict[str, bytes]:
    bodies = {p.name: p.read_bytes() for p in sorted(FEEDS.iterdir())}
    bodies["broken.xml"] = BROKEN
    bodies["page.html"] = b"<!doctype html><html><body>hello</body></html>"
    return bodies


def test_the_pool_gives_the_same_feeds_and_errors_as_this_process() -> None:
    bodies = fixture_bodies()
    serial_parser = FeedParser(workers=0, start_after=0)
    pooled_parser = FeedParser(workers=2, start_after=0)
    serial = parse_all(serial_parser, bodies)
    pooled = parse_all(pooled_parser, bodies)
    assert not serial_parser.pooled and pooled_parser.pooled
    assert pooled == serial
    assert len(pooled["xxiivv.rss.xml"].entries) == 735  # type: ignore[union-attr]
    # Errors come back per feed, with the reason the serial path gives.
    assert serial["broken.xml"] == pooled["broken.xml"]
    assert str(pooled["broken.xml"]).startswith("not a feed: malformed XML")
    assert pooled["page.html"] == "not a feed: got an HTML page"


def test_the_first_bodies_of_a_run_stay_in_this_process() -> None:
    parser = FeedParser(workers=2, start_after=3)
    bodies = dict(list(fixture_bodies().items())[:3])
    parse_all(parser, bodies)
    assert parser.parsed == 3 and not parser.pooled


def test_a_feed_that_kills_its_worker_fails_alone() -> None:
    bodies = fixture_bodies()
    bodies["crash.xml"] = CRASH
    parser = FeedParser(workers=2, start_after=0, job=crashing_job)
    out = parse_all(parser, bodies)
    assert out.pop("crash.xml") == "the feed parser crashed on this feed"
    assert out == parse_all(FeedParser(workers=0), {n: bodies[n] for n in out})
    assert parser.restarts >= 1


def test_a_feed_error_crosses_processes_whole() -> None:
    exc = FeedError("HTTP 429 Too Many Requests", url="https://x/", http_status=429, retry_after=60)
    failure = pickle.loads(pickle.dumps(ParseFailure.of(exc)))
    back = failure.error()
    assert (back.reason, back.url, back.http_status, back.retry_after) == (
        "HTTP 429 Too Many Requests",
        "https://x/",
        429,
        60,
    )
    assert str(back) == str(exc)


def test_gather_with_a_pool_records_what_gather_without_one_does(
    feed_server, write_blogs, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    feeds = {
        "xxiivv": feed_server.serve_fixture("/x.xml", "xxiivv.rss.xml"),
        "rabbits": feed_server.serve_fixture("/r.xml", "100r.rss.xml"),
        "sander": feed_server.serve_fixture("/s.xml", "sander.atom.xml"),
        "broken": feed_server.serve("/b.xml", BROKEN),
    }
    blogs_path = write_blogs(feeds)

    def run(db: Path, parser: FeedParser) -> tuple[GatherReport, dict[str, list[str]]]:
        settings = Settings(blogs=blogs_path, db=db)
        conn = connect(db)
        try:
            report = asyncio.run(
                gather(settings, load_blogs(blogs_path), conn, now=NOW, parser=parser)
            )
            posts = {b: sorted(p.id for p in catalogue(conn, b)) for b in feeds}
        finally:
            conn.close()
        return report, posts

    pooled_parser = FeedParser(workers=2, start_after=0)
    serial_report, serial_posts = run(tmp_path / "serial.db", FeedParser(workers=0))
    pooled_report, pooled_posts = run(tmp_path / "pooled.db", pooled_parser)
    assert pooled_parser.pooled
    assert pooled_posts == serial_posts and len(pooled_posts["xxiivv"]) == 735

    def summary(report: GatherReport) -> list[tuple[str, str, int, str | None]]:
        return [(r.blog, r.status, r.new_posts, r.error) for r in report.results]

    assert summary(pooled_report) == summary(serial_report)
    broken = next(r for r in pooled_report.results if r.blog == "broken")
    assert broken.status == "error" and broken.error and "malformed XML" in broken.error


def test_feedparser_runs_on_the_buffered_expat_driver() -> None:
    assert feedparser.api.PREFERRED_XML_PARSERS[0] == "digest.feeds.expat"
    import xml.sax

    parser = xml.sax.make_parser(feedparser.api.PREFERRED_XML_PARSERS)
    assert isinstance(parser, BufferedExpatParser)
    # Text split by entities and CDATA arrives whole, and unchanged.
    body = (
        b"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title><item>"
        b"<title>a &amp; b &lt;c&gt; <![CDATA[d & e]]> f</title><guid>1</guid>"
        b"<description>&lt;p&gt;one&lt;/p&gt;&lt;p&gt;two &amp;amp; three&lt;/p&gt;</description>"
        b"</item></channel></rss>"
    )
    entry = parse_feed(body, url="https://b.example/", headers=HEADERS).entries[0]
    assert entry.title == "a & b <c> d & e f"
    assert entry.excerpt == "one two & three"


def test_the_cp1252_table_translates_exactly_as_feedparsers_dict() -> None:
    original = feedparser.html._cp1252
    assert isinstance(original, dict)
    table = cp1252_table(original)
    assert table is not None and feedparser.mixin._cp1252 == table
    every = "".join(map(chr, range(0x110000)))
    assert every.translate(table) == every.translate(original)
    assert "\x80\x96\x81".translate(table) == "\u20ac\u2013\x81"
    # Anything a string table cannot hold keeps feedparser's dict.
    assert cp1252_table({0x80: "ab"}) is None
    assert cp1252_table({0x110000: "a"}) is None


@pytest.mark.parametrize("name", sorted(p.name for p in FEEDS.iterdir()))
def test_parse_job_returns_what_parse_feed_returns(name: str) -> None:
    body = (FEEDS / name).read_bytes()
    assert parse_job(body, "https://b.example/f", HEADERS) == parse_feed(
        body, url="https://b.example/f", headers=HEADERS
    )


def test_a_parsed_feed_crosses_the_process_boundary_as_plain_tuples() -> None:
    """A worker's answer is pickled with its entries as tuples (no Entry object per entry:
    half the CPU to unpickle 70,000 of them), and comes back equal, field by field."""
    body = (FEEDS / "xxiivv.rss.xml").read_bytes()
    parsed = parse_feed(body, url="https://wiki.xxiivv.com/links/rss.xml", headers=HEADERS)
    blob = pickle.dumps(parsed, pickle.HIGHEST_PROTOCOL)
    assert b"Entry" not in blob
    again = pickle.loads(blob)
    assert again == parsed
    assert [type(e) for e in again.entries] == [type(e) for e in parsed.entries]
