"""The ledes digest took from posts' own pages (``excerpt: page``, digest/feeds/page.py),
keyed by the post's URL: the lede on success, the reason on failure, and when it was fetched.

A page is fetched once: a row of either kind means "do not ask again", so a re-draft or the
next issue costs the blog nothing (a failure keeps the feed's summary for good)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.store.db import Connection, Row, parse_ts, select_in, transaction, ts

_SAVE = (
    "INSERT INTO page_excerpts (url, excerpt, error, fetched_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (url) DO UPDATE SET excerpt = excluded.excerpt, error = excluded.error,"
    " fetched_at = excluded.fetched_at"
)


@dataclass(frozen=True, slots=True)
class PageExcerpt:
    url: str
    excerpt: str | None  # None: it failed (error says why)
    error: str | None
    fetched_at: datetime


def _stored(row: Row) -> PageExcerpt:
    fetched = parse_ts(row["fetched_at"])
    assert fetched is not None
    return PageExcerpt(row["url"], row["excerpt"], row["error"], fetched)


def get_page_excerpts(conn: Connection, urls: list[str]) -> dict[str, PageExcerpt]:
    """What is stored for ``urls``, by URL; a URL never fetched is absent."""
    sql = "SELECT url, excerpt, error, fetched_at FROM page_excerpts WHERE url IN ({marks})"
    return {row["url"]: _stored(row) for row in select_in(conn, sql, urls)}


def save_page_excerpts(
    conn: Connection, results: dict[str, tuple[str | None, str | None]], *, now: datetime
) -> None:
    """Store ``url -> (excerpt, error)`` (exactly one of the two set), in one transaction."""
    with transaction(conn):
        for url, (excerpt, error) in results.items():
            conn.execute(_SAVE, (url, excerpt, error, ts(now)))
