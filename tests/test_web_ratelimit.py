"""The subscribe form's abuse limits live in the database: several `digest serve` share them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.web.database import Database
from digest.web.pages import Limits
from digest.web.ratelimit import RateLimiter
from plugins.website import Web

LIMITS = Limits(per_ip=3, ip_window=600, per_address=100, subscribe_floor=0)


@pytest.fixture
def two_instances(
    tmp_path: Path, blogs_yaml: Path, db_path: Path
) -> Iterator[tuple[Web, Web]]:
    """Two apps over one database, as two `digest serve` behind a load balancer."""
    one = Web(tmp_path, blogs_yaml, LIMITS, db=db_path)
    two = Web(tmp_path, blogs_yaml, LIMITS, db=db_path)
    with one.client, two.client:
        yield one, two
    one.close()
    two.close()


def test_two_instances_share_one_limit(two_instances: tuple[Web, Web]) -> None:
    one, two = two_instances
    codes = [
        one.subscribe("a@example.org").status_code,
        two.subscribe("b@example.org").status_code,
        one.subscribe("c@example.org").status_code,
        two.subscribe("d@example.org").status_code,  # the fourth from this IP, on either
        one.subscribe("e@example.org").status_code,
    ]
    assert codes == [200, 200, 200, 429, 429]
    # A window later (on both clocks) the IP may subscribe again.
    for web in two_instances:
        web.advance(timedelta(seconds=2 * 600))
    assert two.subscribe("f@example.org").status_code == 200


def test_keys_are_not_stored_in_clear(two_instances: tuple[Web, Web]) -> None:
    one, _ = two_instances
    one.subscribe("ann+news@example.org")
    rows = [tuple(r) for r in one.conn.execute("SELECT * FROM rate_limits ORDER BY limiter")]
    assert [(r[0], r[3]) for r in rows] == [("address", 1), ("ip", 1)]
    text = repr(rows)
    assert "testclient" not in text and "ann" not in text and "example.org" not in text
    assert all(len(r[1]) == 32 for r in rows)


NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _limiter(db: Database, clock: list[datetime], limit: int = 4) -> RateLimiter:
    return RateLimiter(db, "ip", limit, 100, secret=b"s", clock=lambda: clock[0])


def test_the_window_slides(tmp_path: Path) -> None:
    db = Database(tmp_path / "digest.db")
    clock = [datetime.fromtimestamp(NOW.timestamp() // 100 * 100 + 50, UTC)]  # mid-window
    limiter = _limiter(db, clock)

    async def hits(n: int) -> list[bool]:
        return [await limiter.allow("10.0.0.1") for _ in range(n)]

    try:
        assert asyncio.run(hits(5)) == [True] * 4 + [False]  # 5 hits, halfway through a window
        clock[0] += timedelta(seconds=75)  # a quarter into the next: 5 * 0.75 = 3.75 still count
        assert asyncio.run(hits(1)) == [False]  # 1 + 3.75 > 4 (refused hits count too)
        clock[0] += timedelta(seconds=50)  # three quarters in: 2 + 5 * 0.25 = 3.25
        assert asyncio.run(hits(1)) == [True]
        assert asyncio.run(limiter.allow("10.0.0.2"))  # another key, its own count
        # Rows of windows before the previous one are purged as a new window starts.
        clock[0] += timedelta(seconds=300)
        asyncio.run(hits(1))
        assert db.conn.execute("SELECT COUNT(*) FROM rate_limits").fetchone()[0] == 1
    finally:
        db.close()


def test_one_hit_is_one_cheap_statement(tmp_path: Path) -> None:
    db = Database(tmp_path / "digest.db")
    conn = db.conn
    limiter = RateLimiter(db, "ip", 10, 600, secret=b"s", clock=lambda: NOW)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    now = NOW.timestamp()
    limiter.hit(conn, limiter.subject("10.0.0.1"), now)  # the first of a window also purges
    statements.clear()
    limiter.hit(conn, limiter.subject("10.0.0.1"), now)
    assert len(statements) == 1 and statements[0].lstrip().startswith("INSERT INTO rate_limits")
    conn.set_trace_callback(None)
    n = 2000
    started = time.perf_counter()
    for i in range(n):
        limiter.hit(conn, limiter.subject(f"10.0.{i % 250}.1"), now)
    per_hit = (time.perf_counter() - started) / n
    print(f"rate limit hit: {per_hit * 1e6:.0f} us")
    assert per_hit < 0.005
    db.close()
