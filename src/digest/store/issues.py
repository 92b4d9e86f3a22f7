"""Issues: frozen when sending starts; the web archive reads them back.

Two kinds of edition share the table (and the ledger, `deliveries`): weekly issues numbered
1, 2, 3 ..., and monthly editions keyed YYYYMM (202611) that name their month. Everything that
means "the weekly issue" (the next number, the last issue, neighbours, what was featured) reads
``kind = 'weekly'`` only, so a monthly edition never bends the weekly numbering.
"""

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
    kind: str = "weekly"  # weekly | monthly
    month: str | None = None  # 'YYYY-MM' of a monthly edition

    @property
    def key(self) -> str:
        """Its name in the web archive: /archive/12, /archive/2026-11."""
        return str(self.number) if self.month is None else self.month


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
        kind=row["kind"],
        month=row["month"],
    )


def last_issue(conn: Connection) -> ArchivedIssue | None:
    """The latest weekly issue sent or being sent: its `until` is the next issue's `since`."""
    row = conn.execute(
        "SELECT * FROM issues WHERE kind = 'weekly' ORDER BY number DESC LIMIT 1"
    ).fetchone()
    return None if row is None else _archived(row)


def next_number(conn: Connection) -> int:
    """The number of the next weekly issue."""
    return int(
        conn.execute(
            "SELECT COALESCE(MAX(number), 0) + 1 FROM issues WHERE kind = 'weekly'"
        ).fetchone()[0]
    )


def get_issue(conn: Connection, number: int, *, kind: str | None = None) -> ArchivedIssue | None:
    """The edition keyed ``number`` (either kind, unless ``kind`` says which)."""
    row = conn.execute("SELECT * FROM issues WHERE number = ?", (number,)).fetchone()
    if row is None or (kind is not None and row["kind"] != kind):
        return None
    return _archived(row)


def get_monthly(conn: Connection, month: str) -> ArchivedIssue | None:
    row = conn.execute(
        "SELECT * FROM issues WHERE kind = 'monthly' AND month = ?", (month,)
    ).fetchone()
    return None if row is None else _archived(row)


def last_monthly(conn: Connection) -> ArchivedIssue | None:
    """The latest monthly edition sent or being sent."""
    row = conn.execute(
        "SELECT * FROM issues WHERE kind = 'monthly' ORDER BY number DESC LIMIT 1"
    ).fetchone()
    return None if row is None else _archived(row)


def list_issues(conn: Connection, *, kind: str | None = None) -> list[ArchivedIssue]:
    """Newest first, by the day each went out: weekly issues and monthly editions interleave
    by date, never by their keys (202611 is no later than issue 12)."""
    where, params = ("", ()) if kind is None else (" WHERE kind = ?", (kind,))
    rows = conn.execute(
        f"SELECT * FROM issues{where}"
        " ORDER BY COALESCE(sent_at, created_at) DESC, number DESC",
        params,
    )
    return [_archived(r) for r in rows]


def sent_between(conn: Connection, since: datetime, until: datetime) -> list[ArchivedIssue]:
    """The weekly issues sent in [since, until), in issue order: what a monthly edition
    is composed from."""
    rows = conn.execute(
        "SELECT * FROM issues WHERE kind = 'weekly' AND status = 'sent'"
        " AND sent_at >= ? AND sent_at < ? ORDER BY number",
        (ts(since), ts(until)),
    )
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
    """Record the issue and what it featured (a weekly issue's posts and pick: a monthly
    edition repeats posts already featured). Call inside a transaction."""
    conn.execute(
        "INSERT INTO issues (number, subject, since, until, content, html, text, status,"
        " created_at, kind, month) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            issue.kind,
            issue.month,
        ),
    )
    if issue.month is not None:
        return
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
    """(number, subject) of the weekly issues just before and after ``number``, None at either
    end."""
    before = conn.execute(
        "SELECT number, subject FROM issues WHERE kind = 'weekly' AND number < ?"
        " ORDER BY number DESC LIMIT 1",
        (number,),
    ).fetchone()
    after = conn.execute(
        "SELECT number, subject FROM issues WHERE kind = 'weekly' AND number > ?"
        " ORDER BY number LIMIT 1",
        (number,),
    ).fetchone()
    return (
        None if before is None else (before[0], before[1]),
        None if after is None else (after[0], after[1]),
    )
