"""Rate limits kept in the database, so several `digest serve` behind one load balancer share them.

A sliding window, estimated from two fixed ones: the hits of the current window plus those of
the previous one, weighted by how much of it the sliding window still covers (the estimate
Cloudflare and nginx-style limiters use). One row per (limiter, key) holds both counts, and one
upsert per hit both counts it and answers, in SQLite 3.35+ and PostgreSQL alike (the SET
expressions read the row as it was). Refused hits count too, as before: a flood stays refused
until it stops. Keys are keyed hashes (BLAKE2b with a secret derived from the form secret), so
the table holds no IP or address in clear; rows two windows old are purged once a window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

from digest.store import ratelimits
from digest.store.db import Connection
from digest.web.database import Database


class RateLimiter:
    """At most ``limit`` hits per ``window`` seconds per key, counted in the database."""

    def __init__(
        self,
        db: Database,
        name: str,
        limit: int,
        window: float,
        *,
        secret: bytes,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.name = name
        self.limit = limit
        self.window = window
        self.secret = hashlib.blake2b(secret, person=b"digest-ratelim").digest()
        self.clock = clock
        self.purged = -1  # the window whose stale rows this process purged last

    def subject(self, key: str) -> str:
        return hashlib.blake2b(key.encode(), key=self.secret, digest_size=16).hexdigest()

    async def allow(self, key: str) -> bool:
        """Record a hit and say whether it is within the limit (refused hits count too)."""
        now = self.clock().timestamp()
        subject = self.subject(key)
        return await self.db.run(lambda conn: self.hit(conn, subject, now))

    def hit(self, conn: Connection, subject: str, now: float) -> bool:
        number = int(now // self.window)
        hits, previous = ratelimits.hit(conn, self.name, subject, number)
        if number != self.purged:  # once a window per process: the index makes it cheap
            self.purged = number
            ratelimits.purge(conn, self.name, before=number - 1)
        covered = 1.0 - (now / self.window - number)  # of the previous window, still in ours
        estimate: float = hits + previous * covered
        return estimate <= self.limit
