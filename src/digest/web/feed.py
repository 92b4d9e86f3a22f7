"""/feed.xml and /feed/<category>.xml: the archive as Atom feeds (RFC 4287), full content.

Each entry carries the issue as the archive page shows it (``content`` of type html) and a
plain-text ``summary`` that is never empty, a quiet week's included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from xml.etree import ElementTree as ET

from digest.config import BlogsFile
from digest.store.db import ts

ATOM = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True, slots=True)
class FeedEntry:
    url: str  # the archive page: also the entry's id
    title: str
    published: datetime
    summary: str  # plain text
    content: str  # HTML, absolute links only


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    element.text = text
    return element


def atom_feed(
    entries: list[FeedEntry],
    blogs: BlogsFile,
    *,
    base_url: str,
    now: datetime,
    path: str = "/feed.xml",
    title: str | None = None,
    subtitle: str | None = None,
) -> bytes:
    """``path``: where this feed is served (its id and rel=self); ``title``: the newsletter's
    unless given (a category's feed names its category)."""
    ET.register_namespace("", ATOM)
    newsletter = blogs.newsletter
    root = ET.Element(f"{{{ATOM}}}feed")
    # The whole archive keeps the id it always had; a category's feed is its own URL.
    _sub(root, "id", f"{base_url}/" if path == "/feed.xml" else f"{base_url}{path}")
    _sub(root, "title", title or newsletter.title)
    if subtitle or newsletter.description:
        _sub(root, "subtitle", subtitle or newsletter.description)
    stamps = [e.published for e in entries]
    _sub(root, "updated", ts(max(stamps) if stamps else now))
    author = _sub(root, "author")
    _sub(author, "name", newsletter.curator)
    _sub(root, "link", rel="self", type="application/atom+xml", href=f"{base_url}{path}")
    _sub(root, "link", rel="alternate", type="text/html", href=f"{base_url}/archive")
    for item in entries:
        entry = _sub(root, "entry")
        _sub(entry, "id", item.url)
        _sub(entry, "title", item.title)
        _sub(entry, "updated", ts(item.published))
        _sub(entry, "published", ts(item.published))
        _sub(entry, "link", rel="alternate", type="text/html", href=item.url)
        _sub(entry, "summary", item.summary, type="text")
        _sub(entry, "content", item.content, type="html")
    body: bytes = ET.tostring(root, encoding="utf-8")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body
