"""Autodiscovery against a real local server."""

from __future__ import annotations

import pytest

from digest.config import Settings
from digest.errors import FeedError
from digest.feeds.discover import discover_sync, feed_links

PAGE = """<!doctype html><html><head><title>Delayed.</title>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/rss+xml" title="Comments" href="/comments/feed/">
<link rel="alternate" type="application/rss+xml" title="Delayed." href="{href}">
</head><body><h1>Sundays are for</h1></body></html>"""


def settings() -> Settings:
    return Settings(fetch_timeout=5)


def test_feed_links_resolve_against_base_and_put_comment_feeds_last() -> None:
    html = (
        "<head><base href='https://d.example/blog/'><link rel='alternate feed' "
        "type='application/atom+xml' href='atom.xml'><link rel=alternate "
        "type='application/rss+xml' href='/comments/feed/'></head>"
    )
    assert feed_links(html, "https://d.example/") == [
        "https://d.example/blog/atom.xml",
        "https://d.example/comments/feed/",
    ]


def test_discovers_the_linked_feed_from_an_html_page(feed_server) -> None:
    feed_server.serve_fixture("/feed/", "optimisticunderground.rss.xml")
    feed_server.serve_fixture("/comments/feed/", "colah.rss.xml")
    page = feed_server.serve("/", PAGE.format(href="feed/"), content_type="text/html")
    found = discover_sync(settings(), page)
    assert (found.url, found.how) == (feed_server.url("/feed/"), "link")
    assert found.title == "Optimistic Underground"


def test_a_feed_url_is_kept(feed_server) -> None:
    url = feed_server.serve_fixture("/rss.xml", "colah.rss.xml")
    found = discover_sync(settings(), url)
    assert (found.url, found.how) == (url, "given")


def test_probes_common_places_without_following_redirects(feed_server) -> None:
    page = feed_server.serve("/", "<html><body>no links</body></html>", content_type="text/html")
    # feed.xml redirects (to the homepage, as many sites do): not followed, not a feed.
    feed_server.redirect("/feed.xml", "/", 302)
    feed_server.serve_fixture("/index.xml", "lilianweng.index.xml")
    found = discover_sync(settings(), page)
    assert (found.url, found.how) == (feed_server.url("/index.xml"), "probe")
    assert len(feed_server.hits("/")) == 1  # the redirect was never followed
    assert [len(feed_server.hits(p)) for p in ("/feed.xml", "/atom.xml", "/rss.xml")] == [1, 1, 1]


def test_nothing_found_is_explained(feed_server) -> None:
    page = feed_server.serve("/", "<html><body>nothing</body></html>", content_type="text/html")
    with pytest.raises(FeedError) as info:
        discover_sync(settings(), page)
    assert info.value.reason.startswith("no feed found")
    assert info.value.hint and "blogs.yaml" in info.value.hint
