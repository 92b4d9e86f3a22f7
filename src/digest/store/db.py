"""Opening the SQLite database: WAL mode, migrations, transactions and time encoding."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from digest.errors import StoreError
from digest.store.schema import MIGRATIONS

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def ts(moment: datetime) -> str:
    """A datetime as stored: UTC, second precision, sortable text."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: digest stores only aware UTC times")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def ts_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else ts(moment)


def parse_ts(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def connect(path: Path | str, *, migrate: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database.

    Autocommit mode (``isolation_level=None``): every write goes through ``transaction`` so
    what is committed, and when, is explicit (delivery bookkeeping depends on it).
    """
    path = Path(path)
    if str(path) != ":memory:":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{path}: cannot create its folder: {exc.strerror}",
                hint="set DIGEST_DB (or --db) to a writable path",
            ) from None
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        if migrate:
            _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path}: cannot open the database: {exc}",
            hint="check the path and its permissions (DIGEST_DB or --db)",
        ) from None
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if row is None:
        return 0
    return int(
        conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
    )


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    current = schema_version(conn)
    if current > len(MIGRATIONS):
        raise StoreError(
            f"{path}: the database is at schema version {current}, but this digest knows only "
            f"{len(MIGRATIONS)}: it was written by a newer digest",
            hint="upgrade digest (git pull && make setup) or point DIGEST_DB at another file",
        )
    for version, (name, sql) in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        # executescript() would COMMIT on its own; run statements one by one inside BEGIN.
        with transaction(conn):
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, ts(utcnow())),
            )


def _statements(sql: str) -> Iterator[str]:
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    if buffer.strip():
        yield buffer


def log_event(
    conn: sqlite3.Connection, kind: str, detail: str, *, at: datetime | None = None
) -> None:
    conn.execute(
        "INSERT INTO events (at, kind, detail) VALUES (?, ?, ?)", (ts(at or utcnow()), kind, detail)
    )


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
