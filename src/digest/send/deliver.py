"""Sending an issue to every confirmed subscriber exactly once (REFERENCE.md section 6).

1. Under the send lock, rows a crash left 'sending' and rows an earlier run 'deferred' are
   queued again (with their stored Message-ID).
2. A new issue is frozen into the archive and its audience snapshotted into ``deliveries`` in
   ONE transaction; only then is the draft consumed. An issue already 'sending' is resumed.
3. Rows are claimed in batches and sent over a few reused connections. Each commit records the
   replies of the previous batch and claims the next one: one commit per batch. A row becomes
   'sent' only in a commit after its 250.

listmonk advanced its checkpoint when it fetched rows and both skipped and tripled recipients
after restarts; rss2email saved state only at the end of a run and resent everything after a
kill. Here a kill loses at most the replies of one batch, and those rows are sent again with
the same Message-ID, so receivers drop the copy.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import sqlite3
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from digest.config import BlogsFile, Settings
from digest.errors import DeliveryError, DraftError
from digest.issue.draft import consume_draft, current_draft, load_issue
from digest.models import Issue
from digest.render import Rendered, render_issue
from digest.send.lock import send_lock
from digest.send.message import MessageTemplate
from digest.send.transport import Reply, Transport, run_sync
from digest.store import deliveries as ledger
from digest.store import issues as issues_store
from digest.store import subscribers as subscribers_store
from digest.store.db import connect, log_event, transaction

Progress = Callable[[int, int], None]  # (done, total)

# Pauses before retrying a 4xx or a dropped connection within the run; after the last one the
# row stays 'deferred' and the next `digest send` tries it again.
RETRY_DELAYS = (2.0, 10.0, 30.0)
BATCH = 200
# A slow server fills a batch slowly: replies are committed at least this often (seconds), so a
# kill resends (with the same Message-ID) at most this much sending.
FLUSH_EVERY = 0.5


@dataclass(slots=True)
class SendSummary:
    """What happened to one issue: totals over all runs, as kept in the database."""

    issue: int | None
    subject: str = ""
    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    skipped: int = 0
    failed: int = 0
    audience: int = 0
    sent_now: int = 0  # sent by this run
    resumed: bool = False
    finished: bool = False  # nothing left queued or sending
    dry_run: bool = False
    target: str = ""
    commits: int = 0
    batches: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"sent {self.sent}, deferred {self.deferred}, bounced {self.bounced}, "
            f"skipped {self.skipped}" + (f", failed {self.failed}" if self.failed else "")
        )


@dataclass(order=True, slots=True)
class _Retry:
    ready: float
    seq: int
    job: ledger.Claimed = field(compare=False)
    tries: int = field(compare=False)


class _Run:
    """The send loop of one run: workers, one per lane, over a shared in-memory queue."""

    def __init__(
        self,
        settings: Settings,
        blogs: BlogsFile,
        conn: sqlite3.Connection,
        transport: Transport,
        *,
        issues: Sequence[int],
        now: datetime,
        batch: int,
        retry_delays: Sequence[float],
        progress: Progress | None,
        total: int,
    ) -> None:
        self.settings = settings
        self.blogs = blogs
        self.conn = conn
        self.transport = transport
        self.issues = list(issues)
        self.sender = blogs.newsletter.from_address
        self.started = time.monotonic()
        self.now0 = now
        self.batch = batch
        self.low_water = max(2 * len(transport.lanes), batch // 4)
        self.retry_delays = tuple(retry_delays)
        self.progress = progress
        self.total = total
        self.done = 0
        self.queue: deque[tuple[ledger.Claimed, int]] = deque()
        self.retries: list[_Retry] = []
        self.results: list[ledger.Outcome] = []
        self.bounces: list[ledger.Claimed] = []
        self.exhausted = False
        self.inflight = 0
        self.fatal: BaseException | None = None
        self.commits = 0
        self.batches = 0
        self.sent = 0
        self.last_flush = time.monotonic()
        self.last_progress = 0.0
        self.templates: dict[tuple[int, str], MessageTemplate | None] = {}
        self.issue_content: dict[int, Issue] = {}

    def now(self) -> datetime:
        return self.now0 + timedelta(seconds=time.monotonic() - self.started)

    # --- the ledger: one commit per batch ---------------------------------------------------

    def flush(self, *, claim: bool) -> None:
        """Record the replies gathered so far and, if asked, claim the next batch: together, in
        one transaction."""
        now = self.now()
        claimed: list[ledger.Claimed] = []
        with transaction(self.conn):
            if self.results:
                ledger.record(self.conn, self.results, now=now)
                for job in self.bounces:
                    subscribers_store.set_status(self.conn, job.subscriber_id, "bounced", now=now)
                    subscribers_store.suppress(self.conn, job.email, "bounced", now=now)
            self._skip_leavers(now)
            if claim:
                claimed, skipped = ledger.claim(self.conn, self.issues, self.batch, now=now)
                self.done += skipped
                if len(claimed) + skipped < self.batch:
                    self.exhausted = True
        self.commits += 1
        if self.results:
            self.batches += 1
        self.results = []
        self.bounces = []
        self.last_flush = time.monotonic()
        self.queue.extend((job, 0) for job in claimed)
        self._report(force=True)

    def _skip_leavers(self, now: datetime) -> None:
        """Claimed rows wait in memory, for minutes under a rate limit: an unsubscribe (or a
        bounce) that came since their claim is honoured for every one not sent yet."""
        waiting = [job.rowid for job, _ in self.queue] + [r.job.rowid for r in self.retries]
        left = set(ledger.skip_leavers(self.conn, waiting, now=now))
        if left:
            self.queue = deque(item for item in self.queue if item[0].rowid not in left)
            self.retries = [r for r in self.retries if r.job.rowid not in left]
            heapq.heapify(self.retries)
            self.done += len(left)

    def maybe_flush(self) -> None:
        need_claim = not self.exhausted and len(self.queue) <= self.low_water
        if (
            need_claim
            or len(self.results) >= self.batch
            or (self.results and time.monotonic() - self.last_flush > FLUSH_EVERY)
        ):
            self.flush(claim=need_claim)

    def _report(self, *, force: bool = False) -> None:
        if self.progress is None:
            return
        moment = time.monotonic()
        if force or moment - self.last_progress > 0.1:
            self.last_progress = moment
            self.progress(self.done, self.total)

    # --- messages -----------------------------------------------------------------------------

    def _issue(self, number: int) -> Issue:
        issue = self.issue_content.get(number)
        if issue is None:
            archived = issues_store.get_issue(self.conn, number)
            if archived is None:
                raise DeliveryError(f"deliveries refer to issue {number}, missing from the archive")
            issue = self.issue_content[number] = archived.content
        return issue

    def template(self, job: ledger.Claimed) -> MessageTemplate | None:
        """The message template of the job's variant; None: no post for their categories."""
        key = (job.issue, job.variant)
        if key not in self.templates:
            issue = self._issue(job.issue)
            present = set(issue.categories())
            cats: frozenset[str] | None = None
            if job.variant != "*":
                chosen = frozenset(json.loads(job.variant)) & present
                cats = None if chosen == present else chosen
            rendered: Rendered | None = None
            if cats is None or cats:
                rendered = render_issue(
                    issue, self.blogs, base_url=self.settings.base_url, categories=cats
                )
            self.templates[key] = (
                None
                if rendered is None or (rendered.empty and cats is not None)
                else MessageTemplate.build(
                    rendered,
                    newsletter=self.blogs.newsletter,
                    settings=self.settings,
                    issue_number=job.issue,
                )
            )
        return self.templates[key]

    # --- workers ------------------------------------------------------------------------------

    def _next(self) -> tuple[ledger.Claimed, int] | None:
        if self.retries and self.retries[0].ready <= time.monotonic():
            retry = heapq.heappop(self.retries)
            return retry.job, retry.tries
        if self.queue:
            return self.queue.popleft()
        return None

    def _finished(self) -> bool:
        return self.exhausted and not self.queue and not self.retries and not self.inflight

    async def worker(self, lane: int) -> None:
        while self.fatal is None:
            self.maybe_flush()
            item = self._next()
            if item is None:
                if self._finished():
                    return
                wait = 0.05
                if self.retries:
                    wait = min(wait, max(0.0, self.retries[0].ready - time.monotonic()))
                await asyncio.sleep(wait)
                continue
            job, tries = item
            self.inflight += 1
            try:
                template = self.template(job)
                if template is None:
                    self._outcome(job, "skipped", "not sent: no post in their categories")
                    continue
                message = template.message(
                    to=job.email, name=job.name, token=job.token, message_id=job.message_id
                )
                reply = await self.transport.send(lane, self.sender, job.email, message)
            except BaseException as exc:
                # Everyone would fail the same way (no server, AUTH refused, ...): stop. The
                # rows claimed but not sent stay 'sending' and are retried by the next run.
                self.fatal = exc
                return
            finally:
                self.inflight -= 1
            self._reply(job, tries, reply)

    def _outcome(self, job: ledger.Claimed, status: str, reply: str) -> None:
        self.results.append(ledger.Outcome(job.rowid, status, reply))
        self.done += 1
        self._report()

    def _reply(self, job: ledger.Claimed, tries: int, reply: Reply) -> None:
        if reply.ok:
            self.sent += 1
            self._outcome(job, "sent", str(reply))
        elif reply.transient:
            if tries < len(self.retry_delays):
                delay = self.retry_delays[tries]
                self.results.append(
                    ledger.Outcome(
                        job.rowid, "deferred", str(reply), self.now() + timedelta(seconds=delay)
                    )
                )
                heapq.heappush(
                    self.retries,
                    _Retry(time.monotonic() + delay, job.rowid, job, tries + 1),
                )
            else:
                self._outcome(job, "deferred", str(reply))
        else:
            if reply.hard_bounce:
                self.bounces.append(job)
            self._outcome(job, "bounced", str(reply))

    async def run(self) -> None:
        try:
            workers = [self.worker(lane) for lane in range(len(self.transport.lanes))]
            await asyncio.gather(*workers)
        finally:
            self.flush(claim=False)  # the replies already received are never lost
        if self.fatal is not None:
            raise self.fatal


def _start_issue(
    settings: Settings, blogs: BlogsFile, conn: sqlite3.Connection, *, now: datetime
) -> tuple[Issue, int]:
    """Freeze the draft into the archive and snapshot its audience, in one transaction."""
    issue = load_issue(settings, blogs, conn)
    if issues_store.get_issue(conn, issue.number) is not None:
        raise DraftError(
            f"issue {issue.number} is already in the archive",
            path=str(current_draft(settings, conn) or settings.drafts),
            hint="run `digest draft` to refresh the draft for the next issue",
        )
    base = settings.base_url
    # The web-archive copy: every category, links that point at the site, no personal token.
    archive = render_issue(issue, blogs, base_url=base, categories=None, budget=None)
    html, text = archive.fill(
        unsubscribe_url=f"{base}/",
        preferences_url=f"{base}/",
        web_url=f"{base}/archive/{issue.number}",
        name=None,
    )
    domain = blogs.newsletter.from_address.rpartition("@")[2]
    with transaction(conn):
        issues_store.freeze_issue(conn, issue, html=html, text=text, status="sending", now=now)
        audience = ledger.snapshot_audience(conn, issue.number, domain=domain, now=now)
        log_event(conn, "issue_frozen", f"issue {issue.number}: {audience} recipients", at=now)
    return issue, audience


def sending_issue(conn: sqlite3.Connection) -> int | None:
    row = conn.execute(
        "SELECT number FROM issues WHERE status = 'sending' ORDER BY number LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])


def _summary(conn: sqlite3.Connection, number: int | None) -> SendSummary:
    if number is None:
        return SendSummary(issue=None)
    archived = issues_store.get_issue(conn, number)
    found = ledger.counts(conn, number)
    return SendSummary(
        issue=number,
        subject=archived.subject if archived else "",
        sent=found["sent"],
        deferred=found["deferred"],
        bounced=found["bounced"],
        skipped=found["skipped"],
        failed=found["failed"],
        audience=sum(found.values()),
        finished=found["queued"] == 0 and found["sending"] == 0,
    )


def _finish(conn: sqlite3.Connection, issues: Sequence[int], *, now: datetime) -> None:
    """Issues with nothing queued or mid-send are 'sent'; the summary goes in the event log."""
    for number in issues:
        summary = _summary(conn, number)
        archived = issues_store.get_issue(conn, number)
        if not summary.finished or archived is None:
            continue
        with transaction(conn):
            if archived.status == "sending":
                issues_store.set_issue_status(conn, number, "sent", sent_at=now)
            log_event(conn, "issue_sent", f"issue {number}: {summary.line()}", at=now)


def send_issue(
    settings: Settings,
    blogs: BlogsFile,
    conn: sqlite3.Connection,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch: int = BATCH,
    retry_delays: Sequence[float] = RETRY_DELAYS,
) -> SendSummary:
    """Send the current draft as the next issue (or resume the issue being sent).

    ``dry_run``: the same steps against a copy of the database, every message built, nothing
    sent, the draft kept."""
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="digest-dry-run-") as tmp:
            copy = connect(Path(tmp) / "dry-run.db", migrate=False)
            try:
                conn.backup(copy)
                summary = _send(
                    settings,
                    blogs,
                    copy,
                    now=now,
                    dry_run=True,
                    progress=progress,
                    batch=batch,
                    retry_delays=retry_delays,
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
        )


def _send(
    settings: Settings,
    blogs: BlogsFile,
    conn: sqlite3.Connection,
    *,
    now: datetime,
    dry_run: bool,
    progress: Progress | None,
    batch: int,
    retry_delays: Sequence[float],
) -> SendSummary:
    started = time.monotonic()
    with transaction(conn):
        ledger.requeue_unfinished(conn, now=now)
    resumed = sending_issue(conn)
    main_issue = resumed
    if resumed is None and (not ledger.pending_issues(conn) or current_draft(settings, conn)):
        issue, _ = _start_issue(settings, blogs, conn, now=now)
        main_issue = issue.number
        if not dry_run:
            consume_draft(settings, issue.number)
    elif resumed is not None and not dry_run:
        consume_draft(settings, resumed)  # in case a crash came between freezing and this
    pending = ledger.pending_issues(conn)
    if main_issue is None and pending:
        main_issue = pending[-1]
    transport = Transport(settings, dry_run=dry_run)
    run = _Run(
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
    )

    async def go() -> None:
        async with transport:
            await run.run()

    try:
        run_sync(go())
    finally:
        _finish(conn, pending, now=run.now())
    summary = _summary(conn, main_issue)
    summary.resumed = resumed is not None
    summary.sent_now = run.sent
    summary.dry_run = dry_run
    summary.target = transport.target
    summary.commits = run.commits
    summary.batches = run.batches
    summary.seconds = time.monotonic() - started
    return summary
