"""Posts: what gathering stored, read by the draft."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime

from digest.models import Post
from digest.store.db import parse_ts, ts

_COLUMNS = "id, blog, title, url, author, published, first_seen, excerpt"


def _post(row: sqlite3.Row) -> Post:
    first_seen = parse_ts(row["first_seen"])
    assert first_seen is not None
    return Post(
        id=row["id"],
        blog=row["blog"],
        title=row["title"],
        url=row["url"],
        author=row["author"],
        published=parse_ts(row["published"]),
        first_seen=first_seen,
        excerpt=row["excerpt"],
    )


def posts_between(conn: sqlite3.Connection, since: datetime, until: datetime) -> list[Post]:
    """New posts first seen in [since, until): not back catalogue, not cross-blog duplicates."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM posts WHERE first_seen >= ? AND first_seen < ?"
        " AND backlog = 0 AND duplicate_of IS NULL ORDER BY first_seen, published, id",
        (ts(since), ts(until)),
    )
    return [_post(r) for r in rows]


def get_posts(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, Post]:
    wanted = list(ids)
    out: dict[str, Post] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT {_COLUMNS} FROM posts WHERE id IN ({marks})", chunk):
            out[row["id"]] = _post(row)
    return out


def catalogue(conn: sqlite3.Connection, blog: str) -> list[Post]:
    """Every post of one blog (the back catalogue included), newest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM posts WHERE blog = ? AND duplicate_of IS NULL"
        " ORDER BY COALESCE(published, first_seen) DESC",
        (blog,),
    )
    return [_post(r) for r in rows]


def newest_date(conn: sqlite3.Connection, blog: str) -> datetime | None:
    row = conn.execute(
        "SELECT MAX(COALESCE(published, first_seen)) FROM posts WHERE blog = ?", (blog,)
    ).fetchone()
    return parse_ts(row[0])
