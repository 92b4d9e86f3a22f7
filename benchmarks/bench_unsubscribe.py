"""One-click unsubscribe under concurrent load (issue 5, item 6).

`digest serve` runs in a subprocess on a free localhost port, over a database of subscribers;
a minimal keep-alive client POSTs `List-Unsubscribe=One-Click` (RFC 8058) to distinct tokens
with a bounded number of requests in flight (then httpx does the same, for comparison).
Afterwards every unsubscribe is counted in the database.
Reference: GET /healthz (the framework and one database round trip) under the same load.
Target: >= 500 unsubscribes/s with p99 < 50 ms.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Load, digest_serve, load, load_rows, percentile, scratch, table  # noqa: E402

REQUESTS = 4000
CONCURRENCY = 16
SUBSCRIBERS = 20_000
HTTPX_REQUESTS = 1000
BODY = b"List-Unsubscribe=One-Click"
FORM = "Content-Type: application/x-www-form-urlencoded"


def _seed(db: Path, count: int) -> list[str]:
    from digest.store import connect, transaction
    from digest.subscribers import new_token

    conn = connect(db)
    tokens = [new_token() for _ in range(count)]
    with transaction(conn):
        conn.executemany(
            "INSERT INTO subscribers (email, status, token, source, requested_at, confirmed_at)"
            " VALUES (?, 'confirmed', ?, 'import', '2026-01-01T00:00:00Z',"
            " '2026-01-01T00:00:00Z')",
            [(f"reader{i}@example.net", t) for i, t in enumerate(tokens)],
        )
    conn.close()
    return tokens


def _extra_tokens(db: Path, count: int) -> list[str]:
    """Subscribers beyond the measured ones, for the warm-up."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT token FROM subscribers ORDER BY id DESC LIMIT ?", (count,)
    ).fetchall()
    conn.close()
    return [r[0] for r in rows]


async def _httpx_load(base: str, paths: list[str], concurrency: int) -> tuple[float, int]:
    """The same POSTs through httpx, for comparison: (requests/s, non-200 answers)."""
    failures = 0
    queue = iter(paths)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def worker() -> None:
            nonlocal failures
            for path in queue:
                headers = {"content-type": "application/x-www-form-urlencoded"}
                answer = await client.post(path, content=BODY, headers=headers)
                failures += answer.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(paths) / (time.perf_counter() - started), failures


def main() -> None:
    with scratch("digest-bench-unsub-") as tmp:
        db = tmp / "digest.db"
        tokens = _seed(db, SUBSCRIBERS)[:REQUESTS]
        spare = _extra_tokens(db, 50 + HTTPX_REQUESTS)
        with digest_serve(tmp, db) as server:
            # Warm up both paths (imports, template compilation) on tokens not measured.
            warm = [f"/unsubscribe/{t}" for t in spare[:50]]
            load(server, "POST", warm, 4, 200, headers=[FORM], body=BODY)
            load(server, "GET", ["/healthz"] * 200, 4, 200)

            paths = [f"/unsubscribe/{t}" for t in tokens]
            hit = load(server, "POST", paths, CONCURRENCY, 200, headers=[FORM], body=BODY)
            ref = load(server, "GET", ["/healthz"] * REQUESTS, CONCURRENCY, 200)
            via_httpx = [f"/unsubscribe/{t}" for t in spare[50:]]
            httpx_rate, httpx_failed = asyncio.run(_httpx_load(server.base, via_httpx, CONCURRENCY))

        conn = sqlite3.connect(db)
        persisted = conn.execute(
            "SELECT COUNT(*) FROM subscribers WHERE status = 'unsubscribed' AND token IN"
            f" ({','.join('?' * len(tokens))})",
            tokens,
        ).fetchone()[0]
        suppressed = conn.execute("SELECT COUNT(*) FROM suppressions").fetchone()[0]
        conn.close()
        report(hit, ref, httpx_rate, httpx_failed, persisted, suppressed, len(spare))


def report(
    hit: Load,
    ref: Load,
    httpx_rate: float,
    httpx_failed: int,
    persisted: int,
    suppressed: int,
    spare: int,
) -> None:
    p99 = percentile(hit.latencies, 0.99)
    ok = hit.rate >= 500 and p99 < 50 and persisted == REQUESTS and hit.failures + httpx_failed == 0
    table(
        f"one-click unsubscribe: {REQUESTS} POSTs, {CONCURRENCY} in flight, "
        f"{SUBSCRIBERS} subscribers (reference: GET /healthz, same load)",
        [
            *load_rows(hit, ref, ">= 500", "< 50"),
            ("non-200 answers", str(hit.failures), "", "", "0"),
            (f"requests/s, httpx client ({HTTPX_REQUESTS})", f"{httpx_rate:.0f}", "", "",
             "client-bound"),
            ("persisted unsubscribes", f"{persisted}/{REQUESTS}", "", "", "all"),
            ("suppression entries", str(suppressed), "", "", str(spare + REQUESTS)),
            ("verdict", "PASS" if ok else "FAIL", "", "", ""),
        ],
    )  # fmt: skip
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
