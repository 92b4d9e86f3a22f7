"""The web app's rate-limit counters (digest.web.ratelimit): per limiter and keyed hash, the
hits of the current fixed window and of the one before, in one row."""

from __future__ import annotations

from digest.store.db import Connection

_HIT = """
INSERT INTO rate_limits (limiter, subject, window_no, hits, previous)
VALUES (?, ?, ?, 1, 0)
ON CONFLICT (limiter, subject) DO UPDATE SET
    previous = CASE
        WHEN rate_limits.window_no = excluded.window_no THEN rate_limits.previous
        WHEN rate_limits.window_no = excluded.window_no - 1 THEN rate_limits.hits
        ELSE 0 END,
    hits = CASE
        WHEN rate_limits.window_no = excluded.window_no THEN rate_limits.hits + 1
        ELSE 1 END,
    window_no = excluded.window_no
RETURNING hits, previous
"""
_PURGE = "DELETE FROM rate_limits WHERE limiter = ? AND window_no < ?"


def hit(conn: Connection, limiter: str, subject: str, window_no: int) -> tuple[int, int]:
    """Count one hit in window ``window_no``; the hits of that window and of the one before.
    One upsert (SQLite 3.35+ and PostgreSQL: the SET expressions read the row as it was)."""
    [(hits, previous)] = conn.execute(_HIT, (limiter, subject, window_no)).fetchall()
    return int(hits), int(previous)


def purge(conn: Connection, limiter: str, *, before: int) -> None:
    conn.execute(_PURGE, (limiter, before))
