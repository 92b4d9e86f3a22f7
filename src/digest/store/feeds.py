"""Feeds: the state of polite fetching, one row per blog of blogs.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.models import FeedState
from digest.store.db import Connection, Row, parse_ts, ts, ts_or_none, write_one


@dataclass(slots=True)
class FeedRecord:
    """Everything gathering needs about one feed (FeedState plus validators and bookkeeping)."""

    state: FeedState
    configured_url: str | None
    etag: str | None
    last_modified: str | None
    seeded: bool  # the first run happened: the back catalogue is recorded


def _state(row: Row) -> FeedState:
    return FeedState(
        blog=row["blog"],
        url=row["url"],
        status=row["status"],
        http_status=row["http_status"],
        error=row["error"],
        failures=row["failures"],
        last_fetch=parse_ts(row["last_fetch"]),
        last_success=parse_ts(row["last_success"]),
        next_poll=parse_ts(row["next_poll"]),
        warning=row["warning"],
    )


def feed_states(conn: Connection) -> dict[str, FeedState]:
    """Blog id -> how its feed is doing (blogs never fetched yet are absent)."""
    return {r["blog"]: _state(r) for r in conn.execute("SELECT * FROM feeds ORDER BY blog")}


def get_feed(conn: Connection, blog: str) -> FeedRecord | None:
    row = conn.execute("SELECT * FROM feeds WHERE blog = ?", (blog,)).fetchone()
    if row is None:
        return None
    return FeedRecord(
        state=_state(row),
        configured_url=row["configured_url"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        seeded=bool(row["seeded"]),
    )


def ensure_feed(
    conn: Connection, blog: str, *, configured_url: str, feed_url: str | None
) -> FeedRecord:
    """The blog's row, created or reset when blogs.yaml now names another URL.

    ``feed_url`` is the feed to fetch as blogs.yaml says it (None: only a homepage, discover).
    A changed URL is the curator's fix for a moved or gone feed: start polling it afresh
    (validators and failures belong to the old URL) but keep the posts and ``seeded``.
    """
    record = get_feed(conn, blog)
    if record is not None and record.configured_url == configured_url:
        return record
    conn.execute(
        "INSERT INTO feeds (blog, configured_url, url) VALUES (?, ?, ?)"
        " ON CONFLICT (blog) DO UPDATE SET configured_url = excluded.configured_url,"
        " url = excluded.url, etag = NULL, last_modified = NULL, status = 'new',"
        " http_status = NULL, error = NULL, warning = NULL, failures = 0, next_poll = NULL",
        (blog, configured_url, feed_url),
    )
    record = get_feed(conn, blog)
    assert record is not None
    return record


def set_url(conn: Connection, blog: str, url: str) -> None:
    """After discovery or a chain of permanent redirects (301/308 only)."""
    conn.execute("UPDATE feeds SET url = ? WHERE blog = ?", (url, blog))


def save_validators(
    conn: Connection,
    blog: str,
    *,
    etag: str | None,
    last_modified: str | None,
    replace: bool,
) -> None:
    """Store the validators byte-for-byte as the latest response carried them.

    ``replace`` (a 200): the response's validators replace the stored ones, absent ones too.
    Otherwise (a 304) each is updated only when present: a 304 that omits one must never wipe
    it (REFERENCE.md section 1, the bug Feedbin, NetNewsWire and CommaFeed shipped).
    """
    if replace:
        conn.execute(
            "UPDATE feeds SET etag = ?, last_modified = ? WHERE blog = ?",
            (etag, last_modified, blog),
        )
    else:
        conn.execute(
            "UPDATE feeds SET etag = COALESCE(?, etag),"
            " last_modified = COALESCE(?, last_modified) WHERE blog = ?",
            (etag, last_modified, blog),
        )


def record_success(
    conn: Connection,
    blog: str,
    *,
    http_status: int,
    next_poll: datetime,
    warning: str | None,
    now: datetime,
    seeded: bool,
) -> None:
    conn.execute(
        "UPDATE feeds SET status = 'ok', http_status = ?, error = NULL,"
        " warning = CASE WHEN ? = 304 THEN warning ELSE ? END, failures = 0,"
        " last_fetch = ?, last_success = ?, next_poll = ?,"
        " seeded = CASE WHEN ? = 1 THEN 1 ELSE seeded END"
        " WHERE blog = ?",
        (http_status, http_status, warning, ts(now), ts(now), ts(next_poll), int(seeded), blog),
    )


def record_not_modified(
    conn: Connection,
    blog: str,
    *,
    etag: str | None,
    last_modified: str | None,
    next_poll: datetime,
    now: datetime,
) -> None:
    """A 304, in one statement outside a transaction (``write_one``): the validators it carries
    (each only when present, as ``save_validators`` with ``replace=False``) and a success
    (as ``record_success`` with ``http_status=304``: the warning stays)."""
    write_one(
        conn,
        "UPDATE feeds SET etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified),"
        " status = 'ok', http_status = 304, error = NULL, failures = 0,"
        " last_fetch = ?, last_success = ?, next_poll = ? WHERE blog = ?",
        (etag, last_modified, ts(now), ts(now), ts(next_poll), blog),
    )


def record_failure(
    conn: Connection,
    blog: str,
    *,
    http_status: int | None,
    error: str,
    next_poll: datetime | None,
    now: datetime,
    gone: bool = False,
) -> int:
    """Count one more consecutive failure; returns the count. ``gone``: 410, stop polling."""
    conn.execute(
        "UPDATE feeds SET status = ?, http_status = ?, error = ?, failures = failures + 1,"
        " last_fetch = ?, next_poll = ? WHERE blog = ?",
        ("gone" if gone else "error", http_status, error, ts(now), ts_or_none(next_poll), blog),
    )
    row = conn.execute("SELECT failures FROM feeds WHERE blog = ?", (blog,)).fetchone()
    return int(row[0])
