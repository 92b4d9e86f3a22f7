"""PostgreSQL behind the store's one API (psycopg 3): the seam for psycopg.

The store's SQL is written once, for SQLite's dialect with `?` placeholders; ``PgConnection``
speaks it to PostgreSQL: placeholders become `%s`, rows answer by index and by name like
``sqlite3.Row``, Python booleans are sent as integers (the schema's INTEGER flags), and the
connection is in autocommit mode, so ``transaction()`` and ``write_one()`` mean on both engines
what they say. What differs beyond that lives in ``digest.store.dialect``.
"""

from __future__ import annotations

import os
import re
import socket
import weakref
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg.pq import TransactionStatus
from psycopg.rows import RowMaker
from psycopg.types.numeric import Int8Dumper

from digest.errors import StoreError

Error = psycopg.Error
IntegrityError = psycopg.IntegrityError


class PgRow:
    """A row by position (``row[0]``), by column name (``row["email"]``), and unpacked."""

    __slots__ = ("_values", "_names")

    def __init__(self, values: Sequence[Any], names: dict[str, int]) -> None:
        self._values = values
        self._names = names

    def __getitem__(self, key: int | str) -> Any:
        return self._values[key if isinstance(key, int) else self._names[key]]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._names)


def _rows(cursor: psycopg.Cursor[Any]) -> RowMaker[PgRow]:
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: PgRow(values, names)


class _BoolAsInt(Int8Dumper):
    """SQLite has no booleans: the schema's flags are INTEGER 0/1 on both engines."""

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """`?` -> `%s` and `%` -> `%%`, outside quoted strings."""
    parts = re.split(r"('(?:[^']|'')*')", sql)
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("%", "%%").replace("?", "%s")
    return "".join(parts)


class PgConnection:
    """The subset of ``sqlite3.Connection`` the store uses, over one psycopg connection."""

    dialect = "postgresql"

    def __init__(self, raw: psycopg.Connection[PgRow], url: str) -> None:
        self.raw = raw
        self.url = url
        # Like a sqlite3 connection, one that is dropped closes itself, quietly (a weakref
        # callback runs before psycopg's own finalizer, even in a reference cycle).
        weakref.finalize(self, raw.close)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[PgRow]:
        if not parameters:  # sent as it is: a migration's several statements at once
            return self.raw.execute(sql.encode())
        return self.raw.execute(translate(sql), parameters)

    def executemany(
        self, sql: str, parameters: Iterable[Sequence[Any]], /
    ) -> psycopg.Cursor[PgRow]:
        cursor = self.raw.cursor()
        cursor.executemany(translate(sql), list(parameters))
        return cursor

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None  # as sqlite3's in autocommit mode: every statement is committed already


def is_url(target: object) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str) -> PgConnection:
    try:
        raw = psycopg.connect(
            url,
            autocommit=True,
            row_factory=_rows,
            connect_timeout=10,
            application_name=f"digest pid {os.getpid()} on {socket.gethostname()}"[:63],
        )
    except psycopg.Error as exc:
        raise StoreError(
            f"{shown(url)}: cannot connect to PostgreSQL: {str(exc).strip()}",
            hint="check DIGEST_DB (postgresql://user:password@host:5432/database), that the "
            "server runs and accepts this user, and that the database exists (createdb)",
        ) from None
    raw.adapters.register_dumper(bool, _BoolAsInt)
    return PgConnection(raw, url)


def store_error(exc: BaseException, url: str) -> StoreError | None:
    """The StoreError for a failure the operator can act on; None for a bug."""
    if isinstance(exc, psycopg.errors.DiskFull):
        return StoreError(
            f"{shown(url)}: cannot write to the database: the server's disk is full",
            hint="free some space on the PostgreSQL server and run the command again (the "
            "change that failed was rolled back)",
        )
    refused = psycopg.errors.InsufficientPrivilege | psycopg.errors.ReadOnlySqlTransaction
    if isinstance(exc, refused):
        return StoreError(
            f"{shown(url)}: cannot write to the database: {str(exc).strip()}",
            hint="grant this user the rights on digest's tables, or use a writable server",
        )
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(
            f"{shown(url)}: lost the connection to PostgreSQL: {str(exc).strip()}",
            hint="check that the server runs and is reachable, then run the command again",
        )
    return None

