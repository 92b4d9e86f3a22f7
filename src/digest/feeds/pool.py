"""Parsing off the event loop: a small process pool once a run has many bodies to parse.

feedparser is pure Python: on a cold run of hundreds of feeds, parsing is most of the CPU time,
and while it runs in the event loop's thread no response is read. So the first bodies of a run
are parsed in this process, and from the ``start_after``-th on (or once they add up to
``start_after_bytes``) they go to a pool of worker processes (one per CPU, at most
``MAX_WORKERS``), started then and shut down with the run. A weekly run of a few blogs, a warm
run (every feed answers 304) and the tests' small runs never start a process.

Crossing the process boundary changes nothing a caller sees: a worker returns the same
``ParsedFeed``, or its FeedError flattened into a plain value (FeedError's keyword-only
constructor cannot be replayed by pickle) and raised again here. A worker that dies (a crash,
the out-of-memory killer) costs only the feed that killed it: the feeds it took down with it
are parsed again, each in a process of its own, and a feed that kills that one too fails with
a reason of its own. Later feeds get a fresh pool.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from digest.errors import FeedError
from digest.feeds.parse import ParsedFeed, parse_feed

MAX_WORKERS = 4
# Bodies parsed in this process before a pool is worth its start-up (about 0.2 s of CPU per
# worker: a fresh interpreter importing feedparser). A small feed parses in 1-5 ms; a large one
# (XXIIVV's 364 KB) in about 0.25 s, hence the limit in bytes too: past it, a cold run of many
# large feeds would keep one core parsing while the others wait.
START_AFTER = 24
START_AFTER_BYTES = 256 * 1024
# Pools replaced after a worker died, before the rest of the run parses in this process.
MAX_RESTARTS = 3


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A FeedError as plain fields, which pickle carries across processes."""

    reason: str
    url: str
    http_status: int | None = None
    retry_after: float | None = None
    hint: str | None = None

    @classmethod
    def of(cls, exc: FeedError) -> ParseFailure:
        return cls(exc.reason, exc.url, exc.http_status, exc.retry_after, exc.hint)

    def error(self) -> FeedError:
        return FeedError(
            self.reason,
            url=self.url,
            http_status=self.http_status,
            retry_after=self.retry_after,
            hint=self.hint,
        )


Job = Callable[[bytes, str, Mapping[str, str]], "ParsedFeed | ParseFailure"]


def parse_job(body: bytes, url: str, headers: Mapping[str, str]) -> ParsedFeed | ParseFailure:
    """What a worker runs: parse_feed, with every failure returned as a value."""
    try:
        return parse_feed(body, url=url, headers=headers)
    except FeedError as exc:
        return ParseFailure.of(exc)
    except Exception as exc:  # noqa: BLE001 - the same words gather uses for a bug in one feed
        return ParseFailure(f"internal error: {type(exc).__name__}: {exc}", url)


def default_workers() -> int:
    """One worker per CPU this process may use, at most MAX_WORKERS; 0 (no pool) on one CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(cpus, MAX_WORKERS) if cpus > 1 else 0


class FeedParser:
    """parse_feed for one gathering run: in this process, or in a pool once that pays off.

    ``workers=0`` never starts a pool. Call :meth:`close` (or use ``async with``) when the run
    ends. ``job`` is the function a worker runs (a module-level function, so that it pickles).
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        start_after: int = START_AFTER,
        start_after_bytes: int = START_AFTER_BYTES,
        job: Job = parse_job,
    ) -> None:
        self.workers = default_workers() if workers is None else workers
        self.start_after = start_after
        self.start_after_bytes = start_after_bytes
        self.job = job
        self.parsed = 0  # bodies seen so far
        self.parsed_bytes = 0  # their size, before this one
        self.restarts = 0
        self.pooled = False  # whether a pool was started in this run
        self._pool: ProcessPoolExecutor | None = None
        self._alone = asyncio.Semaphore(max(self.workers, 1))
        # spawn, not fork: forking a process that may run threads (httpx's DNS lookups, a
        # web server) can deadlock a child; spawn is also what every platform supports.
        self._context = multiprocessing.get_context("spawn")

    async def parse(self, body: bytes, *, url: str, headers: Mapping[str, str]) -> ParsedFeed:
        """parse_feed(body, url=url, headers=headers), wherever it runs; raises FeedError."""
        self.parsed += 1
        enough = self.parsed > self.start_after or self.parsed_bytes >= self.start_after_bytes
        self.parsed_bytes += len(body)
        use_pool = self.workers > 0 and enough and self.restarts <= MAX_RESTARTS
        if not use_pool:
            outcome = self.job(body, url, headers)
        else:
            pool = self._pool or self._start()
            loop = asyncio.get_running_loop()
            try:
                outcome = await loop.run_in_executor(pool, self.job, body, url, dict(headers))
            except BrokenProcessPool:
                if self._pool is pool:
                    self._pool = None
                    self.restarts += 1
                    pool.shutdown(wait=False, cancel_futures=True)
                outcome = await self._parse_alone(body, url, headers)
        if isinstance(outcome, ParseFailure):
            raise outcome.error()
        return outcome

    async def _parse_alone(
        self, body: bytes, url: str, headers: Mapping[str, str]
    ) -> ParsedFeed | ParseFailure:
        """Again, in a process of its own: was this the feed that killed the worker?"""
        async with self._alone:
            pool = ProcessPoolExecutor(1, mp_context=self._context)
            try:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(pool, self.job, body, url, dict(headers))
            except BrokenProcessPool:
                return ParseFailure("the feed parser crashed on this feed", url)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)

    def _start(self) -> ProcessPoolExecutor:
        self._pool = ProcessPoolExecutor(self.workers, mp_context=self._context)
        self.pooled = True
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def __aenter__(self) -> FeedParser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
