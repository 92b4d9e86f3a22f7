"""Process locks: two `digest send` processes on one SQLite file never both send; two weekly
jobs (schedulers, cron) never both run.

``fcntl.flock`` on a file next to the database. The kernel releases it when the holder exits
however it exits (``kill -9`` included), so there is no stale lock to clean up by hand. The file
names its holder, so the second process can say who is sending.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

from digest.config import Settings
from digest.errors import DeliveryError, LockedError
from digest.store import dialect
from digest.store.db import connect


def lock_path(settings: Settings, name: str = "send") -> Path:
    db = settings.db_file
    assert db is not None, "file locks belong to SQLite; PostgreSQL has advisory locks"
    return db.parent / f"{db.name}.{name}-lock"


def _holder(path: Path) -> str:
    # The holder writes its name just after locking: a reader racing it may see an empty file.
    for _ in range(20):
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            text = ""
        if text:
            return text
        time.sleep(0.01)
    return f"an unknown process (lock file {path})"


def send_lock(settings: Settings) -> AbstractContextManager[object]:
    """Hold the send lock for the block; ``LockedError(holder)`` if another process has it.

    On PostgreSQL there is none: senders on several machines share the work, each row claimed
    by one of them (``FOR UPDATE SKIP LOCKED`` and a lease, digest.store.deliveries)."""
    if settings.db_file is None:
        return nullcontext()
    return _file_lock(lock_path(settings, "send"), "sending")


def job_lock(settings: Settings) -> AbstractContextManager[object]:
    """Held for a whole weekly job (gather, draft, send): one scheduler or cron run at a time."""
    return named_lock(settings, "job", "running the weekly job")


def named_lock(settings: Settings, name: str, doing: str) -> AbstractContextManager[object]:
    """One process at a time for ``name`` (the job, sending webmentions), on one machine (a
    file lock beside the SQLite file) or on all that share a PostgreSQL (an advisory lock);
    the loser gets ``LockedError`` naming the holder and what it is ``doing``."""
    if settings.db_file is None:
        return _advisory_lock(settings.db, name, doing)
    return _file_lock(lock_path(settings, name), doing)


@contextmanager
def _advisory_lock(url: str, what: str, doing: str) -> Iterator[object]:
    # Its own connection: the lock lives as long as the session, and ends with the process.
    conn = connect(url, migrate=False)
    try:
        if not dialect.try_advisory_lock(conn, what):
            raise LockedError(dialect.advisory_holder(conn, what), doing=doing)
        yield url
    finally:
        conn.close()


@contextmanager
def _file_lock(path: Path, doing: str) -> Iterator[Path]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DeliveryError(
            f"{path}: cannot open the lock file: {exc.strerror}",
            hint="the folder of DIGEST_DB must be writable",
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(_holder(path), doing=doing) from None
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the flock
