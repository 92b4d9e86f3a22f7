"""Sending an issue to every confirmed subscriber exactly once (REFERENCE.md section 6).

1. Under the send lock (SQLite) or the freeze lock (PostgreSQL), rows a crash left 'sending'
   and rows an earlier run 'deferred' are queued again (with their stored Message-ID); with
   other senders on the same PostgreSQL, only the rows no live worker leases.
2. A new issue is frozen into the archive and its audience snapshotted into ``deliveries`` in
   ONE transaction; only then is the draft consumed. An issue already 'sending' is resumed, or
   joined: the senders of a fleet share its rows.
3. The send loop (``digest.send.loop``) claims rows in batches and commits every server reply
   before that connection sends again. A stop signal ends it cleanly; a kill resends at most the
   message in flight on each connection, with the same Message-ID.

listmonk advanced its checkpoint when it fetched rows and both skipped and tripled recipients
after restarts; rss2email saved state only at the end of a run and resent everything after a
kill.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from digest import report
from digest.config import BlogsFile, Settings
from digest.errors import DeliveryError, DraftError
from digest.issue.draft import consume_draft, consume_file, current_draft, load_issue
from digest.issue.monthly import draft_path as monthly_path
from digest.issue.monthly import load_monthly
from digest.models import Issue
from digest.render import render_issue
from digest.render.links import edition_links
from digest.send.lock import send_lock
from digest.send.loop import Progress, SendLoop
from digest.send.stop import STOP, Stopped
from digest.send.summary import SendSummary, edition_name
from digest.send.transport import Transport, run_sync
from digest.store import clicks, dialect
from digest.store import deliveries as ledger
from digest.store import issues as issues_store
from digest.store.copy import copy_database
from digest.store.db import Connection, connect, log_event, transaction

__all__ = ["Progress", "SendSummary", "send_issue", "sending_issue"]

# Pauses before retrying a 4xx or a dropped connection within the run; after the last one the
# row stays 'deferred' and the next `digest send` tries it again.
RETRY_DELAYS = (2.0, 10.0, 30.0)
BATCH = 200
FLEET_BATCH = 50


def _load_draft(
    settings: Settings, blogs: BlogsFile, conn: Connection, *, month: str | None
) -> Issue:
    if month is not None:
        return load_monthly(settings, blogs, conn, month)
    return load_issue(settings, blogs, conn)


def _draft_waiting(settings: Settings, conn: Connection, *, month: str | None) -> bool:
    if month is not None:
        return monthly_path(settings, month).is_file()
    return current_draft(settings, conn) is not None


def _consume(settings: Settings, issue: Issue) -> None:
    """The frozen edition's draft moves to drafts/sent/ (weekly and monthly alike)."""
    if issue.month is not None:
        consume_file(settings, monthly_path(settings, issue.month))
    else:
        consume_draft(settings, issue.number)


def _start_issue(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    *,
    now: datetime,
    month: str | None = None,
) -> tuple[Issue, int]:
    """Freeze the draft (the weekly one, or the monthly edition's) into the archive and
    snapshot its audience, the readers of its cadence, in one transaction."""
    issue = _load_draft(settings, blogs, conn, month=month)
    if issues_store.get_issue(conn, issue.number) is not None:
        raise DraftError(
            f"issue {issue.number} is already in the archive",
            path=str(current_draft(settings, conn) or settings.drafts),
            hint="run `digest draft` to refresh the draft for the next issue",
        )
    base = settings.base_url
    # The web-archive copy: every category, links that point at the site, no personal token.
    archive = render_issue(
        issue, blogs, base_url=base, categories=None, budget=None, templates=settings.templates
    )
    html, text = archive.fill(
        unsubscribe_url=f"{base}/",
        preferences_url=f"{base}/",
        web_url=f"{base}/archive/{issue.key}",
        name=None,
    )
    domain = blogs.newsletter.from_address.rpartition("@")[2]
    with transaction(conn):
        issues_store.freeze_issue(conn, issue, html=html, text=text, status="sending", now=now)
        if blogs.newsletter.click_counts:  # the edition's short links, the same for everyone
            clicks.save_links(conn, issue.number, edition_links(issue, blogs, base_url=base))
        audience = ledger.snapshot_audience(
            conn, issue.number, domain=domain, now=now, cadence=issue.kind
        )
        name = edition_name(issue.number, issue.month)
        log_event(conn, "issue_frozen", f"{name}: {audience} recipients", at=now)
    return issue, audience


def sending_issue(conn: Connection) -> int | None:
    """The edition being sent, weekly or monthly: a half-sent one is finished first."""
    row = conn.execute(
        "SELECT number FROM issues WHERE status = 'sending' ORDER BY number LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])


def _summary(conn: Connection, number: int | None) -> SendSummary:
    if number is None:
        return SendSummary(issue=None)
    archived = issues_store.get_issue(conn, number)
    found = ledger.counts(conn, number)
    return SendSummary(
        issue=number,
        subject=archived.subject if archived else "",
        month=archived.month if archived else None,
        sent=found["sent"],
        deferred=found["deferred"],
        bounced=found["bounced"],
        skipped=found["skipped"],
        failed=found["failed"],
        queued=found["queued"] + found["sending"],
        audience=sum(found.values()),
        finished=found["queued"] == 0 and found["sending"] == 0,
    )


def _finish(conn: Connection, issues: Sequence[int], *, now: datetime) -> None:
    """Issues with nothing queued or mid-send are 'sent'; the summary goes in the event log."""
    for number in issues:
        summary = _summary(conn, number)
        archived = issues_store.get_issue(conn, number)
        if not summary.finished or archived is None:
            continue
        with transaction(conn):
            if archived.status == "sending":
                issues_store.set_issue_status(conn, number, "sent", sent_at=now)
            log_event(conn, "issue_sent", f"{summary.edition}: {summary.line()}", at=now)


def send_issue(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch: int = BATCH,
    retry_delays: Sequence[float] = RETRY_DELAYS,
    join: bool = False,
    month: str | None = None,
) -> SendSummary:
    """Send the current draft as the next issue (or resume the issue being sent).

    ``dry_run``: the same steps against a copy of the database, every message built, nothing
    sent, the draft kept. ``join``: only help with an issue being sent, never freeze one.
    ``month``: send that month's monthly edition (drafts/monthly-YYYY-MM.yaml) instead, to the
    monthly readers, through the same ledger and loop."""
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="digest-dry-run-") as tmp:
            copy = connect(Path(tmp) / "dry-run.db", migrate=dialect.is_postgresql(conn))
            try:
                if isinstance(conn, sqlite3.Connection):
                    conn.backup(copy)  # type: ignore[arg-type]
                else:
                    copy_database(conn, copy)
                summary = _send(
                    settings,
                    blogs,
                    copy,
                    now=now,
                    dry_run=True,
                    progress=progress,
                    batch=batch,
                    retry_delays=retry_delays,
                    join=join,
                    month=month,
                )
            finally:
                copy.close()
        return summary
    with send_lock(settings):
        return _send(
            settings,
            blogs,
            conn,
            now=now,
            dry_run=False,
            progress=progress,
            batch=batch,
            retry_delays=retry_delays,
            join=join,
            month=month,
        )


def _send(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    *,
    now: datetime,
    dry_run: bool,
    progress: Progress | None,
    batch: int,
    retry_delays: Sequence[float],
    join: bool,
    month: str | None = None,
) -> SendSummary:
    started = time.monotonic()
    dialect.set_durability(conn, settings.db_synchronous)
    # Once only, however many senders start at the same moment: the first freezes the issue,
    # the others find it 'sending' and join it.
    with dialect.advisory_lock(conn, "freeze"):
        with transaction(conn):
            ledger.requeue_unfinished(conn, now=now, alone=not dialect.is_postgresql(conn))
        resumed = sending_issue(conn)
        main_issue = resumed
        if resumed is None and join:
            return _summary(conn, None)
        waiting = _draft_waiting(settings, conn, month=month)
        if resumed is None and (not ledger.pending_issues(conn) or waiting):
            issue, _ = _start_issue(settings, blogs, conn, now=now, month=month)
            main_issue = issue.number
            if not dry_run:
                _consume(settings, issue)
        elif resumed is not None and not dry_run:
            # in case a crash came between freezing and this
            archived = issues_store.get_issue(conn, resumed)
            if archived is not None:
                _consume(settings, archived.content)
    pending = ledger.pending_issues(conn)
    if main_issue is None and pending:
        main_issue = pending[-1]
    transport = Transport(settings, dry_run=dry_run)
    if dialect.is_postgresql(conn):
        batch = min(batch, FLEET_BATCH)  # smaller claims share the tail among the senders
    loop = SendLoop(
        settings,
        blogs,
        conn,
        transport,
        issues=pending,
        now=now,
        batch=batch,
        retry_delays=retry_delays,
        progress=progress,
        total=ledger.count_pending(conn, pending),
        stop=STOP,
    )

    async def go() -> None:
        async with transport:
            await loop.run()

    try:
        with STOP.deferred():
            run_sync(go())
    finally:
        # The main issue too: an edition with no reader of its cadence (no one chose monthly
        # yet) has no deliveries, and must not stay 'sending' and block the next issue.
        finishing = [*pending, *([main_issue] if main_issue not in pending else [])]
        _finish(conn, [n for n in finishing if n is not None], now=loop.now())
        if loop.policy and not dry_run:
            notice = report.policy_refusals(loop.policy, target=transport.target)
            report.send_report(settings, blogs, conn, notice)
    summary = _summary(conn, main_issue)
    summary.resumed = resumed is not None
    summary.sent_now = loop.sent
    summary.dry_run = dry_run
    summary.target = transport.target
    summary.commits = loop.commits
    summary.seconds = time.monotonic() - started
    summary.policy = loop.policy
    if STOP.signum is not None and not summary.finished:
        raise Stopped(STOP.signum, summary.stop_line())
    if loop.tripped is not None:
        raise DeliveryError(
            f"{transport.target} stopped answering: {loop.tripped} (each of "
            f"{len(loop.lane_failures)} connection(s) failed {min(loop.lane_failures)} times "
            f"in a row); "
            f"{summary.sent_now} sent, {summary.left} left queued",
            hint="check the SMTP server (or DIGEST_SMTP_TIMEOUT); `digest send` resumes where "
            "this stopped, with the same Message-IDs",
        )
    return summary
