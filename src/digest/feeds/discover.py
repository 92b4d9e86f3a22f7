"""Autodiscovery: the feed of a blog known only by its homepage (REFERENCE.md section 1).

1. If the URL already is a feed, keep it.
2. ``<link rel="alternate" type="application/rss+xml|atom+xml|feed+json" href>`` in the page,
   resolved against the page URL (and its ``<base href>``), in document order.
3. Probes of the usual places (feed.xml, atom.xml, rss.xml, index.xml, feed/, rss/), without
   following redirects: many sites answer every unknown path with a redirect to the homepage.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

from digest.config import Settings
from digest.errors import FeedError
from digest.feeds.http import Response, fetch, new_client
from digest.feeds.parse import parse_feed

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json")
PROBES = ("feed.xml", "atom.xml", "rss.xml", "index.xml", "feed/", "rss/")


@dataclass(slots=True)
class Discovered:
    url: str  # the feed
    how: str  # "given" | "link" | "probe"
    title: str | None
    response: Response  # the feed as fetched while checking it: no need to fetch it again


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.feeds: list[tuple[str, str]] = []  # (href, title)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"]
        elif tag == "link":
            rels = values.get("rel", "").lower().split()
            kind = values.get("type", "").lower().split(";")[0].strip()
            if "alternate" in rels and kind in FEED_TYPES and values.get("href"):
                self.feeds.append((values["href"].strip(), values.get("title", "")))


def feed_links(html: str, page_url: str) -> list[str]:
    """Feed URLs a page advertises, absolute, in document order; comment feeds last."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    base = urljoin(page_url, parser.base) if parser.base else page_url
    found: list[str] = []
    for href, _title in parser.feeds:
        url = urljoin(base, href)
        if urlsplit(url).scheme in ("http", "https") and url not in found:
            found.append(url)
    # WordPress lists "Comments Feed" after the posts feed, but themes reorder: keep it last.
    return sorted(found, key=lambda u: "comment" in u.lower())


async def discover(client: httpx.AsyncClient, url: str, *, settings: Settings) -> Discovered:
    """The feed for ``url`` (a feed or a homepage); raises FeedError when none is found."""
    limits = (settings.fetch_timeout, settings.fetch_max_bytes)
    page = await fetch(client, url, timeout=limits[0], max_bytes=limits[1])
    assert page.body is not None
    try:
        parsed = parse_feed(page.body, url=page.url, headers=page.headers)
        return Discovered(
            url=page.moved_permanently or url, how="given", title=parsed.title, response=page
        )
    except FeedError:
        pass
    html = page.body.decode(_charset(page.headers), errors="replace")
    for candidate in feed_links(html, page.url):
        found = await _try(client, candidate, limits, follow=True)
        if found is not None:
            return Discovered(url=candidate, how="link", title=found[0], response=found[1])
    root = f"{urlsplit(page.url).scheme}://{urlsplit(page.url).netloc}/"
    bases = [page.url] if urljoin(page.url, ".") == root else [page.url, root]
    # One probe at a time: politeness towards a host we are guessing at.
    for probe in (urljoin(base, name) for base in bases for name in PROBES):
        found = await _try(client, probe, limits, follow=False)
        if found is not None:
            return Discovered(url=probe, how="probe", title=found[0], response=found[1])
    raise FeedError(
        "no feed found: the page links to none and " + ", ".join(PROBES) + " answered with no feed",
        url=url,
        hint="find the feed URL on the site and add it as `feed:` in blogs.yaml",
    )


async def _try(
    client: httpx.AsyncClient, url: str, limits: tuple[float, int], *, follow: bool
) -> tuple[str, Response] | None:
    """The feed's title ("" when untitled) and response if ``url`` serves a feed, else None."""
    try:
        response = await fetch(
            client,
            url,
            timeout=limits[0],
            max_bytes=limits[1],
            follow_redirects=follow,
        )
        if response.status != 200 or response.body is None:
            return None
        parsed = parse_feed(response.body, url=response.url, headers=response.headers)
    except FeedError:
        return None
    return parsed.title or "", response


def _charset(headers: dict[str, str]) -> str:
    content_type = headers.get("content-type", "")
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
            try:
                "".encode(charset)
            except LookupError:
                break
            return charset
    return "utf-8"


def discover_sync(settings: Settings, url: str) -> Discovered:
    async def run() -> Discovered:
        async with new_client(settings) as client:
            return await discover(client, url, settings=settings)

    return asyncio.run(run())
