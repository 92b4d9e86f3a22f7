"""Fetching URLs that come from other people's feeds and pages, guarded (REFERENCE.md 6c).

A feed is the curator's choice; the URLs inside it are not. An image URL (and later a post
page or a Webmention endpoint) may name ``localhost``, ``10.0.0.1``, ``169.254.169.254`` or a
host name that resolves there, and digest would fetch it from inside the curator's network
(SSRF). So every such URL, and every redirect hop, is resolved here (``getaddrinfo``) and
refused unless the address is a global unicast one: loopback, private, link-local, multicast,
reserved, unspecified and shared (CGNAT) addresses are refused, IPv4-mapped IPv6 included.
``DIGEST_ALLOW_PRIVATE_TARGETS=1`` lifts the guard (tests, intranets). Feed URLs from
blogs.yaml never come through here.

Pinning: checking a name and then letting the HTTP client resolve it again would let a DNS
rebind (a second answer, a short TTL) slip a private address in between. So the request goes
to the address that was checked: the URL's host is replaced by that IP, the ``Host`` header
keeps the name, and for https the ``sni_hostname`` request extension (httpcore) sends the name
in the TLS handshake and makes certificate verification check the name, not the IP. This needs
no custom transport, and nothing else resolves the name. Connections are not kept alive:
two names on one IP would otherwise share a TLS connection made for the first name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from digest.config import Settings
from digest.errors import DigestError

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_KEEP_METHOD = frozenset({307, 308})  # the only redirects a POST follows as a POST
T = TypeVar("T")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(DigestError):
    """A third-party URL could not be fetched; ``reason`` is the short text for reports."""

    def __init__(self, reason: str, *, url: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.reason = reason
        self.url = url


class TargetRefused(FetchError):
    """The URL resolves to an address digest must not reach (the SSRF guard)."""


def reason(error: DigestError) -> str:
    """The short words for the curator's feed health: a fetch's reason, else the message."""
    return error.reason if isinstance(error, FetchError) else error.message


def refusal(address: Address) -> str | None:
    """Why ``address`` must not be fetched, or None when it is a global unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for flag, words in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),  # before private: Python counts 240.0.0.0/4 as both
        ("is_private", "private"),
    ):
        if getattr(address, flag):
            return f"{words} address {address}"
    if not address.is_global:  # 100.64.0.0/10 (carrier-grade NAT) and the like
        return f"non-public address {address}"
    return None


async def resolve(url: str, *, allow_private: bool) -> Address:
    """The address to connect to for ``url``: resolved once, checked; raises TargetRefused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("not an http(s) URL", url=url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"host not found ({exc})", url=url) from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise FetchError("host not found", url=url)
    if allow_private:
        return addresses[0]
    for address in addresses:
        if refusal(address) is None:
            return address  # connect to this one, and only this one (pinned below)
    reason = refusal(addresses[0])
    raise TargetRefused(
        f"refused: {parts.hostname} is a {reason} (DIGEST_ALLOW_PRIVATE_TARGETS=1 allows it)",
        url=url,
    )


def new_client(
    settings: Settings, *, accept: str, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    from digest.feeds.http import user_agent  # the feed fetcher's User-Agent

    return httpx.AsyncClient(
        verify=verify,
        headers={"User-Agent": user_agent(settings), "Accept": accept},
        follow_redirects=False,
        timeout=httpx.Timeout(settings.fetch_timeout),
        limits=httpx.Limits(max_keepalive_connections=0),
        trust_env=False,  # no proxy from the environment: it would resolve the name itself
    )


@dataclass(slots=True)
class Fetched:
    url: str  # after redirects
    content_type: str
    body: bytes


async def get(
    client: httpx.AsyncClient, url: str, *, settings: Settings, max_bytes: int
) -> Fetched:
    """GET a third-party ``url``, every hop guarded and pinned, the whole exchange within
    DIGEST_FETCH_TIMEOUT and the body within ``max_bytes``; raises FetchError."""
    try:
        async with asyncio.timeout(settings.fetch_timeout):
            return await _get(client, url, settings.allow_private_targets, max_bytes)
    except TimeoutError:
        raise FetchError(f"timed out after {settings.fetch_timeout:g} s", url=url) from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}".rstrip(": "), url=url) from None


async def exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    allow_private: bool,
    data: Mapping[str, str] | None = None,
) -> tuple[str, httpx.Response]:
    """``method`` to a third-party ``url``, redirects followed hop by hop (a POST only through
    307 and 308, which keep it a POST), each hop resolved, guarded and pinned to the address
    checked. Returns the final URL and the response, its body unread: the caller closes it."""
    follow = _REDIRECTS if method == "GET" else _KEEP_METHOD
    for _ in range(MAX_REDIRECTS + 1):
        address = await resolve(url, allow_private=allow_private)
        target = httpx.URL(url)
        request = client.build_request(
            method,
            target.copy_with(host=str(address)),
            headers={"Host": target.netloc.decode("ascii"), "Accept-Encoding": "identity"},
            extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
            data=data,
        )
        response = await client.send(request, stream=True)
        location = response.headers.get("location", "").strip()
        if response.status_code not in follow or not location:
            return url, response
        await response.aclose()
        url = urljoin(url, location)
    raise FetchError(f"more than {MAX_REDIRECTS} redirects", url=url)


async def _get(client: httpx.AsyncClient, url: str, allow: bool, max_bytes: int) -> Fetched:
    url, response = await exchange(client, "GET", url, allow_private=allow)
    try:
        if response.status_code != 200:
            raise FetchError(f"HTTP {response.status_code}", url=url)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"larger than {max_bytes} bytes", url=url)
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.aiter_raw():
            total += len(chunk)
            if total > max_bytes:
                raise FetchError(f"larger than {max_bytes} bytes", url=url)
            chunks.append(chunk)
        return Fetched(url, response.headers.get("content-type", ""), b"".join(chunks))
    finally:
        await response.aclose()


class Limits:
    """DIGEST_FETCH_CONCURRENCY requests in all, DIGEST_FETCH_PER_HOST per host."""

    def __init__(self, settings: Settings) -> None:
        self.total = asyncio.Semaphore(settings.fetch_concurrency)
        self.hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(settings.fetch_per_host)
        )

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        async with self.hosts[(urlsplit(url).hostname or "").lower()], self.total:
            yield


def fetch_each(
    settings: Settings,
    urls: Iterable[str],
    process: Callable[[Fetched], T],
    *,
    accept: str,
) -> dict[str, T | DigestError]:
    """GET each third-party URL (``get``) within the Limits and ``process`` each body in a
    worker thread (an image resized, a lede extracted); a URL that failed maps to its error:
    FetchError (TargetRefused from the guard) or whatever DigestError ``process`` raised.

    From sync code (the draft step): in a thread of its own when this thread already runs an
    event loop, which asyncio.run refuses to nest (Playwright's sync API, a job started from
    async code)."""

    async def run() -> dict[str, T | DigestError]:
        limits = Limits(settings)
        out: dict[str, T | DigestError] = {}

        async def one(client: httpx.AsyncClient, url: str) -> None:
            async with limits.slot(url):
                try:
                    fetched = await get(
                        client, url, settings=settings, max_bytes=settings.fetch_max_bytes
                    )
                    out[url] = await asyncio.to_thread(process, fetched)
                except DigestError as exc:
                    out[url] = exc

        async with new_client(settings, accept=accept) as client:
            await asyncio.gather(*(one(client, url) for url in dict.fromkeys(urls)))
        return out

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-fetch") as pool:
        return pool.submit(lambda: asyncio.run(run())).result()
