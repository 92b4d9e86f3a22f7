"""Senders on several machines: `digest send --yes` processes sharing one PostgreSQL, each with
its own SMTP relay. Copies are counted per recipient over every relay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from digest.errors import LockedError
from digest.send.lock import job_lock
from digest.store import connect
from plugins.smtp import Newsroom, SmtpServer

pytestmark = pytest.mark.postgresql_only

POOL = 2


def _sender(
    room: Newsroom, relay: SmtpServer, *args: str, **env_extra: str
) -> subprocess.Popen[str]:
    env = room.subprocess_env()
    env.update(relay.env())
    env.update({"DIGEST_SMTP_POOL": str(POOL), "DIGEST_SEND_LEASE": "3", **env_extra})
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "send", "--yes", *args],
        cwd=room.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _copies(relays: list[SmtpServer]) -> Counter[str]:
    total: Counter[str] = Counter()
    for relay in relays:
        total.update(relay.copies())
    return total


def _fleet(
    newsroom: Newsroom, smtp_servers: Callable[..., SmtpServer], workers: int, readers: int
) -> tuple[list[str], list[SmtpServer]]:
    newsroom.add_posts(1)
    newsroom.draft()
    addresses = newsroom.subscribe_many(readers)
    relays = [smtp_servers() for _ in range(workers)]
    for relay in relays:
        relay.handler.delay = 0.004
    return addresses, relays


def test_three_senders_share_one_issue_and_nobody_gets_two_copies(
    newsroom: Newsroom, smtp_servers: Callable[..., SmtpServer]
) -> None:
    addresses, relays = _fleet(newsroom, smtp_servers, 3, 600)
    # Each relay holds its first message at DATA until every sender has one there: all three
    # provably hold rows at once, however slowly the machine starts processes.
    for relay in relays:
        relay.handler.gate = threading.Event()
    procs = [_sender(newsroom, relay) for relay in relays]
    deadline = time.monotonic() + 60
    while not all(relay.handler.datas for relay in relays):
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
        time.sleep(0.01)
    for relay in relays:
        relay.handler.gate.set()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    copies = _copies(relays)
    assert sorted(copies) == sorted(addresses)
    assert set(copies.values()) == {1}
    # The issue was frozen once, and the work was shared.
    assert newsroom.conn.execute("SELECT COUNT(*) FROM issues").fetchone()[0] == 1
    assert all(relay.messages for relay in relays), [len(r.messages) for r in relays]
    # Each recipient kept the Message-ID of the snapshot.
    stored = {email: mid for email, (_, mid, _) in newsroom.deliveries().items()}
    for relay in relays:
        for rcpt, ids in relay.message_ids().items():
            assert ids == [stored[rcpt]]


def test_a_killed_sender_leaves_its_rows_to_the_others_after_its_lease(
    newsroom: Newsroom, smtp_servers: Callable[..., SmtpServer]
) -> None:
    addresses, relays = _fleet(newsroom, smtp_servers, 3, 600)
    procs = [_sender(newsroom, relay) for relay in relays]
    victim, victim_relay = procs[0], relays[0]
    deadline = time.monotonic() + 60
    while len(victim_relay.messages) < 20:
        assert victim.poll() is None and time.monotonic() < deadline, "the victim never sent"
        time.sleep(0.005)
    victim.kill()  # kill -9: no chance to release its claimed rows
    victim.communicate()
    outs = [p.communicate(timeout=120) for p in procs[1:]]
    assert [p.returncode for p in procs[1:]] == [0, 0], [err for _, err in outs]
    copies = _copies(relays)
    assert sorted(copies) == sorted(addresses), "0 missing"
    seconds = [rcpt for rcpt, n in copies.items() if n > 1]
    # Only what was on the wire when it died: one message per connection of the victim.
    assert len(seconds) <= POOL, seconds
    assert all(copies[rcpt] == 2 for rcpt in seconds)
    statuses = Counter(status for status, _, _ in newsroom.deliveries().values())
    assert statuses == Counter({"sent": len(addresses)})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_sender_hands_its_rows_back_and_nobody_gets_two_copies(
    newsroom: Newsroom, smtp_servers: Callable[..., SmtpServer], signum: signal.Signals
) -> None:
    addresses, relays = _fleet(newsroom, smtp_servers, 2, 400)
    procs = [_sender(newsroom, relay) for relay in relays]
    deadline = time.monotonic() + 60
    while len(relays[0].messages) < 20:
        assert procs[0].poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    procs[0].send_signal(signum)
    _, err = procs[0].communicate(timeout=60)
    assert procs[0].returncode == -signum, err
    assert "stopped:" in err
    _, err = procs[1].communicate(timeout=120)
    assert procs[1].returncode == 0, err
    copies = _copies(relays)
    assert sorted(copies) == sorted(addresses)
    assert set(copies.values()) == {1}


def test_the_weekly_job_runs_once_across_machines(db_path: str, newsroom: Newsroom) -> None:
    settings = newsroom.settings()
    with job_lock(settings):
        with pytest.raises(LockedError) as raised, job_lock(settings):
            pass
    assert "running the weekly job" in str(raised.value)
    assert f"pid {os.getpid()} on " in str(raised.value)
    with job_lock(settings):  # released with its holder
        pass
    connect(db_path).close()


def test_a_worker_joins_an_issue_being_sent_and_never_freezes_one(
    newsroom: Newsroom, smtp_servers: Callable[..., SmtpServer]
) -> None:
    relays = [smtp_servers(), smtp_servers()]
    # Nothing is being sent (a draft exists, but only the web machine sends it): no-op, exit 0.
    newsroom.add_posts(1)
    newsroom.draft()
    addresses = newsroom.subscribe_many(1000)
    idle = subprocess.run(
        [sys.executable, "-m", "digest", "send", "--yes", "--join"],
        cwd=newsroom.root,
        env={**newsroom.subprocess_env(), **relays[1].env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert idle.returncode == 0, idle.stderr
    assert "Nothing to join" in idle.stdout
    assert newsroom.conn.execute("SELECT COUNT(*) FROM issues").fetchone()[0] == 0
    for relay in relays:
        relay.handler.delay = 0.004
    first = _sender(newsroom, relays[0])
    deadline = time.monotonic() + 60
    while len(relays[0].messages) < 10:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    # Another machine: no drafts folder of its own.
    joiner = _sender(newsroom, relays[1], "--join", DIGEST_DRAFTS=str(newsroom.root / "elsewhere"))
    for proc in (first, joiner):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    copies = _copies(relays)
    assert sorted(copies) == sorted(addresses) and set(copies.values()) == {1}
    assert relays[1].messages, "the joiner sent some"
