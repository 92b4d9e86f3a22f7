"""parse_feed: the feedparser seam, JSON Feed, excerpts, identity. Values in, values out."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import FeedError
from digest.feeds.parse import parse_feed
from digest.feeds.text import excerpt, html_to_text

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
RSS = {"content-type": "application/rss+xml; charset=utf-8"}


def rss(items: str, *, decl: str = "<?xml version='1.0' encoding='utf-8'?>") -> bytes:
    return (
        f"{decl}<rss version='2.0'><channel><title>T</title><link>https://b.example/</link>"
        f"{items}</channel></rss>"
    ).encode()


def test_xxiivv_parses_into_735_entries_with_distinct_ids() -> None:
    parsed = parse_feed((FEEDS / "xxiivv.rss.xml").read_bytes(), url="https://x/", headers=RSS)
    assert len(parsed.entries) == 735
    assert len({e.key for e in parsed.entries}) == 735
    assert parsed.warning is None
    # Many items share one link: the link must not be the identity.
    assert len({e.url for e in parsed.entries}) < 735
    first = parsed.entries[0]
    assert (first.key, first.title) == ("733", "Gyro 6")
    # +0900 dates become UTC.
    assert first.published == datetime(2020, 12, 15, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("100r.rss.xml", 45),
        ("sander.atom.xml", 10),
        ("lilianweng.index.xml", 53),
        ("colah.rss.xml", 6),
        ("optimisticunderground.rss.xml", 4),
    ],
)
def test_every_fixture_parses_to_plain_text(name: str, count: int) -> None:
    parsed = parse_feed((FEEDS / name).read_bytes(), url="https://b.example/feed", headers=RSS)
    assert len(parsed.entries) == count == len({e.key for e in parsed.entries})
    for entry in parsed.entries:
        assert "<" not in entry.excerpt and "&lt;" not in entry.excerpt
        assert len(entry.excerpt) <= 301
        assert entry.published is None or entry.published.tzinfo is UTC


def test_excerpt_cuts_on_a_word_boundary() -> None:
    text = "word " * 100
    cut = excerpt(text, 300)
    assert cut.endswith("word…") and len(cut) <= 301
    assert excerpt("short text") == "short text"


def test_html_to_text_drops_markup_scripts_and_keeps_word_breaks() -> None:
    html = "<style>p{}</style><p>One&amp;two</p><p>three<br>four</p><script>x()</script>"
    assert html_to_text(html) == "One&two three four"


def test_excerpt_of_a_huge_post_reads_only_its_start() -> None:
    html = "<p>" + "lorem ipsum " * 200_000 + "</p>"
    start = time.perf_counter()
    text = html_to_text(html, limit=300)
    assert time.perf_counter() - start < 0.05
    assert 300 < len(text) < 20_000


def test_malformed_xml_without_entries_is_an_error() -> None:
    with pytest.raises(FeedError) as info:
        parse_feed(b"<rss><channel><title>x</titl", url="https://b/", headers=RSS)
    assert info.value.reason.startswith("not a feed")


def test_malformed_xml_with_entries_is_kept_with_a_warning() -> None:
    body = rss("<item><title>A &amp B</title><link>https://b.example/a</link></item>")
    body = body.replace(b"&amp B", b"& B")  # a bare ampersand: not well-formed
    parsed = parse_feed(body, url="https://b.example/feed", headers=RSS)
    assert [e.title for e in parsed.entries] == ["A & B"]
    assert parsed.warning is not None and "malformed XML" in parsed.warning


def test_billion_laughs_is_harmless() -> None:
    lol = "".join(f"<!ENTITY lol{i} '{('&lol' + str(i - 1) + ';') * 10}'>" for i in range(1, 10))
    body = (
        f"<?xml version='1.0'?><!DOCTYPE rss [<!ENTITY lol0 'lol'>{lol}]>"
        "<rss version='2.0'><channel><title>&lol9;</title>"
        "<item><title>&lol9;</title><link>https://b.example/a</link></item></channel></rss>"
    ).encode()
    start = time.perf_counter()
    try:
        parsed = parse_feed(body, url="https://b.example/feed", headers=RSS)
    except FeedError as exc:
        assert exc.reason.startswith("not a feed")
    else:
        assert parsed.warning is not None  # expat's amplification limit stopped it
        assert all("lollol" not in e.title for e in parsed.entries)
    assert time.perf_counter() - start < 5  # unbounded, it would need ~3 GB and minutes


def test_utf8_body_labelled_latin1_is_read_as_utf8() -> None:
    body = rss("<item><title>Tōkyō — Москва</title><link>https://b.example/a</link></item>")
    headers = {"content-type": "application/rss+xml; charset=ISO-8859-1"}
    parsed = parse_feed(body, url="https://b.example/feed", headers=headers)
    assert parsed.entries[0].title == "Tōkyō — Москва"


def test_windows1252_body_declared_utf8_still_parses() -> None:
    body = (
        rss("<item><title>Caf\u00e9 cr\u00e8me</title><link>https://b.example/a</link></item>")
        .decode()
        .encode("windows-1252")
    )
    parsed = parse_feed(body, url="https://b.example/feed", headers=RSS)
    assert parsed.entries[0].title == "Café crème"
    assert parsed.warning is not None


def test_empty_feed_is_fine() -> None:
    parsed = parse_feed(rss(""), url="https://b.example/feed", headers=RSS)
    assert parsed.entries == [] and parsed.title == "T" and parsed.warning is None


def test_empty_body_is_an_error() -> None:
    with pytest.raises(FeedError, match="empty"):
        parse_feed(b"", url="https://b.example/feed", headers=RSS)


def test_an_html_page_is_not_a_feed() -> None:
    page = b"<!DOCTYPE html><html><head><title>Blog</title></head><body><p>hi</p></body></html>"
    with pytest.raises(FeedError) as info:
        parse_feed(page, url="https://b.example/", headers={"content-type": "text/html"})
    assert info.value.reason == "not a feed: got an HTML page"


def test_entries_without_guid_or_date_get_stable_keys() -> None:
    body = rss(
        "<item><title>Linked</title><link>https://b.example/linked</link></item>"
        "<item><title>Bare</title><description>Only text</description></item>"
    )
    first = parse_feed(body, url="https://b.example/feed", headers=RSS).entries
    again = parse_feed(body, url="https://b.example/feed", headers=RSS).entries
    assert first[0].key == "https://b.example/linked" and first[0].published is None
    assert first[1].key.startswith("sha1:") and first[1].url is None
    assert [e.key for e in first] == [e.key for e in again]


def test_relative_links_resolve_against_the_feed_url() -> None:
    body = rss("<item><title>Rel</title><link>/posts/rel.html</link></item>")
    parsed = parse_feed(body, url="https://b.example/feed.xml", headers=RSS)
    assert parsed.entries[0].url == "https://b.example/posts/rel.html"


def test_dates_are_utc_whatever_the_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    # feedparser's *_parsed are UTC struct_times: time.mktime would read them as local time
    # (REFERENCE.md section 2). Run in a zone far from UTC so that mistake shows.
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        body = rss(
            "<item><title>A</title><link>https://b.example/a</link>"
            "<pubDate>Sat, 28 Nov 2026 10:00:00 GMT</pubDate></item>"
            "<item><title>B</title><link>https://b.example/b</link>"
            "<pubDate>Sat, 28 Nov 2026 10:00:00 +0200</pubDate></item>"
        )
        first, second = parse_feed(body, url="https://b.example/feed", headers=RSS).entries
    finally:
        monkeypatch.undo()
        time.tzset()
    assert first.published == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert second.published == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def test_json_feed_1_1() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON blog",
        "home_page_url": "https://j.example/",
        "items": [
            {
                "id": "1",
                "url": "https://j.example/1",
                "title": "First",
                "content_html": "<p>Hello <b>world</b></p>",
                "date_published": "2026-11-28T10:00:00+01:00",
                "authors": [{"name": "Jay"}],
            },
            {"id": 2, "content_text": "A note without a title"},
            {"title": "no id, no url, no content"},
        ],
    }
    body = json.dumps(doc).encode()
    parsed = parse_feed(
        body, url="https://j.example/feed.json", headers={"content-type": "application/feed+json"}
    )
    assert parsed.title == "JSON blog" and parsed.kind == "json11"
    first, second, third = parsed.entries
    assert (first.key, first.excerpt, first.author) == ("1", "Hello world", "Jay")
    assert first.published == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert (second.key, second.title) == ("2", "A note without a title")
    assert third.key.startswith("sha1:")


def test_invalid_json_feed() -> None:
    with pytest.raises(FeedError, match="invalid JSON"):
        parse_feed(b"{nope", url="https://j/", headers={"content-type": "application/feed+json"})
    with pytest.raises(FeedError, match="jsonfeed.org"):
        parse_feed(b'{"items": []}', url="https://j/", headers={"content-type": "application/json"})


def test_words_are_counted_from_full_content_only() -> None:
    body = "<p>" + "word " * 600 + "</p><script>var not_words = 1 2 3;</script>"
    parsed = parse_feed(
        rss(
            "<item><title>Full</title><link>https://b.example/1</link>"
            "<description>A short summary.</description>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded></item>"
            "<item><title>Summary only</title><link>https://b.example/2</link>"
            f"<description>{'word ' * 600}</description></item>"
        ).replace(
            b"<rss version='2.0'>",
            b"<rss version='2.0' xmlns:content='http://purl.org/rss/1.0/modules/content/'>",
        ),
        url="https://b.example/feed",
        headers=RSS,
    )
    full, summary = parsed.entries
    assert full.words == 600 and full.excerpt == "A short summary."
    assert summary.words is None  # a summary says nothing about the post's length


def test_json_feed_words_from_content_html_or_text() -> None:
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "items": [
            {"id": "1", "content_html": "<p>" + "a " * 460 + "</p>", "summary": "Short."},
            {"id": "2", "content_text": "b " * 230},
            {"id": "3", "summary": "Only a summary."},
        ],
    }
    parsed = parse_feed(
        json.dumps(feed).encode(),
        url="https://j.example/feed.json",
        headers={"content-type": "application/feed+json"},
    )
    assert [e.words for e in parsed.entries] == [460, 230, None]
