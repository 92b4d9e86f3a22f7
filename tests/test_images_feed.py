"""Thumbnails as the feeds name them: parsed into Entry, stored on the post. Real fixture feeds
(100r, XXIIVV and Optimistic Underground carry absolute <img>s, lilianweng relative ones; colah
and Sander Dieleman carry none) and small crafted feeds for media:*, enclosures, JSON Feed."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.feeds.parse import parse_feed
from digest.feeds.record import record_entries
from digest.store import posts as store_posts

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
RSS = {"content-type": "application/rss+xml; charset=utf-8"}
NOW = datetime(2026, 11, 30, 8, tzinfo=UTC)


def fixture(name: str, url: str = "https://feed.example/feed.xml"):  # type: ignore[no-untyped-def]
    return parse_feed((FEEDS / name).read_bytes(), url=url, headers=RSS)


def crafted(item: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'"
        " xmlns:media='http://search.yahoo.com/mrss/'><channel><title>T</title>"
        f"<link>https://b.example/</link><item><title>P</title>"
        f"<link>https://b.example/posts/p/</link>{item}</item></channel></rss>"
    ).encode()


def test_first_img_of_real_feeds_is_absolute() -> None:
    hundred = fixture("100r.rss.xml").entries
    assert sum(1 for e in hundred if e.image) == 5  # most of its log entries are text only
    toilet = next(e for e in hundred if e.title == "Dry Toilet Installation")
    assert toilet.image == "https://100r.co/media/content/boat_projects/drytoilet.jpg"
    assert toilet.image_alt is None
    assert fixture("xxiivv.rss.xml").entries[0].image == (
        "https://wiki.xxiivv.com/media/diary/733.jpg"
    )
    # WordPress: alt="" is a decorative image; the post title stands in later.
    optimistic = fixture("optimisticunderground.rss.xml").entries[0]
    assert optimistic.image == (
        "https://optimisticunderground.files.wordpress.com/2019/12/cover.jpg?w=640"
    )
    assert optimistic.image_alt is None


def test_relative_img_resolves_against_the_post_url() -> None:
    entries = fixture("lilianweng.index.xml", "https://lilianweng.github.io/index.xml").entries
    with_image = [e for e in entries if e.image]
    assert with_image, "lilianweng's feed carries relative <img> sources"
    for entry in with_image:
        assert entry.url is not None
        assert entry.image is not None and entry.image.startswith(entry.url)
    agent = next(e for e in with_image if e.image and e.image.endswith("agent-overview.png"))
    assert agent.image == agent.url + "agent-overview.png"  # type: ignore[operator]


@pytest.mark.parametrize("name", ["colah.rss.xml", "sander.atom.xml"])
def test_feeds_without_images_give_none(name: str) -> None:
    assert all(e.image is None for e in fixture(name).entries)


@pytest.mark.parametrize(
    ("item", "want"),
    [
        (
            "<media:thumbnail url='https://cdn.example/t.jpg'/>"
            "<description>&lt;img src='https://cdn.example/body.jpg'&gt;</description>",
            "https://cdn.example/t.jpg",
        ),
        (
            "<media:content url='https://cdn.example/v.mp4' medium='video'/>"
            "<media:content url='https://cdn.example/c.png' type='image/png'/>",
            "https://cdn.example/c.png",
        ),
        (
            "<enclosure url='https://cdn.example/a.mp3' type='audio/mpeg' length='1'/>"
            "<enclosure url='https://cdn.example/e.webp' type='image/webp' length='1'/>",
            "https://cdn.example/e.webp",
        ),
        (
            "<description>&lt;p&gt;x&lt;img src='data:image/png;base64,AAAA'&gt;"
            "&lt;img alt='A  boat' src='../../media/boat.jpg'&gt;</description>",
            "https://b.example/media/boat.jpg",
        ),
        ("<description>&lt;img src='javascript:alert(1)'&gt; text</description>", None),
        ("<enclosure url='https://cdn.example/a.mp3' type='audio/mpeg' length='1'/>", None),
    ],
)
def test_crafted_feeds(item: str, want: str | None) -> None:
    entry = parse_feed(crafted(item), url="https://b.example/feed.xml", headers=RSS).entries[0]
    assert entry.image == want
    if want and want.endswith("boat.jpg"):
        assert entry.image_alt == "A boat"


def test_json_feed_image() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "items": [
            {"id": "1", "url": "https://j.example/1", "image": "/i/1.png", "content_text": "x"},
            {
                "id": "2",
                "url": "https://j.example/2",
                "content_html": "<p>y</p><img src='2.jpg' alt='Two'>",
            },
            {"id": "3", "url": "https://j.example/3", "content_text": "z"},
        ],
    }
    entries = parse_feed(
        json.dumps(doc).encode(), url="https://j.example/feed.json", headers={}
    ).entries
    assert [(e.image, e.image_alt) for e in entries] == [
        ("https://j.example/i/1.png", None),
        ("https://j.example/2.jpg", "Two"),
        (None, None),
    ]


def test_image_is_stored_and_updated_on_the_post(conn: sqlite3.Connection) -> None:
    entries = fixture("xxiivv.rss.xml").entries[:2]
    with conn:
        out = record_entries(
            conn,
            "xxiivv",
            entries,
            now=NOW,
            first_run=True,
            window_start=datetime(2000, 1, 1, tzinfo=UTC),
        )
    posts = store_posts.catalogue(conn, "xxiivv")
    by_title = {p.title: p for p in posts}
    assert by_title[entries[0].title].image == entries[0].image
    # The blog swaps its picture: the stored post follows.
    entries[0].image, entries[0].image_alt = "https://100r.co/new.jpg", "New"
    with conn:
        again = record_entries(conn, "xxiivv", entries, now=NOW, first_run=False, window_start=NOW)
    assert again.updated == 1 and not out.updated
    post = store_posts.get_posts(conn, [by_title[entries[0].title].id])[
        by_title[entries[0].title].id
    ]
    assert (post.image, post.image_alt) == ("https://100r.co/new.jpg", "New")
