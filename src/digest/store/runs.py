"""Runs of the weekly job: which slots were served, reviewed, held, skipped or failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.store.db import Connection, Row, parse_ts, ts


@dataclass(slots=True)
class Run:
    id: int
    slot: datetime | None
    started_at: datetime
    finished_at: datetime | None
    reviewed_at: datetime | None
    attempts: int
    outcome: str | None
    issue: int | None
    error: str | None


def _run(row: Row) -> Run:
    started = parse_ts(row["started_at"])
    assert started is not None
    return Run(
        id=row["id"],
        slot=parse_ts(row["slot"]),
        started_at=started,
        finished_at=parse_ts(row["finished_at"]),
        reviewed_at=parse_ts(row["reviewed_at"]),
        attempts=row["attempts"],
        outcome=row["outcome"],
        issue=row["issue"],
        error=row["error"],
    )


def get_run(conn: Connection, slot: datetime) -> Run | None:
    row = conn.execute("SELECT * FROM runs WHERE slot = ?", (ts(slot),)).fetchone()
    return None if row is None else _run(row)


def last_run(conn: Connection) -> Run | None:
    row = conn.execute(
        "SELECT * FROM runs WHERE outcome IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else _run(row)


def start_run(conn: Connection, slot: datetime | None, *, now: datetime) -> int:
    """Begin (or retry) the run of `slot`; returns its id."""
    if slot is None:
        row = conn.execute(
            "INSERT INTO runs (slot, started_at, attempts) VALUES (NULL, ?, 1) RETURNING id",
            (ts(now),),
        ).fetchone()
        return int(row[0])
    conn.execute(
        "INSERT INTO runs (slot, started_at, attempts) VALUES (?, ?, 1) ON CONFLICT (slot)"
        " DO UPDATE SET started_at = excluded.started_at, attempts = runs.attempts + 1,"
        " outcome = NULL, finished_at = NULL, error = NULL",
        (ts(slot), ts(now)),
    )
    return int(conn.execute("SELECT id FROM runs WHERE slot = ?", (ts(slot),)).fetchone()[0])


def finish_run(
    conn: Connection,
    run_id: int,
    outcome: str,
    *,
    now: datetime,
    issue: int | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        "UPDATE runs SET outcome = ?, finished_at = ?, issue = ?, error = ? WHERE id = ?",
        (outcome, ts(now), issue, error, run_id),
    )


def mark_reviewed(conn: Connection, slot: datetime, *, now: datetime) -> None:
    conn.execute(
        "INSERT INTO runs (slot, started_at, reviewed_at) VALUES (?, ?, ?)"
        " ON CONFLICT (slot) DO UPDATE SET reviewed_at = excluded.reviewed_at",
        (ts(slot), ts(now), ts(now)),
    )


def skipped_weeks(conn: Connection, issue: int) -> int:
    """Quiet weeks whose posts rolled into (the draft of) issue `issue`."""
    row = conn.execute(
        "SELECT COUNT(*) FROM runs WHERE issue = ? AND outcome = 'skipped'", (issue,)
    ).fetchone()
    return int(row[0])
