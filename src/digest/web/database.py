"""All database work of the web app runs on one dedicated thread with one connection.

One writer thread means the app's own requests never wait on SQLite's busy handler (whose
sleeps would wreck p99 under concurrent unsubscribes), and the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from digest.store import connect

T = TypeVar("T")


class Database:
    def __init__(self, path: Path) -> None:
        self.conn = connect(path)  # migrations run here, so a bad database fails at startup
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-db")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self.conn)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.conn.close()
