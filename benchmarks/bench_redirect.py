"""Short links under load (newsletter.click_counts): GET /r/<issue>/<n> through the real server.

`digest serve` runs in a subprocess on a free localhost port, over a database holding one
edition's 60 links. A minimal keep-alive client sends GETs with a browser's User-Agent (each
one counted) with a bounded number in flight, spread over the links. The server is then
stopped with SIGTERM, and the clicks it flushed at shutdown are compared with the requests
sent: every click counted, none twice. Reference: GET /healthz under the same load.
Target: >= 2000 redirects/s with p99 < 50 ms.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ratio, table  # noqa: E402
from bench_unsubscribe import _cpu_seconds, _free_port, _p  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 10_000
CONCURRENCY = 16
LINKS = 60
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


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


async def _load(
    port: int, paths: list[str], concurrency: int, status: bytes
) -> tuple[float, list[float], int]:
    """(seconds, sorted latencies, answers other than ``status``), `concurrency` in flight.
    A few lines of asyncio streams: httpx would be the bottleneck on 2 cores (see
    bench_unsubscribe.py)."""
    latencies: list[float] = []
    failures = 0
    queue = iter(paths)

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for path in queue:
                request = (
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {AGENT}\r\n\r\n"
                ).encode()
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
                if not header.startswith(b"HTTP/1.1 " + status):
                    failures += 1
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, sorted(latencies), failures


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="digest-bench-redirect-"))
    try:
        shutil.copy(ROOT / "blogs.yaml", tmp / "blogs.yaml")
        db = tmp / "digest.db"
        _seed(db)
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
            # Warm up both paths (the links read once, imports); these count too.
            warm = [f"/r/1/{n % LINKS + 1}" for n in range(200)]
            asyncio.run(_load(port, warm, 4, b"302 "))
            asyncio.run(_load(port, ["/healthz"] * 200, 4, b"200 "))

            paths = [f"/r/1/{n % LINKS + 1}" for n in range(REQUESTS)]
            cpu = _cpu_seconds(server.pid)
            secs, lat, failed = asyncio.run(_load(port, paths, CONCURRENCY, b"302 "))
            cpu_ms = (_cpu_seconds(server.pid) - cpu) / REQUESTS * 1000
            cpu = _cpu_seconds(server.pid)
            ref_secs, ref_lat, _ = asyncio.run(
                _load(port, ["/healthz"] * REQUESTS, CONCURRENCY, b"200 ")
            )
            ref_cpu_ms = (_cpu_seconds(server.pid) - cpu) / REQUESTS * 1000
        finally:
            server.send_signal(signal.SIGTERM)  # the counts still in memory are flushed now
            server.wait(30)

        conn = sqlite3.connect(db)
        counted = conn.execute("SELECT COALESCE(SUM(count), 0) FROM clicks").fetchone()[0]
        conn.close()
        want = REQUESTS + len(warm)

        rate, ref_rate = REQUESTS / secs, REQUESTS / ref_secs
        p99 = _p(lat, 0.99)
        ok = rate >= 2000 and p99 < 50 and failed == 0 and counted == want
        table(
            f"short links: {REQUESTS} GET /r/1/<n> over {LINKS} links, {CONCURRENCY} in flight "
            "(reference: GET /healthz, same load)",
            [
                ("requests/s", f"{rate:.0f}", f"{ref_rate:.0f}", ratio(rate, ref_rate), ">= 2000"),
                ("p50 ms", f"{_p(lat, 0.5):.1f}", f"{_p(ref_lat, 0.5):.1f}",
                 ratio(_p(lat, 0.5), _p(ref_lat, 0.5)), ""),
                ("p99 ms", f"{p99:.1f}", f"{_p(ref_lat, 0.99):.1f}",
                 ratio(p99, _p(ref_lat, 0.99)), "< 50"),
                ("server CPU ms/request", f"{cpu_ms:.2f}", f"{ref_cpu_ms:.2f}",
                 ratio(cpu_ms, ref_cpu_ms), ""),
                ("max ms", f"{lat[-1] * 1000:.1f}", f"{ref_lat[-1] * 1000:.1f}", "", ""),
                ("non-302 answers", str(failed), "", "", "0"),
                ("clicks stored after SIGTERM", f"{counted}/{want}", "", "", "all"),
                ("verdict", "PASS" if ok else "FAIL", "", "", ""),
            ],
        )  # fmt: skip
        if not ok:
            raise SystemExit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
