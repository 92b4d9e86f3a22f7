"""`digest send` as a real process: stopped with the signals operators use (SIGTERM, SIGINT,
SIGHUP, `kill -9`) at random points and resumed, cut off by a stalled server, and raced by a
second sender. Copies are counted per recipient: a second copy with the same Message-ID is still
a second copy in most mailboxes."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from digest.store import deliveries
from plugins.disks import fill, sh
from plugins.smtp import Newsroom, SmtpServer

POOL = 4


def _digest(
    room: Newsroom, server: SmtpServer, *args: str, **env_extra: str
) -> subprocess.Popen[str]:
    env = room.subprocess_env()
    env.update(server.env())
    env["DIGEST_SMTP_POOL"] = "2"
    env.update(env_extra)
    return subprocess.Popen(
        [sys.executable, "-m", "digest", *args],
        cwd=room.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _issue_for(room: Newsroom, n: int) -> list[str]:
    """A drafted issue and ``n`` confirmed subscribers; their addresses."""
    room.add_posts(1)
    room.draft()
    return room.subscribe_many(n)


def _wait_for(server: SmtpServer, count: int, proc: subprocess.Popen[str], limit: float) -> None:
    deadline = time.monotonic() + limit
    while len(server.messages) < count and proc.poll() is None:
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.005)


@pytest.mark.sqlite_only
def test_two_senders_at_once_one_refuses_naming_the_holder(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    addresses = _issue_for(newsroom, 40)
    # The server holds every message at DATA until the second sender has had its say, so the
    # first is provably mid-send however slowly the machine starts processes.
    smtp_server.handler.gate = threading.Event()
    first = _digest(newsroom, smtp_server, "send", "--yes")
    deadline = time.monotonic() + 30
    while smtp_server.handler.datas == 0:
        assert first.poll() is None and time.monotonic() < deadline, "the first never sent"
        time.sleep(0.01)
    second = _digest(newsroom, smtp_server, "send", "--yes")
    out2, err2 = second.communicate(timeout=60)
    assert first.poll() is None, "the first sender should still be busy"
    smtp_server.handler.gate.set()
    out1, err1 = first.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 1
    assert f"another digest process is sending: pid {first.pid} on " in err2
    got = smtp_server.message_ids()
    assert sorted(got) == sorted(addresses)
    assert all(len(ids) == 1 for ids in got.values())


def _stop_at_random_points(
    room: Newsroom, server: SmtpServer, sig: signal.Signals, stops: int
) -> tuple[list[str], int]:
    """2 000 subscribers, a server answering in about 3 ms; `digest send --yes` stopped with
    `sig` `stops` times at random points, then run to the end. Returns (addresses, stops)."""
    addresses = _issue_for(room, 2000)
    server.handler.delay = 0.003
    rng = random.Random()
    landed = 0
    for _ in range(stops):
        proc = _digest(room, server, "send", "--yes", DIGEST_SMTP_POOL=str(POOL))
        _wait_for(server, len(server.messages) + rng.randint(1, 250), proc, 60)
        if proc.poll() is None:
            proc.send_signal(sig)
            landed += 1
        out, err = proc.communicate(timeout=60)
        if sig != signal.SIGKILL and "stopped:" in err:
            assert proc.returncode == -sig, err  # ended as killed by it, all recorded
            assert "left; run `digest send` to resume" in err
            assert "Traceback" not in err
    proc = _digest(room, server, "send", "--yes", DIGEST_SMTP_POOL=str(POOL))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return addresses, landed


def _assert_all_sent_once(room: Newsroom, server: SmtpServer, addresses: list[str]) -> None:
    copies = server.copies()
    assert sorted(copies) == sorted(addresses)  # none missing, nobody else
    assert [a for a, n in copies.items() if n > 1] == []
    assert {status for status, _, _ in room.deliveries().values()} == {"sent"}


@pytest.mark.slow
def test_sigterm_at_random_points_sends_nobody_a_second_copy(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    addresses, landed = _stop_at_random_points(newsroom, smtp_server, signal.SIGTERM, 5)
    assert landed >= 3
    _assert_all_sent_once(newsroom, smtp_server, addresses)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_ctrl_c_and_sighup_stop_as_cleanly(
    newsroom: Newsroom, smtp_server: SmtpServer, sig: signal.Signals
) -> None:
    addresses, landed = _stop_at_random_points(newsroom, smtp_server, sig, 2)
    assert landed >= 1
    _assert_all_sent_once(newsroom, smtp_server, addresses)


@pytest.mark.slow
def test_kill_9_resends_at_most_the_message_in_flight_on_each_connection(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    addresses, landed = _stop_at_random_points(newsroom, smtp_server, signal.SIGKILL, 5)
    assert landed >= 3
    copies = smtp_server.copies()
    assert sorted(copies) == sorted(addresses)  # none missing
    extra = sum(n - 1 for n in copies.values())
    assert extra <= landed * POOL, f"{extra} second copies after {landed} kills"
    assert max(copies.values()) <= 2


def test_a_stop_while_the_server_holds_the_messages_ends_after_the_grace(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    addresses = _issue_for(newsroom, 50)
    smtp_server.handler.hang_after = 10
    proc = _digest(newsroom, smtp_server, "send", "--yes", DIGEST_STOP_GRACE="1")
    deadline = time.monotonic() + 30
    while smtp_server.handler.datas < 12:  # both connections hold a message
        assert proc.poll() is None and time.monotonic() < deadline, "the sender never stalled"
        time.sleep(0.01)
    stopped_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - stopped_at < 5  # the grace (1 s), not the SMTP timeout (30 s)
    assert proc.returncode == -signal.SIGTERM, err
    assert "stopped: 10 sent, 40 left" in err
    # Rows claimed but never answered are queued again, not left 'sending'.
    statuses = [status for status, _, _ in newsroom.deliveries().values()]
    assert statuses.count("sent") == 10 and statuses.count("queued") == 40
    smtp_server.handler.unhang.set()
    smtp_server.handler.hang_after = None
    proc = _digest(newsroom, smtp_server, "send", "--yes")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    _assert_all_sent_once(newsroom, smtp_server, addresses)


def test_a_stalled_server_trips_the_breaker_and_frees_the_lock(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    addresses = _issue_for(newsroom, 300)
    smtp_server.handler.hang_after = 20
    started = time.monotonic()
    proc = _digest(newsroom, smtp_server, "send", "--yes", DIGEST_SMTP_TIMEOUT="0.3")
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - started < 30
    assert proc.returncode == 1, err
    assert "stopped answering" in err and "Traceback" not in err
    assert "`digest send` resumes" in err
    found = deliveries.counts(newsroom.conn, 1)
    assert found["sent"] == 20 and found["sending"] == 0
    assert found["queued"] + found["deferred"] == 280
    # The lock is free: the next send (the server well again) finishes the issue.
    smtp_server.handler.unhang.set()
    smtp_server.handler.hang_after = None
    proc = _digest(newsroom, smtp_server, "send", "--yes")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    _assert_all_sent_once(newsroom, smtp_server, addresses)


@pytest.mark.slow
def test_serve_with_scheduler_stopped_mid_send_finishes_what_is_in_flight(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    from plugins.smtp import free_port

    addresses = _issue_for(newsroom, 2000)
    smtp_server.handler.delay = 0.003
    # A send stopped early leaves the issue half-sent: the scheduler's first tick resumes it.
    first = _digest(newsroom, smtp_server, "send", "--yes")
    _wait_for(smtp_server, 50, first, 60)
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=60)
    before = len(smtp_server.messages)
    assert before < 2000
    port = str(free_port())
    server = _digest(
        newsroom, smtp_server, "serve", "--port", port, "--with-scheduler",
        DIGEST_SMTP_POOL=str(POOL),
    )  # fmt: skip
    _wait_for(smtp_server, before + 200, server, 60)
    assert len(smtp_server.messages) < 2000, "the scheduler finished before the stop"
    server.send_signal(signal.SIGTERM)
    _, log = server.communicate(timeout=60)
    assert server.returncode == -signal.SIGTERM, log
    assert "stopped: " in log and "Traceback" not in log, log
    assert deliveries.counts(newsroom.conn, 1)["sending"] == 0  # every claim recorded or queued
    proc = _digest(newsroom, smtp_server, "send", "--yes", DIGEST_SMTP_POOL=str(POOL))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _assert_all_sent_once(newsroom, smtp_server, addresses)


def test_a_disk_filling_up_mid_send_stops_it_and_costs_at_most_the_messages_in_flight(
    tmp_path: Path, blogs_yaml: Path, smtp_server: SmtpServer, small_disk: Path
) -> None:
    room = Newsroom(tmp_path, blogs_yaml, small_disk / "digest.db")
    try:
        addresses = _issue_for(room, 400)
        smtp_server.handler.delay = 0.005
        proc = _digest(room, smtp_server, "send", "--yes")
        _wait_for(smtp_server, 20, proc, 60)
        fill(small_disk)  # the disk under the database is full from here on
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert "the disk is full" in err and "Traceback" not in err, err
        assert len(smtp_server.messages) < 400
        # Room again (the log may have taken the disk before the filler did): resume.
        (small_disk / "filler").unlink()
        assert sh("mount", "-o", "remount,size=16m", str(small_disk))
        proc = _digest(room, smtp_server, "send", "--yes")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        copies = smtp_server.copies()
        assert sorted(copies) == sorted(addresses)  # none missing
        assert sum(n - 1 for n in copies.values()) <= 2  # one per connection (DIGEST_SMTP_POOL=2)
    finally:
        room.conn.close()
