"""Short links under load (newsletter.click_counts): GET /r/<issue>/<n> through the real server.

`digest serve` runs in a subprocess on a free localhost port, over a database holding one
edition's 60 links. A minimal keep-alive client sends GETs with a browser's User-Agent (each
one counted) with a bounded number in flight, spread over the links. The server is then
stopped with SIGTERM, and the clicks it flushed at shutdown are compared with the requests
sent: every click counted, none twice. Reference: GET /healthz under the same load.
Target: >= 2000 redirects/s with p99 < 50 ms.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Load, digest_serve, load, load_rows, percentile, scratch, table  # noqa: E402

REQUESTS = 10_000
CONCURRENCY = 16
LINKS = 60
AGENT = "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _seed(db: Path) -> None:
    """One edition's links, as freezing stores them (issue 1, n = 1..LINKS)."""
    from digest.store import connect, transaction
    from digest.store.clicks import save_links

    conn = connect(db)
    targets = [(f"https://blog{n % 7}.example.org/posts/{n}", f"p{n}", f"blog{n % 7}")
               for n in range(1, LINKS + 1)]  # fmt: skip
    with transaction(conn):
        save_links(conn, 1, targets)
    conn.close()


def main() -> None:
    with scratch("digest-bench-redirect-") as tmp:
        db = tmp / "digest.db"
        _seed(db)
        with digest_serve(tmp, db) as server:
            # Warm up both paths (the links read once, imports); these count too.
            warm = [f"/r/1/{n % LINKS + 1}" for n in range(200)]
            load(server, "GET", warm, 4, 302, headers=[AGENT])
            load(server, "GET", ["/healthz"] * 200, 4, 200, headers=[AGENT])

            paths = [f"/r/1/{n % LINKS + 1}" for n in range(REQUESTS)]
            hit = load(server, "GET", paths, CONCURRENCY, 302, headers=[AGENT])
            ref = load(server, "GET", ["/healthz"] * REQUESTS, CONCURRENCY, 200, headers=[AGENT])
        # Stopped with SIGTERM: the counts still in memory have been flushed.

        conn = sqlite3.connect(db)
        counted = conn.execute("SELECT COALESCE(SUM(count), 0) FROM clicks").fetchone()[0]
        conn.close()
        report(hit, ref, counted, REQUESTS + len(warm))


def report(hit: Load, ref: Load, counted: int, want: int) -> None:
    p99 = percentile(hit.latencies, 0.99)
    ok = hit.rate >= 2000 and p99 < 50 and hit.failures == 0 and counted == want
    table(
        f"short links: {REQUESTS} GET /r/1/<n> over {LINKS} links, {CONCURRENCY} in flight "
        "(reference: GET /healthz, same load)",
        [
            *load_rows(hit, ref, ">= 2000", "< 50"),
            ("non-302 answers", str(hit.failures), "", "", "0"),
            ("clicks stored after SIGTERM", f"{counted}/{want}", "", "", "all"),
            ("verdict", "PASS" if ok else "FAIL", "", "", ""),
        ],
    )
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
