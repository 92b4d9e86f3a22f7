"""Shared by the benchmarks: a side-by-side table with ratios, peak memory, and a real
`digest serve` under load (a subprocess on a free port, driven by a raw keep-alive client)."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import httpx

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the block: `with timed() as t: ...; t["wall"], t["cpu"]`."""
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield out
    out["wall"] = time.perf_counter() - wall
    out["cpu"] = time.process_time() - cpu


def best_of(n: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of n calls, in seconds."""
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


Row = tuple[str, str, str, str, str]


def table(title: str, rows: list[Row]) -> None:
    """Print rows of (measure, digest, reference, ratio, target/verdict)."""
    header = ("measure", "digest", "reference", "ratio", "target")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(f"\n## {title}")
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    sys.stdout.flush()


def ratio(a: float, b: float) -> str:
    return "n/a" if a == 0 or b == 0 else f"{a / b:.1f}x"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(latencies: list[float], q: float) -> float:
    """The q-quantile of sorted latencies in seconds, in ms (q = 1 is the slowest)."""
    return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder for one run, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as folder:
        yield Path(folder)


@dataclass(frozen=True)
class Server:
    port: int
    base: str
    process: subprocess.Popen[bytes]


@contextmanager
def digest_serve(tmp: Path, db: Path) -> Iterator[Server]:
    """`digest serve` on a free localhost port over ``db``, run in ``tmp`` with the project's
    blogs.yaml and no DIGEST_* setting from outside; ready (GET /healthz answered) when
    yielded, stopped with SIGTERM (a graceful shutdown: what it holds is written) on exit."""
    shutil.copy(ROOT / "blogs.yaml", tmp / "blogs.yaml")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        DIGEST_BLOGS=str(tmp / "blogs.yaml"),
        DIGEST_DB=str(db),
        DIGEST_BASE_URL=base,
        DIGEST_OUTBOX=str(tmp / "outbox"),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(base, process)
        yield Server(port, base, process)
    finally:
        process.terminate()
        process.wait(30)


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("digest serve did not start")
        time.sleep(0.1)


class Load(NamedTuple):
    seconds: float
    latencies: list[float]  # sorted, in seconds
    failures: int  # answers with another status than expected
    cpu_ms: float  # the server's CPU per request

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


def load(
    server: Server,
    method: str,
    paths: Sequence[str],
    concurrency: int,
    expect: int,
    *,
    headers: Sequence[str] = (),
    body: bytes = b"",
) -> Load:
    """Send ``method`` to every path with ``concurrency`` requests in flight, each on its own
    keep-alive connection; ``headers`` are "Name: value" lines after Host (a body adds its
    Content-Length). A few lines of asyncio streams: httpx spends ~2 ms of CPU per request
    (measured), so on 2 cores it, not the server, would set the pace."""
    lines = [f"Host: 127.0.0.1:{server.port}", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    head = "".join(f"{line}\r\n" for line in lines) + "\r\n"
    requests = [f"{method} {path} HTTP/1.1\r\n{head}".encode() + body for path in paths]
    cpu = cpu_seconds(server.process.pid)
    seconds, latencies, failures = asyncio.run(
        _drive(server.port, requests, concurrency, f"HTTP/1.1 {expect} ".encode())
    )
    cpu_ms = (cpu_seconds(server.process.pid) - cpu) / max(1, len(paths)) * 1000
    return Load(seconds, latencies, failures, cpu_ms)


async def _drive(
    port: int, requests: list[bytes], concurrency: int, status: bytes
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    failures = 0
    queue = iter(requests)

    async def worker() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in queue:
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
                if not header.startswith(status):
                    failures += 1
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, sorted(latencies), failures


def load_rows(hit: Load, ref: Load, rate_target: str, p99_target: str) -> list[Row]:
    """The rows every server benchmark prints, measured beside the reference: throughput,
    median and 99th percentile latency, the server's CPU per request, the slowest answer."""
    p50, p99 = percentile(hit.latencies, 0.5), percentile(hit.latencies, 0.99)
    ref_p50, ref_p99 = percentile(ref.latencies, 0.5), percentile(ref.latencies, 0.99)
    slowest, ref_slowest = hit.latencies[-1] * 1000, ref.latencies[-1] * 1000
    return [
        ("requests/s", f"{hit.rate:.0f}", f"{ref.rate:.0f}", ratio(hit.rate, ref.rate),
         rate_target),
        ("p50 ms", f"{p50:.1f}", f"{ref_p50:.1f}", ratio(p50, ref_p50), ""),
        ("p99 ms", f"{p99:.1f}", f"{ref_p99:.1f}", ratio(p99, ref_p99), p99_target),
        ("server CPU ms/request", f"{hit.cpu_ms:.2f}", f"{ref.cpu_ms:.2f}",
         ratio(hit.cpu_ms, ref.cpu_ms), ""),
        ("max ms", f"{slowest:.1f}", f"{ref_slowest:.1f}", "", ""),
    ]  # fmt: skip
