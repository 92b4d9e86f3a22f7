"""One-click unsubscribe under concurrent load (issue 5, item 6).

`digest serve` runs in a subprocess on a free localhost port, over a database of subscribers;
an async httpx client POSTs `List-Unsubscribe=One-Click` (RFC 8058) to distinct tokens with a
bounded number of requests in flight. Afterwards every unsubscribe is counted in the database.
Reference: GET /healthz (the framework and one database round trip) under the same load.
Target: >= 500 unsubscribes/s with p99 < 50 ms.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ratio, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 4000
CONCURRENCY = 16
SUBSCRIBERS = 20_000
HTTPX_REQUESTS = 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


BODY = b"List-Unsubscribe=One-Click"


async def _load(
    port: int, method: str, paths: list[str], concurrency: int
) -> tuple[float, list[float], int]:
    """(seconds, sorted latencies, non-200 answers) for every path, `concurrency` in flight.

    A minimal HTTP/1.1 keep-alive client on asyncio streams: httpx spends ~2 ms of CPU per
    request here (measured), so on 2 cores it, not the server, would set the pace.
    """
    latencies: list[float] = []
    failures = 0
    queue = iter(paths)

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for path in queue:
                if method == "POST":
                    head = (
                        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        "Content-Type: application/x-www-form-urlencoded\r\n"
                        f"Content-Length: {len(BODY)}\r\n\r\n"
                    )
                    request = head.encode() + BODY
                else:
                    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
                started = time.perf_counter()
                writer.write(request)
                await writer.drain()
                header = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in header.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not header.startswith(b"HTTP/1.1 200 "):
                    failures += 1
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return elapsed, sorted(latencies), failures


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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p(latencies: list[float], q: float) -> float:
    return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="digest-bench-unsub-"))
    try:
        shutil.copy(ROOT / "blogs.yaml", tmp / "blogs.yaml")
        db = tmp / "digest.db"
        tokens = _seed(db, SUBSCRIBERS)[:REQUESTS]
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        env.update(
            DIGEST_BLOGS=str(tmp / "blogs.yaml"),
            DIGEST_DB=str(db),
            DIGEST_BASE_URL=base,
            DIGEST_OUTBOX=str(tmp / "outbox"),
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "digest", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("digest serve did not start")
                time.sleep(0.1)
            # Warm up both paths (imports, template compilation) on tokens not measured.
            spare = _extra_tokens(db, 50 + HTTPX_REQUESTS)
            warm = [f"/unsubscribe/{t}" for t in spare[:50]]
            asyncio.run(_load(port, "POST", warm, 4))
            asyncio.run(_load(port, "GET", ["/healthz"] * 200, 4))

            paths = [f"/unsubscribe/{t}" for t in tokens]
            cpu = _cpu_seconds(server.pid)
            secs, lat, failed = asyncio.run(_load(port, "POST", paths, CONCURRENCY))
            cpu_ms = (_cpu_seconds(server.pid) - cpu) / REQUESTS * 1000
            cpu = _cpu_seconds(server.pid)
            ref_secs, ref_lat, _ = asyncio.run(
                _load(port, "GET", ["/healthz"] * REQUESTS, CONCURRENCY)
            )
            ref_cpu_ms = (_cpu_seconds(server.pid) - cpu) / REQUESTS * 1000
            via_httpx = [f"/unsubscribe/{t}" for t in spare[50:]]
            httpx_rate, httpx_failed = asyncio.run(_httpx_load(base, via_httpx, CONCURRENCY))
        finally:
            server.terminate()
            server.wait(10)

        conn = sqlite3.connect(db)
        persisted = conn.execute(
            "SELECT COUNT(*) FROM subscribers WHERE status = 'unsubscribed' AND token IN"
            f" ({','.join('?' * len(tokens))})",
            tokens,
        ).fetchone()[0]
        suppressed = conn.execute("SELECT COUNT(*) FROM suppressions").fetchone()[0]
        conn.close()

        rate, ref_rate = REQUESTS / secs, REQUESTS / ref_secs
        p99 = _p(lat, 0.99)
        ok = rate >= 500 and p99 < 50 and persisted == REQUESTS and failed + httpx_failed == 0
        table(
            f"one-click unsubscribe: {REQUESTS} POSTs, {CONCURRENCY} in flight, "
            f"{SUBSCRIBERS} subscribers (reference: GET /healthz, same load)",
            [
                ("requests/s", f"{rate:.0f}", f"{ref_rate:.0f}", ratio(rate, ref_rate), ">= 500"),
                ("p50 ms", f"{_p(lat, 0.5):.1f}", f"{_p(ref_lat, 0.5):.1f}",
                 ratio(_p(lat, 0.5), _p(ref_lat, 0.5)), ""),
                ("p99 ms", f"{p99:.1f}", f"{_p(ref_lat, 0.99):.1f}",
                 ratio(p99, _p(ref_lat, 0.99)), "< 50"),
                ("server CPU ms/request", f"{cpu_ms:.2f}", f"{ref_cpu_ms:.2f}",
                 ratio(cpu_ms, ref_cpu_ms), ""),
                ("max ms", f"{lat[-1] * 1000:.1f}", f"{ref_lat[-1] * 1000:.1f}", "", ""),
                ("non-200 answers", str(failed), "", "", "0"),
                (f"requests/s, httpx client ({HTTPX_REQUESTS})", f"{httpx_rate:.0f}", "", "",
                 "client-bound"),
                ("persisted unsubscribes", f"{persisted}/{REQUESTS}", "", "", "all"),
                ("suppression entries", str(suppressed), "", "", str(len(spare) + REQUESTS)),
                ("verdict", "PASS" if ok else "FAIL", "", "", ""),
            ],
        )  # fmt: skip
        if not ok:
            raise SystemExit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extra_tokens(db: Path, count: int) -> list[str]:
    """Subscribers beyond the measured ones, for the warm-up."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT token FROM subscribers ORDER BY id DESC LIMIT ?", (count,)
    ).fetchall()
    conn.close()
    return [r[0] for r in rows]


if __name__ == "__main__":
    main()
