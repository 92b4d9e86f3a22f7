"""CSV import (all or nothing, fast: one executemany) and export (consent record included)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from digest.config import BlogsFile, Settings
from digest.errors import SubscriberError
from digest.store import subscribers as store
from digest.store.db import Connection, log_event, transaction
from digest.subscribers.optin import start_confirmation
from digest.subscribers.values import (
    Mail,
    clean_cadence,
    clean_categories,
    clean_name,
    new_token,
    normalise_email,
    parse_categories,
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LEFT_STATUSES = ("unsubscribed", "bounced")


@dataclass(slots=True)
class ImportReport:
    rows: int = 0  # data rows read (blank lines not counted)
    added: int = 0
    confirmed: int = 0  # of the added, how many as confirmed
    existing: int = 0  # already subscribers: left as they are
    suppressed: int = 0  # on the suppression list: skipped
    left: int = 0  # unsubscribed/bounced in the file: put on the suppression list
    duplicates: int = 0  # the same address again in the file
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line, problem)
    mails: list[Mail] = field(default_factory=list)  # confirmations to send (pending rows)
    committed: bool = False


def _cell(row: list[str], index: int | None) -> str | None:
    if index is None or index >= len(row):
        return None
    value = row[index].strip()
    # Undo the spreadsheet-formula guard export_csv adds.
    if value.startswith("'") and value[1:2] in _FORMULA_START:
        value = value[1:]
    return value or None


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SubscriberError(f"{text!r} is not an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _read_rows(path: Path) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """The header's column indexes and the data rows with the line each starts on."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")  # utf-8-sig drops a BOM
    except OSError as exc:
        raise SubscriberError(f"{path}: cannot read: {exc.strerror}") from None
    rows: list[tuple[int, list[str]]] = []
    with handle:
        reader = csv.reader(handle)
        try:
            line = 1
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append((line, row))
                line = reader.line_num + 1
        except UnicodeDecodeError:
            raise SubscriberError(
                f"{path}: not UTF-8 text", hint="save the file as CSV UTF-8 and import it again"
            ) from None
        except csv.Error as exc:
            raise SubscriberError(f"{path}, line {reader.line_num}: {exc}") from None
    if not rows:
        raise SubscriberError(f"{path}: no rows", hint="the first row names the columns: email,…")
    header = [cell.strip().lower() for cell in rows[0][1]]
    if "email" in header:
        return {name: i for i, name in enumerate(header) if name}, rows[1:]
    if "@" in rows[0][1][0]:  # a bare list of addresses, perhaps with names
        return {"email": 0, "name": 1, "categories": 2}, rows
    raise SubscriberError(
        f"{path}: the first row has no `email` column",
        hint="start the file with a header row such as: email,name,categories",
    )


def import_csv(
    conn: Connection,
    settings: Settings,
    blogs: BlogsFile,
    path: Path,
    *,
    now: datetime,
    dry_run: bool = False,
    confirmed: bool = False,
) -> ImportReport:
    """Import subscribers from CSV, all or nothing.

    Columns (header row, any order): ``email`` (required), ``name``, ``categories`` ("ml,music",
    empty = all), ``cadence`` (weekly or monthly, empty = weekly), and the consent fields
    ``export_csv`` writes, so an export imports back.
    Existing and suppressed addresses are skipped; rows whose ``status`` is unsubscribed or
    bounced are added to the suppression list. Any invalid row rejects the whole file with
    every problem and its line; ``dry_run`` reports the same summary and writes nothing.
    Rows are confirmed with ``confirmed`` (the curator holds their consent), otherwise pending:
    ``report.mails`` then holds their confirmation mails, to send after the commit.
    """
    columns, rows = _read_rows(path)
    col = columns.get
    report = ImportReport(rows=len(rows))
    existing = store.all_emails(conn)
    suppressed = store.suppressed_emails(conn)
    seen: set[str] = set()
    new: list[store.NewSubscriber] = []
    leaving: list[str] = []
    for line, row in rows:
        try:
            raw = _cell(row, col("email"))
            if raw is None:
                raise SubscriberError("no address")
            address = normalise_email(raw)
            name = clean_name(_cell(row, col("name")))
            chosen = clean_categories(blogs, parse_categories(_cell(row, col("categories"))))
            cadence = clean_cadence(_cell(row, col("cadence")))
            status = (_cell(row, col("status")) or "").lower()
            if status not in ("", "pending", "confirmed", *_LEFT_STATUSES):
                raise SubscriberError(f"unknown status {status!r}")
            requested_at = _moment(_cell(row, col("requested_at"))) or now
            confirmed_at = _moment(_cell(row, col("confirmed_at")))
        except SubscriberError as exc:
            report.invalid.append((line, exc.message))
            continue
        if address in seen:
            report.duplicates += 1
            continue
        seen.add(address)
        if status in _LEFT_STATUSES:
            if address not in suppressed:
                report.left += 1
                leaving.append(address)
            continue
        if address in suppressed:
            report.suppressed += 1
            continue
        if address in existing:
            report.existing += 1
            continue
        active = confirmed and status != "pending"
        report.added += 1
        report.confirmed += active
        new.append(
            store.NewSubscriber(
                email=address,
                name=name,
                categories=chosen,
                cadence=cadence,
                status="confirmed" if active else "pending",
                token=new_token(),
                source="import",
                requested_at=requested_at,
                confirmed_at=(confirmed_at or now) if active else None,
                request_ip=_cell(row, col("request_ip")),
                request_ua=_cell(row, col("request_ua")),
                consent_text=_cell(row, col("consent_text")) or f"imported from {path.name}",
            )
        )
    if report.invalid and not dry_run:
        shown = [f"  line {line}: {problem}" for line, problem in report.invalid[:20]]
        more = len(report.invalid) - len(shown)
        raise SubscriberError(
            f"{path}: {len(report.invalid)} invalid row(s), nothing imported:\n"
            + "\n".join(shown)
            + (f"\n  ... and {more} more" if more else ""),
            hint="fix those rows (or delete them) and import again; --dry-run checks a file",
        )
    if dry_run:
        return report
    with transaction(conn):
        first_new_id = int(
            conn.execute("SELECT COALESCE(MAX(id), 0) FROM subscribers").fetchone()[0]
        )
        store.insert_many(conn, new)
        for address in leaving:
            store.suppress(conn, address, "unsubscribed before import", now=now)
        pending = conn.execute(
            "SELECT id FROM subscribers WHERE id > ? AND status = 'pending' ORDER BY id",
            (first_new_id,),
        ).fetchall()
        for (sub_id,) in pending:
            sub = store.get_by_id(conn, sub_id)
            assert sub is not None
            report.mails.append(
                start_confirmation(
                    conn,
                    settings,
                    blogs.newsletter,
                    sub,
                    name=sub.name,
                    categories=sub.categories,
                    cadence=sub.cadence,
                    now=now,
                    source="import",
                    ip=None,
                    user_agent=None,
                )
            )
        log_event(
            conn,
            "import",
            f"{path.name}: {report.added} added ({report.confirmed} confirmed),"
            f" {report.existing} existing, {report.suppressed} suppressed skipped,"
            f" {report.left} suppressed, {report.duplicates} duplicates",
            at=now,
        )
    report.committed = True
    return report


def _guard(value: str | None) -> str:
    # CSV injection: a spreadsheet runs a cell starting with = + - @ as a formula, and names
    # and user agents come from strangers. The quote is removed again on import.
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def export_csv(conn: Connection, out: TextIO) -> int:
    """Every subscriber with the consent record, as CSV; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(store.EXPORT_COLUMNS)
    count = 0
    for row in store.export_rows(conn):
        writer.writerow([_guard(v) for v in row])
        count += 1
    return count
