"""Posts: what gathering stores (writes at the bottom), read by the draft."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.models import Post
from digest.store.db import Connection, Row, parse_ts, select_in, ts, ts_or_none

_COLUMNS = (
    "id, blog, title, url, author, published, first_seen, excerpt, words, image, image_alt"
)


def _fields(row: Row) -> dict[str, Any]:
    first_seen = parse_ts(row["first_seen"])
    assert first_seen is not None
    return {
        "id": row["id"],
        "blog": row["blog"],
        "title": row["title"],
        "url": row["url"],
        "author": row["author"],
        "published": parse_ts(row["published"]),
        "first_seen": first_seen,
        "excerpt": row["excerpt"],
        "words": row["words"],
        "image": row["image"],
        "image_alt": row["image_alt"],
    }


def _post(row: Row) -> Post:
    return Post(**_fields(row))


def posts_between(conn: Connection, since: datetime, until: datetime) -> list[Post]:
    """New posts first seen in [since, until): not back catalogue, not cross-blog duplicates."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM posts WHERE first_seen >= ? AND first_seen < ?"
        " AND backlog = 0 AND duplicate_of IS NULL ORDER BY first_seen, published, id",
        (ts(since), ts(until)),
    )
    return [_post(r) for r in rows]


def get_posts(conn: Connection, ids: Iterable[str]) -> dict[str, Post]:
    sql = f"SELECT {_COLUMNS} FROM posts WHERE id IN ({{marks}})"
    return {row["id"]: _post(row) for row in select_in(conn, sql, list(ids))}


def catalogue(conn: Connection, blog: str) -> list[Post]:
    """Every post of one blog (the back catalogue included), newest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM posts WHERE blog = ? AND duplicate_of IS NULL"
        " ORDER BY COALESCE(published, first_seen) DESC",
        (blog,),
    )
    return [_post(r) for r in rows]


def newest_date(conn: Connection, blog: str) -> datetime | None:
    """The blog's latest post date. Undated entries count only when no entry has a date: feeds
    carry undated pages (Hugo's "FAQ" at year 1) whose first_seen, the day digest met them,
    would otherwise make a dormant blog look fresh for ever."""
    row = conn.execute(
        "SELECT COALESCE(MAX(published), MAX(first_seen)) FROM posts WHERE blog = ?", (blog,)
    ).fetchone()
    return parse_ts(row[0])


def followed_since(conn: Connection) -> dict[str, datetime]:
    """Each blog's earliest first_seen: when digest started following it."""
    rows = conn.execute("SELECT blog, MIN(first_seen) FROM posts GROUP BY blog")
    return {blog: moment for blog, seen in rows if (moment := parse_ts(seen)) is not None}


def duplicates_between(
    conn: Connection, since: datetime, until: datetime
) -> list[tuple[Post, str]]:
    """Cross-blog duplicates first seen in [since, until), each with the blog of the first copy
    (the draft's feed-health part reports them)."""
    rows = conn.execute(
        f"SELECT {', '.join('p.' + c for c in _COLUMNS.split(', '))}, o.blog AS of_blog"
        " FROM posts p JOIN posts o ON o.id = p.duplicate_of"
        " WHERE p.first_seen >= ? AND p.first_seen < ? ORDER BY p.first_seen, p.id",
        (ts(since), ts(until)),
    )
    return [(_post(r), r["of_blog"]) for r in rows]


# --- writes (gathering) -----------------------------------------------------------------------


@dataclass(slots=True)
class KnownPost(Post):
    """What gathering compares a fresh entry with: a stored post and its identity keys."""

    key: str = ""
    link_title: str | None = None


def known_posts(conn: Connection, blog: str) -> list[KnownPost]:
    rows = conn.execute(f"SELECT {_COLUMNS}, key, link_title FROM posts WHERE blog = ?", (blog,))
    return [KnownPost(**_fields(r), key=r["key"], link_title=r["link_title"]) for r in rows]


def id_taken(conn: Connection, post_id: str) -> bool:
    return conn.execute("SELECT 1 FROM posts WHERE id = ?", (post_id,)).fetchone() is not None


def first_with_canonical(
    conn: Connection, canonical: str, *, other_than_blog: str
) -> tuple[str, str] | None:
    """(post id, blog) of the earliest post of another blog with this canonical URL."""
    row = conn.execute(
        "SELECT id, blog FROM posts WHERE canonical = ? AND blog != ? AND duplicate_of IS NULL"
        " ORDER BY first_seen, id LIMIT 1",
        (canonical, other_than_blog),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def insert_post(
    conn: Connection,
    post: Post,
    *,
    key: str,
    link_title: str | None,
    canonical: str | None,
    backlog: bool,
    duplicate_of: str | None,
) -> None:
    conn.execute(
        "INSERT INTO posts (id, blog, key, link_title, canonical, title, url, author,"
        " published, first_seen, excerpt, backlog, duplicate_of, words, image, image_alt)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            post.id,
            post.blog,
            key,
            link_title,
            canonical,
            post.title,
            post.url,
            post.author,
            ts_or_none(post.published),
            ts(post.first_seen),
            post.excerpt,
            int(backlog),
            duplicate_of,
            post.words,
            post.image,
            post.image_alt,
        ),
    )


def update_post(
    conn: Connection,
    post_id: str,
    *,
    key: str,
    link_title: str | None,
    canonical: str | None,
    title: str,
    url: str | None,
    author: str | None,
    published: datetime | None,
    excerpt: str,
    words: int | None = None,
    image: str | None = None,
    image_alt: str | None = None,
) -> None:
    """A post edited in place (or re-keyed after a GUID rewrite): same id, same first_seen."""
    conn.execute(
        "UPDATE posts SET key = ?, link_title = ?, canonical = ?, title = ?, url = ?, author = ?,"
        " published = ?, excerpt = ?, words = ?, image = ?, image_alt = ? WHERE id = ?",
        (
            key,
            link_title,
            canonical,
            title,
            url,
            author,
            ts_or_none(published),
            excerpt,
            words,
            image,
            image_alt,
            post_id,
        ),
    )
