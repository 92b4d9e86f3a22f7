"""Posts: what gathering stores (writes at the bottom), read by the draft."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.models import Post
from digest.store.db import Connection, Row, parse_ts, select_in, ts, ts_or_none

_COLUMNS = "id, blog, title, url, author, published, first_seen, excerpt, words, image, image_alt"


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


@dataclass(slots=True)
class StoredPost(KnownPost):
    """A post as gathering writes it: the post, its identity keys and its standing."""

    canonical: str | None = None
    backlog: bool = False
    duplicate_of: str | None = None


def taken_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of these post ids are already used (by any blog)."""
    return {row[0] for row in select_in(conn, "SELECT id FROM posts WHERE id IN ({marks})", ids)}


def first_with_canonicals(
    conn: Connection, canonicals: Sequence[str], *, other_than_blog: str
) -> dict[str, tuple[str, str]]:
    """canonical -> (post id, blog) of the earliest post of another blog with that canonical
    URL, for those of ``canonicals`` that have one."""
    sql = (
        "SELECT id, blog, canonical, first_seen FROM posts"
        " WHERE duplicate_of IS NULL AND canonical IN ({marks})"
    )
    best: dict[str, tuple[str, str, str]] = {}
    for row in select_in(conn, sql, canonicals):
        post_id, blog, canonical, first_seen = row[0], row[1], row[2], row[3]
        if blog == other_than_blog:
            continue
        found = best.get(canonical)
        if found is None or (first_seen, post_id) < (found[2], found[0]):
            best[canonical] = (post_id, blog, first_seen)
    return {canonical: (found[0], found[1]) for canonical, found in best.items()}


_INSERT = (
    "INSERT INTO posts (id, blog, key, link_title, canonical, title, url, author,"
    " published, first_seen, excerpt, backlog, duplicate_of, words, image, image_alt)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_posts(conn: Connection, posts: Sequence[StoredPost]) -> None:
    """New posts, in one executemany."""
    # strftime is a third of the Python cost of a row: a feed's posts share first_seen, and
    # often their dates.
    stamps: dict[datetime, str] = {}

    def stamp(moment: datetime | None) -> str | None:
        if moment is None:
            return None
        text = stamps.get(moment)
        if text is None:
            text = stamps[moment] = ts(moment)
        return text

    rows = []
    for p in posts:
        rows.append(
            (
                p.id,
                p.blog,
                p.key,
                p.link_title,
                p.canonical,
                p.title,
                p.url,
                p.author,
                stamp(p.published),
                stamp(p.first_seen),
                p.excerpt,
                int(p.backlog),
                p.duplicate_of,
                p.words,
                p.image,
                p.image_alt,
            )
        )
    if rows:
        conn.executemany(_INSERT, rows)


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
    fields = {name: getattr(post, name) for name in _COLUMNS.split(", ")}
    stored = StoredPost(
        **fields,
        key=key,
        link_title=link_title,
        canonical=canonical,
        backlog=backlog,
        duplicate_of=duplicate_of,
    )
    insert_posts(conn, [stored])


@dataclass(slots=True)
class PostChange:
    """A stored post's new identity keys and fields (its id and first_seen never change)."""

    id: str
    key: str
    link_title: str | None
    canonical: str | None
    title: str
    url: str | None
    author: str | None
    published: datetime | None
    excerpt: str
    words: int | None = None
    image: str | None = None
    image_alt: str | None = None


def update_posts(conn: Connection, changes: Sequence[PostChange]) -> None:
    """Posts edited in place (or re-keyed after a GUID rewrite), in one executemany."""
    rows = [
        (
            c.key,
            c.link_title,
            c.canonical,
            c.title,
            c.url,
            c.author,
            ts_or_none(c.published),
            c.excerpt,
            c.words,
            c.image,
            c.image_alt,
            c.id,
        )
        for c in changes
    ]
    if rows:
        conn.executemany(
            "UPDATE posts SET key = ?, link_title = ?, canonical = ?, title = ?, url = ?,"
            " author = ?, published = ?, excerpt = ?, words = ?, image = ?, image_alt = ?"
            " WHERE id = ?",
            rows,
        )


def update_post(conn: Connection, post_id: str, **fields: Any) -> None:
    """A post edited in place (or re-keyed after a GUID rewrite): same id, same first_seen.
    ``fields``: those of PostChange."""
    update_posts(conn, [PostChange(id=post_id, **fields)])
