"""Writes that fail for a reason outside digest: an unwritable drafts/ or preview/ folder, a
file where a folder should be, a read-only database, a full disk. Each is one `error:` line
naming the path, and a `hint:` line, never a traceback.

Root ignores permission bits, so these use conditions that stop root too: a path under /sys, a
file in the way, `chattr +i`, a read-only bind mount, a small tmpfs, SQLite's own page limit.
Those needing privileges skip, saying why, where the machine refuses them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli import main
from digest.config import Settings, load_blogs
from digest.errors import StoreError
from digest.feeds.gather import gather_sync
from digest.store import connect, dialect, transaction
from digest.store.db import Connection, DbError, set_meta, utcnow
from plugins.disks import fill, sh
from plugins.feedserver import FeedServer


@pytest.fixture
def env(seeded_env: dict[str, str]) -> dict[str, str]:
    return seeded_env


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def one_error(result: Result, path: Path | str) -> tuple[str, str]:
    """The command failed with exactly `error: <names path> ...` and `hint: ...`."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, OSError)
    lines = result.output.strip().splitlines()
    assert len(lines) == 2, result.output
    error, hint = lines
    assert error.startswith("error: ") and str(path) in error, result.output
    assert hint.startswith("hint: "), result.output
    return error, hint


# --- real conditions, where the machine allows them ------------------------------------------


def immutable(path: Path) -> None:
    """`chattr +i` (root) or no write bits (anyone else): writes to ``path`` fail."""
    if os.geteuid() != 0:
        path.chmod(0o555 if path.is_dir() else 0o444)
    elif not sh("chattr", "+i", str(path)):
        pytest.skip("chattr +i is refused on this file system")


def mutable(path: Path) -> None:
    if os.geteuid() == 0:
        sh("chattr", "-i", str(path))
    path.chmod(0o755 if path.is_dir() else 0o644)


# --- drafts/ ---------------------------------------------------------------------------------


def test_drafts_under_sys_is_one_line_naming_the_path(env: dict[str, str]) -> None:
    drafts = Path("/sys/digest-test/drafts")
    env["DIGEST_DRAFTS"] = str(drafts)
    error, hint = one_error(run(env, "draft", "--no-fetch"), drafts / "1.yaml")
    assert "cannot write" in error
    assert "may not write there (/sys/digest-test)" in hint and "DIGEST_DRAFTS" in hint


def test_a_file_where_drafts_should_be(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "drafts").write_text("not a folder")
    error, hint = one_error(run(env, "draft", "--no-fetch"), tmp_path / "drafts" / "1.yaml")
    assert "cannot write: File exists" in error
    assert "a file stands where a folder is needed" in hint and "DIGEST_DRAFTS" in hint

    env["DIGEST_DRAFTS"] = str(tmp_path / "drafts" / "inside")
    error, hint = one_error(run(env, "draft", "--no-fetch"), tmp_path / "drafts" / "inside")
    assert "Not a directory" in error and "a file stands where a folder is needed" in hint


def test_an_immutable_drafts_folder(env: dict[str, str], tmp_path: Path) -> None:
    drafts = tmp_path / "drafts"
    drafts.mkdir()
    immutable(drafts)
    try:
        error, hint = one_error(run(env, "draft", "--no-fetch"), drafts / "1.yaml")
    finally:
        mutable(drafts)
    assert "cannot write:" in error and "may not write there" in hint
    assert not list(drafts.iterdir())


def test_drafts_on_a_read_only_file_system(env: dict[str, str], read_only: Path) -> None:
    env["DIGEST_DRAFTS"] = str(read_only)
    error, hint = one_error(run(env, "draft", "--no-fetch"), read_only / "1.yaml")
    assert "Read-only file system" in error
    assert "mounted read-only" in hint and "DIGEST_DRAFTS" in hint


def test_drafts_on_a_full_disk_leave_no_half_draft(env: dict[str, str], small_disk: Path) -> None:
    env["DIGEST_DRAFTS"] = str(small_disk / "drafts")
    (small_disk / "drafts").mkdir()
    fill(small_disk)
    error, hint = one_error(run(env, "draft", "--no-fetch"), small_disk / "drafts" / "1.yaml")
    assert "No space left on device" in error and "the disk is full" in hint
    assert list((small_disk / "drafts").iterdir()) == []  # not even the temporary file


# --- preview/ --------------------------------------------------------------------------------


def test_preview_folders_that_cannot_be_written(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "draft", "--no-fetch").exit_code == 0
    error, hint = one_error(run(env, "preview", "--out", "/sys/digest-preview"), "/sys")
    assert "cannot write the preview" in error and "--out" in hint

    (tmp_path / "pv").write_text("a file")  # click refuses `--out pv` itself; one level down:
    error, hint = one_error(run(env, "preview", "--out", str(tmp_path / "pv" / "in")), tmp_path)
    assert "a file stands where a folder is needed" in hint

    (tmp_path / "pv2").mkdir()
    (tmp_path / "pv2" / "preview.html").mkdir()  # a folder where the file goes
    error, hint = one_error(run(env, "preview", "--out", str(tmp_path / "pv2")), tmp_path)
    assert "a folder stands where a file is needed" in hint


def test_preview_on_a_full_disk(env: dict[str, str], small_disk: Path) -> None:
    assert run(env, "draft", "--no-fetch").exit_code == 0
    fill(small_disk)
    error, hint = one_error(run(env, "preview", "--out", str(small_disk / "pv")), small_disk)
    assert "No space left on device" in error and "the disk is full" in hint


# --- the database ----------------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_a_read_only_database_file(env: dict[str, str], db_path: Path) -> None:
    immutable(db_path)
    try:
        result = run(env, "subscribers", "add", "reader@example.org", "--confirmed")
    finally:
        mutable(db_path)
    error, hint = one_error(result, db_path)
    assert "cannot write to the database: attempt to write a readonly database" in error
    assert "writable" in hint and "DIGEST_DB" in hint


@pytest.mark.sqlite_only
def test_a_database_on_a_read_only_file_system(
    env: dict[str, str], db_path: Path, read_only: Path
) -> None:
    sh("umount", "-l", str(read_only))  # put a real database there first
    connect(read_only / "digest.db").close()
    assert sh("mount", "--bind", str(read_only), str(read_only))
    assert sh("mount", "-o", "remount,bind,ro", str(read_only))
    env["DIGEST_DB"] = str(read_only / "digest.db")
    error, hint = one_error(run(env, "status"), read_only / "digest.db")
    assert "cannot open the database file" in error and "may write" in hint


@pytest.mark.sqlite_only
def test_a_full_disk_under_the_database(
    env: dict[str, str], small_disk: Path, tmp_path: Path
) -> None:
    env["DIGEST_DB"] = str(small_disk / "digest.db")
    rows = "".join(f"reader{i}@example.org,Reader number {i}\n" for i in range(20_000))
    (tmp_path / "many.csv").write_text("email,name\n" + rows)
    result = run(env, "subscribers", "import", str(tmp_path / "many.csv"), "--confirmed")
    error, hint = one_error(result, small_disk / "digest.db")
    assert "cannot write to the database: the disk is full" in error
    assert "free some space" in hint and "rolled back" in hint


@pytest.mark.sqlite_only
def test_a_database_on_a_disk_full_before_the_command(
    env: dict[str, str], small_disk: Path
) -> None:
    """SQLite says "disk I/O error" when it cannot size its -shm file: the disk is named full."""
    env["DIGEST_DB"] = str(small_disk / "digest.db")
    connect(small_disk / "digest.db").close()
    fill(small_disk)
    result = run(env, "subscribers", "add", "one@example.org", "--confirmed")
    error, hint = one_error(result, small_disk / "digest.db")
    assert "cannot write to the database: the disk is full" in error and "free some space" in hint


@pytest.mark.sqlite_only
def test_transaction_turns_sqlite_full_into_a_store_error(db_path: Path) -> None:
    """No privileges needed: SQLite's page limit raises the same SQLITE_FULL a disk does."""
    conn = connect(db_path)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError) as info, transaction(conn):
        for n in range(200):
            set_meta(conn, f"key{n}", "x" * 4000)
    assert info.value.message == f"{db_path}: cannot write to the database: the disk is full"
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'key%'").fetchone()[0] == 0
    conn.close()


def _read_only(conn: Connection) -> None:
    """Writes now fail as from a read-only file (SQLite) or a read-only server (PostgreSQL)."""
    if dialect.is_postgresql(conn):
        conn.execute("SET default_transaction_read_only = on")
    else:
        conn.execute("PRAGMA query_only = ON")  # SQLITE_READONLY


def test_transaction_turns_a_read_only_connection_into_a_store_error(db_path: Path) -> None:
    conn = connect(db_path)
    _read_only(conn)
    named = re.escape(str(db_path))
    with pytest.raises(StoreError, match=rf"^{named}: cannot write to the database: "):
        with transaction(conn):
            set_meta(conn, "key", "value")
    assert not conn.in_transaction
    conn.close()


def test_a_bug_in_sql_is_not_dressed_up_as_a_store_error(db_path: Path) -> None:
    conn = connect(db_path)
    with pytest.raises(DbError, match="no_such_table"), transaction(conn):
        conn.execute("INSERT INTO no_such_table VALUES (1)")
    conn.close()


def test_an_export_to_an_unwritable_path(env: dict[str, str]) -> None:
    result = run(env, "subscribers", "export", "-o", "/sys/digest-export.csv")
    error, hint = one_error(result, "/sys/digest-export.csv")
    assert "may not write there" in hint


def test_gathering_into_a_read_only_database_is_one_store_error(
    db_path: Path, feed_server: FeedServer, write_blogs: Callable[..., Path]
) -> None:
    """Not a failure of each feed in turn: the run stops, naming the database."""
    sander = feed_server.serve_fixture("/sander.xml", "sander.atom.xml")
    blogs = load_blogs(write_blogs({"sander": sander, "down": feed_server.fail("/down.xml", 503)}))
    conn = connect(db_path)
    _read_only(conn)
    named = re.escape(str(db_path))
    with pytest.raises(StoreError, match=rf"^{named}: cannot write to the database: "):
        gather_sync(Settings(db=db_path), blogs, conn, now=utcnow())
    conn.close()


@pytest.mark.sqlite_only
def test_a_folder_given_as_the_database(env: dict[str, str], tmp_path: Path) -> None:
    env["DIGEST_DB"] = str(tmp_path)
    error, hint = one_error(run(env, "status"), tmp_path)
    assert "cannot open the database file" in error and "names a file" in hint
