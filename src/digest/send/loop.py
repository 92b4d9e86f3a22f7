"""The send loop of one run: one worker per SMTP lane over a shared in-memory queue.

Rows are claimed from the ledger in batches ('sending'), but every server reply is committed
on its own, before that lane starts its next message: a `kill -9` (or a power cut with
DIGEST_DB_SYNCHRONOUS=full, or a full disk) can then resend only the messages whose final reply
was on the wire, at most one per connection (REFERENCE.md section 6). A commit in WAL mode
costs tens of microseconds, a few percent of a message's time on the fastest relay.

Several loops, in processes on several machines, may share one issue over PostgreSQL: each
leases the rows it claims (``worker``), renews the lease while it lives, and runs until no row
is left to anyone; the rows of a worker that died are claimed by the others once its lease
ends (digest.store.deliveries).

A stop signal (``digest.send.stop``) ends claiming; the messages in flight get
DIGEST_STOP_GRACE seconds to finish and be recorded; the rows claimed but never handed to the
server go back to 'queued'. When every lane keeps timing out or being dropped, the circuit
breaker ends the run the same way instead of holding the send lock for hours.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from digest.config import BlogsFile, Settings
from digest.errors import DeliveryError, StoreError
from digest.feedback.verp import envelope_sender
from digest.models import Issue
from digest.render import Rendered, render_issue
from digest.render.links import short_links
from digest.send import settle
from digest.send.bounces import Bounce
from digest.send.message import MessageTemplate, wire_address
from digest.send.stop import StopRequest
from digest.send.transport import Reply, Transport
from digest.store import clicks, dialect
from digest.store import deliveries as ledger
from digest.store import issues as issues_store
from digest.store.db import Connection, transaction, ts

Progress = Callable[[int, int], None]  # (done, total)

# Consecutive timed-out or dropped attempts on EVERY lane that end the run: the server is down
# or hung, and the rows are better left queued for the next run than tried one by one.
BREAKER = 5


@dataclass(order=True, slots=True)
class _Retry:
    ready: float
    seq: int
    job: ledger.Claimed = field(compare=False)
    tries: int = field(compare=False)


class SendLoop:
    def __init__(
        self,
        settings: Settings,
        blogs: BlogsFile,
        conn: Connection,
        transport: Transport,
        *,
        issues: Sequence[int],
        now: datetime,
        batch: int,
        retry_delays: Sequence[float],
        progress: Progress | None,
        total: int,
        stop: StopRequest,
    ) -> None:
        self.settings = settings
        self.blogs = blogs
        self.conn = conn
        self.transport = transport
        self.issues = list(issues)
        self.sender = blogs.newsletter.from_address
        self.bounce_address = settings.bounce_address  # VERP (digest.feedback.verp)
        self.started = time.monotonic()
        self.now0 = now
        self.batch = batch
        self.low_water = max(2 * len(transport.lanes), batch // 4)
        self.retry_delays = tuple(retry_delays)
        self.progress = progress
        self.total = total
        self.stop = stop
        self.done = 0
        self.sent = 0
        self.commits = 0
        self.queue: deque[tuple[ledger.Claimed, int]] = deque()
        self.retries: list[_Retry] = []
        self.in_flight: dict[int, ledger.Claimed] = {}  # lane -> job handed to the server
        self.exhausted = False
        self.fatal: BaseException | None = None
        self.tripped: str | None = None  # why the circuit breaker ended the run
        self.lane_failures = [0] * len(transport.lanes)
        self.policy: list[str] = []  # 5.7.x refusals of this run, for the curator
        self.last_progress = 0.0
        self._stamp_second, self._stamp = -1, ""
        self.data_version = dialect.changes(conn)
        self.worker = f"{socket.gethostname()} pid {os.getpid()} {secrets.token_hex(3)}"
        self.lease = settings.send_lease
        self.next_claim = 0.0  # others hold the rest: look again then
        self.templates: dict[tuple[int, str], MessageTemplate | None] = {}
        self.issue_content: dict[int, Issue] = {}

    def now(self) -> datetime:
        return self.now0 + timedelta(seconds=time.monotonic() - self.started)

    def stamp(self) -> str:
        """``ts(self.now())``, made once a second: the ledger stores second precision."""
        second = int(time.monotonic() - self.started)
        if second != self._stamp_second:
            self._stamp_second, self._stamp = second, ts(self.now())
        return self._stamp

    @property
    def stopping(self) -> bool:
        return self.fatal is not None or self.tripped is not None or self.stop.requested

    # --- the ledger ---------------------------------------------------------------------------

    def _claim(self) -> None:
        if self.exhausted or len(self.queue) > self.low_water:
            return
        if time.monotonic() < self.next_claim:
            return
        now = self.now()
        lease_until = now + timedelta(seconds=self.lease)
        with transaction(self.conn):
            claimed, skipped = ledger.claim(
                self.conn,
                self.issues,
                self.batch,
                now=now,
                worker=self.worker,
                lease_until=lease_until,
            )
        self.commits += 1
        self.done += skipped
        if len(claimed) + skipped < self.batch:
            # The queue is empty; rows other live workers hold may still come back to it.
            if ledger.leased_elsewhere(self.conn, self.issues, self.worker, now=now):
                self.next_claim = time.monotonic() + min(1.0, self.lease / 4)
            else:
                self.exhausted = True
        self.queue.extend((job, 0) for job in claimed)
        self._report(force=True)

    async def keep_leases(self) -> None:
        """Renew this worker's leases a few times per lease; forget rows it lost."""
        while True:
            await asyncio.sleep(self.lease / 3)
            until = self.now() + timedelta(seconds=self.lease)
            held = ledger.renew_leases(self.conn, self.worker, until=until)
            waiting = {job.rowid for job, _ in self.queue} | {r.job.rowid for r in self.retries}
            lost = waiting - held
            if lost:  # paused past the lease: another worker sends these now
                self.queue = deque(item for item in self.queue if item[0].rowid not in lost)
                self.retries = [r for r in self.retries if r.job.rowid not in lost]
                heapq.heapify(self.retries)

    def _record(self, outcome: ledger.Outcome, job: ledger.Claimed) -> None:
        """One reply, committed now: before this lane starts its next message."""
        now = self.now()
        with transaction(self.conn):
            bounce = outcome.bounce
            if bounce is Bounce.SOFT and settle.soft_limit_reached(
                self.conn, job.subscriber_id, issue=job.issue
            ):
                outcome.status = "bounced"  # the third issue in a row the mailbox refused
            ledger.record(self.conn, [outcome], now=now)
            if outcome.status == "bounced" and bounce in (Bounce.HARD, Bounce.SOFT):
                settle.suppress_bounced(self.conn, job.subscriber_id, job.email, now=now)
                self.data_version = -1  # our own write: the waiting rows are looked at again
        self.commits += 1

    def release(self) -> int:
        """Rows claimed but never handed to the server (or cut off by the grace period) go
        back to 'queued', so `digest status` and the next run see them as what they are."""
        rows = [job.rowid for job, _ in self.queue] + [job.rowid for job in self.in_flight.values()]
        waiting = [r.job.rowid for r in self.retries]  # 'deferred': the next run tries them
        self.queue.clear()
        self.in_flight.clear()
        self.retries.clear()
        if rows or waiting:
            with transaction(self.conn):
                ledger.release(self.conn, rows, now=self.now())
                ledger.release_retries(self.conn, waiting)
            self.commits += 1
        return len(rows)

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
                    issue,
                    self.blogs,
                    base_url=self.settings.base_url,
                    categories=cats,
                    templates=self.settings.templates,
                    # the map frozen with the edition: the same links in every copy, resumed
                    # sends included (none when it was frozen with click counts off)
                    links=short_links(
                        self.settings.base_url, job.issue, clicks.links(self.conn, job.issue)
                    ),
                )
            self.templates[key] = (
                None
                if rendered is None or (rendered.empty and cats is not None)
                else MessageTemplate.build(
                    rendered,
                    newsletter=self.blogs.newsletter,
                    settings=self.settings,
                    issue_number=job.issue,
                    archive_key=issue.key,
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
        return self.exhausted and not self.queue and not self.retries and not self.in_flight

    async def work_lane(self, lane: int) -> None:
        try:
            await self._work(lane)
        except asyncio.CancelledError:
            raise  # the grace period ran out: the row in flight stays there and is released
        except BaseException as exc:
            # Everyone would fail the same way (no server, AUTH refused, a full disk, ...):
            # stop. The rows claimed but not sent go back to the queue for the next run.
            if self.fatal is None:
                self.fatal = exc

    async def _work(self, lane: int) -> None:
        while not self.stopping:
            self._claim()
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
            self.in_flight[lane] = job
            reason = self._left_since_claim(job)
            template = None if reason else self.template(job)
            if template is None:
                del self.in_flight[lane]
                reason = reason or "not sent: no post in their categories"
                self._record(ledger.Outcome(job.rowid, "skipped", reason), job)
                self._done()
                continue
            message = template.message(
                to=job.email, name=job.name, token=job.token, message_id=job.message_id
            )
            to = wire_address(job.email)  # an IDN domain in IDNA: no SMTPUTF8 needed
            sender = envelope_sender(self.bounce_address, job.message_id, default=self.sender)
            reply = await self.transport.send(lane, sender, to, message)
            # If recording the reply fails (a full disk), the row stays 'sending': the next run
            # sends it again, the one possible second copy on this connection.
            del self.in_flight[lane]
            self._reply(lane, job, tries, reply)

    def _left_since_claim(self, job: ledger.Claimed) -> str | None:
        """Why ``job`` must not be sent after all, or None.

        Claimed rows wait in memory, for minutes under a rate limit: an unsubscribe (or a
        bounce) since the claim is honoured up to the moment of sending. Only another
        connection (the web app, `digest subscribers remove`) can make one, and SQLite's
        data_version says whether any did since the last look: the rows still waiting are
        then checked again in one query, instead of two lookups before every message."""
        version = dialect.changes(self.conn)
        if version == self.data_version:
            return None
        self.data_version = version
        waiting = [job, *(item for item, _ in self.queue), *(r.job for r in self.retries)]
        gone = ledger.gone_since_claim(self.conn, waiting)
        others = {rowid: why for rowid, why in gone.items() if rowid != job.rowid}
        if others:
            with transaction(self.conn):
                outcomes = [ledger.Outcome(rowid, "skipped", why) for rowid, why in others.items()]
                ledger.record(self.conn, outcomes, now=self.now())
            self.commits += 1
            self.queue = deque(item for item in self.queue if item[0].rowid not in others)
            self.retries = [r for r in self.retries if r.job.rowid not in others]
            heapq.heapify(self.retries)
            self.done += len(others)
        return gone.get(job.rowid)

    def _done(self) -> None:
        self.done += 1
        self._report()

    def _reply(self, lane: int, job: ledger.Claimed, tries: int, reply: Reply) -> None:
        bounce = reply.bounce
        text = str(reply)
        self._breaker(lane, reply)
        if reply.stage == "local":
            # Our side could not send it (no SMTPUTF8, an address aiosmtplib refuses): this
            # message bounces, the reader keeps their subscription.
            self._record(ledger.Outcome(job.rowid, "bounced", text), job)
        elif bounce is None:
            ledger.record_sent(self.conn, job.rowid, text, stamp=self.stamp())
            self.commits += 1
            self.sent += 1
        elif bounce is Bounce.TRANSIENT and tries < len(self.retry_delays):
            delay = self.retry_delays[tries]
            retry_at = self.now() + timedelta(seconds=delay)
            self._record(
                ledger.Outcome(job.rowid, "deferred", text, retry_at, bounce, held=True), job
            )
            heapq.heappush(
                self.retries, _Retry(time.monotonic() + delay, job.rowid, job, tries + 1)
            )
            return
        elif bounce is Bounce.HARD:
            self._record(ledger.Outcome(job.rowid, "bounced", text, bounce=bounce), job)
        else:
            if bounce is Bounce.POLICY:
                self.policy.append(f"{job.email}: {text}")
            self._record(ledger.Outcome(job.rowid, "deferred", text, bounce=bounce), job)
        self._done()

    def _breaker(self, lane: int, reply: Reply) -> None:
        if reply.stage != "connection":
            self.lane_failures[lane] = 0
            return
        self.lane_failures[lane] += 1
        if min(self.lane_failures) >= BREAKER and self.tripped is None:
            self.tripped = reply.text

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self.work_lane(lane)) for lane in range(len(self.transport.lanes))
        ]
        leases = asyncio.create_task(self.keep_leases())
        try:
            await self._supervise(tasks)
        finally:
            leases.cancel()
            try:
                self.release()
            except StoreError:
                if self.fatal is None:
                    raise
                # The database failed already (a full disk): the rows stay 'sending', and the
                # next run queues them again; the first error is the one to show.
        if self.fatal is not None:
            raise self.fatal

    async def _supervise(self, tasks: list[asyncio.Task[None]]) -> None:
        """Wait for the workers; after a stop signal, at most DIGEST_STOP_GRACE seconds more."""
        pending: set[asyncio.Task[None]] = set(tasks)
        deadline: float | None = None
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.05)
            if not pending or not self.stop.requested:
                continue
            deadline = deadline or time.monotonic() + self.settings.stop_grace
            if self.stop.hurry or time.monotonic() >= deadline:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                return
