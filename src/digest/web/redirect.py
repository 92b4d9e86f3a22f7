"""GET /r/<issue>/<n>: an edition's short link (newsletter.click_counts), counted, then followed.

The answer is a 302 to the target stored for that link when the edition was frozen, and only
there: an unknown link is a 404, never a redirect to something the URL says (no open
redirect). Nothing about the reader is kept, only that the link was followed once more: no
address, agent, time or cookie, and `Referrer-Policy: no-referrer` so the target does not learn
which mail service the reader uses either.

Not every request is a reader. Mail security gateways open every link of a message before the
reader sees it, browsers prefetch, chat apps fetch previews: a HEAD, a prefetch (by its
headers) or a known scanner (by its User-Agent, ``SCANNERS``) is answered the same way but not
counted, so the counts are a floor, never inflated by machines.

Counting is in memory and flushed to the database once a second and on shutdown, in one
transaction for the whole batch: a click then costs a dictionary update, not a commit, and the
redirect keeps up with a burst of readers (benchmarks/bench_redirect.py). A crash (`kill -9`,
power loss) loses at most the last second of counts; several `digest serve` on one PostgreSQL
add theirs up (the flush adds, never overwrites). The targets are read once per edition and
kept: a frozen edition's links never change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from digest.errors import StoreError
from digest.store import clicks
from digest.store.db import Connection, DbError
from digest.web.pages import Site

log = logging.getLogger("digest.web")

FLUSH_EVERY = 1.0  # seconds between writes of the counts
MISS_FOR = 5.0  # seconds an edition without links is not looked up again
MAX_MISSES = 1024  # remembered misses (random probes must not grow memory)
MAX_KEY = 2**31 - 1  # larger issue numbers or link numbers cannot exist: 404 without a query

# User-Agents that are not a reader following a link: link scanners of mail security gateways,
# preview fetchers of chat and social apps, crawlers, headless browsers and HTTP libraries.
# Matched case-insensitively anywhere in the header. (A reader whose browser names itself
# "...bot" is not counted either: the counts are a floor.)
SCANNERS = (
    "bot",  # Googlebot, bingbot, Slackbot, Discordbot, Twitterbot, LinkedInBot, TelegramBot ...
    "crawler",
    "spider",
    "preview",  # SkypeUriPreview, link previews
    "safelinks",  # Microsoft Defender for Office 365 Safe Links
    "microsoft office",  # Office apps checking a link before opening it
    "ms-office",
    "barracuda",
    "proofpoint",
    "mimecast",
    "google-safety",  # Gmail's and Safe Browsing's scanner
    "facebookexternalhit",
    "whatsapp",
    "headlesschrome",  # sandboxes that "detonate" every link in a browser
    "phantomjs",
    "curl/",
    "wget/",
    "python-",  # python-requests, python-urllib, python-httpx
    "go-http-client",
    "java/",
    "libwww",
)
_SCANNER = re.compile("|".join(re.escape(s) for s in SCANNERS), re.IGNORECASE)
# Prefetch and preview requests as browsers and mail clients mark them.
_PREFETCH = {
    "sec-purpose": "prefetch",  # "prefetch" and "prefetch;prerender" (Chromium)
    "purpose": "prefetch",  # Chromium before Sec-Purpose, Safari
    "x-purpose": "preview",  # Safari's Top Sites previews
    "x-moz": "prefetch",  # Firefox
}
HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


def counted(method: str, headers: Mapping[str, str]) -> bool:
    """Is this request a reader following the link (a GET, not a prefetch, not a scanner)?"""
    if method != "GET":
        return False
    for name, mark in _PREFETCH.items():
        if mark in headers.get(name, "").lower():
            return False
    agent = headers.get("user-agent", "")
    return bool(agent) and _SCANNER.search(agent) is None


class Redirects:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.targets: dict[int, dict[int, str]] = {}  # issue -> {n: url}, read once
        self.misses: dict[int, float] = {}  # issue -> when it had no links
        self.pending: Counter[tuple[int, int]] = Counter()  # clicks not yet written
        self._flusher: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def follow(self, request: Request) -> Response:
        issue, n = request.path_params["issue"], request.path_params["n"]
        url = await self._target(issue, n) if issue <= MAX_KEY and n <= MAX_KEY else None
        if url is None:
            return self.site.not_found("link")
        if counted(request.method, request.headers):
            self.pending[(issue, n)] += 1
        return RedirectResponse(url, status_code=302, headers=HEADERS)

    async def _target(self, issue: int, n: int) -> str | None:
        found = self.targets.get(issue)
        if found is None:
            missed = self.misses.get(issue)
            if missed is not None and time.monotonic() - missed < MISS_FOR:
                return None
            found = await self.site.db.run(lambda conn: clicks.links(conn, issue))
            if not found:
                if len(self.misses) >= MAX_MISSES:
                    self.misses.clear()
                self.misses[issue] = time.monotonic()
                return None
            self.misses.pop(issue, None)
            self.targets[issue] = found
        return found.get(n)

    # --- writing the counts ------------------------------------------------------------------

    def start(self) -> None:
        """Flush every FLUSH_EVERY seconds until ``close`` (the app's lifespan)."""
        self._stop = asyncio.Event()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        # Never cancelled in the middle of a write: ``close`` sets the event, and the loop ends
        # after one last flush, so no batch is dropped between memory and the database.
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), FLUSH_EVERY)
            try:
                await self.flush()
            except Exception:  # a bug: logged, and the counting goes on
                log.exception("writing the click counts failed")

    async def flush(self) -> None:
        """Write the counts gathered so far; on a database error they wait for the next try."""
        if not self.pending:
            return
        batch, self.pending = self.pending, Counter()

        def write(conn: Connection) -> None:
            clicks.add_clicks(conn, batch)

        try:
            await self.site.db.run(write)
        except (*DbError, StoreError) as exc:
            self.pending.update(batch)
            log.warning("click counts not written yet (%d clicks kept): %s", batch.total(), exc)

    async def close(self) -> None:
        """Write what is left, and stop flushing."""
        if self._flusher is not None:
            self._stop.set()
            await self._flusher
            self._flusher = None
        else:
            await self.flush()
        if self.pending:
            log.error("%d clicks could not be written before shutdown", self.pending.total())
