from __future__ import annotations

from pathlib import Path

import pytest

from digest.errors import StoreError
from digest.store import connect, transaction
from digest.store.db import IntegrityError, schema_version
from digest.store.schema import MIGRATIONS


@pytest.mark.sqlite_only
def test_new_database_is_wal(db_path: Path) -> None:
    conn = connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_new_database_is_fully_migrated(blank_db: Path) -> None:
    conn = connect(blank_db)
    assert schema_version(conn) == len(MIGRATIONS)
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [tuple(r) for r in rows] == [(i + 1, m[0]) for i, m in enumerate(MIGRATIONS)]
    conn.close()


def test_reopening_is_idempotent(blank_db: Path) -> None:
    connect(blank_db).close()
    conn = connect(blank_db)
    assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_older_database_is_migrated(blank_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from digest.store import db as dbmod

    monkeypatch.setattr(dbmod, "MIGRATIONS", MIGRATIONS[:1])
    connect(blank_db).close()
    extra = ("add a test table", "CREATE TABLE later_things (id INTEGER PRIMARY KEY);")
    monkeypatch.setattr(dbmod, "MIGRATIONS", [*MIGRATIONS, extra])
    conn = connect(blank_db)
    assert schema_version(conn) == len(MIGRATIONS) + 1
    conn.execute("INSERT INTO later_things DEFAULT VALUES")
    conn.close()


def test_newer_database_is_refused(db_path: Path) -> None:
    conn = connect(db_path)
    conn.execute(
        "INSERT INTO schema_migrations VALUES (?, 'from the future', '2030-01-01T00:00:00Z')",
        (len(MIGRATIONS) + 5,),
    )
    conn.close()
    with pytest.raises(StoreError, match="newer digest") as info:
        connect(db_path)
    assert info.value.hint


def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError, match="cannot"):
        connect(blocker / "sub" / "digest.db")


def test_transaction_rolls_back(db_path: Path) -> None:
    conn = connect(db_path)
    with pytest.raises(RuntimeError), transaction(conn):
        conn.execute("INSERT INTO meta VALUES ('a', 'b')")
        raise RuntimeError
    assert conn.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0
    with pytest.raises(IntegrityError), transaction(conn):
        conn.execute("INSERT INTO meta VALUES ('a', 'b')")
        conn.execute("INSERT INTO meta VALUES ('a', 'c')")
