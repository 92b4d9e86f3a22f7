"""Gathering 500 feeds: digest vs rss2email 3.14, cold (every body) and warm (every feed 304).

Issue 12's shape (the default): 500 whole-size copies of the real fixtures (their shapes,
markup and quirks; XXIIVV's 735 items among them), about 50 MB, every URL made unique per copy.
They are served by a small asyncio HTTP/1.1 server in its own process, on 100 loopback
addresses (five feeds per host: DIGEST_FETCH_PER_HOST matters), with 100 ms added before every
response, honouring If-None-Match and gzip. ``--trimmed`` is the older shape: copies trimmed
to the sizes real feeds have (most keep 10-25 items, one in ten the whole file), 250 hosts.

The SQL statements digest issues are counted with sqlite3's trace callback on the bench's
connection (every row of an executemany is one; the callback's small cost is counted against
digest), and so are the calls into the driver (execute and executemany: round trips). Warm
CPU per feed is this process's user+sys time during the warm run (every feed answers 304, no
parse worker is involved): the event loop, httpx, the store and logging; the server's process
is not included.

    python benchmarks/bench_fetch.py            # everything (about 5 minutes)
    python benchmarks/bench_fetch.py --no-r2e   # digest only
    python benchmarks/bench_fetch.py --no-r2e --profile /tmp/gather  # /tmp/gather.cold, .warm
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import children_peak_rss_mb, peak_rss_mb, ratio, table, timed  # noqa: E402

FIXTURES = HERE.parent / "tests" / "fixtures" / "feeds"
N_FEEDS = 500
N_HOSTS = 100  # --trimmed: 250
LATENCY = 0.1
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


# --- the feeds ---------------------------------------------------------------------------------


def _split(text: str) -> tuple[str, list[str], str]:
    tag = "entry" if "<feed" in text[:3000] else "item"
    items = [m.group(0) for m in re.finditer(rf"<{tag}[\s>].*?</{tag}>", text, re.DOTALL)]
    head = text[: text.find(items[0])]
    tail = text[text.rfind(items[-1]) + len(items[-1]) :]
    return head, items, tail


def generate(folder: Path, *, trimmed: bool = False) -> list[str]:
    """Write f0.xml .. f499.xml (whole-size copies unless ``trimmed``); returns their names."""
    rng = random.Random(500)
    shapes = [_split((FIXTURES / f).read_text("utf-8")) for f in sorted(os.listdir(FIXTURES))]
    names = []
    for i in range(N_FEEDS):
        head, items, tail = shapes[i % len(shapes)]
        keep = len(items)
        if trimmed and rng.random() >= 0.1:
            keep = min(len(items), rng.randint(10, 25))
        text = head + "".join(items[:keep]) + tail
        # Unique URLs and ids per feed, so no two blogs share posts.
        text = text.replace("://", f"://f{i}.").replace(
            "isPermaLink='false'>", f"isPermaLink='false'>f{i}-"
        )
        # ... but not the namespace names: xmlns="http://www.w3.org/2005/Atom" is an
        # identifier, and a changed one makes a feed no reader understands as Atom.
        text = re.sub(r"(xmlns(?::\w+)?=[\"']https?://)f\d+\.", r"\1", text)
        name = f"f{i}.xml"
        (folder / name).write_text(text, "utf-8")
        names.append(name)
    return names


def host_of(i: int, hosts: int) -> str:
    return f"127.0.{1 + i % hosts // 250}.{1 + i % hosts % 250}"


# --- the server (its own process) ----------------------------------------------------------


async def _serve(folder: Path, port: int, ready: Path, n_hosts: int) -> None:
    bodies: dict[str, tuple[bytes, bytes, str]] = {}
    for name in os.listdir(folder):
        raw = (folder / name).read_bytes()
        etag = '"' + hashlib.sha1(raw).hexdigest()[:16] + '"'
        bodies["/" + name] = (raw, gzip.compress(raw, 6), etag)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                await asyncio.sleep(LATENCY)
                close = headers.get("connection", "").lower() == "close" or "HTTP/1.0" in lines[0]
                found = bodies.get(path)
                if found is None:
                    status, body, extra = "404 Not Found", b"", ""
                elif headers.get("if-none-match") == found[2]:
                    status, body, extra = "304 Not Modified", b"", f"ETag: {found[2]}\r\n"
                else:
                    gz = "gzip" in headers.get("accept-encoding", "")
                    body = found[1] if gz else found[0]
                    status = "200 OK"
                    extra = f"ETag: {found[2]}\r\nContent-Type: application/xml\r\n"
                    extra += "Content-Encoding: gzip\r\n" if gz else ""
                if close:
                    extra += "Connection: close\r\n"
                if status.startswith("304"):
                    writer.write(f"HTTP/1.1 {status}\r\n{extra}\r\n".encode())
                else:
                    writer.write(
                        f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    hosts = sorted({host_of(i, n_hosts) for i in range(N_FEEDS)})
    server = await asyncio.start_server(handle, host=hosts, port=port, backlog=1024)
    ready.write_text("ok")
    async with server:
        await server.serve_forever()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(folder: Path, n_hosts: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    ready = folder.parent / "ready"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(folder), str(port), str(ready), str(n_hosts)]
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the bench server did not start")
        time.sleep(0.05)
    return proc, port


# --- digest --------------------------------------------------------------------------------


def digest_blogs(urls: list[str]):  # type: ignore[no-untyped-def]
    from digest.config import BlogsFile

    return BlogsFile.model_validate(
        {
            "newsletter": {
                "title": "Bench",
                "curator": "Bench",
                "from": "b@example.org",
                "reply_to": "b@example.org",
            },
            "categories": [
                {
                    "id": "all",
                    "blogs": [
                        {"name": f"f{i}", "homepage": f"https://f{i}.example.org/", "feed": url}
                        for i, url in enumerate(urls)
                    ],
                }
            ],
        }
    )


class Calls:
    """The connection, counting the calls into the driver (execute, executemany): the round
    trips a server engine would make, where the trace callback sees every executed row."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.calls = conn, 0

    def execute(self, sql: str, params: Any = ()) -> Any:
        self.calls += 1
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        self.calls += 1
        return self.conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def run_digest(urls: list[str], work: Path, profile: str | None) -> dict[str, float]:
    from digest.config import Settings
    from digest.feeds.gather import gather_sync
    from digest.store import connect

    settings = Settings(db=work / "digest.db", fetch_timeout=60)
    blogs = digest_blogs(urls)
    conn = connect(settings.db)
    statements = [0]

    def count(_sql: str) -> None:
        statements[0] += 1

    conn.set_trace_callback(count)
    calls = Calls(conn)
    out: dict[str, float] = {}
    for label in ("cold", "warm"):
        statements[0] = calls.calls = 0
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with timed() as t:
            if profile:
                import cProfile

                with cProfile.Profile() as prof:
                    report = gather_sync(settings, blogs, calls, now=NOW, force=True)
                prof.dump_stats(f"{profile}.{label}")
            else:
                report = gather_sync(settings, blogs, calls, now=NOW, force=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out[f"{label}_statements"], out[f"{label}_calls"] = statements[0], calls.calls
        statuses = {r.status for r in report.results}
        expected = {"ok"} if label == "cold" else {"not_modified"}
        assert statuses == expected, (label, [r.error for r in report.results if r.error][:3])
        # CPU of the parse workers too (reaped when the run shuts its pool down; the bench
        # server is a child as well, but is reaped only at the very end).
        workers = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        out[f"{label}_wall"], out[f"{label}_cpu"] = t["wall"], t["cpu"] + workers
        out[f"{label}_own_cpu"] = t["cpu"]
    conn.set_trace_callback(None)
    out["posts"] = conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0]
    conn.close()
    out["rss"] = peak_rss_mb()
    out["workers_rss"] = children_peak_rss_mb()  # r2e ran first: the larger of the two
    out["concurrency"] = settings.fetch_concurrency
    out["per_host"] = settings.fetch_per_host
    return out


# --- rss2email -------------------------------------------------------------------------------


def run_r2e(urls: list[str], work: Path, budget: float) -> dict[str, float] | str:
    r2e = shutil.which("r2e", path=str(Path(sys.executable).parent))
    if r2e is None:
        return "not installed (pip install -e '.[bench]')"
    config = work / "r2e.cfg"
    lines = [
        "[DEFAULT]",
        "from = bench@example.org",
        "to = bench@example.org",
        "same-server-fetch-interval = 0",
        "feed-timeout = 60",
        "",
    ]
    for i, url in enumerate(urls):
        lines += [f"[feed.f{i}]", f"url = {url}", ""]
    config.write_text("\n".join(lines))
    out: dict[str, float] = {}
    cmd = [r2e, "-c", str(config), "-d", str(work / "r2e.json"), "run", "--no-send"]
    for label in ("cold", "warm"):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=budget)
        except subprocess.TimeoutExpired:
            return f"did not finish its {label} run within {budget:.0f} s"
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            return f"r2e failed: {done.stderr.decode()[-300:]}"
        out[f"{label}_wall"] = time.perf_counter() - start
        out[f"{label}_cpu"] = (after.ru_utime - before.ru_utime) + (
            after.ru_stime - before.ru_stime
        )
    out["rss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


# --- parse cost of a 1 MB feed -----------------------------------------------------------------


def one_megabyte_feed() -> bytes:
    head, items, tail = _split((FIXTURES / "100r.rss.xml").read_text("utf-8"))
    body, n = [], 0
    while sum(map(len, body)) < 1_000_000:
        item = items[n % len(items)].replace("</title>", f" {n}</title>", 1)
        body.append(item.replace("</guid>", f"-{n}</guid>", 1))
        n += 1
    return (head + "".join(body) + tail).encode()


def parse_costs() -> tuple[float, float, int]:
    import feedparser

    from digest.feeds.parse import parse_feed

    data = one_megabyte_feed()
    headers = {"content-type": "application/rss+xml; charset=utf-8"}

    def ours() -> None:
        parse_feed(data, url="https://100r.co/links/rss.xml", headers=headers)

    def defaults() -> None:
        feedparser.parse(data, response_headers=headers)

    ours()
    best_ours = min(_time(ours) for _ in range(5))
    best_default = min(_time(defaults) for _ in range(3))
    return best_ours, best_default, len(data)


def _time(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    from digest.feeds.pool import default_workers

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())

    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", nargs=4)
    parser.add_argument("--no-r2e", action="store_true")
    parser.add_argument("--r2e-budget", type=float, default=400.0)
    parser.add_argument(
        "--trimmed", action="store_true", help="the older shape: trimmed copies, 250 hosts"
    )
    parser.add_argument(
        "--profile", metavar="PREFIX", help="cProfile digest's runs to PREFIX.cold, PREFIX.warm"
    )
    args = parser.parse_args()
    if args.serve:
        folder, port, ready, n_hosts = args.serve
        asyncio.run(_serve(Path(folder), int(port), Path(ready), int(n_hosts)))
        return
    n_hosts = 250 if args.trimmed else N_HOSTS

    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as tmp:
        work = Path(tmp)
        folder = work / "feeds"
        folder.mkdir()
        names = generate(folder, trimmed=args.trimmed)
        sizes = sorted((folder / n).stat().st_size for n in names)
        server, port = start_server(folder, n_hosts)
        try:
            urls = [f"http://{host_of(i, n_hosts)}:{port}/{n}" for i, n in enumerate(names)]
            # rss2email first, so that its peak memory (the largest child so far) is its own.
            theirs = "skipped (--no-r2e)" if args.no_r2e else run_r2e(urls, work, args.r2e_budget)
            ours = run_digest(urls, work, args.profile)
        finally:
            server.terminate()
            server.wait()
        p_ours, p_default, p_size = parse_costs()

    print(
        f"\n{N_FEEDS} {'trimmed' if args.trimmed else 'whole-size'} feeds on {n_hosts} hosts, "
        f"{LATENCY * 1000:.0f} ms latency; sizes: median "
        f"{sizes[len(sizes) // 2] / 1024:.0f} KiB, max {sizes[-1] / 1024:.0f} KiB, total "
        f"{sum(sizes) / 2**20:.1f} MiB; {ours['posts']:.0f} posts recorded; "
        f"DIGEST_FETCH_CONCURRENCY={ours['concurrency']:.0f}, "
        f"DIGEST_FETCH_PER_HOST={ours['per_host']:.0f}, {default_workers()} parse workers; "
        f"load average before: {load}"
    )
    rows = []
    for label in ("cold", "warm"):
        wall = ours[f"{label}_wall"]
        if isinstance(theirs, dict):
            ref, r = f"{theirs[f'{label}_wall']:.1f} s", ratio(theirs[f"{label}_wall"], wall)
        else:
            ref, r = theirs, "n/a"
        target = ">= 20x faster" if label == "cold" else "no bodies (all 304)"
        rows.append((f"{label} run, wall", f"{wall:.1f} s", ref, r, target))
    ref_cold_cpu = f"{theirs['cold_cpu']:.1f} s" if isinstance(theirs, dict) else "n/a"
    cold_cpu_ratio = (
        ratio(theirs["cold_cpu"], ours["cold_cpu"]) if isinstance(theirs, dict) else "n/a"
    )
    rows.append(
        (
            "cold run, CPU (with parse workers)",
            f"{ours['cold_cpu']:.1f} s",
            ref_cold_cpu,
            cold_cpu_ratio,
            "",
        )
    )
    workers = ours["cold_cpu"] - ours["cold_own_cpu"]
    busy = workers / (ours["cold_wall"] * max(default_workers(), 1))
    rows.append(("cold run, CPU of the main process", f"{ours['cold_own_cpu']:.1f} s", "", "", ""))
    rows.append(
        ("cold run, CPU of the parse workers", f"{workers:.1f} s ({busy:.0%} busy)", "", "", "")
    )
    for label in ("cold", "warm"):
        n = ours[f"{label}_statements"]
        per = f"{n / ours['posts']:.2f} a post" if label == "cold" else f"{n / N_FEEDS:.1f} a feed"
        rows.append((f"{label} run, SQL statements executed", f"{n:.0f} ({per})", "", "", ""))
        rows.append((f"{label} run, driver calls", f"{ours[f'{label}_calls']:.0f}", "", "", ""))
    per_feed = ours["warm_cpu"] / N_FEEDS * 1000
    ref_cpu = f"{theirs['warm_cpu'] / N_FEEDS * 1000:.1f} ms" if isinstance(theirs, dict) else "n/a"
    ratio_cpu = ratio(theirs["warm_cpu"], ours["warm_cpu"]) if isinstance(theirs, dict) else "n/a"
    rows.append(("warm CPU per feed", f"{per_feed:.2f} ms", ref_cpu, ratio_cpu, "< 2 ms"))
    rows.append(
        (
            f"parse+excerpt {p_size / 1e6:.1f} MB feed",
            f"{p_ours:.3f} s",
            f"{p_default:.3f} s (feedparser defaults)",
            ratio(p_default, p_ours),
            "< 0.1 s",
        )
    )
    ref_rss = f"{theirs['rss']:.0f} MB" if isinstance(theirs, dict) else "n/a"
    rows.append(("peak RSS", f"{ours['rss']:.0f} MB", ref_rss, "", "< 200 MB"))
    if isinstance(theirs, dict) and ours["workers_rss"] <= theirs["rss"]:
        workers_rss = f"<= {theirs['rss']:.0f} MB (no more than rss2email)"
    else:
        workers_rss = f"{ours['workers_rss']:.0f} MB"
    rows.append(("peak RSS, one parse worker", workers_rss, "", "", "< 200 MB"))
    table("fetch: digest vs rss2email 3.14 (r2e run --no-send)", rows)


if __name__ == "__main__":
    main()
