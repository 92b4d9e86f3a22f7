"""Subscribers, their consent record, and the suppression list."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from digest.models import Subscriber
from digest.store.db import Connection, Row, parse_ts, ts, ts_or_none


def _subscriber(row: Row) -> Subscriber:
    cats = row["categories"]
    return Subscriber(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        categories=None if cats is None else frozenset(json.loads(cats)),
        status=row["status"],
        token=row["token"],
        cadence=row["cadence"],
    )


def encode_categories(categories: Iterable[str] | None) -> str | None:
    return None if categories is None else json.dumps(sorted(set(categories)))


def insert_subscriber(
    conn: Connection,
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
    cadence: str = "weekly",
) -> Subscriber:
    row = conn.execute(
        "INSERT INTO subscribers (email, name, categories, cadence, status, token, source,"
        " requested_at, request_ip, request_ua, consent_text, confirmed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            email,
            name,
            encode_categories(categories),
            cadence,
            status,
            token,
            source,
            ts(now),
            ip,
            user_agent,
            consent_text,
            ts(now) if status == "confirmed" else None,
        ),
    ).fetchone()
    got = get_by_id(conn, int(row[0]))
    assert got is not None
    return got


def get_by_id(conn: Connection, subscriber_id: int) -> Subscriber | None:
    row = conn.execute("SELECT * FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
    return None if row is None else _subscriber(row)


def get_by_email(conn: Connection, email: str) -> Subscriber | None:
    row = conn.execute("SELECT * FROM subscribers WHERE email = ?", (email,)).fetchone()
    return None if row is None else _subscriber(row)


def get_by_token(conn: Connection, token: str) -> Subscriber | None:
    # The lookup is by an indexed equality; the token is 256 random bits, so timing reveals
    # nothing useful. Callers compare again with hmac.compare_digest.
    row = conn.execute("SELECT * FROM subscribers WHERE token = ?", (token,)).fetchone()
    return None if row is None else _subscriber(row)


def iter_subscribers(
    conn: Connection, *, status: str | None = None
) -> Iterator[Subscriber]:
    if status is None:
        rows = conn.execute("SELECT * FROM subscribers ORDER BY id")
    else:
        rows = conn.execute("SELECT * FROM subscribers WHERE status = ? ORDER BY id", (status,))
    for row in rows:
        yield _subscriber(row)


def counts_by_status(conn: Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, COUNT(*) FROM subscribers GROUP BY status")
    return {r[0]: r[1] for r in rows}


def set_status(
    conn: Connection,
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
    conn: Connection,
    subscriber_id: int,
    *,
    name: str | None,
    categories: Iterable[str] | None,
    cadence: str | None = None,
) -> None:
    """``cadence`` None keeps the current one. A send in progress never sees the change: its
    audience was copied into `deliveries` when it started (snapshot_audience)."""
    conn.execute(
        "UPDATE subscribers SET name = ?, categories = ?, cadence = COALESCE(?, cadence)"
        " WHERE id = ?",
        (name, encode_categories(categories), cadence, subscriber_id),
    )


def suppress(conn: Connection, email: str, reason: str, *, now: datetime) -> None:
    conn.execute(
        "INSERT INTO suppressions (email, reason, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (email) DO UPDATE SET reason = excluded.reason",
        (email, reason, ts(now)),
    )


def suppression_reason(conn: Connection, email: str) -> str | None:
    row = conn.execute("SELECT reason FROM suppressions WHERE email = ?", (email,)).fetchone()
    return None if row is None else str(row[0])


def unsuppress(conn: Connection, email: str) -> None:
    conn.execute("DELETE FROM suppressions WHERE email = ?", (email,))


# --- double opt-in -------------------------------------------------------------------------


@dataclass(slots=True)
class Confirmation:
    """A confirmation request: the hashed token and the request it would confirm."""

    token_hash: str
    subscriber_id: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    name: str | None
    categories: frozenset[str] | None
    source: str
    request_ip: str | None
    request_ua: str | None
    consent_text: str | None
    revoked_at: datetime | None = None  # another link was confirmed, or the address left
    cadence: str | None = None  # weekly | monthly; None: sent before readers chose (keep theirs)


def insert_confirmation(
    conn: Connection,
    *,
    token_hash: str,
    subscriber_id: int,
    now: datetime,
    expires_at: datetime,
    name: str | None,
    categories: Iterable[str] | None,
    source: str,
    ip: str | None,
    user_agent: str | None,
    consent_text: str | None,
    cadence: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO confirmations (token_hash, subscriber_id, created_at, expires_at, name,"
        " categories, cadence, source, request_ip, request_ua, consent_text)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            token_hash,
            subscriber_id,
            ts(now),
            ts(expires_at),
            name,
            encode_categories(categories),
            cadence,
            source,
            ip,
            user_agent,
            consent_text,
        ),
    )


def get_confirmation(conn: Connection, token_hash: str) -> Confirmation | None:
    row = conn.execute("SELECT * FROM confirmations WHERE token_hash = ?", (token_hash,)).fetchone()
    if row is None:
        return None
    created, expires = parse_ts(row["created_at"]), parse_ts(row["expires_at"])
    assert created is not None and expires is not None
    cats = row["categories"]
    return Confirmation(
        token_hash=row["token_hash"],
        subscriber_id=row["subscriber_id"],
        created_at=created,
        expires_at=expires,
        used_at=parse_ts(row["used_at"]),
        name=row["name"],
        categories=None if cats is None else frozenset(json.loads(cats)),
        source=row["source"],
        request_ip=row["request_ip"],
        request_ua=row["request_ua"],
        consent_text=row["consent_text"],
        revoked_at=parse_ts(row["revoked_at"]),
        cadence=row["cadence"],
    )


def use_confirmation(conn: Connection, token_hash: str, *, now: datetime) -> bool:
    """Mark the token used; False if it already was or was revoked (single use, even under a
    race)."""
    cur = conn.execute(
        "UPDATE confirmations SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
        " AND revoked_at IS NULL",
        (ts(now), token_hash),
    )
    return cur.rowcount == 1


def revoke_confirmations(
    conn: Connection, subscriber_id: int, *, now: datetime, keep: str | None = None
) -> int:
    """Revoke the subscriber's unused links (but ``keep``, a token hash); how many."""
    cur = conn.execute(
        "UPDATE confirmations SET revoked_at = ? WHERE subscriber_id = ? AND used_at IS NULL"
        " AND revoked_at IS NULL AND token_hash != ?",
        (ts(now), subscriber_id, keep or ""),  # no hash is empty: "" keeps none
    )
    return cur.rowcount


def confirm_subscriber(
    conn: Connection,
    confirmation: Confirmation,
    *,
    now: datetime,
    ip: str | None,
    user_agent: str | None,
) -> None:
    """Activate, and make the confirmed request the subscriber's consent record (GDPR art. 7)."""
    conn.execute(
        "UPDATE subscribers SET status = 'confirmed', name = ?, categories = ?,"
        " cadence = COALESCE(?, cadence), source = ?, requested_at = ?, request_ip = ?,"
        " request_ua = ?, consent_text = ?, confirmed_at = ?, confirm_ip = ?, confirm_ua = ?,"
        " unsubscribed_at = NULL WHERE id = ?",
        (
            confirmation.name,
            encode_categories(confirmation.categories),
            confirmation.cadence,
            confirmation.source,
            ts(confirmation.created_at),
            confirmation.request_ip,
            confirmation.request_ua,
            confirmation.consent_text,
            ts(now),
            ip,
            user_agent,
            confirmation.subscriber_id,
        ),
    )


def record_signup_mail(
    conn: Connection, email: str, kind: str, *, mailbox: str, now: datetime
) -> None:
    conn.execute(
        "INSERT INTO signup_mails (email, kind, sent_at, mailbox) VALUES (?, ?, ?, ?)",
        (email, kind, ts(now), mailbox),
    )


def signup_mails_since(conn: Connection, mailbox: str, since: datetime) -> int:
    """Signup mails sent to one mailbox (see schema: +tag removed, case folded) since then."""
    row = conn.execute(
        "SELECT COUNT(*) FROM signup_mails WHERE mailbox = ? AND sent_at >= ?",
        (mailbox, ts(since)),
    ).fetchone()
    return int(row[0])


def all_signup_mails_since(conn: Connection, since: datetime) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM signup_mails WHERE sent_at >= ?", (ts(since),)
    ).fetchone()
    return int(row[0])


# --- bulk: import and export ---------------------------------------------------------------


def all_emails(conn: Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT email FROM subscribers")}


def suppressed_emails(conn: Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT email FROM suppressions")}


@dataclass(slots=True)
class NewSubscriber:
    """One row of a bulk insert."""

    email: str
    name: str | None
    categories: frozenset[str] | None
    status: str
    token: str
    source: str
    requested_at: datetime
    confirmed_at: datetime | None
    request_ip: str | None = None
    request_ua: str | None = None
    consent_text: str | None = None
    cadence: str = "weekly"


def insert_many(conn: Connection, rows: Iterable[NewSubscriber]) -> int:
    """One executemany: 100 000 rows in a second or so. Call inside a transaction."""
    cur = conn.executemany(
        "INSERT INTO subscribers (email, name, categories, cadence, status, token, source,"
        " requested_at, request_ip, request_ua, consent_text, confirmed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (
                r.email,
                r.name,
                encode_categories(r.categories),
                r.cadence,
                r.status,
                r.token,
                r.source,
                ts(r.requested_at),
                r.request_ip,
                r.request_ua,
                r.consent_text,
                ts_or_none(r.confirmed_at),
            )
            for r in rows
        ),
    )
    return cur.rowcount


EXPORT_COLUMNS = (
    "email",
    "name",
    "categories",
    "status",
    "source",
    "requested_at",
    "request_ip",
    "request_ua",
    "consent_text",
    "confirmed_at",
    "confirm_ip",
    "confirm_ua",
    "unsubscribed_at",
    "cadence",  # last: scripts that read columns by position from older exports still work
)


def export_rows(
    conn: Connection, *, status: str | None = None
) -> Iterator[tuple[str | None, ...]]:
    """Subscribers with their consent record, in EXPORT_COLUMNS order. Tokens stay inside."""
    cols = ", ".join(EXPORT_COLUMNS)
    where, args = ("WHERE status = ?", (status,)) if status else ("", ())
    for row in conn.execute(f"SELECT {cols} FROM subscribers {where} ORDER BY id", args):
        out = list(row)
        if out[2] is not None:
            out[2] = ",".join(json.loads(out[2]))
        yield tuple(out)
