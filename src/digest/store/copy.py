"""Copying a whole database between engines: `digest db copy --to postgresql://...`, and the
SQLite scratch copy a dry run sends against.

Every table row for row, ids, tokens and the delivery ledger included (Message-IDs, statuses,
attempts, leases), into a freshly migrated, empty target; then the counts are compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from digest.errors import StoreError
from digest.store import dialect
from digest.store.db import Connection, database_file, schema_version, transaction

# Parents before the tables whose foreign keys point at them; every other table after.
_FIRST = ("issues", "subscribers")
_CHUNK = 1000


def tables(conn: Connection) -> list[str]:
    if dialect.is_postgresql(conn):
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    else:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    found = sorted(str(r[0]) for r in rows if r[0] != "schema_migrations")
    return [t for t in _FIRST if t in found] + [t for t in found if t not in _FIRST]


def columns(conn: Connection, table: str) -> list[str]:
    if dialect.is_postgresql(conn):
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [str(r[0]) for r in rows]
    names = [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]
    # SQLite's implicit rowid is the ledger's row key; PostgreSQL's deliveries has it as a column.
    return ["rowid", *names] if table == "deliveries" else names


def count(conn: Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _rows(conn: Connection, table: str, names: list[str]) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in conn.execute(f"SELECT {', '.join(names)} FROM {table}"):
        chunk.append(tuple(row))
        if len(chunk) == _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def copy_database(source: Connection, target: Connection) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target`` (both migrated to this digest's
    schema), in one transaction; rows per table. StoreError when the target holds data or the
    counts differ afterwards (nothing is then committed)."""
    if schema_version(source) != schema_version(target):
        raise StoreError(
            f"{database_file(source)} is at schema version {schema_version(source)} and "
            f"{database_file(target)} at {schema_version(target)}",
            hint="open both with this digest first (any command migrates them), then copy",
        )
    names = tables(source)
    missing = sorted(set(names) - set(tables(target)))
    if missing:
        raise StoreError(f"{database_file(target)} has no table {', '.join(missing)}")
    busy = [t for t in names if t not in ("meta",) and count(target, t)]
    if busy:
        raise StoreError(
            f"{database_file(target)} is not empty: {', '.join(busy)} already hold rows",
            hint="copy into a new, empty database (createdb digest), never over live data",
        )
    copied: dict[str, int] = {}
    with transaction(target):
        target.execute("DELETE FROM meta")  # the target's own healthz mark, if any
        for table in names:
            wanted = columns(source, table)
            shared = [c for c in wanted if c in set(columns(target, table))]
            marks = ", ".join("?" * len(shared))
            insert = f"INSERT INTO {table} ({', '.join(shared)}) VALUES ({marks})"
            copied[table] = 0
            for chunk in _rows(source, table, shared):
                target.executemany(insert, chunk)
                copied[table] += len(chunk)
            if count(target, table) != copied[table] or count(source, table) != copied[table]:
                raise StoreError(
                    f"copying {table}: {copied[table]} rows read, "
                    f"{count(target, table)} in {database_file(target)}",
                    hint="the source changed during the copy: stop digest and copy again",
                )
        if dialect.is_postgresql(target):
            _restart_identities(target)
    return copied


def _restart_identities(conn: Connection) -> None:
    """Rows copied with their ids: each identity column continues after the largest."""
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    for table, column in rows:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
            f" COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
        )
