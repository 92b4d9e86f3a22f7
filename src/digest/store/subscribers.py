"""Subscribers, their consent record, and the suppression list."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime

from digest.models import Subscriber
from digest.store.db import ts


def _subscriber(row: sqlite3.Row) -> Subscriber:
    cats = row["categories"]
    return Subscriber(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        categories=None if cats is None else frozenset(json.loads(cats)),
        status=row["status"],
        token=row["token"],
    )


def encode_categories(categories: Iterable[str] | None) -> str | None:
    return None if categories is None else json.dumps(sorted(set(categories)))


def insert_subscriber(
    conn: sqlite3.Connection,
    *,
    email: str,
    name: str | None,
    categories: Iterable[str] | None,
    status: str,
    token: str,
    source: str,
    now: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
    consent_text: str | None = None,
) -> Subscriber:
    cur = conn.execute(
        "INSERT INTO subscribers (email, name, categories, status, token, source, requested_at,"
        " request_ip, request_ua, consent_text, confirmed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            email,
            name,
            encode_categories(categories),
            status,
            token,
            source,
            ts(now),
            ip,
            user_agent,
            consent_text,
            ts(now) if status == "confirmed" else None,
        ),
    )
    assert cur.lastrowid is not None
    got = get_by_id(conn, cur.lastrowid)
    assert got is not None
    return got


def get_by_id(conn: sqlite3.Connection, subscriber_id: int) -> Subscriber | None:
    row = conn.execute("SELECT * FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
    return None if row is None else _subscriber(row)


def get_by_email(conn: sqlite3.Connection, email: str) -> Subscriber | None:
    row = conn.execute("SELECT * FROM subscribers WHERE email = ?", (email,)).fetchone()
    return None if row is None else _subscriber(row)


def get_by_token(conn: sqlite3.Connection, token: str) -> Subscriber | None:
    # The lookup is by an indexed equality; the token is 256 random bits, so timing reveals
    # nothing useful. Callers compare again with hmac.compare_digest.
    row = conn.execute("SELECT * FROM subscribers WHERE token = ?", (token,)).fetchone()
    return None if row is None else _subscriber(row)


def iter_subscribers(
    conn: sqlite3.Connection, *, status: str | None = None
) -> Iterator[Subscriber]:
    if status is None:
        rows = conn.execute("SELECT * FROM subscribers ORDER BY id")
    else:
        rows = conn.execute("SELECT * FROM subscribers WHERE status = ? ORDER BY id", (status,))
    for row in rows:
        yield _subscriber(row)


def counts_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, COUNT(*) FROM subscribers GROUP BY status")
    return {r[0]: r[1] for r in rows}


def set_status(
    conn: sqlite3.Connection,
    subscriber_id: int,
    status: str,
    *,
    now: datetime,
    ip: str | None = None,
    user_agent: str | None = None,
) -> None:
    if status == "confirmed":
        conn.execute(
            "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?, confirm_ip = ?,"
            " confirm_ua = ?, unsubscribed_at = NULL WHERE id = ?",
            (ts(now), ip, user_agent, subscriber_id),
        )
    elif status in ("unsubscribed", "bounced"):
        conn.execute(
            "UPDATE subscribers SET status = ?, unsubscribed_at = COALESCE(unsubscribed_at, ?)"
            " WHERE id = ?",
            (status, ts(now), subscriber_id),
        )
    else:
        conn.execute("UPDATE subscribers SET status = ? WHERE id = ?", (status, subscriber_id))


def update_preferences(
    conn: sqlite3.Connection,
    subscriber_id: int,
    *,
    name: str | None,
    categories: Iterable[str] | None,
) -> None:
    conn.execute(
        "UPDATE subscribers SET name = ?, categories = ? WHERE id = ?",
        (name, encode_categories(categories), subscriber_id),
    )


def suppress(conn: sqlite3.Connection, email: str, reason: str, *, now: datetime) -> None:
    conn.execute(
        "INSERT INTO suppressions (email, reason, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (email) DO UPDATE SET reason = excluded.reason",
        (email, reason, ts(now)),
    )


def suppression_reason(conn: sqlite3.Connection, email: str) -> str | None:
    row = conn.execute("SELECT reason FROM suppressions WHERE email = ?", (email,)).fetchone()
    return None if row is None else str(row[0])


def unsuppress(conn: sqlite3.Connection, email: str) -> None:
    conn.execute("DELETE FROM suppressions WHERE email = ?", (email,))
