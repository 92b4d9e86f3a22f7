"""`digest send` as a real process: killed with SIGKILL mid-send, and raced by a second one."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time

from digest.store import issues
from plugins.smtp import Newsroom, SmtpServer


def _digest(room: Newsroom, server: SmtpServer, *args: str) -> subprocess.Popen[str]:
    env = room.subprocess_env()
    env.update(server.env())
    env["DIGEST_SMTP_POOL"] = "2"
    return subprocess.Popen(
        [sys.executable, "-m", "digest", *args],
        cwd=room.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(server: SmtpServer, count: int, proc: subprocess.Popen[str], limit: float) -> None:
    deadline = time.monotonic() + limit
    while len(server.messages) < count and proc.poll() is None:
        assert time.monotonic() < deadline, "the sender made no progress"
        time.sleep(0.005)


def test_kill_9_at_random_points_then_resume_delivers_each_once(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    newsroom.add_posts(1)
    newsroom.draft()
    addresses = newsroom.subscribe_many(150)
    smtp_server.handler.delay = 0.01
    rng = random.Random()
    kills = 0
    for _ in range(3):
        proc = _digest(newsroom, smtp_server, "send", "--yes")
        # Kill after a random number of further messages: before, during or after a batch commit.
        target = len(smtp_server.messages) + rng.randint(1, 40)
        _wait_for(smtp_server, target, proc, 30)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
    assert kills >= 2
    assert len(smtp_server.messages) < 150 + 40  # the kills did land mid-send

    proc = _digest(newsroom, smtp_server, "send", "--yes")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    stored = newsroom.deliveries()
    got = smtp_server.message_ids()
    assert sorted(got) == sorted(addresses)  # none missing
    for address in addresses:
        status, message_id, _ = stored[address]
        assert status == "sent"
        # Copies resent after a kill carry the same Message-ID: one message per receiver.
        assert set(got[address]) == {message_id}
    archived = issues.get_issue(newsroom.conn, 1)
    assert archived is not None and archived.status == "sent"


def test_two_senders_at_once_one_refuses_naming_the_holder(
    newsroom: Newsroom, smtp_server: SmtpServer
) -> None:
    newsroom.add_posts(1)
    newsroom.draft()
    addresses = newsroom.subscribe_many(40)
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
