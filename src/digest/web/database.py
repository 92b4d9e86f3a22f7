"""All database work of the web app runs on one dedicated thread with one connection.

One writer thread means the app's own requests never wait on SQLite's busy handler (whose
sleeps would wreck p99 under concurrent unsubscribes), and the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from digest.store import connect, dialect
from digest.store.db import Connection, DbError, set_meta, ts, utcnow

T = TypeVar("T")


class Database:
    def __init__(self, path: Path | str) -> None:
        self.conn = connect(path)  # migrations run here, so a bad database fails at startup
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-db")

    async def run(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self.conn)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.conn.close()


def check_writable(conn: Connection) -> None:
    """Commit one tiny write, or raise DbError: a full disk, a read-only file or folder.

    A read proves little: SQLite serves reads from a database it can no longer write.
    """
    try:
        conn.execute(dialect.begin(conn))
        set_meta(conn, "healthz", ts(utcnow()))
        conn.execute("COMMIT")
    except DbError:
        if conn.in_transaction:  # SQLite may have rolled back by itself already
            with contextlib.suppress(*DbError):
                conn.execute("ROLLBACK")
        raise
