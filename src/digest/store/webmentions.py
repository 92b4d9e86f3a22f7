"""Webmentions (newsletter.webmentions): one row per (issue, featured post).

The row is the promise never to tell a post twice about one issue: it is created 'pending'
once, and only a 'pending' or 'retry' row is ever sent (digest/webmention.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.store.db import Connection, Row, parse_ts, select_in, ts

DUE = ("pending", "retry")
STATUSES = ("sent", "none", "retry", "failed", "pending")


@dataclass(slots=True)
class Mention:
    issue: int
    target: str  # the featured post
    source: str  # the archive page that mentions it
    endpoint: str | None
    status: str  # pending | sent | none | failed | retry
    http_status: int | None
    detail: str | None
    attempts: int
    updated_at: datetime


def _mention(row: Row) -> Mention:
    updated = parse_ts(row["updated_at"])
    assert updated is not None
    return Mention(
        issue=int(row["issue"]),
        target=row["target"],
        source=row["source"],
        endpoint=row["endpoint"],
        status=row["status"],
        http_status=row["http_status"],
        detail=row["detail"],
        attempts=int(row["attempts"]),
        updated_at=updated,
    )


@dataclass(slots=True)
class SentIssue:
    number: int
    month: str | None  # YYYY-MM for a monthly edition: its archive page is /archive/<month>
    sent_at: str

    @property
    def key(self) -> str:
        return self.month or str(self.number)


def sent_issues(conn: Connection, *, since: str | None = None) -> list[SentIssue]:
    """Issues whose send finished (oldest first), those sent at or after ``since`` if given."""
    sql = "SELECT number, month, sent_at FROM issues WHERE status = 'sent'"
    params: tuple[str, ...] = ()
    if since is not None:
        sql += " AND sent_at >= ?"
        params = (since,)
    rows = conn.execute(sql + " ORDER BY sent_at, number", params).fetchall()
    return [SentIssue(int(r[0]), r[1], str(r[2])) for r in rows]


def enqueue(conn: Connection, issue: int, *, source: str, now: datetime) -> int:
    """A 'pending' row for each post ``issue`` featured (archive pick included) that has none;
    returns how many were added. Call inside a transaction."""
    cursor = conn.execute(
        "INSERT INTO webmentions (issue, target, source, status, attempts, updated_at)"
        " SELECT f.issue, f.url, ?, 'pending', 0, ? FROM featured f WHERE f.issue = ?"
        " ON CONFLICT (issue, target) DO NOTHING",
        (source, ts(now), issue),
    )
    return max(cursor.rowcount, 0)


def due(conn: Connection, issue: int | None = None) -> list[Mention]:
    """The rows still to send: 'pending', and 'retry' after a 429, a 5xx or a timeout."""
    sql = "SELECT * FROM webmentions WHERE status IN (?, ?)"
    params: tuple[object, ...] = DUE
    if issue is not None:
        sql += " AND issue = ?"
        params = (*DUE, issue)
    return [_mention(r) for r in conn.execute(sql + " ORDER BY issue, target", params)]


def record(
    conn: Connection,
    issue: int,
    target: str,
    *,
    status: str,
    endpoint: str | None,
    http_status: int | None,
    detail: str,
    now: datetime,
) -> None:
    """One attempt's outcome; only a row still due changes. Call inside a transaction."""
    conn.execute(
        "UPDATE webmentions SET status = ?, endpoint = COALESCE(?, endpoint), http_status = ?,"
        " detail = ?, attempts = attempts + 1, updated_at = ?"
        " WHERE issue = ? AND target = ? AND status IN (?, ?)",
        (status, endpoint, http_status, detail, ts(now), issue, target, *DUE),
    )


def mentions(conn: Connection, issues: list[int]) -> list[Mention]:
    """Every row of ``issues``, by issue and target."""
    rows = select_in(conn, "SELECT * FROM webmentions WHERE issue IN ({marks})", issues)
    return sorted((_mention(r) for r in rows), key=lambda m: (m.issue, m.target))


def counts_since(conn: Connection, since: datetime) -> dict[str, int]:
    """Rows by status whose last change was at or after ``since`` (`digest status`)."""
    out = dict.fromkeys(STATUSES, 0)
    rows = conn.execute(
        "SELECT status, COUNT(*) FROM webmentions WHERE updated_at >= ? GROUP BY status",
        (ts(since),),
    )
    for status, count in rows:
        out[str(status)] = int(count)
    return out


def latest_issue(conn: Connection) -> int | None:
    """The issue whose webmentions changed last, if any."""
    row = conn.execute(
        "SELECT issue FROM webmentions ORDER BY updated_at DESC, issue DESC LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])
