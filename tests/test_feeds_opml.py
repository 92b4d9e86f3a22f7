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
