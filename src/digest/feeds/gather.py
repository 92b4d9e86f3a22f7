"""Gathering: every blog's feed fetched concurrently, politely, and recorded.

One bad feed never spoils the week: each feed's failure is caught, recorded with a reason and
backed off; only a broken database stops the run. Network and parsing live in http.py and
parse.py; this module decides when to poll, and what a response means for the stored state.

A blog that publishes by email (``email:`` in blogs.yaml) has no feed: it is never fetched nor
discovered from its homepage. Gathering reads DIGEST_INBOX for it instead (digest/inbound), and
reports it as status ``email``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from digest.config import Blog, BlogsFile, Settings
from digest.errors import FeedError, StoreError
from digest.feeds.discover import discover
from digest.feeds.http import Response, cache_seconds, fetch, new_client
from digest.feeds.parse import ParsedFeed
from digest.feeds.pool import FeedParser
from digest.feeds.record import Duplicate, Recorded, record_entries
from digest.inbound.maildir import InboxReport, read_inbox
from digest.inbound.verify import DnsFunc
from digest.store import feeds as feed_store
from digest.store.db import Connection, DbError, log_event, transaction
from digest.store.posts import newest_date

# REFERENCE.md section 1: Cache-Control / Expires are honoured within [1 h, 7 d]; Retry-After
# is capped at 2 days; other failures back off exponentially up to a day, with jitter so
# feeds that failed together do not retry together.
MIN_POLL = timedelta(hours=1)
MAX_POLL = timedelta(days=7)
MAX_RETRY_AFTER = timedelta(days=2)
BACKOFF_BASE = timedelta(minutes=30)
BACKOFF_CAP = timedelta(days=1)
# A weekly job that starts a few seconds before a feed's next_poll should still fetch it.
DUE_SLACK = timedelta(minutes=5)
_RNG = random.Random()


@dataclass(slots=True)
class FeedResult:
    blog: str
    url: str | None
    status: str  # ok | not_modified | error | gone | skipped | email (no feed: DIGEST_INBOX)
    http_status: int | None
    new_posts: int
    newest: datetime | None
    failures: int  # consecutive, after this run
    next_poll: datetime | None
    error: str | None = None
    warning: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("newest", "next_poll"):
            value = out[name]
            out[name] = value.isoformat().replace("+00:00", "Z") if value else None
        return out


@dataclass(slots=True)
class GatherReport:
    results: list[FeedResult]  # in blogs.yaml order
    duplicates: list[Duplicate] = field(default_factory=list)
    inbox: InboxReport = field(default_factory=InboxReport)

    @property
    def new_posts(self) -> int:
        return sum(r.new_posts for r in self.results)

    @property
    def failed(self) -> list[FeedResult]:
        return [r for r in self.results if r.status in ("error", "gone")]

    @property
    def skipped(self) -> list[FeedResult]:
        """Feeds not fetched this run: not due yet (fresh, or backing off) or gone."""
        return [r for r in self.results if r.status == "skipped"]

    def summary(self) -> str:
        """One line for the curator. A skipped feed is not "fetched": saying so would hide why a
        post just published is missing, and a feed backing off after failures is still failing.
        """
        total = sum(1 for r in self.results if r.status != "email")
        skipped = self.skipped
        line = f"fetched {total - len(skipped)} of {total} feeds: {self.new_posts} new post(s)"
        letters, unreadable = len(self.inbox.received), len(self.inbox.unreadable)
        if letters:
            line += f"; {letters} mail(s) read from DIGEST_INBOX"
        if unreadable:
            line += f"; {unreadable} left unread in DIGEST_INBOX"
        if self.failed:
            line += f", {len(self.failed)} failing"
        if skipped:
            backing_off = sum(1 for r in skipped if r.error)
            line += f"; {len(skipped)} not due yet" + (
                f" ({backing_off} backing off after failures)" if backing_off else ""
            )
        return line


def next_poll_after(headers: dict[str, str], now: datetime) -> datetime:
    fresh = cache_seconds(headers)
    delay = MIN_POLL if fresh is None else timedelta(seconds=fresh)
    return now + min(max(delay, MIN_POLL), MAX_POLL)


def backoff(failures: int, now: datetime, *, rng: random.Random | None = None) -> datetime:
    """Capped exponential backoff with "equal jitter": between half and all of the delay."""
    delay = min(BACKOFF_BASE * (1 << min(max(failures - 1, 0), 20)), BACKOFF_CAP)
    jitter: float = (rng or _RNG).uniform(0.5, 1.0)
    return now + delay * jitter


class _Limits:
    """A global limit and a per-host limit on concurrent fetches."""

    def __init__(self, total: int, per_host: int) -> None:
        self.total = asyncio.Semaphore(total)
        self.per_host = per_host
        self.hosts: dict[str, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        host = (urlsplit(url).hostname or "").lower()
        per_host = self.hosts.setdefault(host, asyncio.Semaphore(self.per_host))
        # Host first: a task waiting on a busy host must not hold a global slot meanwhile.
        async with per_host, self.total:
            yield


@dataclass(slots=True)
class _Run:
    settings: Settings
    newsletter_lookback: timedelta
    conn: Connection
    client: httpx.AsyncClient
    limits: _Limits
    parser: FeedParser
    now: datetime
    force: bool
    duplicates: list[Duplicate] = field(default_factory=list)


async def gather(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    *,
    now: datetime,
    force: bool = False,
    only: Collection[str] | None = None,
    client: httpx.AsyncClient | None = None,
    parser: FeedParser | None = None,
    dnsfunc: DnsFunc | None = None,
) -> GatherReport:
    """Fetch the feeds that are due (``force``: all, gone ones too) and record new posts; read
    DIGEST_INBOX for the blogs that publish by email.

    ``parser`` decides where bodies are parsed (see pool.py); by default a process pool takes
    over once the run has many bodies. ``dnsfunc``: DKIM's key lookup (tests).
    """
    chosen = [b for b in blogs.blogs() if only is None or b.id in only]
    selected = [b for b in chosen if b.email is None]
    by_email = [b for b in chosen if b.email is not None]
    # Before the feeds, on this thread: the connection is not shared with the fetches' writes.
    inbox = read_inbox(settings, blogs, conn, now=now, dnsfunc=dnsfunc) if by_email else None
    own_client = client is None
    http = client or new_client(settings)
    own_parser = parser is None
    feed_parser = parser or FeedParser()
    run = _Run(
        settings=settings,
        newsletter_lookback=timedelta(days=blogs.newsletter.lookback_days),
        conn=conn,
        client=http,
        limits=_Limits(settings.fetch_concurrency, settings.fetch_per_host),
        parser=feed_parser,
        now=now,
        force=force,
    )
    try:
        outcomes = await asyncio.gather(
            *(_guarded(run, blog) for blog in selected), return_exceptions=True
        )
    finally:
        if own_parser:
            feed_parser.close()
        if own_client:
            await http.aclose()
    found: dict[str, FeedResult] = {}
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome  # only StoreError gets here: the database is unusable
        found[outcome.blog] = outcome
    inbox = inbox or InboxReport()
    for blog in by_email:
        found[blog.id] = _by_email(conn, blog, inbox)
    return GatherReport(
        results=[found[b.id] for b in chosen], duplicates=run.duplicates, inbox=inbox
    )


def gather_sync(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    *,
    now: datetime,
    force: bool = False,
    only: Collection[str] | None = None,
) -> GatherReport:
    return asyncio.run(gather(settings, blogs, conn, now=now, force=force, only=only))


async def _guarded(run: _Run, blog: Blog) -> FeedResult:
    try:
        return await _gather_one(run, blog)
    except DbError as exc:
        raise StoreError(
            f"cannot write to the database: {exc}",
            hint="check that DIGEST_DB (or --db) is writable and the disk is not full",
        ) from None
    except StoreError:
        raise  # `transaction` already named the database: a full disk is no feed's failure
    except Exception as exc:  # noqa: BLE001 - a bug with one feed must not stop the others
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return _failed(run, blog, FeedError(reason, url=blog.feed or blog.homepage))


async def _gather_one(run: _Run, blog: Blog) -> FeedResult:
    conn, now = run.conn, run.now
    configured = blog.feed or blog.homepage
    # Read first: the row exists and names the same URL on every run but the first.
    record = feed_store.get_feed(conn, blog.id)
    if record is None or record.configured_url != configured:
        with transaction(conn):
            record = feed_store.ensure_feed(
                conn, blog.id, configured_url=configured, feed_url=blog.feed
            )
    state = record.state
    if not run.force and (
        state.status == "gone"
        or (state.next_poll is not None and state.next_poll > now + DUE_SLACK)
    ):
        return _result(run, record, "skipped", state.http_status, 0, error=state.error)

    url = state.url
    response: Response | None = None
    try:
        async with run.limits.slot(url or blog.homepage):
            if url is None:
                found = await discover(run.client, blog.homepage, settings=run.settings)
                url, response = found.url, found.response
                with transaction(conn):
                    feed_store.set_url(conn, blog.id, url)
                    log_event(conn, "feed_discovered", f"{blog.id}: {url} ({found.how})", at=now)
            response = response or await fetch(
                run.client,
                url,
                timeout=run.settings.fetch_timeout,
                max_bytes=run.settings.fetch_max_bytes,
                etag=record.etag,
                last_modified=record.last_modified,
            )
        parsed = None
        if response.body is not None:
            parsed = await run.parser.parse(
                response.body, url=response.url, headers=response.headers
            )
    except FeedError as exc:
        return _failed(run, blog, exc)
    return _succeeded(run, blog, record, response, parsed, url)


def _succeeded(
    run: _Run,
    blog: Blog,
    record: feed_store.FeedRecord,
    response: Response,
    parsed: ParsedFeed | None,
    url: str,
) -> FeedResult:
    """``url``: the feed's stored URL (found by discovery on its first run)."""
    conn, now, state = run.conn, run.now, record.state
    first_run = not record.seeded
    # Later runs: the window starts at what the last successful look could have seen.
    window_start = (now if first_run else (state.last_success or now)) - run.newsletter_lookback
    next_poll = next_poll_after(response.headers, now)
    moved = response.moved_permanently
    moved = moved if moved and moved != state.url else None
    recorded = Recorded()
    if response.status == 304 and moved is None:
        # The warm path: one statement, committed on its own.
        feed_store.record_not_modified(
            conn,
            blog.id,
            etag=response.etag,
            last_modified=response.last_modified,
            next_poll=next_poll,
            now=now,
        )
    else:
        with transaction(conn):
            # Validators as the latest response carried them, also when nothing changed
            # (a 304 updates only those it carries). A body that failed to parse never gets
            # here: keeping its validators would turn the next poll into a 304 and hide the
            # error.
            feed_store.save_validators(
                conn,
                blog.id,
                etag=response.etag,
                last_modified=response.last_modified,
                replace=response.status != 304,
            )
            if moved:
                feed_store.set_url(conn, blog.id, moved)
                log_event(conn, "feed_moved", f"{blog.id}: {state.url} -> {moved}", at=now)
            if parsed is not None:
                recorded = record_entries(
                    conn,
                    blog.id,
                    parsed.entries,
                    now=now,
                    first_run=first_run,
                    window_start=window_start,
                )
            feed_store.record_success(
                conn,
                blog.id,
                http_status=response.status,
                next_poll=next_poll,
                warning=parsed.warning if parsed else None,
                now=now,
                seeded=parsed is not None,
            )
    run.duplicates.extend(recorded.duplicates)
    return FeedResult(
        blog=blog.id,
        url=moved or url,
        status="not_modified" if response.status == 304 else "ok",
        http_status=response.status,
        new_posts=len(recorded.new),
        newest=newest_date(conn, blog.id),
        failures=0,
        next_poll=next_poll,
        warning=parsed.warning if parsed else state.warning,
    )


def _by_email(conn: Connection, blog: Blog, inbox: InboxReport) -> FeedResult:
    mine = [r for r in inbox.received if r.blog == blog.id and not r.repeated]
    held = sum(1 for r in mine if r.status != "post")
    return FeedResult(
        blog=blog.id,
        url=None,
        status="email",
        http_status=None,
        new_posts=inbox.new_posts(blog.id),
        newest=newest_date(conn, blog.id),
        failures=0,
        next_poll=None,
        error=inbox.error,
        warning=f"{held} mail(s) quarantined or awaiting confirmation" if held else None,
    )


def _failed(run: _Run, blog: Blog, exc: FeedError) -> FeedResult:
    conn, now = run.conn, run.now
    record = feed_store.get_feed(conn, blog.id)
    failures = (record.state.failures if record else 0) + 1
    gone = exc.http_status == 410
    if gone:
        next_poll = None  # stop polling; `digest feeds check` still tries, the curator decides
    else:
        next_poll = backoff(failures, now)
        if exc.retry_after is not None:
            wait = min(timedelta(seconds=exc.retry_after), MAX_RETRY_AFTER)
            next_poll = max(next_poll, now + wait)
    with transaction(conn):
        feed_store.ensure_feed(
            conn, blog.id, configured_url=blog.feed or blog.homepage, feed_url=blog.feed
        )
        feed_store.record_failure(
            conn,
            blog.id,
            http_status=exc.http_status,
            error=exc.reason,
            next_poll=next_poll,
            now=now,
            gone=gone,
        )
        if gone and (record is None or record.state.status != "gone"):
            log_event(conn, "feed_gone", f"{blog.id}: {exc.url}: {exc.reason}", at=now)
    after = feed_store.get_feed(conn, blog.id)
    assert after is not None
    return _result(run, after, "gone" if gone else "error", exc.http_status, 0, error=exc.reason)


def _result(
    run: _Run,
    record: feed_store.FeedRecord,
    status: str,
    http_status: int | None,
    new_posts: int,
    *,
    error: str | None = None,
    warning: str | None = None,
) -> FeedResult:
    state = record.state
    return FeedResult(
        blog=state.blog,
        url=state.url,
        status=status,
        http_status=http_status,
        new_posts=new_posts,
        newest=newest_date(run.conn, state.blog),
        failures=state.failures,
        next_poll=state.next_poll,
        error=error,
        warning=warning,
    )
