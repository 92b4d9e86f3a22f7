"""`digest db copy --to postgresql://...`: a SQLite database moved to PostgreSQL mid-send keeps
every row, the subscribers' tokens and the delivery ledger, and the send resumes on the new
database without a second copy to anyone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from digest.send.deliver import send_issue
from digest.store import connect, deliveries, transaction
from digest.store.copy import count, tables
from plugins.smtp import Newsroom, SmtpServer

pytestmark = pytest.mark.postgresql_only


@pytest.fixture
def sqlite_room(tmp_path: Path, blogs_yaml: Path) -> Newsroom:
    return Newsroom(tmp_path, blogs_yaml, tmp_path / "subscribers" / "digest.db")


def _digest(room: Newsroom, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "digest", *args],
        cwd=room.root,
        env=room.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_half_sent_issue_moves_to_postgresql_and_finishes_without_a_second_copy(
    sqlite_room: Newsroom, smtp_server: SmtpServer, pg_url: str
) -> None:
    room = sqlite_room
    room.add_posts(1)
    room.draft()
    addresses = room.subscribe_many(30)
    # Half the list is sent; then two rows are left 'sending' (a crash) and the rest queued.
    smtp = {k.removeprefix("DIGEST_").lower(): v for k, v in smtp_server.env().items()}
    settings = room.settings(**smtp)
    from digest.send.deliver import _start_issue

    _start_issue(settings, room.blogs, room.conn, now=room.now)
    with transaction(room.conn):
        claimed, _ = deliveries.claim(
            room.conn, [1], 15, now=room.now, worker="before", lease_until=room.now
        )
        for job in claimed[:13]:
            room.conn.execute(
                "UPDATE deliveries SET status = 'sent', attempts = 1 WHERE rowid = ?", (job.rowid,)
            )
    before = room.deliveries()
    tokens = dict(room.conn.execute("SELECT email, token FROM subscribers").fetchall())

    done = _digest(room, "db", "copy", "--to", pg_url)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())  # rich wraps at the terminal's width
    assert "counts verified" in said
    assert "subscribers 30 rows" in said and "deliveries 30 rows" in said

    target = connect(pg_url)
    source = connect(room.db_path)
    for table in tables(source):
        assert count(target, table) == count(source, table), table
    assert dict(target.execute("SELECT email, token FROM subscribers").fetchall()) == tokens
    moved = {
        r[0]: (r[1], r[2], r[3])
        for r in target.execute(
            "SELECT email, status, message_id, attempts FROM deliveries WHERE issue = 1"
        )
    }
    assert moved == before
    # New rows continue after the copied ids.
    with transaction(target):
        late = target.execute(
            "INSERT INTO subscribers (email, status, token, source, requested_at)"
            " VALUES ('late@example.net', 'pending', 'late-token', 'cli', '2026-03-02T08:00:00Z')"
            " RETURNING id"
        ).fetchone()[0]
    assert late == max(r[0] for r in source.execute("SELECT id FROM subscribers")) + 1

    moved_settings = settings.model_copy(update={"db": pg_url, "send_lease": 1.0})
    summary = send_issue(moved_settings, room.blogs, target, now=room.now)
    assert summary.finished
    unsent = sorted(a for a in addresses if before[a][0] != "sent")
    assert sorted(smtp_server.copies()) == unsent
    assert set(smtp_server.copies().values()) == {1}
    for address in unsent:
        assert smtp_server.message_ids()[address] == [before[address][1]]
    source.close()
    target.close()


def test_copy_refuses_a_target_that_holds_data(sqlite_room: Newsroom, pg_url: str) -> None:
    sqlite_room.subscribe_many(3)
    assert _digest(sqlite_room, "db", "copy", "--to", pg_url).returncode == 0
    again = _digest(sqlite_room, "db", "copy", "--to", pg_url)
    assert again.returncode == 1
    assert "is not empty: subscribers" in again.stderr and "Traceback" not in again.stderr
    assert "hint: copy into a new, empty database" in again.stderr
    # Nothing was added the second time.
    target = connect(pg_url)
    assert count(target, "subscribers") == 3
    target.close()


def test_copy_to_an_unreachable_server_names_it_without_the_password(
    sqlite_room: Newsroom,
) -> None:
    url = "postgresql://digest:hunter2@127.0.0.1:1/digest"
    failed = _digest(sqlite_room, "db", "copy", "--to", url)
    assert failed.returncode == 1
    assert "cannot connect to PostgreSQL" in failed.stderr
    assert "hunter2" not in failed.stderr and "***" in failed.stderr
    assert "Traceback" not in failed.stderr
