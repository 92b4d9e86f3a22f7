"""Posts in a real SQLite file, for the issue and render tests.

The shared fixture feeds are parsed with the real parser (digest.feeds.parse) and stored with
plain SQL, so these tests control exactly which posts are new in which week.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest

from digest.config import BlogsFile, Settings, load_blogs
from digest.feeds.parse import parse_feed
from digest.models import Entry
from digest.store import connect, transaction
from digest.store.db import ts

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"
# fixture file -> blog id in the repository's blogs.yaml
FIXTURE_BLOGS = {
    "xxiivv.rss.xml": "xxiivv",
    "100r.rss.xml": "hundred-rabbits",
    "sander.atom.xml": "sander-dieleman",
    "lilianweng.index.xml": "lilianweng",
    "colah.rss.xml": "chris-olah",
    "optimisticunderground.rss.xml": "optimistic-underground",
}
NOW = datetime(2026, 7, 6, 8, 0, tzinfo=UTC)  # a Monday, after the newest fixture post


@cache
def fixture_entries(name: str) -> tuple[Entry, ...]:
    """Parsed once per test session: the parser is not what these tests are about."""
    parsed = parse_feed(
        (FEEDS / name).read_bytes(),
        url=f"https://feeds.example.org/{name}",
        headers={"content-type": "application/xml"},
    )
    return tuple(parsed.entries)


def insert_post(
    conn: sqlite3.Connection,
    blog: str,
    entry: Entry,
    *,
    first_seen: datetime,
    backlog: bool = False,
    duplicate_of: str | None = None,
) -> str | None:
    """Store one entry as gathering would; returns its id (None if its key was stored)."""
    base = f"{blog}-{hashlib.sha1(entry.key.encode()).hexdigest()[:8]}"
    post_id, n = base, 1
    while conn.execute("SELECT 1 FROM posts WHERE id = ?", (post_id,)).fetchone():
        n += 1
        post_id = f"{base}{n}"
    published = entry.published
    if published is not None and published > first_seen:
        published = first_seen
    cursor = conn.execute(
        "INSERT INTO posts (id, blog, key, title, url, author, published, first_seen,"
        " excerpt, backlog, duplicate_of, canonical, words)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            post_id,
            blog,
            entry.key,
            entry.title,
            entry.url,
            entry.author,
            ts(published) if published else None,
            ts(first_seen),
            entry.excerpt,
            int(backlog),
            duplicate_of,
            entry.url,
            entry.words,
        ),
    )
    return post_id if cursor.rowcount else None


def entry(title: str, url: str, *, excerpt: str = "", author: str | None = None) -> Entry:
    return Entry(key=url, title=title, url=url, author=author, published=None, excerpt=excerpt)


@dataclass
class Week:
    """A database with the fixture feeds' back catalogue and two new posts per feed."""

    conn: sqlite3.Connection
    settings: Settings
    blogs: BlogsFile
    new_ids: list[str]

    def add(self, blog: str, e: Entry, *, at: datetime) -> str:
        with transaction(self.conn):
            post_id = insert_post(self.conn, blog, e, first_seen=at)
        assert post_id is not None
        return post_id


def seed_week(conn: sqlite3.Connection, *, now: datetime = NOW, per_feed: int = 2) -> list[str]:
    """The fixture feeds as first seen: each feed's ``per_feed`` newest entries are new this
    week (first seen a day before ``now``), the rest is back catalogue."""
    new: list[str] = []
    with transaction(conn):
        for name, blog in FIXTURE_BLOGS.items():
            entries = sorted(
                fixture_entries(name),
                key=lambda e: (e.published or datetime.min.replace(tzinfo=UTC), e.key),
                reverse=True,
            )
            for index, item in enumerate(entries):
                fresh = index < per_feed
                seen = now - timedelta(days=1, hours=index) if fresh else now - timedelta(days=30)
                post_id = insert_post(conn, blog, item, first_seen=seen, backlog=not fresh)
                if fresh and post_id:
                    new.append(post_id)
    return new


@pytest.fixture
def week(tmp_path: Path, blogs_yaml: Path, db_path: Path) -> Iterator[Week]:
    conn = connect(db_path)
    new = seed_week(conn)
    settings = Settings(
        blogs=blogs_yaml,
        db=db_path,
        drafts=tmp_path / "drafts",
        outbox=tmp_path / "outbox",
        base_url="https://digest.example.org",
    )
    yield Week(conn=conn, settings=settings, blogs=load_blogs(blogs_yaml), new_ids=new)
    conn.close()


def cli_env(tmp_path: Path, blogs_yaml: Path, db_path: Path, **extra: str) -> dict[str, str]:
    """The DIGEST_* environment of a checkout in tmp_path, for CliRunner or a subprocess."""
    return {
        "DIGEST_BLOGS": str(blogs_yaml),
        "DIGEST_DB": str(db_path),
        "DIGEST_DRAFTS": str(tmp_path / "drafts"),
        "DIGEST_OUTBOX": str(tmp_path / "outbox"),
        "DIGEST_BASE_URL": "https://digest.example.org",
        "COLUMNS": "300",  # rich wraps at the terminal width
        **extra,
    }


@pytest.fixture
def seeded_env(tmp_path: Path, blogs_yaml: Path, db_path: Path) -> dict[str, str]:
    """A database holding this week's posts, and the environment pointing the CLI at it."""
    conn = connect(db_path)
    seed_week(conn, now=datetime.now(UTC).replace(microsecond=0))
    conn.close()
    return cli_env(tmp_path, blogs_yaml, db_path)
