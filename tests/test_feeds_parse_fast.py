"""The fastfeedparser fast path (feeds/fastparse.py) against feedparser, the reference.

Every feed is parsed twice, ``fast=True`` and ``fast=False``; the two ParsedFeeds must be equal
field by field, entry by entry. The real fixtures must take the fast path (else it buys
nothing); the odd feeds must give the same result whichever path they take, and the cases
the fast path cannot read as feedparser does must go to feedparser.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from digest.errors import FeedError
from digest.feeds import fastparse
from digest.feeds.parse import ParsedFeed, parse_feed
from digest.models import Entry

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
SHARED = Path("/work/shared/fixtures/feeds")
XML_FIXTURES = sorted(
    {p.name: p for d in (SHARED, FEEDS) if d.is_dir() for p in d.glob("*.xml")}.values()
)
URL = "https://blog.example/feed.xml"
RSS = {"content-type": "application/rss+xml; charset=utf-8"}
HEADER_VARIANTS = [
    RSS,
    {"content-type": "application/xml"},
    {"content-type": "text/xml"},  # RFC 3023: us-ascii unless it says otherwise
    {"content-type": "text/html; charset=utf-8"},  # feedparser: bozo, non-XML type
    {"content-type": "application/rss+xml; charset=iso-8859-1"},  # a default label
    {},
]


def assert_same(fast: ParsedFeed, ref: ParsedFeed) -> None:
    for f in fields(ParsedFeed):
        if f.name != "entries":
            assert getattr(fast, f.name) == getattr(ref, f.name), f.name
    assert len(fast.entries) == len(ref.entries)
    for got, want in zip(fast.entries, ref.entries, strict=True):
        for f in fields(Entry):
            assert getattr(got, f.name) == getattr(want, f.name), (want.key, f.name)


def both(body: bytes, headers: dict[str, str] = RSS) -> ParsedFeed:
    """The fast path's result, asserted equal to feedparser's (errors included)."""
    try:
        ref = parse_feed(body, url=URL, headers=headers, fast=False)
    except FeedError as exc:
        with pytest.raises(FeedError) as fast_exc:
            parse_feed(body, url=URL, headers=headers)
        assert str(fast_exc.value) == str(exc)
        raise
    fast = parse_feed(body, url=URL, headers=headers)
    assert_same(fast, ref)
    return fast


def takes_fast_path(body: bytes, headers: dict[str, str] = RSS) -> bool:
    return fastparse.parse(body, {k.lower(): v for k, v in headers.items()}) is not None


def test_the_fixture_list_holds_the_real_feeds() -> None:
    names = {p.name for p in XML_FIXTURES}
    assert {"xxiivv.rss.xml", "100r.rss.xml", "sander.atom.xml"} <= names
    for path in XML_FIXTURES:  # the shared copies are the project's copies
        assert (FEEDS / path.name).read_bytes() == path.read_bytes()


@pytest.mark.parametrize("path", XML_FIXTURES, ids=lambda p: p.name)
def test_fixture_takes_the_fast_path_with_equal_results(path: Path) -> None:
    body = path.read_bytes()
    assert takes_fast_path(body)
    parsed = both(body)
    assert parsed.entries


@pytest.mark.parametrize("headers", HEADER_VARIANTS, ids=str)
@pytest.mark.parametrize("path", XML_FIXTURES, ids=lambda p: p.name)
def test_fixture_under_other_headers_parses_the_same(path: Path, headers: dict[str, str]) -> None:
    both(path.read_bytes(), headers)


def rss(items: str, *, channel: str = "", ns: str = "", decl: str = "") -> bytes:
    decl = decl or "<?xml version='1.0' encoding='utf-8'?>"
    return (
        f"{decl}<rss version='2.0'{ns}><channel><title>T</title><link>https://b.example/</link>"
        f"{channel}{items}</channel></rss>"
    ).encode()


def item(body: str = "", *, link: str = "<link>/p/1</link>", guid: str = "<guid>g1</guid>") -> str:
    return f"<item><title>A post</title>{link}{guid}{body}</item>"


CONTENT_NS = " xmlns:content='http://purl.org/rss/1.0/modules/content/'"
ATOM_NS = "http://www.w3.org/2005/Atom"


def atom(entries: str, *, head: str = "") -> bytes:
    return (
        f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='{ATOM_NS}'><title>F</title>"
        f"<link href='https://b.example/'/><id>urn:f</id>{head}{entries}</feed>"
    ).encode()


# Feeds the fast path takes: plain RSS 2.0 and Atom 1.0 (equal to feedparser by `both`).
FAST = {
    "description only: no word count": rss(
        item("<description>&lt;p&gt;1 2&lt;/p&gt;</description>")
    ),
    "content:encoded only": rss(
        item("<content:encoded><![CDATA[<p>a b <img src='i.png' alt='x'></p>]]></content:encoded>"),
        ns=CONTENT_NS,
    ),
    "description and content:encoded alike": rss(
        item("<description>same words</description><content:encoded>same words</content:encoded>"),
        ns=CONTENT_NS,
    ),
    "one item of two with content": rss(
        item("<description>d</description><content:encoded>x y</content:encoded>")
        + item("<description>e</description>", guid="<guid>g2</guid>"),
        ns=CONTENT_NS,
    ),
    "no guid": rss(item("<description>d</description>", guid="")),
    "relative link": rss(item(link="<link>../p/2</link>")),
    "repeated item": rss(item() + item()),
    "dc:creator": rss(
        item("<dc:creator>Ann</dc:creator>"), ns=" xmlns:dc='http://purl.org/dc/elements/1.1/'"
    ),
    "atom summary and content": atom(
        "<entry><title type='html'>E</title><link href='/e'/><id>urn:e</id>"
        "<updated>2024-01-02T03:04:05Z</updated><published>2024-01-01T00:00:00+02:00</published>"
        "<content type='html'>&lt;p&gt;x y z&lt;/p&gt;</content><summary>s</summary></entry>"
    ),
    "atom text summary with escaped markup": atom(
        "<entry><title>E</title><link href='/e'/><id>urn:e</id><updated>2024-01-02T03:04:05Z"
        "</updated><summary type='text'>a &lt;b&gt; &amp;amp; c</summary></entry>"
    ),
    "atom updated only, author": atom(
        "<entry><title>E</title><link href='/e'/><id>urn:e</id><author><name>Bo</name></author>"
        "<updated>2024-01-02T03:04:05.123456+01:00</updated></entry>"
    ),
    "atom feed author, entries without": atom(
        "<entry><title>E</title><link href='/e' type='text/html'/><id>urn:e</id>"
        "<updated>2024-01-02T03:04:05Z</updated></entry>",
        head="<author><name>Feed Author</name></author><link rel='self' href='/feed.xml'/>",
    ),
}

DATES = [
    "\n  Mon, 06 Sep 2010 16:45:00 GMT \n",
    "<![CDATA[Mon, 06 Sep 2010 16:45:00 GMT]]>",
    "Mon, 06 Sep 2010 16:45:00 GMT",
    "Mon, 06 Sep 2010 16:45:00 +0900",
    "Mon, 06 Sep 2010 16:45:00 EST",
    "Mon, 06 Sep 2010 16:45:00 PDT",
    "Mon, 06 Sep 2010 16:45:00",
    "Thurs, 30 May 2019 00:00:00 UTC",
    "Mon, 03 September 2022 00:00:00 +0000",
    "06 Sep 10 16:45 GMT",
    "2010-09-06T16:45:00Z",
    "2010-09-06",
    "Mon, 01 Jan 0001 00:00:00 +0000",
    "Tue, 31 Dec 2999 23:59:59 GMT",
    "yesterday",
    "",
]


@pytest.mark.parametrize("name", sorted(FAST))
def test_plain_feed_takes_the_fast_path_with_equal_results(name: str) -> None:
    assert takes_fast_path(FAST[name])
    both(FAST[name])


@pytest.mark.parametrize("date", DATES)
def test_dates_read_the_same(date: str) -> None:
    both(rss(item(f"<pubDate>{date}</pubDate>")))


# Feeds the fast path hands to feedparser.
FALLBACK = {
    "malformed XML": rss(item("<description>unclosed")),
    "undefined entity (bozo)": rss(item("<description>a&nbsp;b</description>")),
    "doctype": rss(item(), decl="<?xml version='1.0'?><!DOCTYPE rss [<!ENTITY e 'x'>]>"),
    "guid as link": rss(item(link="", guid="<guid isPermaLink='true'>https://b.example/g</guid>")),
    "title with markup": rss("<item><title>a &lt;b&gt;x&lt;/b&gt;</title><link>/p</link></item>"),
    "title with an ampersand": rss("<item><title>Q &amp; A</title><link>/p</link></item>"),
    "enclosure": rss(item("<enclosure url='https://b.example/i.jpg' type='image/jpeg'/>")),
    "media thumbnail": rss(
        item("<media:thumbnail url='https://b.example/t.jpg'/>"),
        ns=" xmlns:media='http://search.yahoo.com/mrss/'",
    ),
    "RSS 0.91": rss(item()).replace(b"version='2.0'", b"version='0.91'"),
    "RDF": (
        b"<?xml version='1.0'?><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'"
        b" xmlns='http://purl.org/rss/1.0/'><channel><title>T</title><link>https://b/</link>"
        b"</channel><item><title>I</title><link>https://b/i</link></item></rdf:RDF>"
    ),
    "no items": rss(""),
    "atom xhtml content": atom(
        "<entry><title>E</title><link href='/e'/><id>urn:e</id><updated>2024-01-02T03:04:05Z"
        "</updated><content type='xhtml'><div xmlns='http://www.w3.org/1999/xhtml'>x</div>"
        "</content></entry>"
    ),
    "atom author email": atom(
        "<entry><title>E</title><link href='/e'/><id>urn:e</id><updated>2024-01-02T03:04:05Z"
        "</updated><author><name>Bo</name><email>b@b.example</email></author></entry>"
    ),
    "atom two alternates": atom(
        "<entry><title>E</title><link href='/e'/><link rel='alternate' href='/f'/><id>urn:e</id>"
        "<updated>2024-01-02T03:04:05Z</updated></entry>"
    ),
    "atom enclosure link": atom(
        "<entry><title>E</title><link href='/e'/><link rel='enclosure' type='image/png' "
        "href='/i.png'/><id>urn:e</id><updated>2024-01-02T03:04:05Z</updated></entry>"
    ),
    "atom alternate of another type": atom(
        "<entry><title>E</title><link href='/e.pdf' type='application/pdf'/><id>urn:e</id>"
        "<updated>2024-01-02T03:04:05Z</updated></entry>"
    ),
    "atom xml:base on the entry": atom(
        "<entry xml:base='https://c.example/'><title>E</title><link href='e'/><id>urn:e</id>"
        "<updated>2024-01-02T03:04:05Z</updated></entry>"
    ),
}


@pytest.mark.parametrize("name", sorted(FALLBACK))
def test_odd_feed_goes_to_feedparser(name: str) -> None:
    assert not takes_fast_path(FALLBACK[name])
    try:
        both(FALLBACK[name])
    except FeedError:
        assert name in ("no items", "malformed XML")


def test_malformed_xml_keeps_feedparsers_warning() -> None:
    parsed = both(rss(item() + "<item><title>x</title><link>/q</link>"))
    assert parsed.warning and parsed.warning.startswith("malformed XML")


def test_bozo_feed_keeps_feedparsers_warning() -> None:
    parsed = both(FALLBACK["undefined entity (bozo)"])
    assert parsed.warning and "undefined entity" in parsed.warning


def test_charset_declared_only_in_headers_goes_to_feedparser() -> None:
    body = (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>Café</title><link>https://b/</link>"
        "<item><title>Crème brûlée</title><link>/p</link><description>déjà</description></item>"
        "</channel></rss>"
    ).encode("windows-1252")
    headers = {"content-type": "application/rss+xml; charset=windows-1252"}
    assert not takes_fast_path(body, headers)
    parsed = both(body, headers)
    assert (parsed.title, parsed.entries[0].title) == ("Café", "Crème brûlée")


def test_utf16_goes_to_feedparser() -> None:
    body = rss(item()).decode().replace("utf-8", "utf-16").encode("utf-16")
    assert not takes_fast_path(body, {"content-type": "application/rss+xml"})
    both(body, {"content-type": "application/rss+xml"})


def test_latin1_label_on_utf8_body_takes_the_fast_path() -> None:
    # parse.py relabels a Latin-1 default that decodes as UTF-8 before either parser runs.
    body = rss("<item><title>日本語</title><link>/p</link></item>")
    headers = {"Content-Type": "application/rss+xml; charset=ISO-8859-1"}
    parsed = both(body, headers)
    assert parsed.entries[0].title == "日本語"
