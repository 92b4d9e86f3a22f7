"""OPML export and import (blogs.yaml edited in place, comments kept)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.config import load_blogs
from digest.errors import ConfigError
from digest.feeds.opml import export_opml, import_opml, read_opml

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

OPML = b"""<?xml version="1.0"?><opml version="2.0"><head><title>reader</title></head><body>
<outline text="ML"><outline text="Distill" type="rss" xmlUrl="https://distill.pub/rss.xml"
  htmlUrl="https://distill.pub/"/>
  <outline text="Sander again" type="rss" xmlUrl="https://sander.ai/feed.xml"/></outline>
<outline text="Knitting"><outline text="Yarn &amp; more" type="rss" xmlUrl="https://yarn.example/feed"/></outline>
<outline text="Loose" type="rss" xmlUrl="ftp://nope.example/feed"/>
</body></opml>"""


def test_export_lists_every_blog_by_category(blogs_yaml: Path) -> None:
    blogs = load_blogs(blogs_yaml)
    text = export_opml(blogs, {}, now=NOW)
    feeds = read_opml(text.encode(), path="export.opml")
    assert len(feeds) == 6  # Delayed has no feed yet: listed without xmlUrl
    assert feeds[0].xml_url == "https://wiki.xxiivv.com/links/rss.xml"
    assert feeds[0].category == "Permacomputing"
    assert "Delayed." in text


def test_import_appends_new_feeds_and_keeps_comments(blogs_yaml: Path) -> None:
    before = blogs_yaml.read_text()
    result = import_opml(blogs_yaml, read_opml(OPML, path="x.opml"))
    assert result.added == [("distill", "ml"), ("yarn-more", "knitting")]
    assert [why for _, why in result.skipped] == ["already in blogs.yaml", "not an http(s) URL"]
    after = blogs_yaml.read_text()
    assert after.startswith(before.split("categories:")[0])  # header comments untouched
    assert '"08:00"' in after
    blogs = load_blogs(blogs_yaml)
    assert blogs.blog("distill") is not None and blogs.blog("distill").category == "ml"  # type: ignore[union-attr]
    assert blogs.category("knitting") is not None
    # Importing again adds nothing.
    assert import_opml(blogs_yaml, read_opml(OPML, path="x.opml")).added == []


def test_import_refuses_entities(blogs_yaml: Path) -> None:
    evil = b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body/></opml>'
    with pytest.raises(ConfigError, match="DOCTYPE"):
        read_opml(evil, path="evil.opml")


def test_import_into_unknown_category_is_an_error(blogs_yaml: Path) -> None:
    with pytest.raises(ConfigError, match="no category"):
        import_opml(blogs_yaml, read_opml(OPML, path="x.opml"), category="nope")


def test_import_matches_blogs_by_homepage_and_by_the_feed_fetched_now(blogs_yaml: Path) -> None:
    """A blog whose feed was discovered has no `feed:` in blogs.yaml: the feed digest fetches
    (from the database) and the homepage both say it is there already."""
    opml = b"""<opml version="2.0"><body><outline text="Music">
    <outline text="Delayed" type="rss" xmlUrl="https://www.delayed.nyc/feed/"
      htmlUrl="https://www.delayed.nyc/"/>
    <outline text="Delayed (Atom)" type="rss" xmlUrl="https://delayed.nyc/atom.xml"
      htmlUrl="https://delayed.nyc"/>
    <outline text="Gone blog" type="rss" xmlUrl="https://gone.example/feed"/>
    </outline></body></opml>"""
    fetched = {"delayed": "https://www.delayed.nyc/feed/", "removed": "https://gone.example/feed"}
    result = import_opml(blogs_yaml, read_opml(opml, path="x.opml"), fetched=fetched)
    assert result.skipped == [
        ("https://www.delayed.nyc/feed/", "already in blogs.yaml: the feed of delayed"),
        ("https://delayed.nyc/atom.xml", "already in blogs.yaml: the homepage of delayed"),
    ]
    # A feed state left by a blog no longer in blogs.yaml does not count as listed.
    assert result.added == [("gone-blog", "music")]
    assert sum(1 for b in load_blogs(blogs_yaml).blogs() if "delayed" in b.homepage) == 1
