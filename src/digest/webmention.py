"""Telling the featured blogs, by Webmention (W3C Recommendation), that an issue mentions them.

Opt-in (``newsletter.webmentions: true``). Once an issue is sent, and so archived at
``DIGEST_BASE_URL/archive/<n>``, each post it featured (the archive pick too) gets one
Webmention: ``source`` the archive page, ``target`` the post. The archive page marks the issue
up as an h-entry and each post as a ``u-mention-of h-cite``, so a receiver that checks the
source can show "featured in TITLE".

- Discovery follows the spec (3.1.2): the target's HTTP ``Link`` headers first (several, or
  comma-joined, a rel list), then the first ``<link>`` or ``<a>`` whose rel holds
  ``webmention``, in document order; relative to the page's URL after redirects; an empty
  href is the page itself. Only http(s).
- Both the page and the endpoint come from someone else, so every hop goes through the SSRF
  guard of digest/net.py and is pinned to the address it checked, like an image fetch.
- Politely: the feed fetcher's User-Agent, DIGEST_FETCH_TIMEOUT for each exchange,
  DIGEST_FETCH_MAX_BYTES for a page, DIGEST_FETCH_PER_HOST requests at once per host (many
  blogs share one endpoint host, webmention.io among them).
- The outcome is kept per (issue, post) in ``webmentions``: 2xx is sent; no endpoint is none;
  another 4xx is failed; 429, 5xx, timeouts and dropped connections are retried on the next
  run, MAX_ATTEMPTS times in all. A row is sent only while it is due, so never twice; a lock
  keeps two runs (the scheduler and `digest webmentions`) from sending the same rows.

It runs after a send finishes (``after_send``, which never raises: a webmention is not worth a
send's outcome) and as `digest webmentions`.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from http import HTTPStatus
from urllib.parse import urljoin

import httpx

from digest import net
from digest.config import BlogsFile, Settings
from digest.errors import ConfigError, DigestError, LockedError
from digest.send.lock import named_lock
from digest.send.transport import run_sync
from digest.store import transaction
from digest.store import webmentions as store
from digest.store.db import Connection, get_meta, log_event, set_meta, ts
from digest.store.webmentions import STATUSES, Mention

MAX_ATTEMPTS = 5  # tries of a row that keeps answering 429 / 5xx before it counts as failed
SINCE_KEY = "webmentions_since"  # issues sent from then on are told (meta)
ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
REPLY_BYTES = 4096  # of an endpoint's answer: its reason for a refusal, for the curator
_HTML = ("text/html", "application/xhtml+xml")


# --- discovery (pure) --------------------------------------------------------------------------

_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,=\s]+(?:\s*=\s*(?:"[^"]*"|[^;,"]*))?)*)')
_PARAM = re.compile(r';\s*([^;,=\s]+)(?:\s*=\s*(?:"([^"]*)"|([^;,"]*)))?')


def _is_webmention(rel: str | None) -> bool:
    return rel is not None and "webmention" in rel.lower().split()


def link_header_endpoint(values: Iterable[str]) -> str | None:
    """The first ``<url>; rel="webmention"`` among Link header values (RFC 8288), unresolved."""
    for value in values:
        for link in _LINK.finditer(value):
            for name, quoted, bare in _PARAM.findall(link[2]):
                if name.lower() == "rel" and _is_webmention(quoted or bare.strip()):
                    return link[1].strip()
    return None


class _FirstEndpoint(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.href is None and tag in ("link", "a"):
            found = dict(attrs)
            href = found.get("href")
            if href is not None and _is_webmention(found.get("rel")):
                self.href = href.strip()


def html_endpoint(html: str) -> str | None:
    """The href of the first ``<link>`` or ``<a>`` with rel webmention, in document order (an
    element without href does not count; comments are not elements), unresolved."""
    parser = _FirstEndpoint()
    parser.feed(html)
    parser.close()
    return parser.href


# --- the network ---------------------------------------------------------------------------


class HttpStatus(net.FetchError):
    """The post's page answered with an error status."""

    def __init__(self, status: int, *, url: str) -> None:
        super().__init__(f"the post's page answered {_status_words(status)}", url=url)
        self.status = status


class TooLarge(net.FetchError):
    pass


def _status_words(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


async def _body(response: httpx.Response, max_bytes: int, url: str, *, cut: bool) -> bytes:
    """At most ``max_bytes`` of the body: cut there, or TooLarge."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            if cut:
                break
            raise TooLarge(f"the post's page is larger than {max_bytes} bytes", url=url)
    return b"".join(chunks)[:max_bytes]


def _text(body: bytes, response: httpx.Response) -> str:
    charset = response.charset_encoding or "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


async def discover(client: httpx.AsyncClient, target: str, *, settings: Settings) -> str | None:
    """The Webmention endpoint of ``target``, absolute, or None; raises net.FetchError."""
    url, response = await net.exchange(
        client, "GET", target, allow_private=settings.allow_private_targets
    )
    try:
        if not 200 <= response.status_code < 300:
            raise HttpStatus(response.status_code, url=url)
        found = link_header_endpoint(response.headers.get_list("link"))
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if found is None and kind in (*_HTML, ""):
            body = await _body(response, settings.fetch_max_bytes, url, cut=False)
            found = html_endpoint(_text(body, response))
    finally:
        await response.aclose()
    return None if found is None else urljoin(url, found)  # "" is the page itself


async def post(
    client: httpx.AsyncClient, endpoint: str, *, source: str, target: str, settings: Settings
) -> tuple[int, str]:
    """POST source and target, form-encoded (the endpoint's own query string kept); returns
    the status and the start of the answer's text."""
    url, response = await net.exchange(
        client,
        "POST",
        endpoint,
        allow_private=settings.allow_private_targets,
        data={"source": source, "target": target},
    )
    try:
        reply = _text(await _body(response, REPLY_BYTES, url, cut=True), response)
    finally:
        await response.aclose()
    return response.status_code, " ".join(reply.split())[:200]


# --- one mention ------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    status: str  # sent | none | failed | retry
    detail: str
    endpoint: str | None = None
    http_status: int | None = None


def _verdict(status: int) -> str:
    if 200 <= status < 300:
        return "sent"
    if status == 429 or status >= 500:
        return "retry"
    return "failed"


async def tell(
    client: httpx.AsyncClient, mention: Mention, *, settings: Settings, limits: net.Limits
) -> Outcome:
    """Discover the target's endpoint and send it the mention: the outcome, in words."""
    endpoint = None
    try:
        async with limits.slot(mention.target), asyncio.timeout(settings.fetch_timeout):
            endpoint = await discover(client, mention.target, settings=settings)
        if endpoint is None:
            return Outcome("none", "the post's page names no Webmention endpoint")
        async with limits.slot(endpoint), asyncio.timeout(settings.fetch_timeout):
            status, reply = await post(
                client, endpoint, source=mention.source, target=mention.target, settings=settings
            )
    except (net.TargetRefused, TooLarge) as exc:
        return Outcome("failed", exc.reason, endpoint)
    except HttpStatus as exc:
        return Outcome(_verdict(exc.status), exc.reason, endpoint, exc.status)
    except net.FetchError as exc:
        return Outcome("retry", exc.reason, endpoint)
    except TimeoutError:
        return Outcome("retry", f"timed out after {settings.fetch_timeout:g} s", endpoint)
    except httpx.HTTPError as exc:
        return Outcome("retry", f"{type(exc).__name__}: {exc}".rstrip(": "), endpoint)
    verdict = _verdict(status)
    words = {"sent": "accepted", "retry": "busy", "failed": "refused"}[verdict]
    detail = f"{words}: {_status_words(status)}" + (
        f": {reply}" if reply and words != "accepted" else ""
    )
    return Outcome(verdict, detail, endpoint, status)


# --- a run --------------------------------------------------------------------------------------


def require(settings: Settings, blogs: BlogsFile) -> None:
    """Refuse when webmentions are off, or when the archive pages would name localhost."""
    if not blogs.newsletter.webmentions:
        raise ConfigError(
            "webmentions are off: no featured blog is told",
            path=str(settings.blogs),
            hint="add `webmentions: true` under `newsletter:` in blogs.yaml",
        )
    if not settings.base_url_set:
        raise ConfigError(
            f"DIGEST_BASE_URL is not set: each webmention would name "
            f"{settings.base_url}/archive/<n> as the page that mentions the post, which no "
            "receiver can fetch to check it",
            hint="set DIGEST_BASE_URL (environment or .env) to the public address of "
            "`digest serve`, such as https://digest.example.org",
        )




def _enqueue(settings: Settings, conn: Connection, issue: int | None, now: datetime) -> None:
    """Rows for the posts of ``issue``, or of every issue sent since webmentions were first on
    (the latest issue already sent then counts; `--issue N` tells an older one)."""
    with transaction(conn):
        if issue is not None:
            chosen = [s for s in store.sent_issues(conn) if s.number == issue]
            if not chosen:
                raise DigestError(
                    f"issue {issue} was not sent (or is still being sent): no archive page "
                    "mentions its posts yet",
                    hint="run `digest webmentions` once its send is complete",
                )
        else:
            since = get_meta(conn, SINCE_KEY)
            if since is None:
                sent = store.sent_issues(conn)
                since = sent[-1].sent_at if sent else ts(now)
                set_meta(conn, SINCE_KEY, since)
            chosen = store.sent_issues(conn, since=since)
        for sent_issue in chosen:
            source = f"{settings.base_url}/archive/{sent_issue.key}"
            store.enqueue(conn, sent_issue.number, source=source, now=now)


def send_webmentions(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    *,
    now: datetime,
    issue: int | None = None,
) -> list[Mention]:
    """Send every webmention due (of ``issue`` only, if given); returns those rows as recorded
    now. Raises ConfigError when off or without DIGEST_BASE_URL, LockedError when another
    process is sending them."""
    require(settings, blogs)
    with named_lock(settings, "webmentions", "sending webmentions"):
        _enqueue(settings, conn, issue, now)
        due = store.due(conn, issue)
        if not due:
            return []
        run_sync(_tell_all(settings, conn, due, now))
        keys = {(m.issue, m.target) for m in due}
        told = [
            m
            for m in store.mentions(conn, [*{m.issue for m in due}])
            if (m.issue, m.target) in keys
        ]
        with transaction(conn):
            log_event(conn, "webmentions", tally(told), at=now)
    return told


async def _tell_all(
    settings: Settings, conn: Connection, due: list[Mention], now: datetime
) -> None:
    limits = net.Limits(settings)

    async def one(client: httpx.AsyncClient, mention: Mention) -> None:
        outcome = await tell(client, mention, settings=settings, limits=limits)
        if outcome.status == "retry" and mention.attempts + 1 >= MAX_ATTEMPTS:
            outcome.status = "failed"
            outcome.detail = f"gave up after {MAX_ATTEMPTS} attempts: {outcome.detail}"
        # Recorded as soon as it is known: a crash later in the run sends this one never again.
        with transaction(conn):
            store.record(
                conn,
                mention.issue,
                mention.target,
                status=outcome.status,
                endpoint=outcome.endpoint,
                http_status=outcome.http_status,
                detail=outcome.detail,
                now=now,
            )

    async with net.new_client(settings, accept=ACCEPT) as client:
        await asyncio.gather(*(one(client, m) for m in due))


def tally(told: list[Mention]) -> str:
    """``webmentions: 3 sent, 1 none, 1 retry``."""
    counts = Counter(m.status for m in told)
    return "webmentions: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])


def after_send(
    settings: Settings, blogs: BlogsFile, conn: Connection, *, now: datetime
) -> str | None:
    """After a send finished: send what is due. Never raises, since the send's outcome matters
    more; returns a line for the curator (None when webmentions are off)."""
    if not blogs.newsletter.webmentions:
        return None
    try:
        told = send_webmentions(settings, blogs, conn, now=now)
    except LockedError:
        return "webmentions: another digest process is sending them"
    except Exception as exc:  # whatever it is, the issue went out
        line = f"webmentions not sent: {exc}"
        try:
            with transaction(conn):
                log_event(conn, "webmentions", line, at=now)
        except Exception:  # the database itself, then: the line still reaches the curator
            pass
        return line
    return tally(told) if told else "webmentions: none due"
