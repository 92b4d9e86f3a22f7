"""Inbound mail (digest/inbound): one row per message received for a blog that publishes by
email, whatever became of it: a post, a quarantined letter and why, a newsletter's own opt-in
confirmation with its link. The row's id is the message's identity, so a message read twice
(the Maildir again, a retried SMTP delivery) is recognised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.store.db import Connection, Row, parse_ts, ts

_COLUMNS = "id, blog, sender, subject, received_at, status, reason, post_id, confirm_url"


@dataclass(frozen=True, slots=True)
class InboundMail:
    id: str
    blog: str | None
    sender: str | None
    subject: str | None
    received_at: datetime
    status: str  # post | quarantined | confirmation
    reason: str | None = None  # why quarantined (or why a confirmation is unverified), in words
    post_id: str | None = None
    confirm_url: str | None = None


def _mail(row: Row) -> InboundMail:
    received = parse_ts(row["received_at"])
    assert received is not None
    return InboundMail(
        id=row["id"],
        blog=row["blog"],
        sender=row["sender"],
        subject=row["subject"],
        received_at=received,
        status=row["status"],
        reason=row["reason"],
        post_id=row["post_id"],
        confirm_url=row["confirm_url"],
    )


def get_mail(conn: Connection, mail_id: str) -> InboundMail | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM inbound_mail WHERE id = ?", (mail_id,)).fetchone()
    return None if row is None else _mail(row)


def save_mail(conn: Connection, mail: InboundMail, *, html: str | None = None) -> None:
    """Insert, or replace a quarantined row: a forged copy that arrived first (the same
    Message-ID, no valid signature) must not keep the real letter out. A post or a
    confirmation is never replaced."""
    conn.execute(
        f"INSERT INTO inbound_mail ({_COLUMNS}, html) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET blog = excluded.blog, sender = excluded.sender,"
        " subject = excluded.subject, received_at = excluded.received_at,"
        " status = excluded.status, reason = excluded.reason, post_id = excluded.post_id,"
        " confirm_url = excluded.confirm_url, html = excluded.html"
        " WHERE inbound_mail.status = 'quarantined'",
        (
            mail.id,
            mail.blog,
            mail.sender,
            mail.subject,
            ts(mail.received_at),
            mail.status,
            mail.reason,
            mail.post_id,
            mail.confirm_url,
            html,
        ),
    )


def post_id_for_key(conn: Connection, blog: str, key: str) -> str | None:
    row = conn.execute("SELECT id FROM posts WHERE blog = ? AND key = ?", (blog, key)).fetchone()
    return None if row is None else str(row[0])


def letter_html(conn: Connection, mail_id: str) -> tuple[InboundMail, str] | None:
    """An archived letter (a post with no link of its own): the row and its sanitised HTML."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, html FROM inbound_mail WHERE id = ? AND status = 'post'"
        " AND html IS NOT NULL",
        (mail_id,),
    ).fetchone()
    return None if row is None else (_mail(row), str(row["html"]))


def problems_since(conn: Connection, since: datetime) -> list[InboundMail]:
    """Quarantined mail and confirmations received since ``since``, oldest first: what the
    curator should see in the feed health."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM inbound_mail WHERE received_at >= ?"
        " AND status IN ('quarantined', 'confirmation') ORDER BY received_at, id",
        (ts(since),),
    )
    return [_mail(r) for r in rows]


def counts_since(conn: Connection, since: datetime) -> dict[str, int]:
    """Mail received since ``since`` by status (post, quarantined, confirmation)."""
    out = {"post": 0, "quarantined": 0, "confirmation": 0}
    rows = conn.execute(
        "SELECT status, COUNT(*) FROM inbound_mail WHERE received_at >= ? GROUP BY status",
        (ts(since),),
    )
    for status, count in rows:
        out[str(status)] = int(count)
    return out
