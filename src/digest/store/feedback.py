"""Bounces and complaints reported after the 250 (digest.feedback): one row per (source, event
id), so a retried webhook or a report read twice is applied once."""

from __future__ import annotations

from datetime import datetime

from digest.store.db import Connection, Row, ts, ts_or_none


def record_event(
    conn: Connection,
    *,
    source: str,
    event_id: str,
    kind: str,
    recipient: str | None,
    message_id: str | None,
    detail: str,
    at: datetime | None,
    now: datetime,
) -> bool:
    """Record an event seen for the first time; False when it was recorded before."""
    return (
        conn.execute(
            "INSERT INTO feedback_events (source, event_id, kind, recipient, message_id, outcome,"
            " detail, occurred_at, received_at) VALUES (?, ?, ?, ?, ?, '', ?, ?, ?)"
            " ON CONFLICT (source, event_id) DO NOTHING",
            (source, event_id, kind, recipient, message_id, detail, ts_or_none(at), ts(now)),
        ).rowcount
        > 0
    )


def set_outcome(
    conn: Connection,
    source: str,
    event_id: str,
    *,
    outcome: str,
    issue: int | None,
    subscriber_id: int | None,
) -> None:
    conn.execute(
        "UPDATE feedback_events SET outcome = ?, issue = ?, subscriber_id = ?"
        " WHERE source = ? AND event_id = ?",
        (outcome, issue, subscriber_id, source, event_id),
    )


def find_delivery(conn: Connection, message_id: str | None, email: str | None) -> Row | None:
    """The delivery a report is about: by its Message-ID, else the address's latest."""
    columns = "SELECT issue, subscriber_id, email, status, bounce FROM deliveries"
    if message_id:
        row: Row | None = conn.execute(f"{columns} WHERE message_id = ?", (message_id,)).fetchone()
        if row is not None:
            return row
    if email:
        return conn.execute(
            f"{columns} WHERE email = ? ORDER BY issue DESC LIMIT 1", (email,)
        ).fetchone()
    return None


def mark_delivery(
    conn: Connection, delivery: Row, bounce: str, reply: str, *, status: str
) -> None:
    """A delivery's late bounce class. A policy report never overwrites a soft or hard class
    (it would uncount a soft bounce)."""
    keep = " AND bounce IS NULL" if bounce == "policy" else ""
    conn.execute(
        f"UPDATE deliveries SET bounce = ?, reply = ?, status = ?"
        f" WHERE issue = ? AND subscriber_id = ?{keep}",
        (bounce, reply[:500], status, delivery["issue"], delivery["subscriber_id"]),
    )


def counts_since(conn: Connection, since: datetime) -> dict[str, int]:
    """Late bounces and complaints received since ``since``, by kind."""
    found = {kind: 0 for kind in ("hard", "soft", "policy", "complaint")}
    for kind, n in conn.execute(
        "SELECT kind, COUNT(*) FROM feedback_events WHERE received_at >= ? GROUP BY kind",
        (ts(since),),
    ):
        found[str(kind)] = int(n)
    return found
