"""Deliveries: one row per (issue, subscriber), the ledger that makes sending exactly-once.

REFERENCE.md section 6. The audience is snapshotted in the transaction that freezes the issue;
rows are then claimed in batches ('sending') and each is marked 'sent' with the server's 250,
in a commit of its own before that connection sends again. A row found 'sending' after a crash
was either never handed to the server or was the one message in flight on its connection: it
is sent again with the Message-ID stored here.

    queued -> sending -> sent | deferred | bounced | skipped
    sending -> queued                     (a stop: claimed but never handed to the server)
    deferred -> (next run) queued ...     after MAX_ATTEMPTS: failed

Several senders (on PostgreSQL, several machines) share one issue: a claim takes rows with
``FOR UPDATE SKIP LOCKED`` in a short transaction and leases them to its worker
(``claimed_by``, ``lease_until``), renewed while the worker lives. Rows whose lease ran out,
their worker dead, are claimed again by the others.

``bounce`` keeps the class of the last refusal (digest.send.bounces): soft bounces on several
issues suppress an address, policy refusals never do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from digest.store import dialect
from digest.store.db import Connection, select_in, ts, write_one

# Attempts over all runs before a temporarily failing address is given up (status 'failed',
# the subscriber kept): a mailbox full for weeks must not be retried forever.
MAX_ATTEMPTS = 10

FINAL = ("sent", "bounced", "skipped", "failed")
STATUSES = ("queued", "sending", "sent", "deferred", "bounced", "skipped", "failed")


@dataclass(slots=True)
class Claimed:
    """A delivery taken for sending, with what its message needs."""

    rowid: int
    issue: int
    subscriber_id: int
    email: str
    variant: str  # '*' (every category) or the JSON list of the subscriber's categories
    message_id: str
    name: str | None
    token: str
    attempts: int


@dataclass(slots=True)
class Outcome:
    rowid: int
    status: str  # sent | deferred | bounced | skipped
    reply: str
    next_attempt: datetime | None = None
    bounce: str | None = None  # hard | policy | soft | transient (digest.send.bounces)
    held: bool = False  # deferred for a retry within this run: its worker keeps the lease


def snapshot_audience(
    conn: Connection, issue: int, *, domain: str, now: datetime, cadence: str = "weekly"
) -> int:
    """Every confirmed, unsuppressed subscriber of ``cadence`` (weekly issues go to weekly
    readers, a monthly edition to monthly ones) becomes a queued delivery of ``issue``, with a
    fresh Message-ID. One statement: nothing of the list is held in memory. Call inside the
    transaction that freezes the issue."""
    cur = conn.execute(
        "INSERT INTO deliveries (issue, subscriber_id, email, variant, message_id, status,"
        " updated_at)"
        " SELECT ?, s.id, s.email, COALESCE(s.categories, '*'),"
        f"  '<' || {dialect.random_hex(conn, 12)} || '@' || ? || '>', 'queued', ?"
        " FROM subscribers s WHERE s.status = 'confirmed' AND s.cadence = ?"
        " AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email = s.email)"
        " ORDER BY s.id",
        (issue, domain, ts(now), cadence),
    )
    return cur.rowcount


def confirmed_readers(conn: Connection, cadence: str) -> int:
    """Confirmed subscribers of ``cadence``: who an edition of that cadence goes to."""
    row = conn.execute(
        "SELECT COUNT(*) FROM subscribers WHERE status = 'confirmed' AND cadence = ?", (cadence,)
    ).fetchone()
    return int(row[0])


def requeue_unfinished(conn: Connection, *, now: datetime, alone: bool) -> tuple[int, int]:
    """At the start of a run: rows left 'sending' by a crash and rows 'deferred' by an earlier
    run go back to 'queued'; rows out of attempts become 'failed'. ``alone``: this process holds
    the send lock, so every such row is unfinished; otherwise only rows no live worker leases.
    Returns (requeued, failed)."""
    unleased = "" if alone else " AND (lease_until IS NULL OR lease_until < ?)"
    extra: tuple[str, ...] = () if alone else (ts(now),)
    failed = conn.execute(
        "UPDATE deliveries SET status = 'failed', updated_at = ?, claimed_by = NULL,"
        " lease_until = NULL WHERE status IN ('sending', 'deferred') AND attempts >= ?" + unleased,
        (ts(now), MAX_ATTEMPTS, *extra),
    ).rowcount
    requeued = conn.execute(
        "UPDATE deliveries SET status = 'queued', updated_at = ?, claimed_by = NULL,"
        " lease_until = NULL WHERE status IN ('sending', 'deferred')" + unleased,
        (ts(now), *extra),
    ).rowcount
    return requeued, failed


def pending_issues(conn: Connection) -> list[int]:
    """Issues with deliveries still to try, oldest first."""
    rows = conn.execute(
        "SELECT DISTINCT issue FROM deliveries"
        " WHERE status IN ('queued', 'sending', 'deferred') ORDER BY issue"
    )
    return [int(r[0]) for r in rows]


def count_pending(conn: Connection, issues: Sequence[int]) -> int:
    total = 0
    for issue in issues:
        total += conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE issue = ? AND status = 'queued'", (issue,)
        ).fetchone()[0]
    return int(total)


_CLAIM = (
    "SELECT d.rowid, d.subscriber_id, d.email, d.variant, d.message_id, d.attempts,"
    " s.status AS subscriber_status, s.name, s.token,"
    " EXISTS (SELECT 1 FROM suppressions x WHERE x.email = d.email) AS suppressed"
    " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
    " WHERE d.issue = ? AND {which} ORDER BY d.rowid LIMIT ?"
)
# What a claim takes, in this order: the rows of a worker whose lease ran out (it died), then
# queued rows. Two queries, each in the order of the index on (issue, status, rowid): one
# with OR between them walked the row ids past every row already sent, at every claim.
_CLAIMABLE = (
    ("d.status IN ('sending', 'deferred') AND d.lease_until < ?", True),
    ("d.status = 'queued'", False),
)


def claim(
    conn: Connection,
    issues: Sequence[int],
    limit: int,
    *,
    now: datetime,
    worker: str,
    lease_until: datetime,
) -> tuple[list[Claimed], int]:
    """Take up to ``limit`` rows whose worker's lease ran out, then queued deliveries (oldest
    issue first), and lease them to ``worker`` as 'sending'.

    Unsubscribes are re-checked here: a subscriber no longer confirmed, or suppressed, since the
    snapshot is 'skipped', never sent. Call inside a transaction. Returns (claimed, skipped)."""
    claimed: list[Claimed] = []
    skipped: list[tuple[str, int]] = []
    for issue in issues:
        for which, leased in _CLAIMABLE:
            want = limit - len(claimed)
            if want <= 0:
                break
            rows = conn.execute(
                _CLAIM.format(which=which) + dialect.skip_locked(conn, "d"),
                (issue, ts(now), want) if leased else (issue, want),
            ).fetchall()
            for row in rows:
                if row["subscriber_status"] != "confirmed" or row["suppressed"]:
                    skipped.append((f"not sent: subscriber {row['subscriber_status']}", row[0]))
                    continue
                claimed.append(
                    Claimed(
                        rowid=row[0],
                        issue=issue,
                        subscriber_id=row["subscriber_id"],
                        email=row["email"],
                        variant=row["variant"],
                        message_id=row["message_id"],
                        name=row["name"],
                        token=row["token"],
                        attempts=row["attempts"],
                    )
                )
    stamp, until = ts(now), ts(lease_until)
    conn.executemany(
        "UPDATE deliveries SET status = 'sending', updated_at = ?, claimed_by = ?,"
        " lease_until = ? WHERE rowid = ?",
        [(stamp, worker, until, c.rowid) for c in claimed],
    )
    conn.executemany(
        "UPDATE deliveries SET status = 'skipped', reply = ?, updated_at = ? WHERE rowid = ?",
        [(reason, stamp, rowid) for reason, rowid in skipped],
    )
    return claimed, len(skipped)


def renew_leases(conn: Connection, worker: str, *, until: datetime) -> set[int]:
    """Extend ``worker``'s leases; the rows it still holds (a worker paused past its lease may
    have lost some to another)."""
    rows = conn.execute(
        "UPDATE deliveries SET lease_until = ? WHERE claimed_by = ?"
        " AND status IN ('sending', 'deferred') AND lease_until IS NOT NULL RETURNING rowid",
        (ts(until), worker),
    ).fetchall()
    return {int(r[0]) for r in rows}


def leased_elsewhere(
    conn: Connection, issues: Sequence[int], worker: str, *, now: datetime
) -> int:
    """Rows of these issues that other live workers hold: not finished, not ours to take yet."""
    return sum(
        int(
            conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE issue = ?"
                " AND status IN ('sending', 'deferred') AND lease_until >= ? AND claimed_by != ?",
                (issue, ts(now), worker),
            ).fetchone()[0]
        )
        for issue in issues
    )


def gone_since_claim(conn: Connection, jobs: Sequence[Claimed]) -> dict[int, str]:
    """Of these claimed rows, those whose subscriber left or was suppressed since the claim:
    rowid -> why it is not sent."""
    if not jobs:
        return {}
    rows = select_in(
        conn,
        "SELECT d.rowid, s.status, EXISTS (SELECT 1 FROM suppressions x WHERE x.email = d.email)"
        " FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id"
        " WHERE d.rowid IN ({marks})",
        [job.rowid for job in jobs],
    )
    return {
        rowid: f"not sent: subscriber {status or 'deleted'}"
        for rowid, status, suppressed in rows
        if status != "confirmed" or suppressed
    }


def record(conn: Connection, outcomes: Iterable[Outcome], *, now: datetime) -> None:
    """Write the results of sending. Call inside the batch's transaction."""
    stamp = ts(now)
    conn.executemany(
        "UPDATE deliveries SET status = ?, reply = ?, next_attempt = ?, updated_at = ?,"
        " bounce = ?, attempts = attempts + CASE WHEN ? = 'skipped' THEN 0 ELSE 1 END,"
        " lease_until = CASE WHEN ? = 1 THEN lease_until END WHERE rowid = ?",
        [
            (
                o.status,
                o.reply[:500],
                None if o.next_attempt is None else ts(o.next_attempt),
                stamp,
                o.bounce,
                o.status,
                int(o.held),
                o.rowid,
            )
            for o in outcomes
        ],
    )


def record_sent(conn: Connection, rowid: int, reply: str, *, stamp: str) -> None:
    """One accepted message, committed on its own (autocommit) before the call returns."""
    write_one(
        conn,
        "UPDATE deliveries SET status = 'sent', reply = ?, next_attempt = NULL, updated_at = ?,"
        " bounce = NULL, attempts = attempts + 1, lease_until = NULL WHERE rowid = ?",
        (reply[:500], stamp, rowid),
    )


def release(conn: Connection, rowids: Sequence[int], *, now: datetime) -> None:
    """Claimed rows that were never handed to the server go back to 'queued'."""
    conn.executemany(
        "UPDATE deliveries SET status = 'queued', updated_at = ?, claimed_by = NULL,"
        " lease_until = NULL WHERE rowid = ? AND status = 'sending'",
        [(ts(now), rowid) for rowid in rowids],
    )


def release_retries(conn: Connection, rowids: Sequence[int]) -> None:
    """Rows deferred for a retry this run will not make: the next run's, not this worker's."""
    conn.executemany(
        "UPDATE deliveries SET lease_until = NULL WHERE rowid = ? AND status = 'deferred'",
        [(rowid,) for rowid in rowids],
    )


def soft_bounced_issues(conn: Connection, subscriber_id: int, *, besides: int) -> int:
    """How many other issues this subscriber's mailbox soft-bounced."""
    row = conn.execute(
        "SELECT COUNT(DISTINCT issue) FROM deliveries WHERE subscriber_id = ? AND bounce = 'soft'"
        " AND issue != ?",
        (subscriber_id, besides),
    ).fetchone()
    return int(row[0])


def counts(conn: Connection, issue: int) -> dict[str, int]:
    found = {s: 0 for s in STATUSES}
    for status, n in conn.execute(
        "SELECT status, COUNT(*) FROM deliveries WHERE issue = ? GROUP BY status", (issue,)
    ):
        found[status] = n
    return found


def message_ids(conn: Connection, issue: int) -> dict[str, str]:
    """email -> Message-ID of one issue (tests and `digest status`)."""
    rows = conn.execute("SELECT email, message_id FROM deliveries WHERE issue = ?", (issue,))
    return {r[0]: r[1] for r in rows}
