"""The one seam to httpx: a polite GET of a feed (REFERENCE.md section 1).

- Conditional GET with the validators exactly as last received (kept as the raw header bytes,
  decoded as Latin-1 so they round-trip byte-for-byte, RFC 9110 section 5.5).
- Redirects followed here, hop by hop, so we know whether every hop was permanent (301/308):
  only then may the stored URL change. A 302 in the chain means "ask the old URL next time".
- One total time limit per feed, around the whole exchange including the body: an inactivity
  timeout alone never trips on a server that drip-feeds a byte a second.
- The body is decompressed here, with a cap counted after decompression (gzip bombs).
- No cookies, no Referer, no cache-busting query strings; the User-Agent says who we are.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import re
import socket
import ssl
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import urljoin, urlsplit

import httpx

from digest import __version__
from digest.config import Settings
from digest.errors import FeedError

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, "
    "application/xml;q=0.9, */*;q=0.8"
)
# br is left out on purpose: decoding it with a cap needs a third-party decoder.
ACCEPT_ENCODING = "gzip, deflate"
MAX_REDIRECTS = 10
# Idle connections kept for reuse. Blogs seldom share a host, so reuse is rare; and httpcore's
# pool bookkeeping costs, per request, a pass over every pooled connection (and a pass over all
# of them for each idle one): with a pool as large as the concurrency, that was a tenth of a
# cold run's CPU (benchmarks/bench_fetch.py).
MAX_KEEPALIVE = 8
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
# Server header -> who answered, for reasons such as "HTTP 403 from Cloudflare": a bot wall is
# fixed by asking the site owner, not by retrying.
_VENDORS = {
    "cloudflare": "Cloudflare",
    "akamaighost": "Akamai",
    "sucuri": "Sucuri",
    "ddos-guard": "DDoS-Guard",
    "awselb": "AWS",
    "cloudfront": "CloudFront",
}


@dataclass(slots=True)
class Response:
    url: str  # where the body came from, after redirects
    status: int  # 200-ish or 304
    headers: dict[str, str]  # lower-case names
    body: bytes | None  # None for a 304
    hops: list[tuple[int, str]] = field(default_factory=list)  # (status, location) per redirect
    etag: str | None = None  # raw, byte-for-byte
    last_modified: str | None = None

    @property
    def moved_permanently(self) -> str | None:
        """The new URL when every hop was 301/308 (and there was at least one), else None."""
        if self.hops and all(status in _PERMANENT for status, _ in self.hops):
            return self.url
        return None


def user_agent(settings: Settings) -> str:
    return f"digest/{__version__} (+{settings.base_url})"


def new_client(settings: Settings) -> httpx.AsyncClient:
    # A cookie policy that accepts no domain: feeds are fetched anonymously.
    jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(
        headers={
            "User-Agent": user_agent(settings),
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        },
        cookies=jar,
        follow_redirects=False,
        timeout=httpx.Timeout(settings.fetch_timeout),
        # No more connections than requests in flight (gather's limit): a larger pool only
        # costs CPU (see MAX_KEEPALIVE).
        limits=httpx.Limits(
            max_connections=settings.fetch_concurrency,
            max_keepalive_connections=min(settings.fetch_concurrency, MAX_KEEPALIVE),
        ),
    )


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    etag: str | None = None,
    last_modified: str | None = None,
    follow_redirects: bool = True,
) -> Response:
    """GET ``url``; raises FeedError with a reason a person understands."""
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(client, url, etag, last_modified, max_bytes, follow_redirects)
    except TimeoutError:
        raise FeedError(f"timed out after {timeout:g} s", url=url) from None
    except httpx.TimeoutException:
        raise FeedError(f"timed out after {timeout:g} s", url=url) from None
    except httpx.HTTPError as exc:
        raise FeedError(_describe_transport(exc, url), url=url) from None


async def _fetch(
    client: httpx.AsyncClient,
    url: str,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    follow_redirects: bool,
) -> Response:
    hops: list[tuple[int, str]] = []
    seen = {url}
    current = url
    while True:
        headers: list[tuple[bytes, bytes]] = []
        if etag is not None:
            headers.append((b"If-None-Match", etag.encode("latin-1")))
        if last_modified is not None:
            headers.append((b"If-Modified-Since", last_modified.encode("latin-1")))
        request = client.build_request("GET", current, headers=headers)
        response = await client.send(request, stream=True)
        try:
            status = response.status_code
            if follow_redirects and status in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise FeedError(f"HTTP {status} redirect without a Location", url=url)
                current = urljoin(current, location.strip())
                hops.append((status, current))
                if current in seen:
                    raise FeedError("redirect loop", url=url, http_status=status)
                if len(hops) > MAX_REDIRECTS:
                    raise FeedError(f"more than {MAX_REDIRECTS} redirects", url=url)
                seen.add(current)
                continue
            if status == 304:
                body = None
            elif 200 <= status < 300:
                body = await _read_body(response, max_bytes, url)
            else:
                raise _status_error(response, url)
            raw = _raw_headers(response)
            return Response(
                url=current,
                status=status,
                headers={k: v for k, v in response.headers.items()},
                body=body,
                hops=hops,
                etag=raw.get("etag"),
                last_modified=raw.get("last-modified"),
            )
        finally:
            await response.aclose()


def _raw_headers(response: httpx.Response) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in response.headers.raw
    }


class _Decoder:
    """gzip / deflate / identity with an output cap, so a bomb never inflates past the cap."""

    def __init__(self, encoding: str, url: str) -> None:
        self.url = url
        self.encoding = encoding
        if encoding in ("gzip", "x-gzip"):
            self.zlib: zlib._Decompress | None = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self.zlib = zlib.decompressobj()
        elif encoding in ("", "identity"):
            self.zlib = None
        else:
            raise FeedError(f"unsupported content encoding {encoding!r}", url=url)
        self.first = True

    def decode(self, data: bytes, room: int) -> bytes:
        """At most ``room + 1`` bytes of output (one more than fits reveals the overflow)."""
        if self.zlib is None:
            return data
        out = bytearray()
        try:
            while data and len(out) <= room:
                try:
                    out += self.zlib.decompress(data, room + 1 - len(out))
                except zlib.error:
                    if not (self.first and self.encoding == "deflate"):
                        raise
                    # RFC 9110 says deflate is zlib-wrapped; some servers send raw deflate.
                    self.zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    self.first = False
                    continue
                self.first = False
                data = self.zlib.unconsumed_tail
                if self.zlib.eof and self.zlib.unused_data and self.encoding != "deflate":
                    data = self.zlib.unused_data  # a multi-member gzip stream
                    self.zlib = zlib.decompressobj(zlib.MAX_WBITS | 16)
        except zlib.error:
            raise FeedError(
                f"could not decompress the body ({self.encoding} data is corrupt)", url=self.url
            ) from None
        return bytes(out)


async def _read_body(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    decoder = _Decoder(encoding, url)
    declared = response.headers.get("content-length", "")
    if not encoding and declared.isdigit() and int(declared) > max_bytes:
        raise FeedError(f"body larger than {_size(max_bytes)}", url=url)
    parts: list[bytes] = []
    total = 0
    async for chunk in response.aiter_raw():
        out = decoder.decode(chunk, max_bytes - total)
        total += len(out)
        if total > max_bytes:
            raise FeedError(f"body larger than {_size(max_bytes)}", url=url)
        parts.append(out)
    return b"".join(parts)


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


def _status_error(response: httpx.Response, url: str) -> FeedError:
    status = response.status_code
    server = response.headers.get("server", "").lower()
    vendor = next((name for key, name in _VENDORS.items() if key in server), None)
    if vendor is None and "cf-ray" in response.headers:
        vendor = "Cloudflare"
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    reason = f"HTTP {status} from {vendor}" if vendor else f"HTTP {status} {phrase}".rstrip()
    if status == 410:
        reason += ": the feed was removed"
    retry_after = None
    if status in (429, 503):
        retry_after = retry_after_seconds(response.headers)
        if retry_after is not None:
            reason += f", asked to wait {_duration(retry_after)}"
    return FeedError(reason, url=url, http_status=status, retry_after=retry_after)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _describe_transport(exc: httpx.HTTPError, url: str) -> str:
    host = urlsplit(url).hostname or url
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"not a fetchable http(s) URL: {text}"
    if isinstance(exc, httpx.ConnectError):
        cause = _os_error(exc)
        if isinstance(cause, socket.gaierror):
            return f"host not found: {host}"
        if isinstance(cause, ssl.SSLError) or "certificate" in text.lower():
            return f"TLS problem with {host}: {cause or text}"
        if cause is not None and cause.errno == errno.ECONNREFUSED:
            return f"connection refused by {host}"
        if cause is not None and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return f"{host} is unreachable"
        return f"could not connect to {host}: {cause.strerror if cause else text}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server broke the connection: {text}"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return f"connection lost: {text}"
    return f"{type(exc).__name__}: {text}"


def _os_error(exc: BaseException) -> OSError | None:
    """The operating system's own error under httpx's and anyio's wrappers, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and (
            current.errno is not None or isinstance(current, ssl.SSLError)
        ):
            return current
        current = current.__cause__ or current.__context__
    return None


# --- caching headers (pure) -------------------------------------------------------------------

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def cache_seconds(headers: Mapping[str, str]) -> float | None:
    """How long the response says it stays fresh (Cache-Control max-age, else Expires - Date).

    None when it says nothing; 0 for no-cache / no-store / an Expires in the past. The caller
    clamps (REFERENCE.md: [1 h, 7 d]).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    control = lowered.get("cache-control", "")
    if control:
        if re.search(r"no-store|no-cache", control, re.IGNORECASE):
            return 0.0
        match = _MAX_AGE.search(control)
        if match:
            return float(match[1])
    expires = lowered.get("expires")
    if expires is not None:
        when = _http_date(expires)
        if when is None:
            return 0.0  # RFC 9111 5.3: an invalid Expires (often "0") means already expired
        date = _http_date(lowered.get("date", "")) or time.time()
        return max(0.0, when - date)
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    date = _http_date(lowered.get("date", "")) or time.time()
    return max(0.0, when - date)


def _http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.timestamp() if parsed.tzinfo else None
