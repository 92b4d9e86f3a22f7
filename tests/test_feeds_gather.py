"""gather against a real local server and a real SQLite file."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.config import Settings, load_blogs
from digest.feeds import pool as pool_module
from digest.feeds.gather import GatherReport, backoff, gather_sync
from digest.store import connect
from digest.store.feeds import feed_states, get_feed
from digest.store.posts import catalogue, posts_between

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


class Env:
    def __init__(self, blogs_path: Path, db_path: Path, **settings: Any) -> None:
        self.settings = Settings(blogs=blogs_path, db=db_path, **settings)
        self.blogs = load_blogs(blogs_path)
        self.conn = connect(db_path)

    def run(self, now: datetime = NOW, *, force: bool = False) -> GatherReport:
        return gather_sync(self.settings, self.blogs, self.conn, now=now, force=force)

    def result(self, report: GatherReport, blog: str) -> Any:
        return next(r for r in report.results if r.blog == blog)


@pytest.fixture
def env(write_blogs, db_path):  # type: ignore[no-untyped-def]
    made: list[Env] = []

    def make(feeds: dict[str, str | None], **kw: Any) -> Env:
        homepages = kw.pop("homepages", None)
        lookback = kw.pop("lookback_days", 7)
        e = Env(write_blogs(feeds, homepages=homepages, lookback_days=lookback), db_path, **kw)
        made.append(e)
        return e

    yield make
    for e in made:
        e.conn.close()


def test_first_run_records_everything_but_only_the_window_is_new(feed_server, env) -> None:
    url = feed_server.serve_fixture("/rss.xml", "xxiivv.rss.xml")
    feed_server.add_entry(
        "/rss.xml",
        title="Fresh",
        link="https://wiki.xxiivv.com/site/fresh.html",
        guid="9001",
        published=NOW - timedelta(days=2),
    )
    feed_server.add_entry(
        "/rss.xml",
        title="Older",
        link="https://wiki.xxiivv.com/site/older.html",
        guid="9002",
        published=NOW - timedelta(days=9),
    )
    e = env({"xxiivv": url})
    report = e.run()
    result = e.result(report, "xxiivv")
    assert (result.status, result.http_status, result.new_posts) == ("ok", 200, 1)
    assert result.newest == NOW - timedelta(days=2)
    assert len(catalogue(e.conn, "xxiivv")) == 737
    assert [
        p.title for p in posts_between(e.conn, NOW - timedelta(days=1), NOW + timedelta(1))
    ] == ["Fresh"]

    # The next run: a post published since is new; nothing old comes back.
    later = NOW + timedelta(days=1)
    feed_server.add_entry(
        "/rss.xml",
        title="Next day",
        link="https://wiki.xxiivv.com/site/next.html",
        guid="9003",
        published=later - timedelta(hours=1),
    )
    result = e.result(e.run(later), "xxiivv")
    assert result.new_posts == 1
    assert [p.title for p in posts_between(e.conn, later, later + timedelta(1))] == ["Next day"]


def test_undated_posts_on_a_first_run_are_back_catalogue(feed_server, env) -> None:
    url = feed_server.serve(
        "/rss.xml",
        b"""<?xml version='1.0'?><rss version='2.0'><channel>
        <title>U</title><item><title>Undated</title><link>https://u.example/1</link></item>
        </channel></rss>""",
    )
    e = env({"undated": url})
    assert e.result(e.run(), "undated").new_posts == 0
    feed_server.add_entry("/rss.xml", title="Undated 2", link="https://u.example/2")
    later = NOW + timedelta(hours=2)
    assert e.result(e.run(later), "undated").new_posts == 1  # undated, but first seen now


def test_conditional_round_trip_saves_validators_and_skips_parsing(
    feed_server, env, monkeypatch
) -> None:
    odd = 'W/"abc;  def"'
    url = feed_server.serve_fixture(
        "/feed.xml", "sander.atom.xml", etag=odd, last_modified="Sun, 29 Nov 2026 10:00:00 GMT"
    )
    e = env({"sander": url})
    e.run()
    record = get_feed(e.conn, "sander")
    assert record is not None and (record.etag, record.last_modified) == (
        odd,
        "Sun, 29 Nov 2026 10:00:00 GMT",
    )

    parsed: list[str] = []
    real = pool_module.parse_feed
    monkeypatch.setattr(
        pool_module, "parse_feed", lambda b, **kw: parsed.append(kw["url"]) or real(b, **kw)
    )
    # The server now omits Last-Modified on its 304s: the stored one must survive.
    feed_server.routes["/feed.xml"].last_modified = None
    result = e.result(e.run(NOW + timedelta(hours=2)), "sander")
    assert (result.status, result.http_status, result.failures) == ("not_modified", 304, 0)
    assert parsed == []
    assert feed_server.hits("/feed.xml")[-1].headers["if-none-match"] == odd
    record = get_feed(e.conn, "sander")
    assert record is not None and record.last_modified == "Sun, 29 Nov 2026 10:00:00 GMT"
    # A 304 carrying a new ETag updates it.
    feed_server.routes["/feed.xml"].headers["ETag"] = '"rotated"'
    feed_server.routes["/feed.xml"].etag = None
    feed_server.routes["/feed.xml"].last_modified = "Sun, 29 Nov 2026 10:00:00 GMT"
    e.run(NOW + timedelta(hours=4))
    record = get_feed(e.conn, "sander")
    assert record is not None and record.etag == '"rotated"'


def test_validators_of_an_unchanged_body_are_saved_each_as_the_latest_response_sent_them(
    feed_server, env
) -> None:
    # REFERENCE.md section 1: the bug Feedbin, NetNewsWire and CommaFeed shipped was keeping
    # the old validators when a 200 brought the same body; then every poll is a full download.
    url = feed_server.serve_fixture(
        "/feed.xml", "colah.rss.xml", etag='"one"', last_modified="Sun, 29 Nov 2026 10:00:00 GMT"
    )
    e = env({"colah": url})
    e.run()
    route = feed_server.routes["/feed.xml"]
    route.etag, route.last_modified = '"two"', None  # same body, new ETag, no Last-Modified
    result = e.result(e.run(NOW + timedelta(hours=2)), "colah")
    assert (result.status, result.http_status, result.new_posts) == ("ok", 200, 0)
    record = get_feed(e.conn, "colah")
    assert record is not None and (record.etag, record.last_modified) == ('"two"', None)
    # Nothing synthesised: the next poll sends back only what the server gave.
    e.run(NOW + timedelta(hours=4))
    hit = feed_server.hits("/feed.xml")[-1].headers
    assert hit["if-none-match"] == '"two"' and "if-modified-since" not in hit
    assert e.result(e.run(NOW + timedelta(hours=6)), "colah").status == "not_modified"


def test_next_poll_is_respected_unless_forced(feed_server, env) -> None:
    url = feed_server.serve_fixture(
        "/feed.xml", "colah.rss.xml", headers={"Cache-Control": "max-age=86400"}
    )
    e = env({"colah": url})
    first = e.result(e.run(), "colah")
    assert first.next_poll == NOW + timedelta(days=1)
    assert e.result(e.run(NOW + timedelta(hours=3)), "colah").status == "skipped"
    assert len(feed_server.hits("/feed.xml")) == 1
    assert e.result(e.run(NOW + timedelta(hours=3), force=True), "colah").status == "not_modified"
    # Clamped: a max-age of a minute still waits an hour, a year only a week.
    feed_server.routes["/feed.xml"].headers["Cache-Control"] = "max-age=60"
    feed_server.routes["/feed.xml"].etag = '"changed"'
    assert e.result(e.run(NOW + timedelta(days=2)), "colah").next_poll == NOW + timedelta(
        days=2, hours=1
    )


@pytest.mark.parametrize(("total", "per_host", "peak"), [(64, 2, 2), (1, 5, 1)])
def test_fetches_are_limited_per_host_and_overall(
    feed_server, env, total: int, per_host: int, peak: int
) -> None:
    feeds = {
        f"b{i}": feed_server.serve_fixture(f"/{i}.xml", "colah.rss.xml", delay=0.1)
        for i in range(6)
    }
    e = env(feeds, fetch_concurrency=total, fetch_per_host=per_host)
    report = e.run()
    assert {r.status for r in report.results} == {"ok"}
    assert feed_server.peak == peak  # all six on one host: never more at once than allowed


def test_permanent_redirects_rewrite_the_stored_url_a_302_does_not(feed_server, env) -> None:
    feed_server.serve_fixture("/new-a.xml", "colah.rss.xml")
    feed_server.serve_fixture("/new-b.xml", "sander.atom.xml")
    feed_server.redirect("/a.xml", "/mid-a.xml", 301)
    feed_server.redirect("/mid-a.xml", "/new-a.xml", 308)
    feed_server.redirect("/b.xml", "/mid-b.xml", 301)
    feed_server.redirect("/mid-b.xml", "/new-b.xml", 302)
    e = env({"a": feed_server.url("/a.xml"), "b": feed_server.url("/b.xml")})
    report = e.run()
    assert e.result(report, "a").url == feed_server.url("/new-a.xml")
    assert e.result(report, "b").url == feed_server.url("/b.xml")
    e.run(NOW + timedelta(hours=2))
    assert len(feed_server.hits("/a.xml")) == 1  # the next poll goes to the new URL
    assert len(feed_server.hits("/b.xml")) == 2


def test_410_marks_gone_stops_polling_and_tells_the_curator(feed_server, env) -> None:
    e = env({"gone": feed_server.fail("/feed.xml", 410)})
    result = e.result(e.run(), "gone")
    assert (result.status, result.http_status, result.next_poll) == ("gone", 410, None)
    state = feed_states(e.conn)["gone"]
    assert state.status == "gone" and "removed" in (state.error or "")
    assert e.conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'feed_gone'").fetchone()[0] == 1
    assert e.result(e.run(NOW + timedelta(days=30)), "gone").status == "skipped"
    assert len(feed_server.hits("/feed.xml")) == 1


def test_429_retry_after_is_honoured_and_capped(feed_server, env) -> None:
    e = env(
        {
            "slow": feed_server.fail("/a.xml", 429, headers={"Retry-After": "10800"}),
            "greedy": feed_server.fail("/b.xml", 503, headers={"Retry-After": str(30 * 86400)}),
        }
    )
    report = e.run()
    assert e.result(report, "slow").next_poll >= NOW + timedelta(hours=3)
    assert e.result(report, "greedy").next_poll == NOW + timedelta(days=2)
    assert e.result(report, "slow").failures == 1


def test_failures_back_off_exponentially_and_are_never_silently_disabled(feed_server, env) -> None:
    e = env({"broken": feed_server.fail("/feed.xml", 500)})
    delays = []
    now = NOW
    for _ in range(8):
        result = e.result(e.run(now), "broken")
        assert result.status == "error" and result.error == "HTTP 500 Internal Server Error"
        delays.append(result.next_poll - now)
        now = result.next_poll
    assert result.failures == 8
    assert delays[0] <= timedelta(minutes=30) and delays[-1] >= timedelta(hours=12)
    assert max(delays) <= timedelta(days=1)
    assert feed_states(e.conn)["broken"].status == "error"  # still polled, never disabled


def test_backoff_has_jitter() -> None:
    import random

    rng = random.Random(1)
    values = {backoff(3, NOW, rng=rng) for _ in range(20)}
    assert len(values) > 1
    assert all(NOW + timedelta(hours=1) <= v <= NOW + timedelta(hours=2) for v in values)


def test_one_failing_feed_never_stops_the_others(feed_server, env) -> None:
    e = env(
        {
            "ok1": feed_server.serve_fixture("/ok1.xml", "colah.rss.xml"),
            "stalls": feed_server.serve_fixture("/stall.xml", "sander.atom.xml", stall_after=100),
            "html": feed_server.serve(
                "/page", "<!doctype html><html><p>hi</p></html>", content_type="text/html"
            ),
            "refused": "http://127.0.0.1:9/feed.xml",
            "malformed": feed_server.serve("/bad.xml", "<rss><channel><title>x</titl"),
            "ok2": feed_server.serve_fixture("/ok2.xml", "100r.rss.xml"),
        },
        fetch_timeout=0.5,
    )
    report = e.run()
    assert [r.blog for r in report.results] == [
        "ok1",
        "stalls",
        "html",
        "refused",
        "malformed",
        "ok2",
    ]
    status = {r.blog: (r.status, r.error) for r in report.results}
    assert status["ok1"] == ("ok", None) and status["ok2"] == ("ok", None)
    assert status["stalls"] == ("error", "timed out after 0.5 s")
    assert status["html"] == ("error", "not a feed: got an HTML page")
    assert status["refused"] == ("error", "connection refused by 127.0.0.1")
    assert status["malformed"][1].startswith("not a feed: malformed XML")
    # The broken body's validators are not kept: the next poll fetches it whole again.
    record = get_feed(e.conn, "malformed")
    assert record is not None and record.etag is None


def test_guid_rewrite_is_not_a_new_post(feed_server, env) -> None:
    url = feed_server.serve_fixture("/rss.xml", "xxiivv.rss.xml")
    e = env({"xxiivv": url})
    e.run()
    before = {p.id: p.title for p in catalogue(e.conn, "xxiivv")}
    # The blog moves its guids to full URLs (keeping links and titles).
    body = feed_server.routes["/rss.xml"].body
    feed_server.serve(
        "/rss.xml",
        body.replace(
            b"<guid isPermaLink='false'>", b"<guid isPermaLink='false'>https://wiki.xxiivv.com/#"
        ),
    )
    result = e.result(e.run(NOW + timedelta(hours=2)), "xxiivv")
    assert result.status == "ok" and result.new_posts == 0
    after = {p.id: p.title for p in catalogue(e.conn, "xxiivv")}
    assert after == before  # same ids, same 735 posts: several share link and title, none merged
    assert len(after) == 735
    rewrites = e.conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'guid_rewrite'").fetchone()[
        0
    ]
    assert rewrites == 735


def test_same_link_and_title_under_a_new_guid_is_new_while_the_old_one_stays(
    feed_server, env
) -> None:
    # XXIIVV posts "Run" again on the same page: a distinct item, not a rewrite.
    url = feed_server.serve_fixture("/rss.xml", "xxiivv.rss.xml")
    e = env({"xxiivv": url})
    e.run()
    feed_server.add_entry(
        "/rss.xml",
        title="Gyro 6",
        link="https://wiki.xxiivv.com/site/origami.html",
        guid="9999",
        published=NOW,
    )
    result = e.result(e.run(NOW + timedelta(hours=2)), "xxiivv")
    assert result.new_posts == 1


def test_future_dates_are_clamped_to_first_seen(feed_server, env) -> None:
    url = feed_server.serve_fixture("/feed.xml", "colah.rss.xml")
    feed_server.add_entry(
        "/feed.xml",
        title="From the future",
        link="https://colah.github.io/f",
        published=NOW + timedelta(days=400),
    )
    e = env({"colah": url})
    e.run()
    post = next(p for p in catalogue(e.conn, "colah") if p.title == "From the future")
    assert post.published == NOW == post.first_seen


def test_same_post_in_two_blogs_is_reported_once(feed_server, env) -> None:
    link = "https://sander.ai/2026/11/29/new.html"
    a = feed_server.serve_fixture("/a.xml", "sander.atom.xml")
    b = feed_server.serve_fixture("/b.xml", "colah.rss.xml")
    feed_server.add_entry("/a.xml", title="New", link=link, published=NOW - timedelta(hours=5))
    e = env({"sander": a, "colah": b})
    e.run()
    feed_server.add_entry(
        "/b.xml",
        title="Worth reading",
        link="http://www.sander.ai/2026/11/29/new.html/?utm_source=x",
        published=NOW,
    )
    report = e.run(NOW + timedelta(hours=2))
    assert len(report.duplicates) == 1
    dup = report.duplicates[0]
    assert dup.blog == "colah" and dup.of_blog == "sander"
    assert e.result(report, "colah").new_posts == 0
    window = posts_between(e.conn, NOW - timedelta(days=1), NOW + timedelta(days=1))
    assert [p.blog for p in window] == ["sander"]
    assert e.run(NOW + timedelta(hours=4), force=True).duplicates == []  # reported once


def test_posts_edited_in_place_are_updated_not_duplicated(feed_server, env) -> None:
    url = feed_server.serve_fixture("/index.xml", "lilianweng.index.xml")
    e = env({"lilianweng": url})
    e.run()
    route = feed_server.routes["/index.xml"]
    feed_server.serve(
        "/index.xml",
        route.body.replace(
            b"Harness Engineering for Self-Improvement", b"Harness Engineering (revised)"
        ),
    )
    e.run(NOW + timedelta(hours=2))
    titles = [p.title for p in catalogue(e.conn, "lilianweng")]
    assert "Harness Engineering (revised)" in titles and len(titles) == 53


def test_autodiscovery_is_stored_once(feed_server, env) -> None:
    feed_server.serve_fixture("/feed/", "optimisticunderground.rss.xml")
    homepage = feed_server.serve(
        "/",
        "<!doctype html><html><head><link rel='alternate' type='application/rss+xml' "
        "href='/feed/' title='Delayed'></head><body>mixes</body></html>",
        content_type="text/html",
    )
    e = env({"delayed": None}, homepages={"delayed": homepage})
    result = e.result(e.run(), "delayed")
    assert result.status == "ok" and result.url == feed_server.url("/feed/")
    e.run(NOW + timedelta(hours=2))
    assert len(feed_server.hits("/")) == 1
    assert len(feed_server.hits("/feed/")) == 2


def test_a_changed_feed_url_in_blogs_yaml_starts_afresh(
    feed_server, env, write_blogs, db_path
) -> None:
    e = env({"colah": feed_server.fail("/old.xml", 410)})
    e.run()
    fixed = Env(
        write_blogs({"colah": feed_server.serve_fixture("/new.xml", "colah.rss.xml")}), db_path
    )
    try:
        result = fixed.result(fixed.run(NOW + timedelta(hours=1)), "colah")
        assert (result.status, result.failures) == ("ok", 0)
    finally:
        fixed.conn.close()


def test_large_bodies_start_the_pool_before_the_24th() -> None:
    """A cold run of large feeds (XXIIVV's 364 KB parse in about 0.25 s) must not keep one core
    parsing while the others wait: past 256 KiB in this process, the rest go to the pool."""
    xxiivv = (Path(__file__).parent / "fixtures" / "feeds" / "xxiivv.rss.xml").read_bytes()
    headers = {"content-type": "application/rss+xml; charset=utf-8"}

    async def run(parser: pool_module.FeedParser) -> list[int]:
        sizes = []
        async with parser:
            for i in range(2):
                parsed = await parser.parse(xxiivv, url=f"https://b.example/{i}", headers=headers)
                sizes.append(len(parsed.entries))
        return sizes

    parser = pool_module.FeedParser(workers=2)
    assert asyncio.run(run(parser)) == [735, 735]
    assert parser.parsed == 2 and parser.pooled
