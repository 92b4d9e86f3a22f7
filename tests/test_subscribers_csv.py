"""CSV import (all or nothing, line numbers, skips) and export (consent fields, round trip)."""

from __future__ import annotations

import io
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest import subscribers
from digest.config import BlogsFile, Settings
from digest.errors import SubscriberError
from digest.store import connect
from digest.store import subscribers as store

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _write(tmp_path: Path, text: str, *, bom: bool = False, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM subscribers").fetchone()[0])


def test_bom_header_case_and_columns(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    path = _write(
        tmp_path,
        ' Name ,EMAIL,Categories\r\nAnn,ann@example.org,"ml,music"\r\nBo,bo@example.org,\r\n',
        bom=True,
    )
    report = subscribers.import_csv(conn, settings, blogs, path, now=NOW, confirmed=True)
    assert (report.rows, report.added, report.confirmed, report.committed) == (2, 2, 2, True)
    ann = store.get_by_email(conn, "ann@example.org")
    assert ann is not None and ann.name == "Ann" and ann.categories == {"ml", "music"}
    assert ann.status == "confirmed" and len(ann.token) == 43
    bo = store.get_by_email(conn, "bo@example.org")
    assert bo is not None and bo.categories is None
    assert report.mails == []  # confirmed: no mails


def test_headerless_list_of_addresses(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    path = _write(tmp_path, "a@example.org\nb@example.org,Bee\n\n")
    report = subscribers.import_csv(conn, settings, blogs, path, now=NOW, confirmed=True)
    assert report.added == 2 and store.get_by_email(conn, "b@example.org").name == "Bee"  # type: ignore[union-attr]


def test_duplicates_existing_and_suppressed_are_skipped(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    subscribers.add(conn, settings, blogs, email="old@example.org", confirmed=True, now=NOW)
    gone = subscribers.add(conn, settings, blogs, email="gone@example.org", confirmed=True, now=NOW)
    subscribers.unsubscribe_by_token(conn, gone.subscriber.token, now=NOW)
    path = _write(
        tmp_path,
        "email\nnew@example.org\nNEW@example.org\nold@example.org\ngone@example.org\n"
        " new@Example.org \n",
    )
    report = subscribers.import_csv(conn, settings, blogs, path, now=NOW, confirmed=True)
    assert (report.added, report.duplicates, report.existing, report.suppressed) == (1, 2, 1, 1)
    assert store.get_by_email(conn, "gone@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    assert _count(conn) == 3


def test_bad_rows_reject_the_whole_file_with_line_numbers(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    path = _write(
        tmp_path,
        "email,name,categories\n"
        "good@example.org,Good,\n"  # line 2
        'multi@example.org,"two\nlines",\n'  # line 3-4: a control character in the name
        "not-an-address,,\n"  # line 5
        "x@example.org,,cooking\n"  # line 6
        ",Nobody,\n"  # line 7
        "y@example.org,,ml\n",  # line 8
    )
    with pytest.raises(SubscriberError) as info:
        subscribers.import_csv(conn, settings, blogs, path, now=NOW, confirmed=True)
    message = info.value.message
    assert "4 invalid row(s), nothing imported" in message
    assert "line 3: the name contains a control character" in message
    assert "line 5: 'not-an-address' is not a valid address" in message
    assert "line 6: unknown category: cooking" in message
    assert "line 7: no address" in message
    assert "line 2" not in message and "line 8" not in message
    assert _count(conn) == 0


def test_dry_run_reports_and_writes_nothing(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    path = _write(tmp_path, "email\na@example.org\nbad\nb@example.org\na@example.org\n")
    report = subscribers.import_csv(conn, settings, blogs, path, now=NOW, dry_run=True)
    assert (report.added, report.duplicates, report.committed) == (2, 1, False)
    assert report.invalid == [(3, "'bad' is not a valid address: " + report.invalid[0][1][30:])]
    assert _count(conn) == 0


def test_pending_import_creates_confirmations(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    path = _write(tmp_path, "email\na@example.org\nb@example.org\n")
    report = subscribers.import_csv(conn, settings, blogs, path, now=NOW)
    assert [m.to for m in report.mails] == ["a@example.org", "b@example.org"]
    assert {s.status for s in store.iter_subscribers(conn)} == {"pending"}
    token = report.mails[0].text.split("/confirm/")[1].split()[0]
    assert subscribers.confirm(conn, token, now=NOW).status == "confirmed"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name,city\nAnn,Ghent\n", "no `email` column"),
        (b"", "no rows"),
        (b"email\n\xff\xfe bad\n", "not UTF-8"),
    ],
)
def test_unreadable_files(
    tmp_path: Path,
    conn: sqlite3.Connection,
    settings: Settings,
    blogs: BlogsFile,
    content: bytes,
    message: str,
) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(SubscriberError, match=message) as info:
        subscribers.import_csv(conn, settings, blogs, path, now=NOW)
    assert str(path) in info.value.message


def test_export_has_consent_fields_and_imports_back(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    mail = subscribers.subscribe(
        conn,
        settings,
        blogs,
        email="w@example.org",
        name='=HYPERLINK("http://x")',
        categories=["ml"],
        now=NOW,
        ip="192.0.2.7",
        user_agent="Firefox/140",
    )
    assert mail is not None
    token = mail.text.split("/confirm/")[1].split()[0]
    subscribers.confirm(conn, token, now=NOW, ip="192.0.2.8", user_agent="Firefox/141")
    left = subscribers.add(conn, settings, blogs, email="l@example.org", confirmed=True, now=NOW)
    subscribers.unsubscribe_by_token(conn, left.subscriber.token, now=NOW)

    out = io.StringIO()
    assert subscribers.export_csv(conn, out) == 2
    text = out.getvalue()
    header, first = text.splitlines()[:2]
    assert header.split(",") == list(store.EXPORT_COLUMNS)
    assert first.startswith('w@example.org,"\'=HYPERLINK(""http://x"")",ml,confirmed,web,')
    assert "192.0.2.7,Firefox/140" in first and "192.0.2.8,Firefox/141" in first
    assert subscribers.consent_text(blogs.newsletter) in first
    assert left.subscriber.token not in text  # tokens never leave the database

    other = connect(tmp_path / "other.db")
    path = _write(tmp_path, text, name="export.csv")
    report = subscribers.import_csv(other, settings, blogs, path, now=NOW, confirmed=True)
    assert (report.added, report.left) == (1, 1)
    row = other.execute("SELECT * FROM subscribers").fetchone()
    assert row["name"] == '=HYPERLINK("http://x")' and row["categories"] == '["ml"]'
    assert row["request_ip"] == "192.0.2.7" and row["requested_at"] == "2026-11-30T08:00:00Z"
    assert store.suppression_reason(other, "l@example.org") == "unsubscribed before import"
    other.close()


def test_a_hundred_thousand_rows_import_fast(
    tmp_path: Path, conn: sqlite3.Connection, settings: Settings, blogs: BlogsFile
) -> None:
    subscribers.add(conn, settings, blogs, email="user500@example.org", confirmed=True, now=NOW)
    lines = ["email,name,categories"]
    lines += [f"user{i}@example.org,User {i},{'ml' if i % 2 else ''}" for i in range(100_000)]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    started = time.perf_counter()
    report = subscribers.import_csv(conn, settings, blogs, path, now=NOW, confirmed=True)
    elapsed = time.perf_counter() - started
    assert (report.added, report.existing) == (99_999, 1)
    assert _count(conn) == 100_000
    assert store.get_by_email(conn, "user99999@example.org").categories == {"ml"}  # type: ignore[union-attr]
    assert elapsed < 20, f"100 000 rows took {elapsed:.1f} s"
