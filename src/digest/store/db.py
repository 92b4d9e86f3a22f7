"""Opening the database (SQLite, or PostgreSQL through digest.store.postgres): migrations,
transactions, errors a user can act on, and time encoding."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from digest.errors import StoreError
from digest.store import dialect, postgres
from digest.store.schema import MIGRATIONS

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"



class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the store needs of a connection: ``sqlite3.Connection`` or ``PgConnection``."""

    @property
    def in_transaction(self) -> bool: ...
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...
    def close(self) -> None: ...


Row = Any  # sqlite3.Row or postgres.PgRow: by index, by column name, unpacked
DbError = (sqlite3.Error, postgres.Error)
IntegrityError = (sqlite3.IntegrityError, postgres.IntegrityError)


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


def connect(target: Path | str, *, migrate: bool = True) -> Connection:
    """Open (creating if needed) and migrate the database: a SQLite file, or a
    ``postgresql://`` URL.

    Autocommit mode (``isolation_level=None``): every write goes through ``transaction`` so
    what is committed, and when, is explicit (delivery bookkeeping depends on it).
    """
    if postgres.is_url(target):
        pg = postgres.connect(str(target))
        if migrate:
            try:
                _migrate(pg, str(target))
            except postgres.Error as exc:
                pg.close()
                raise postgres.store_error(exc, str(target)) or exc from None
        return pg
    path = Path(target)
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
        raise store_error(exc, path) or StoreError(
            f"{path}: cannot open the database: {exc}",
            hint="check the path and its permissions (DIGEST_DB or --db)",
        ) from None
    return conn


# SQLite's primary result codes (https://sqlite.org/rescode.html) that a user can act on.
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _FULL, _CANTOPEN = 3, 5, 6, 8, 10, 13, 14
_WRITABLE_HINT = (
    "make the file and its folder writable for this user (SQLite writes the -wal and -shm "
    "files beside it), or point DIGEST_DB (or --db) at a writable copy"
)


def store_error(exc: BaseException, path: Path | str) -> StoreError | None:
    """The StoreError naming ``path`` for a failure the user can fix (a read-only file, a full
    or failing disk, a lock held too long, a lost server); None for anything else, a bug."""
    if isinstance(exc, postgres.Error):
        return postgres.store_error(exc, str(path))
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return None
    primary = code & 0xFF  # extended codes keep the primary one in the low byte
    if primary in (_READONLY, _PERM):
        return StoreError(f"{path}: cannot write to the database: {exc}", hint=_WRITABLE_HINT)
    if primary == _FULL or (primary == _IOERR and _disk_full(Path(path))):
        return StoreError(
            f"{path}: cannot write to the database: the disk is full",
            hint="free some space on its disk and run the command again (the change that "
            "failed was rolled back, nothing is half-written)",
        )
    if primary == _IOERR:
        return StoreError(
            f"{path}: the disk reported an error while using the database: {exc}",
            hint="check the disk that holds it (removed, failing, or out of space), then run again",
        )
    if primary == _CANTOPEN:
        return StoreError(
            f"{path}: cannot open the database file",
            hint="check that DIGEST_DB (or --db) names a file in a folder this user may write "
            "to: SQLite creates the -wal and -shm files beside it",
        )
    if primary in (_BUSY, _LOCKED):
        return StoreError(
            f"{path}: the database stayed locked by another process for 30 s",
            hint="another digest, or a tool with it open, is writing: wait and run again",
        )
    return None


def _disk_full(path: Path) -> bool:
    # A full disk can also surface as a plain I/O error (growing the -shm file when opening).
    try:
        usage = os.statvfs(path.parent)
    except OSError:
        return False
    return usage.f_bavail * usage.f_frsize < 1024 * 1024


def database_file(conn: Connection) -> str:
    """The file (or server) behind ``conn``, for error messages."""
    if isinstance(conn, postgres.PgConnection):
        return postgres.shown(conn.url)
    try:
        row = conn.execute("PRAGMA database_list").fetchone()
    except sqlite3.Error:
        return "the database"
    return str(row[2]) if row is not None and row[2] else ":memory:"


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (plain BEGIN on PostgreSQL,
    whose row locks and advisory locks serialise what must be).

    Every write goes through here, so this is where a read-only file, a full disk or a lock
    held too long becomes one StoreError naming the database (``store_error``).
    """
    try:
        conn.execute(dialect.begin(conn))
    except DbError as exc:
        raise store_error(exc, database_file(conn)) or exc from None
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        # SQLite may already have rolled back (SQLITE_FULL, SQLITE_IOERR): a second ROLLBACK
        # would fail and hide the error that matters.
        if conn.in_transaction:
            with suppress(*DbError):
                conn.execute("ROLLBACK")
        if isinstance(exc, DbError) and (error := store_error(exc, database_file(conn))):
            raise error from None
        raise


def select_in(conn: Connection, sql: str, keys: Sequence[Any]) -> Iterator[Row]:
    """The rows of ``sql``, which ends in ``IN ({marks})``, for every key: 500 keys a query, under
    SQLite's limit on bound parameters."""
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        yield from conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)


def write_one(conn: Connection, sql: str, params: Sequence[object]) -> None:
    """One statement outside ``transaction``: in autocommit mode SQLite commits it on its own
    before returning, a third of the cost of BEGIN ... COMMIT (the send loop's hot path)."""
    try:
        conn.execute(sql, params)
    except DbError as exc:
        raise store_error(exc, database_file(conn)) or exc from None


def schema_version(conn: Connection) -> int:
    if not dialect.has_table(conn, "schema_migrations"):
        return 0
    return int(
        conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
    )


def _migrate(conn: Connection, path: Path | str) -> None:
    with dialect.advisory_lock(conn, "migrate"):  # two processes starting at once on one server
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        _apply_migrations(conn, path)


def _apply_migrations(conn: Connection, path: Path | str) -> None:
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
            script = dialect.migration_sql(conn, sql)
            if dialect.is_postgresql(conn):
                if script.strip():
                    conn.execute(script)  # no parameters: psycopg sends the statements as one
            else:
                for statement in _statements(script):
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
    conn: Connection, kind: str, detail: str, *, at: datetime | None = None
) -> None:
    conn.execute(
        "INSERT INTO events (at, kind, detail) VALUES (?, ?, ?)", (ts(at or utcnow()), kind, detail)
    )


def get_meta(conn: Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
