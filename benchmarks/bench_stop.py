"""Stops mid-send: `digest send --yes` to 2 000 subscribers, stopped five times at random points
with each signal an operator uses, then resumed to the end; copies counted per recipient.

- the server: aiosmtpd in this process, answering every message in about 3 ms, counting what
  each recipient received (a copy with a known Message-ID is still a copy in most mailboxes);
- SIGTERM (systemctl stop/restart, docker stop), SIGINT (Ctrl-C), SIGHUP: target 0 duplicates;
- kill -9: target at most one duplicate per SMTP connection per kill (the messages whose 250
  was on the wire), and 0 missing in every case;
- the reference: the same sends without a stop, for the throughput the stops cost.

Run: `.venv/bin/python benchmarks/bench_stop.py`.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table  # noqa: E402
from bench_send import POOL, env_for, free_port, prepare  # noqa: E402

N = 2_000
STOPS = 5
DELAY = 0.003


class Counting:
    def __init__(self) -> None:
        self.copies: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(DELAY)
        with self.lock:
            self.copies.update(envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.copies.values())


def digest_send(folder: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(env_for(folder, port))
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "send", "--yes"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def trial(folder: Path, sig: signal.Signals | None, rng: random.Random) -> dict[str, float]:
    handler = Counting()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    stops = 0
    started = time.perf_counter()
    try:
        for _ in range(STOPS if sig is not None else 0):
            proc = digest_send(folder, port)
            target = handler.total + rng.randint(1, 300)
            while handler.total < target and proc.poll() is None:
                time.sleep(0.002)
            if proc.poll() is None:
                proc.send_signal(sig)
                stops += 1
            proc.communicate(timeout=60)
        proc = digest_send(folder, port)
        _, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"the resuming send failed: {err}")
    finally:
        controller.stop()
    seconds = time.perf_counter() - started
    copies = handler.copies
    wanted = {f"reader{i}@example.net" for i in range(N)}
    return {
        "stops": stops,
        "missing": len(wanted - set(copies)),
        "duplicates": sum(n - 1 for n in copies.values()),
        "seconds": seconds,
    }


def main() -> None:
    rng = random.Random()
    tmp = Path(tempfile.mkdtemp(prefix="digest-bench-stop-"))
    cases: list[tuple[str, signal.Signals | None, str]] = [
        ("no stop (reference)", None, "0"),
        ("SIGTERM", signal.SIGTERM, "0"),
        ("SIGINT (Ctrl-C)", signal.SIGINT, "0"),
        ("SIGHUP", signal.SIGHUP, "0"),
        ("kill -9", signal.SIGKILL, f"<= {POOL} per kill"),
    ]
    rows = []
    reference = 0.0
    try:
        for i, (name, sig, target) in enumerate(cases):
            folder = tmp / f"case{i}"
            prepare(folder, N)
            got = trial(folder, sig, rng)
            rate = N / got["seconds"]
            reference = reference or rate
            bound = 0 if sig != signal.SIGKILL else POOL * got["stops"]
            ok = got["missing"] == 0 and got["duplicates"] <= bound
            rows.append(
                (
                    f"{name}, {got['stops']:.0f} stops",
                    f"{got['duplicates']:.0f} duplicates, {got['missing']:.0f} missing; "
                    f"{rate:,.0f} msgs/s",
                    f"no stop: {reference:,.0f} msgs/s",
                    f"{rate / reference:.2f}x",
                    f"duplicates {target} (here <= {bound}), 0 missing "
                    + ("ok" if ok else "MISSED"),
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table(
        f"stops mid-send: {N} subscribers, {POOL} connections, server ~{DELAY * 1000:.0f} ms",
        rows,
    )


if __name__ == "__main__":
    main()
