"""A fleet of senders (issue 12, "Send"): `digest send --yes` processes sharing one PostgreSQL.

- 100 000 subscribers and a drafted issue, prepared once (benchmarks/bench_send.prepare on
  SQLite, then `digest db copy`'s copy_database into a PostgreSQL template database); every
  PostgreSQL scenario gets its own database cloned from it (CREATE DATABASE ... TEMPLATE).
- 1, 2 and 4 worker processes on PostgreSQL and 1 on SQLite, always CONNECTIONS connections in
  total (DIGEST_SMTP_POOL = CONNECTIONS / workers), to Postfix's smtp-sink.
- the transport ceiling: aiosmtplib (bench_send.ceiling) with the same connections to the same
  sink, in 1 process and in 2 (this machine's cores), measured in the same run.
- duplicates and missing are counted per recipient at the sink: smtp-sink -v logs every
  RCPT TO of every copy (to /dev/shm); the ceiling runs against a sink logging the same way.
- peak RSS of each worker (VmHWM, sampled) and its CPU (wait4()); CPU of PostgreSQL (the
  postmaster and its children) and of the sink from /proc, and the machine's idle time:
  where the time goes.
- then one of 4 workers is killed (SIGKILL) mid-send with DIGEST_SEND_LEASE=5: the others take
  its rows over after the lease; 0 missing, duplicates at most its connections (in flight).

PostgreSQL runs with fsync on (the server's default; the test plugin's fsync=off is turned
back on) and digest's default DIGEST_DB_SYNCHRONOUS=normal, i.e. synchronous_commit=off:
every reply survives a kill of digest, not a power cut of the database machine (like SQLite's
NORMAL in WAL mode, the SQLite scenario).

Run: `.venv/bin/python benchmarks/bench_fleet.py [--subscribers N]` (default 100 000; needs
/usr/sbin/smtp-sink from Debian `postfix` and PostgreSQL's server binaries).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.store.db import Connection

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import bench_send  # noqa: E402
from _common import table  # noqa: E402

CONNECTIONS = 8  # in total, over every worker of a scenario
LEASE = 5  # DIGEST_SEND_LEASE of the kill scenario
KILL_AT = 0.4  # share of the issue sent when the victim is killed
TICK = os.sysconf("SC_CLK_TCK")


class Sink:
    """smtp-sink logging each SMTP command (-v) to a file on /dev/shm: one `rcpt TO:` line
    per copy received, whichever connection or worker it came from."""

    def __init__(self, folder: Path, *, verbose: bool = True) -> None:
        self.port = bench_send.free_port()
        self.log = Path(tempfile.mkdtemp(prefix="digest-sink-", dir="/dev/shm")) / "sink.log"
        cmd = [bench_send.SINK, *(["-v"] if verbose else []), f"127.0.0.1:{self.port}", "1024"]
        if os.geteuid() == 0:
            cmd[1:1] = ["-u", "nobody"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("smtp-sink did not start") from None
                time.sleep(0.05)

    def recipients(self) -> Counter[str]:
        copies: Counter[str] = Counter()
        with self.log.open("rb") as log:
            for line in log:
                at = line.lower().find(b": rcpt to:<")
                if at >= 0:
                    copies[line[at + 11 :].split(b">", 1)[0].decode()] += 1
        return copies

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.log.parent, ignore_errors=True)


def proc_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds of a process (and of its children it waited for)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def machine_idle() -> tuple[float, float]:
    """(idle, total) CPU seconds of the machine since boot, every core."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (values[3] + values[4]) / TICK, sum(values[:8]) / TICK


class Watermarks:
    """Each process's VmHWM, sampled from /proc until it ends. Not wait4()'s ru_maxrss: Linux
    carries the high-water mark over exec(), so a child forked from this (large) process
    would report this process's memory."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.2):
            for pid in self.pids:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak[pid] = max(self.peak[pid], int(line.split()[1]))

    def stop(self) -> list[float]:
        """MB per process."""
        self.done.set()
        self.thread.join()
        return [self.peak[pid] / 1024 for pid in self.pids]


class Postgres:
    """tests/plugins/postgres.Server, with fsync and full_page_writes back on."""

    def __init__(self) -> None:
        from plugins.postgres import Server

        self.server = Server()
        self.server.start()
        # The plugin's fsync=off is a command-line option, above any ALTER SYSTEM: restart
        # with the same socket and limits and the server's defaults otherwise (fsync on).
        root, data = self.server.root, self.server.root / "data"
        options = (
            f"-k {root} -c listen_addresses='' -p {self.server.port} -c max_connections=300"
            " -c shared_buffers=64MB"
        )
        self.server._run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        self.server._run(
            "pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"
        )
        pid = (self.server.root / "data" / "postmaster.pid").read_text().split()[0]
        self.postmaster = int(pid)

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.server.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode())

    def setting(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.server.url("postgres"), autocommit=True) as conn:
            row = conn.execute(f"SHOW {name}".encode()).fetchone()
            return str(row[0]) if row else "?"

    def url(self, database: str) -> str:
        return self.server.url(database)

    def cpu(self) -> float:
        """The server's CPU seconds: the postmaster with the backends it reaped, and the live
        children (backends, walwriter, checkpointer, ...)."""
        total = proc_cpu(self.postmaster, children=True)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                if int(text.rsplit(")", 1)[1].split()[1]) == self.postmaster:
                    total += proc_cpu(int(stat.parent.name))
            except (OSError, ValueError):
                continue
        return total

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Run:
    label: str
    workers: int
    pool: int
    n: int
    seconds: float = 0.0
    copies: Counter[str] = field(default_factory=Counter)
    rss: list[float] = field(default_factory=list)  # MB per worker
    worker_cpu: float = 0.0
    db_cpu: float = 0.0
    sink_cpu: float = 0.0
    idle: float = 0.0  # share of the machine's CPU time left idle
    busy: float = 0.0  # CPU seconds the whole machine spent, every process
    shares: list[int] = field(default_factory=list)  # rows sent per worker (the ledger)
    statuses: dict[str, int] = field(default_factory=dict)
    killed_in_flight: int = 0
    takeover: float = 0.0
    victim_rows: int = 0  # rows the victim held 'sending' when it died

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def missing(self, expected: set[str]) -> int:
        return len(expected - set(self.copies))

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.copies.values() if n > 1)


def prepare(tmp: Path, n: int, pg: Postgres) -> tuple[Path, bytes]:
    """The SQLite checkout (bench_send.prepare), the same data in PostgreSQL's template
    database `fleet_template`, and one message as digest builds it (for the ceiling)."""
    from digest.store import connect
    from digest.store.copy import copy_database

    base = tmp / "base"
    bench_send.prepare(base, n)
    message = bench_send.sample_message(base)
    pg.admin("CREATE DATABASE fleet_template")
    source, target = connect(base / "digest.db"), connect(pg.url("fleet_template"))
    copy_database(source, target)
    source.close()
    target.close()
    return base, message


def checkout(base: Path, folder: Path, *, with_db: bool) -> None:
    shutil.copytree(base, folder, ignore=None if with_db else shutil.ignore_patterns("digest.db*"))


def ceiling_child(port: int, n: int, lanes: int, message_file: Path) -> None:
    bench_send.POOL = lanes
    rate = asyncio.run(bench_send.ceiling(port, message_file.read_bytes(), n))
    print(rate)


def ceiling(sink: Sink, message_file: Path, n: int, processes: int) -> float:
    """aiosmtplib over CONNECTIONS connections to ``sink``, split over ``processes``."""
    each = n // processes
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--ceiling",
                str(sink.port),
                str(each),
                str(CONNECTIONS // processes),
                str(message_file),
            ],
            stdout=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    for proc in procs:
        proc.communicate()
        assert proc.returncode == 0
    return each * processes / (time.perf_counter() - started)


def ceilings_of(tmp: Path, message_file: Path, n: int, best: dict[str, float]) -> None:
    """The ceilings in 1 and 2 processes against a sink like the scenarios' (-v), and against
    one that logs nothing (what -v costs); each kept at its best in ``best``."""
    sink, quiet = Sink(tmp), Sink(tmp, verbose=False)
    try:
        for label, rate in (
            ("1 process", ceiling(sink, message_file, n, 1)),
            ("2 processes", ceiling(sink, message_file, n, 2)),
            ("2 processes, sink without -v", ceiling(quiet, message_file, n, 2)),
        ):
            best[label] = max(rate, best.get(label, 0.0))
    finally:
        sink.stop()
        quiet.stop()


def ledger(db: str) -> tuple[dict[str, int], list[tuple[str, int]]]:
    from digest.store import connect

    conn = connect(db)
    statuses = {
        str(s): int(c)
        for s, c in conn.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
    }
    shares = [
        (str(w), int(c))
        for w, c in conn.execute(
            "SELECT claimed_by, COUNT(*) FROM deliveries WHERE status = 'sent' GROUP BY claimed_by"
        )
    ]
    conn.close()
    return statuses, shares


def sent(conn: Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'").fetchone()[0])


def held_by(conn: Connection, pid: int) -> int:
    """Rows the worker of process ``pid`` holds 'sending' (its lease, alive or not)."""
    query = "SELECT COUNT(*) FROM deliveries WHERE status = 'sending' AND claimed_by LIKE ?"
    return int(conn.execute(query, (f"% pid {pid} %",)).fetchone()[0])


def fleet(run: Run, folder: Path, db: str, pg: Postgres | None, *, kill: bool = False) -> Run:
    from digest.store import connect

    sink = Sink(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(bench_send.env_for(folder, sink.port))
    env.update({"DIGEST_DB": db, "DIGEST_SMTP_POOL": str(run.pool)})
    if kill:
        env["DIGEST_SEND_LEASE"] = str(LEASE)
    idle0, total0 = machine_idle()
    db0 = pg.cpu() if pg else 0.0
    started = time.perf_counter()
    procs = []
    for i in range(run.workers):
        with (folder / f"worker{i}.out").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "digest", "send", "--yes"],
                    cwd=folder,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    hwm = Watermarks([proc.pid for proc in procs])
    victim = procs[1] if kill else None
    if victim is not None:
        conn = connect(db)
        while sent(conn) < KILL_AT * run.n or not held_by(conn, victim.pid):
            assert victim.poll() is None, "the victim ended before the kill"
            time.sleep(0.25)
        victim.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        run.victim_rows = held_by(conn, victim.pid)
        while held_by(conn, victim.pid):
            time.sleep(0.1)
        run.takeover = time.perf_counter() - killed
        conn.close()
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc is not victim and proc.returncode != 0:
            log = (folder / f"worker{procs.index(proc)}.out").read_text()
            raise SystemExit(f"worker {proc.pid} ended with {proc.returncode}:\n{log[-2000:]}")
        run.worker_cpu += usage.ru_utime + usage.ru_stime
    run.seconds = time.perf_counter() - started
    run.rss = hwm.stop()
    idle1, total1 = machine_idle()
    run.idle = (idle1 - idle0) / max(total1 - total0, 1e-9)
    run.busy = (total1 - total0) - (idle1 - idle0)
    run.db_cpu = (pg.cpu() - db0) if pg else 0.0
    run.sink_cpu = sink.cpu()
    run.copies = sink.recipients()
    sink.stop()
    run.statuses, shares = ledger(db)
    run.shares = sorted((c for _, c in shares), reverse=True)
    return run


def cpu_line(run: Run) -> str:
    per = 1000 / run.n
    parts = f"{run.worker_cpu * per:.2f} workers / {run.sink_cpu * per:.2f} sink"
    if run.db_cpu:
        parts += f" / {run.db_cpu * per:.2f} PostgreSQL"
    others = run.busy - run.worker_cpu - run.sink_cpu - run.db_cpu
    return parts + f" / {others * per:.2f} other processes"


Row = tuple[str, str, str, str, str]


def rows_of(run: Run, ceil: float, expected: set[str], rss_ref: float) -> list[Row]:
    ok = run.missing(expected) == 0 and run.duplicates == 0
    return [
        (
            f"{run.label}: msgs/s, {run.workers} x {run.pool} connections",
            f"{run.rate:,.0f} ({run.seconds:.1f} s)",
            f"{ceil:,.0f} ceiling",
            f"{run.rate / ceil:.0%}",
            "sent per worker: " + " / ".join(f"{s:,}" for s in run.shares),
        ),
        (
            "  duplicates / missing at the sink",
            f"{run.duplicates} / {run.missing(expected)}",
            "0 / 0",
            "",
            "ok" if ok else "MISSED",
        ),
        (
            "  peak RSS per worker",
            " / ".join(f"{r:.0f}" for r in run.rss) + " MB",
            f"{rss_ref:.0f} MB (1 worker, SQLite)",
            f"{max(run.rss) / rss_ref:.2f}x",
            "< 150 MB, flat " + ("ok" if max(run.rss) < 150 else "MISSED"),
        ),
        (
            "  CPU ms per message; machine idle",
            cpu_line(run) + f"; {run.idle:.0%} idle",
            "",
            "",
            "",
        ),
    ]


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--ceiling":
        ceiling_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    n = parser.parse_args().subscribers
    began = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="digest-bench-fleet-"))
    pg = Postgres()
    try:
        base, message = prepare(tmp, n, pg)
        message_file = tmp / "message.eml"
        message_file.write_bytes(message)
        expected = {f"reader{i}@example.net" for i in range(n)}
        runs: list[Run] = []
        scenarios = [("PostgreSQL", 1), ("PostgreSQL", 2), ("PostgreSQL", 4), ("SQLite", 1)]
        ceilings: dict[str, float] = {}
        ceilings_of(tmp, message_file, min(n, 20_000), ceilings)
        for k, (engine, workers) in enumerate(scenarios):
            folder = tmp / f"s{k}"
            checkout(base, folder, with_db=engine == "SQLite")
            if engine == "SQLite":
                db = str(folder / "digest.db")
            else:
                pg.admin(f"CREATE DATABASE s{k} TEMPLATE fleet_template")
                db = pg.url(f"s{k}")
            run = Run(engine, workers, CONNECTIONS // workers, n)
            runs.append(fleet(run, folder, db, pg if engine == "PostgreSQL" else None))
            print(f"{engine} x {workers}: {run.rate:,.0f} msgs/s", file=sys.stderr, flush=True)
        folder = tmp / "kill"
        checkout(base, folder, with_db=False)
        pg.admin("CREATE DATABASE kill TEMPLATE fleet_template")
        killed = fleet(
            Run("PostgreSQL, kill -9", 4, CONNECTIONS // 4, n),
            folder,
            pg.url("kill"),
            pg,
            kill=True,
        )
        ceilings_of(tmp, message_file, min(n, 20_000), ceilings)  # the best of before and after
        fsync = pg.setting("fsync")
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    ceil = max(ceilings.values())
    rss_ref = max(runs[3].rss)
    busiest = max([*runs, killed], key=lambda r: r.sink_cpu / r.seconds)
    busy = busiest.sink_cpu / busiest.seconds
    rows: list[Row] = [
        (
            f"ceiling: aiosmtplib, {CONNECTIONS} connections",
            "",
            " / ".join(f"{v:,.0f} ({k})" for k, v in ceilings.items()),
            "",
            "msgs/s, best of before and after the scenarios",
        ),
        (
            "smtp-sink -v busy, its busiest scenario",
            f"{busy:.0%} of a core ({busiest.label} x {busiest.workers})",
            "100% of a core",
            f"{busy:.2f}x",
            "< 50%: the sink is not the bound " + ("ok" if busy < 0.5 else "MISSED"),
        ),
    ]
    for run in runs:
        rows += rows_of(run, ceil, expected, rss_ref)
    missing, dups = killed.missing(expected), killed.duplicates
    rows += [
        (
            f"kill -9 1 of 4 workers at {KILL_AT:.0%}: msgs/s",
            f"{killed.rate:,.0f} ({killed.seconds:.1f} s)",
            f"{runs[2].rate:,.0f} (4 workers, none killed)",
            f"{killed.rate / runs[2].rate:.0%}",
            f"DIGEST_SEND_LEASE={LEASE}; sent per worker: "
            + " / ".join(f"{s:,}" for s in killed.shares),
        ),
        (
            "  missing at the sink",
            f"{missing}",
            "0",
            "",
            "ok" if missing == 0 else "MISSED",
        ),
        (
            "  duplicates (recipients with 2 copies)",
            f"{dups}",
            f"<= {CONNECTIONS // 4} (the victim's connections)",
            "",
            "ok" if dups <= CONNECTIONS // 4 else "MISSED",
        ),
        (
            "  takeover: kill to the victim's last row re-leased",
            f"{killed.takeover:.1f} s ({killed.victim_rows} rows)",
            f"{LEASE} s lease",
            f"{killed.takeover / LEASE:.2f}x",
            "<= lease + a claim",
        ),
        (
            "  ledger after the run",
            ", ".join(f"{k} {v:,}" for k, v in sorted(killed.statuses.items())),
            f"sent {n:,}",
            "",
            "ok" if killed.statuses == {"sent": n} else "MISSED",
        ),
    ]
    table(
        f"send fleet: {n:,} subscribers, smtp-sink -v, PostgreSQL fsync={fsync} with "
        f"synchronous_commit=off (DIGEST_DB_SYNCHRONOUS=normal), {os.cpu_count()} cores; "
        f"run {time.perf_counter() - began:.0f} s",
        rows,
    )


if __name__ == "__main__":
    main()
