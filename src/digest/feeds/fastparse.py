"""The one seam to fastfeedparser: a fast path for plain, well-formed RSS 2.0 and Atom 1.0.

feedparser (parse.py) stays the reference: it costs ~40 us per XML element in Python, a
735-item feed ~200 ms, while fastfeedparser's compiled core reads the same feed in ~5 ms. The
two disagree on details (fastfeedparser fills a missing guid from the link, an RSS item's
content from its description, a missing date from another; feedparser calls an RSS title HTML
when it looks like HTML), so the fast path only takes documents where every field digest reads
means the same in both, and hands everything else back (``None``) to feedparser:

- the body is UTF-8 to feedparser's own ``convert_to_utf8`` (with the same headers), without
  a bozo flag, and has no DOCTYPE;
- the document is well-formed to Expat with namespaces, the parser feedparser runs on, so
  "not well-formed" (and every bozo case that follows from it) means the same;
- the root is ``<rss version="2.x">`` or an Atom 1.0 ``<feed>``, and every element and
  attribute is one of those listed below (no media, enclosures, xml:base on links,
  RSS 0.9x, RDF: those go to feedparser);
- every item has its own link (no guid-as-link), at most one alternate link and a title
  without markup or entities (whose type would matter); its dates are read by feedparser's
  own date parser.

Expat scans the document once (with one Python call per element) to learn, per item, which
elements it had; fastfeedparser's values are then used only where the item had the element.
The result is shaped like feedparser's entries so parse.py maps both the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

import fastfeedparser  # type: ignore[import-untyped]
import feedparser.datetimes
import feedparser.encodings

_ATOM = "http://www.w3.org/2005/Atom"
_DC = "http://purl.org/dc/elements/1.1/ "
_CONTENT = "http://purl.org/rss/1.0/modules/content/ "
_XML_BASE = "http://www.w3.org/XML/1998/namespace base"
_A = _ATOM + " "
# element -> the attributes it may carry. Names as Expat gives them with namespaces on.
_RSS_CHANNEL = {
    "rss": {"version"},
    "channel": set(),
    "title": set(),
    "link": set(),
    "description": set(),
    "language": set(),
    "copyright": set(),
    "generator": set(),
    "docs": set(),
    "ttl": set(),
    "lastBuildDate": set(),
    "pubDate": set(),
    "image": set(),
    "url": set(),
    "width": set(),
    "height": set(),
    "category": {"domain"},
    _A + "link": {"href", "rel", "type"},
    "http://purl.org/rss/1.0/modules/syndication/ updatePeriod": set(),
    "http://purl.org/rss/1.0/modules/syndication/ updateFrequency": set(),
}
_RSS_ITEM = {
    "item": set(),
    "title": set(),
    "link": set(),
    "description": set(),
    "guid": {"isPermaLink"},
    "pubDate": set(),
    "category": {"domain"},
    "comments": set(),
    _DC + "creator": set(),
    _CONTENT + "encoded": set(),
    "http://wellformedweb.org/CommentAPI/ commentRss": set(),
    "http://purl.org/rss/1.0/modules/slash/ comments": set(),
}
_ATOM_COMMON = {
    _A + "title": {"type"},
    _A + "link": {"href", "rel", "type", "title", "hreflang", "length"},
    _A + "id": set(),
    _A + "updated": set(),
    _A + "published": set(),
    _A + "author": set(),
    _A + "name": set(),
    _A + "uri": set(),
    _A + "category": {"term", "scheme", "label"},
    _A + "rights": {"type"},
}
_ATOM_CHANNEL = _ATOM_COMMON | {
    _A + "feed": set(),
    _A + "subtitle": {"type"},
    _A + "generator": {"uri", "version"},
    _A + "icon": set(),
    _A + "logo": set(),
}
_ATOM_ITEM = _ATOM_COMMON | {
    _A + "entry": set(),
    _A + "summary": {"type", _XML_BASE},
    _A + "content": {"type", _XML_BASE},
}
_ITEM = {"item", _A + "entry"}
_ATOM_LINK_TYPES = {"text/html": 1, "html": 1, "application/xhtml+xml": 1, "xhtml": 1}
# Atom text constructs: only these types, as feedparser names them.
_ATOM_TYPES = {"": "text/plain", "text": "text/plain", "html": "text/html"}


# Elements of an item the fast path reads that must appear at most once in it.
_ONCE = (
    "title", "summary", "description", "content", "creator", "author", "guid", "id",
    "pubDate", "published", "updated",
)  # fmt: skip
# An item's dates, read with feedparser's own date parser: fastfeedparser reads some
# differently (a date without a zone, "yesterday").
_DATES = {"pubDate": "published", "published": "published", "updated": "updated"}


class _Unsupported(Exception):
    """Something the fast path does not take: feedparser parses the document."""


@dataclass(slots=True)
class _Item:
    children: dict[str, int] = field(default_factory=dict)  # local name -> count
    types: dict[str, str] = field(default_factory=dict)  # title/summary/content -> type
    dates: dict[str, str] = field(default_factory=dict)  # published/updated -> its text


@dataclass(slots=True)
class _Scan:
    kind: str = ""
    items: list[_Item] = field(default_factory=list)
    links: int = 0  # the feed's own links: RSS <link>, Atom alternates
    stack: list[str] = field(default_factory=list)
    parser: Any = None
    text: list[str] = field(default_factory=list)  # of the date element being read

    def start(self, name: str, attrs: dict[str, str]) -> None:
        stack = self.stack
        if not stack:
            self._root(name, attrs)
        item = self.items[-1] if self.items and _ITEM.intersection(stack) else None
        allowed = (
            (_RSS_ITEM if item or name == "item" else _RSS_CHANNEL)
            if self.kind == "rss20"
            else (_ATOM_ITEM if item or name == _A + "entry" else _ATOM_CHANNEL)
        )
        names = allowed.get(name)
        if names is None or not names.issuperset(attrs):
            raise _Unsupported(name)
        if name in _ITEM:
            if item is not None:
                raise _Unsupported("nested item")
            self.items.append(_Item())
        elif item is not None and stack[-1] in _ITEM:
            local = name.rpartition(" ")[2]
            if name == _CONTENT + "encoded":
                local = "content"
            if local == "link" and self.kind == "atom10" and not _html_alternate(attrs):
                raise _Unsupported("entry link")  # enclosures, related: feedparser reads those
            item.children[local] = item.children.get(local, 0) + 1
            if local in _DATES:
                self.text = []
                self.parser.CharacterDataHandler = self.text.append
            if local in ("title", "summary", "content") and self.kind == "atom10":
                kind = _ATOM_TYPES.get(attrs.get("type", ""))
                if kind is None:
                    raise _Unsupported(f"{local} type")
                item.types[local] = kind
        elif self.kind == "rss20" and len(stack) == 2 and name in ("link", _A + "link"):
            if name == "link":
                self.links += 1
            elif attrs.get("rel") != "self":
                raise _Unsupported("atom:link in RSS")  # feedparser may take it as the link
        elif self.kind == "atom10" and len(stack) == 1 and name == _A + "link":
            if _html_alternate(attrs):
                self.links += 1
            elif attrs.get("rel", "alternate") == "alternate" or "href" not in attrs:
                raise _Unsupported("feed link")
        stack.append(name)

    def _root(self, name: str, attrs: dict[str, str]) -> None:
        if name == "rss" and attrs.get("version", "").startswith("2."):
            self.kind = "rss20"
        elif name == _A + "feed":
            self.kind = "atom10"
        else:
            raise _Unsupported(name)

    def end(self, name: str) -> None:
        self.stack.pop()
        if self.parser.CharacterDataHandler is not None:
            self.parser.CharacterDataHandler = None
            local = _DATES[name.rpartition(" ")[2]]
            self.items[-1].dates[local] = "".join(self.text).strip()


def _html_alternate(attrs: dict[str, str]) -> bool:
    """An Atom link feedparser takes as the page's link (its last such link, so one only)."""
    kind = _ATOM_LINK_TYPES.get(attrs.get("type", "text/html").lower())
    return "href" in attrs and attrs.get("rel", "alternate") == "alternate" and kind is not None


def _scan(data: bytes) -> _Scan:
    parser = expat.ParserCreate(namespace_separator=" ")
    scan = _Scan(parser=parser)
    parser.StartElementHandler = scan.start
    parser.EndElementHandler = scan.end
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise _Unsupported("not well-formed") from exc
    return scan


def _utf8(body: bytes, headers: dict[str, str]) -> bytes:
    result: dict[str, Any] = {}
    data: bytes = feedparser.encodings.convert_to_utf8(headers, body, result)
    # UTF-8 only (however it was labelled): a charset from the HTTP headers alone, UTF-16 or a
    # legacy code page goes to feedparser, as does any encoding conflict it flags.
    if result.get("bozo") or result.get("encoding") != "utf-8" or b"<!DOCTYPE" in data:
        raise _Unsupported("encoding or doctype")
    return data


def _plain(value: object) -> str:
    text = str(value or "")
    if "<" in text or "&" in text:
        raise _Unsupported("title with markup or entities")  # its type would matter
    return text


def _entry(raw: Any, item: _Item) -> dict[str, Any]:
    """One fastfeedparser entry as the feedparser entry keys parse.py reads."""
    has = item.children
    if has.get("link") != 1 or any(has.get(k, 0) > 1 for k in _ONCE):
        raise _Unsupported("link or repeated element")
    out: dict[str, Any] = {"link": raw.get("link")}
    if not out["link"]:
        raise _Unsupported("link")
    if "title" in has:
        out["title"] = _plain(raw.get("title"))
        out["title_detail"] = {"type": item.types.get("title", "text/plain")}
    if "guid" in has or "id" in has:
        out["id"] = raw.get("id")
    if "creator" in has or "author" in has:
        out["author"] = raw.get("author")
    for key, text in item.dates.items():
        out[key + "_parsed"] = feedparser.datetimes._parse_date(text) if text else None
    if "description" in has or "summary" in has:
        out["summary"] = raw.get("description")
        out["summary_detail"] = {"type": item.types.get("summary", "text/html")}
    if "content" in has:
        contents = raw.get("content")
        if not isinstance(contents, list) or len(contents) != 1:
            raise _Unsupported("content")
        value = contents[0].get("value")
        out["content"] = [{"type": item.types.get("content", "text/html"), "value": value}]
    return out


def parse(body: bytes, headers: dict[str, str]) -> tuple[str, dict[str, Any], list[Any]] | None:
    """(kind, feed, entries) shaped as feedparser's, or None: let feedparser parse it.

    ``headers``: the response headers exactly as feedparser is given them.
    """
    try:
        data = _utf8(body, headers)
        scan = _scan(data)
        if not scan.items or scan.links != 1:
            return None
        parsed: Any = fastfeedparser.parse(data)
        raw_entries = list(parsed.entries)
        if len(raw_entries) != len(scan.items):
            return None
        entries = [_entry(raw, item) for raw, item in zip(raw_entries, scan.items, strict=True)]
        channel = parsed.feed
        feed = {
            "title": _plain(channel.get("title")),
            "title_detail": {"type": "text/plain"},
            "link": channel.get("link"),
        }
    except Exception:  # noqa: BLE001 - any surprise: the reference parser decides
        return None
    return scan.kind, feed, entries
