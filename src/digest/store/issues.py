"""Issues: frozen when sending starts; the web archive reads them back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.models import Issue
from digest.store.db import Connection, Row, parse_ts, ts


@dataclass(slots=True)
class ArchivedIssue:
    number: int
    subject: str
    since: datetime
    until: datetime
    content: Issue
    html: str
    text: str
    status: str  # sending | sent
    created_at: datetime
    sent_at: datetime | None


def _archived(row: Row) -> ArchivedIssue:
    since, until, created = (parse_ts(row[k]) for k in ("since", "until", "created_at"))
    assert since and until and created
    return ArchivedIssue(
        number=row["number"],
        subject=row["subject"],
        since=since,
        until=until,
        content=Issue.model_validate_json(row["content"]),
        html=row["html"],
        text=row["text"],
        status=row["status"],
        created_at=created,
        sent_at=parse_ts(row["sent_at"]),
    )


def last_issue(conn: Connection) -> ArchivedIssue | None:
    """The latest issue sent or being sent: its `until` is the next issue's `since`."""
    row = conn.execute("SELECT * FROM issues ORDER BY number DESC LIMIT 1").fetchone()
    return None if row is None else _archived(row)


def next_number(conn: Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM issues").fetchone()[0])


def get_issue(conn: Connection, number: int) -> ArchivedIssue | None:
    row = conn.execute("SELECT * FROM issues WHERE number = ?", (number,)).fetchone()
    return None if row is None else _archived(row)


def list_issues(conn: Connection) -> list[ArchivedIssue]:
    rows = conn.execute("SELECT * FROM issues ORDER BY number DESC")
    return [_archived(r) for r in rows]


def featured_urls(conn: Connection) -> set[str]:
    """Every URL an earlier issue featured (posts and archive picks)."""
    return {r[0] for r in conn.execute("SELECT url FROM featured")}


def freeze_issue(
    conn: Connection,
    issue: Issue,
    *,
    html: str,
    text: str,
    status: str,
    now: datetime,
) -> None:
    """Record the issue and what it featured. Call inside a transaction."""
    conn.execute(
        "INSERT INTO issues (number, subject, since, until, content, html, text, status,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            issue.number,
            issue.subject,
            ts(issue.since),
            ts(issue.until),
            issue.model_dump_json(),
            html,
            text,
            status,
            ts(now),
        ),
    )
    rows = [(issue.number, p.id, p.url, "post") for p in issue.posts]
    if issue.archive_pick is not None:
        rows.append((issue.number, issue.archive_pick.id, issue.archive_pick.url, "archive"))
    conn.executemany(
        "INSERT INTO featured (issue, post_id, url, kind) VALUES (?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        rows,
    )


def set_issue_status(
    conn: Connection, number: int, status: str, *, sent_at: datetime | None = None
) -> None:
    conn.execute(
        "UPDATE issues SET status = ?, sent_at = COALESCE(?, sent_at) WHERE number = ?",
        (status, None if sent_at is None else ts(sent_at), number),
    )


def neighbours(
    conn: Connection, number: int
) -> tuple[tuple[int, str] | None, tuple[int, str] | None]:
    """(number, subject) of the issues just before and after ``number``, None at either end."""
    before = conn.execute(
        "SELECT number, subject FROM issues WHERE number < ? ORDER BY number DESC LIMIT 1",
        (number,),
    ).fetchone()
    after = conn.execute(
        "SELECT number, subject FROM issues WHERE number > ? ORDER BY number LIMIT 1", (number,)
    ).fetchone()
    return (
        None if before is None else (before[0], before[1]),
        None if after is None else (after[0], after[1]),
    )
